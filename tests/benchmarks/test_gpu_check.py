"""The one-shot GPU check's harness, run on CPU in its small mode, and the bundle it
travels in: re-quantizing a converted model, cutting the tar into parts, aliasing cuBLAS."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import ctranslate2
import pytest

from benchmarks import gpu_bundle, gpu_check

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit


def test_a_converted_model_is_requantized_by_ctranslate2_and_still_loads(
        tiny_model: str, tmp_path: Path) -> None:
    out = gpu_bundle.requantize_whisper(Path(tiny_model), tmp_path / "int8", (4, 6, 4, 6),
                                        quantization="int8")
    variables, aliases = gpu_bundle.read_model_bin(out / "model.bin")
    assert variables["encoder/layer_0/ffn/linear_0/weight"].dtype == "int8"
    assert "encoder/layer_0/ffn/linear_0/weight_scale" in variables
    assert aliases["decoder/projection/weight"] == "decoder/embeddings/weight"  # tied, kept
    before = (Path(tiny_model) / "model.bin").stat().st_size
    assert (out / "model.bin").stat().st_size < 0.6 * before
    model = ctranslate2.models.Whisper(str(out), device="cpu", compute_type="int8")
    assert model.n_mels == 80 and model.is_multilingual


def test_the_bundle_is_cut_into_equal_parts_that_join_back(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "payload.bin").write_bytes(os.urandom(300_000))  # incompressible
    parts = gpu_bundle.split_tar([folder], tmp_path / "parts", part_bytes=120_000)
    assert [p.name for p in parts] == ["part-1", "part-2", "part-3"]
    pieces = [next(p.glob("bundle.tar.xz.*")).read_bytes() for p in parts]
    assert max(map(len, pieces)) - min(map(len, pieces)) <= 2 and max(map(len, pieces)) <= 120_000
    manifest = json.loads((parts[0] / "manifest.json").read_text())
    assert manifest["parts"] == 3 and manifest["bytes"] == sum(map(len, pieces))
    with tarfile.open(fileobj=io.BytesIO(b"".join(pieces)), mode="r:xz") as tar:
        assert "site/payload.bin" in tar.getnames()


def test_cublas_13_is_aliased_under_the_names_ctranslate2_opens(
        cublas_13_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    libs = cublas_13_site
    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/lib")
    found = gpu_check.cublas_aliases(tmp_path / "aliases")
    assert (tmp_path / "aliases" / "libcublas.so.12").resolve() == libs / "libcublas.so.13"
    assert (tmp_path / "aliases" / "libcublasLt.so.12").resolve() == libs / "libcublasLt.so.13"
    assert found["links"]["libcublas.so.12"].endswith("libcublas.so.13")
    assert os.environ["LD_LIBRARY_PATH"] == f"{tmp_path / 'aliases'}{os.pathsep}/usr/lib"


@pytest.mark.slow
def test_the_check_runs_on_cpu_and_writes_its_json_and_table(real_model: str,
                                                            tmp_path: Path) -> None:
    # the words step on the real tiny.en: on the random weights it would otherwise take, every
    # gate fails and the 11 s clip is decoded six times over (30 s of the check's 44 s)
    out = tmp_path / "check.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--cpu", "--out", str(out),
         "--work", str(tmp_path / "work"), "--actors", "1", "2", "--batch-sizes", "2",
         "--words-model", real_model],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    runs = data["throughput"]["tiny"]["runs"]
    assert [(r["actors"], r["batch_size"]) for r in runs] == [(1, 2), (2, 2)]
    assert data["mode"]["actors"] == [1, 2] and data["mode"]["batch_sizes"] == [2]
    assert all(not r["error"] and r["chunks_per_s"] > 0 and r["actor_peak"] > 0 for r in runs)
    assert data["cublas"] == {"skipped": "CPU mode: no cuBLAS"}
    assert data["words"]["matches_reference"], data["words"]
    assert data["words"]["audio_s"] == pytest.approx(11.0, abs=0.5) and data["words"]["text"]
    assert data["environment"]["ctranslate2"] == ctranslate2.__version__
    assert "vs k=1" in done.stdout and "tiny.en on jfk.flac" in done.stdout
    assert "] models: " in done.stdout  # each step prints as it ends, before the table
