"""Preflight checks, each alone, on this machine as it is (and with what it lacks made up
only where the machine has it: a missing library is a soname that does not exist)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scribe.capacity import doctor, footprint, packing

pytestmark = pytest.mark.unit

NO_GPUS: list[packing.GpuInfo] = []
ONE_GPU = [packing.GpuInfo(0, "NVIDIA GeForce RTX 3090", 24 * footprint.GiB, 23 * footprint.GiB)]


def test_no_gpu_warns_for_auto_and_fails_for_cuda() -> None:
    assert doctor.check_gpu("auto", NO_GPUS).status == "warn"
    failed = doctor.check_gpu("cuda", NO_GPUS)
    assert failed.status == "fail" and "--gpus all" in failed.fix
    assert doctor.check_gpu("cpu", NO_GPUS).status == "ok"
    assert doctor.check_gpu("cuda", ONE_GPU).status == "ok"


def test_this_machine_reports_its_gpus_truthfully() -> None:
    gpus = packing.read_gpus()
    result = doctor.check_gpu("auto")
    assert result.status == ("ok" if gpus else "warn")


def test_an_old_driver_fails_with_the_upgrade() -> None:
    old = doctor.check_driver("cuda", ("470.82", 11040), gpus=ONE_GPU)
    assert old.status == "fail" and "11.4" in old.message and "525" in old.fix
    assert doctor.check_driver("cuda", ("550.54", 12040), gpus=ONE_GPU).status == "ok"
    assert doctor.check_driver("cuda", None, gpus=ONE_GPU).status == "fail"
    assert doctor.check_driver("auto", gpus=NO_GPUS).status == "ok"


def test_a_missing_cublas_is_one_line_with_the_pip_fix() -> None:
    missing = doctor.check_cuda_libraries("cuda", ["libcublas.so.99"], gpus=ONE_GPU)
    assert missing.status == "fail"
    assert "libcublas.so.99 not loadable" in missing.message
    assert "\n" not in missing.line()
    assert "nvidia-cublas-cu12" in missing.fix
    without_gpu = doctor.check_cuda_libraries("auto", ["libcublas.so.99"], gpus=NO_GPUS)
    assert without_gpu.status == "warn"
    assert doctor.check_cuda_libraries("cpu", ["libcublas.so.99"]).status == "ok"


def test_a_missing_cublas_12_beside_cublas_13_gets_the_links_that_serve_it(
        cublas_13_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    libs = cublas_13_site
    assert doctor.find_cublas_13() == {"libcublas.so.13": libs / "libcublas.so.13",
                                       "libcublasLt.so.13": libs / "libcublasLt.so.13"}
    missing = doctor.check_cuda_libraries("cuda", ["libcublas.so.12"], gpus=ONE_GPU)
    if missing.status == "ok":
        pytest.skip("this machine has cuBLAS 12")
    assert f"ln -sf {libs / 'libcublas.so.13'} ~/.cache/scribe/cuda/libcublas.so.12" in missing.fix
    assert f"{libs / 'libcublasLt.so.13'} ~/.cache/scribe/cuda/libcublasLt.so.12" in missing.fix
    assert "LD_LIBRARY_PATH=~/.cache/scribe/cuda" in missing.fix
    monkeypatch.setattr(sys, "path", [str(tmp_path / "absent")])
    assert doctor.find_cublas_13() == {}
    assert "nvidia-cublas-cu12" in doctor.check_cuda_libraries(
        "cuda", ["libcublas.so.12"], gpus=ONE_GPU).fix


def test_the_libraries_are_read_from_ctranslate2_itself() -> None:
    import ctranslate2

    libraries = doctor.ctranslate2_cuda_libraries()
    if ctranslate2.__version__.startswith("4."):
        assert "libcublas.so.12" in libraries


def test_a_library_that_loads_passes() -> None:
    assert doctor.check_cuda_libraries("auto", ["libc.so.6"], gpus=NO_GPUS).status == "ok"


def test_a_local_model_directory_resolves(tiny_model: str, tmp_path: Path) -> None:
    assert doctor.check_model(tiny_model).status == "ok"
    assert doctor.check_disk(tiny_model).status == "ok"
    empty = doctor.check_model(str(tmp_path))
    assert empty.status == "fail" and "model.bin" in empty.message


def test_an_unknown_or_unreachable_model_fails(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    assert doctor.check_model("large-v9").status == "fail"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = doctor.check_model("large-v3")
    assert offline.status == "fail" and "huggingface-cli download" in offline.fix


def test_disk_for_a_download_is_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = doctor.check_disk("large-v3")
    assert "the model needs 2.9 GiB" in result.message
    assert result.status in ("ok", "fail")
    assert doctor.download_bytes("tiny") == 78_000_000


def test_output_must_be_writable(tmp_path: Path) -> None:
    assert doctor.check_output(str(tmp_path)).status == "ok"
    assert list(tmp_path.iterdir()) == [], "the probe is removed"
    later = doctor.check_output(str(tmp_path / "not" / "yet"))
    assert later.status == "ok" and not (tmp_path / "not").exists(), "nothing is created"
    (tmp_path / "file").write_text("x")
    blocked = doctor.check_output(str(tmp_path / "file" / "out"))
    assert blocked.status == "fail" and "mkdir" in blocked.fix


@pytest.mark.s3
def test_output_on_an_object_store(s3_bucket: str) -> None:
    assert doctor.check_output(f"s3://{s3_bucket}/out").status == "ok"
    missing = doctor.check_output("s3://no-such-bucket-scribe/out")
    assert missing.status == "fail"


def test_node_checks_cover_the_gpu_only_for_a_gpu_device(tiny_model: str) -> None:
    assert [r.name for r in doctor.node_checks("cpu", tiny_model)] == ["model", "disk"]
    names = [r.name for r in doctor.node_checks("cuda", tiny_model, count_devices=False)]
    assert names == ["gpu", "driver", "cuda-libraries", "model", "disk"]


def test_checks_run_in_about_a_second(tiny_model: str, tmp_path: Path) -> None:
    import time

    start = time.perf_counter()
    results = doctor.run_checks(device="cpu", model=tiny_model, output=str(tmp_path))
    assert time.perf_counter() - start < 3.0
    assert not doctor.failures(results)
    assert doctor.checks_text(results).endswith("0 failure(s)")


def _scribe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ray_scribe.cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_scribe_doctor_exit_status_and_lines(tiny_model: str, tmp_path: Path) -> None:
    ok = _scribe("doctor", "--device", "cpu", "--model", tiny_model, "--output", str(tmp_path),
                 "--no-ray")
    assert ok.returncode == 0, ok.stdout
    if packing.read_gpus():
        return
    cuda = _scribe("doctor", "--device", "cuda", "--model", tiny_model, "--no-ray", "--json")
    assert cuda.returncode == 1
    rows = {r["name"]: r for r in json.loads(cuda.stdout)}
    assert rows["gpu"]["status"] == "fail"
    assert rows["model"]["status"] == "ok"
