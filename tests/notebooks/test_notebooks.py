"""The notebooks run top to bottom, each in its own kernel, and draw their figures.

Each runs with the random-weights test model on CPU (the notebooks' default), its figures
written to a fresh ``SCRIBE_FIGURES_DIR``, its job output to a temporary folder. The
executed copies and the PNGs are kept in ``$SCRIBE_ARTIFACTS_DIR`` (default
``build/artifacts/notebooks``) for a person to look at; nothing is written back into
``notebooks/``. A notebook that starts Ray stops it in its last cell; the test checks that
no process of the kernel's (Ray's included) outlives the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = ROOT / "notebooks"
ARTIFACTS_DIR = Path(os.environ.get("SCRIBE_ARTIFACTS_DIR") or ROOT / "build" / "artifacts"
                     / "notebooks")

# Each notebook and the main figures it must leave in SCRIBE_FIGURES_DIR.
FIGURES = {
    "quickstart.ipynb": ["quickstart_segments_timeline"],
    "throughput_and_cost.ipynb": [
        "throughput_stage_seconds_per_audio_hour",
        "throughput_audio_s_per_wall_s",
        "throughput_cost_per_audio_hour",
        "throughput_monthly_cost",
    ],
    "capacity_planning.ipynb": ["capacity_packing_plan", "capacity_sessions_per_hour"],
}
CELL_TIMEOUT_S = 180
KERNEL_NAME = "scribe-notebook-test"


@pytest.mark.unit
def test_every_notebook_is_tested() -> None:
    assert sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb")) == sorted(FIGURES)


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_committed_notebook_is_stripped(name: str) -> None:
    """Outputs and execution counts stay out of git: diffs show code, not runs."""
    notebook = json.loads((NOTEBOOKS_DIR / name).read_text(encoding="utf-8"))
    dirty = [i for i, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{name}: cells {dirty} keep outputs or execution counts; clear them"


@pytest.fixture(scope="module")
def kernel_dir() -> Iterator[Path]:
    """A kernelspec that starts this interpreter, whatever ``python`` is on PATH."""
    pytest.importorskip("nbclient", reason="the notebooks extra: pip install -e '.[notebooks]'")
    pytest.importorskip("ipykernel", reason="the notebooks extra: pip install -e '.[notebooks]'")
    root = Path(tempfile.mkdtemp(prefix="scribe-kernels-"))
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ray-scribe tests", "language": "python"}))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _kernel_env(figures: Path, work: Path, ray_tmp: Path, marker: str) -> dict[str, str]:
    env = dict(os.environ)
    # The notebooks start their own Ray; never join one this test process may have.
    env.pop("RAY_ADDRESS", None)
    env.update({
        "SCRIBE_FIGURES_DIR": str(figures),
        "SCRIBE_NOTEBOOK_OUTPUT": str(work / "out"),
        # No plan file from a `scribe calibrate` run on this machine changes the figures.
        "SCRIBE_PLAN": str(work / "no-plan.json"),
        "RAY_TMPDIR": str(ray_tmp),
        # The notebooks' own temporary folders (job outputs) go where pytest cleans up.
        "TMPDIR": str(work),
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        "SCRIBE_NOTEBOOK_TEST_RUN": marker,
    })
    return env


def _processes_with(marker: str) -> list[int]:
    """Processes (Ray's workers included: they inherit the kernel's environment) whose
    environment carries ``marker``. Linux only: elsewhere (no /proc) nothing is checked."""
    needle = f"SCRIBE_NOTEBOOK_TEST_RUN={marker}".encode()
    found: list[int] = []
    if not Path("/proc").is_dir():
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _reap(marker: str, grace_s: float = 20.0) -> list[int]:
    """Wait for the run's processes to end; kill (by pid) and return those that did not."""
    deadline = time.monotonic() + grace_s
    while (left := _processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def _looks_like_a_figure(path: Path) -> None:
    from matplotlib.image import imread

    assert path.stat().st_size > 15_000, f"{path.name}: only {path.stat().st_size} bytes"
    pixels = imread(path)
    height, width = pixels.shape[:2]
    assert width >= 600 and height >= 300, f"{path.name}: {width}x{height} px"
    rgb = pixels[..., :3].reshape(-1, 3)
    assert rgb.std() > 0.05, f"{path.name}: nearly blank"
    colours = {tuple(c) for c in (rgb[:: max(1, len(rgb) // 20_000)] * 255).astype(int)}
    assert len(colours) > 50, f"{path.name}: only {len(colours)} colours, no plot drawn?"


@pytest.mark.notebooks
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_and_draws_its_figures(name: str, kernel_dir: Path, tiny_model: str,
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    figures, work = tmp_path / "figures", tmp_path / "work"
    figures.mkdir()
    work.mkdir()
    # Short: Ray's socket paths under it must stay within the 107-byte AF_UNIX limit.
    ray_tmp = Path(tempfile.mkdtemp(prefix="nbray-", dir="/tmp"))
    marker = uuid.uuid4().hex
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir))
    notebook = nbformat.read(NOTEBOOKS_DIR / name, as_version=4)
    client = NotebookClient(notebook, kernel_name=KERNEL_NAME, timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    start = time.perf_counter()
    try:
        client.execute(env=_kernel_env(figures, work, ray_tmp, marker))
    finally:
        seconds = time.perf_counter() - start
        leftover = _reap(marker)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        kept = ARTIFACTS_DIR / Path(name).stem
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir(parents=True)
        nbformat.write(notebook, kept / name)  # the executed copy, outputs and all
        for png in figures.glob("*.png"):
            shutil.copy2(png, kept / png.name)
        (kept / "seconds.txt").write_text(f"{seconds:.1f}\n")
    assert not leftover, f"{name} left processes behind: {leftover} (killed)"
    for figure in FIGURES[name]:
        path = figures / f"{figure}.png"
        assert path.is_file(), f"{name} did not save {figure}.png"
        _looks_like_a_figure(path)
