"""One-shot GPU check for a bare GPU machine: does CTranslate2 run on CUDA 13 through
cuBLAS 13 under the ``.so.12`` names it opens, how fast do k = 1..4 engine processes
sharing the card go at batch 8/16/32 (large-v3 and turbo shapes, random weights), how much
memory does each take, and does the real tiny.en transcribe jfk.flac there.

    bash benchmarks/gpu_check.sh                      # on the GPU machine (docs/gpu_check.md)
    python benchmarks/gpu_check.py --cpu --out x.json # the same harness on CPU, tiny sizes

Writes a JSON (after every step, so a run stopped early keeps what it measured) and
prints a table. Every step records its error instead of stopping the check.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scribe.capacity import throughput  # noqa: E402
from scribe.capacity.doctor import CUBLAS_13_FOR_12, find_cublas_13  # noqa: E402
from scribe.config import TranscribeOptions  # noqa: E402

JFK = ROOT / "examples" / "sessions" / "jfk.flac"
JFK_TEXT = ("and so my fellow americans ask not what your country can do for you "
            "ask what you can do for your country")


@dataclass(frozen=True)
class Mode:
    """What one run measures: the GPU's full sizes, or the CPU's small ones for CI."""

    device: str
    compute_type: str
    models: tuple[str, ...]
    actors: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    rounds: int
    max_new_tokens: int
    cpu_threads: int


GPU = Mode("cuda", "float16", ("large-v3", "large-v3-turbo"), (1, 2, 3, 4), (8, 16, 32), 2,
           128, 0)
CPU = Mode("cpu", "int8", ("tiny",), (1, 2), (1, 2), 1, 4, 1)


@dataclass
class Report:
    """The JSON the check writes, rewritten after every step."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def step(self, name: str, run: Callable[[], Any]) -> Any:
        """Run one step, record its result or its error, and save."""
        began = time.monotonic()
        try:
            result = run()
        except Exception as exc:  # a failed step is a finding: record it, go on
            result = {"error": f"{type(exc).__name__}: {exc}"}
        self.data[name] = result
        self.data.setdefault("step_s", {})[name] = round(time.monotonic() - began, 1)
        self.save()
        self.say(name, result)
        return result

    def say(self, name: str, result: Any) -> None:
        """Print a step's result as it ends: a call killed at its limit keeps the output."""
        print(f"[{time.monotonic() - self.started:6.1f} s] {name}: "
              f"{json.dumps(result, default=str)[:3000]}", flush=True)

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.monotonic() - self.started, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")


def environment() -> dict[str, Any]:
    """Python, the packages the engine needs, and the GPU as nvidia-smi names it."""
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine()}
    for name in ("torch", "ctranslate2", "faster_whisper", "av", "numpy", "pydantic"):
        info[name] = _version(name)
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                          "--format=csv,noheader"], capture_output=True, text=True,
                         check=False) if _which("nvidia-smi") else None
    info["gpu"] = smi.stdout.strip() if smi and smi.returncode == 0 else None
    return info


def _version(module: str) -> str | None:
    try:
        return str(__import__(module).__version__)
    except Exception as exc:  # absent or broken: say which
        return f"unavailable ({type(exc).__name__}: {exc})"


def _which(program: str) -> bool:
    return any((Path(p) / program).is_file() for p in os.environ.get("PATH", "").split(":"))


def cublas_aliases(dest: Path) -> dict[str, Any]:
    """Symlink cuBLAS 13 (from the torch wheel's nvidia libraries) under the ``.so.12``
    names into ``dest``, and put ``dest`` first on ``LD_LIBRARY_PATH`` for every process
    started after this (the probe and the engine processes)."""
    found = find_cublas_13()
    dest.mkdir(parents=True, exist_ok=True)
    links = {}
    for alias, target in CUBLAS_13_FOR_12.items():
        if target in found:
            link = dest / alias
            link.unlink(missing_ok=True)
            link.symlink_to(found[target])
            links[alias] = str(found[target])
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(dest), os.environ.get("LD_LIBRARY_PATH", "")) if p)
    return {"found": {k: str(v) for k, v in found.items()}, "links": links}


_PROBE = """
import sys, numpy as np, ctranslate2
print("cuda devices:", ctranslate2.get_cuda_device_count(), flush=True)
model = ctranslate2.models.Whisper(sys.argv[1], device=sys.argv[2], compute_type=sys.argv[3])
features = ctranslate2.StorageView.from_array(np.zeros((1, model.n_mels, 3000), np.float32))
start = 50258 if model.is_multilingual else 50257  # <|startoftranscript|>
out = model.generate(model.encode(features), [[start]], max_length=8)
print("generated tokens:", out[0].sequences_ids[0], flush=True)
"""


def probe(model: str, device: str, compute_type: str, env: dict[str, str]) -> dict[str, Any]:
    """Load ``model`` in a fresh process and run one encode + generate; the exact output."""
    done = subprocess.run([sys.executable, "-c", _PROBE, model, device, compute_type],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    return {"returncode": done.returncode, "stdout": done.stdout.strip()[-2000:],
            "stderr": done.stderr.strip()[-4000:], "ok": done.returncode == 0}


def cublas_step(words_model: str, mode: Mode, work: Path) -> dict[str, Any]:
    """The probe without the aliases (what fails), then with them (what CTranslate2 says)."""
    if mode.device != "cuda":
        return {"skipped": "CPU mode: no cuBLAS"}
    before = probe(words_model, "cuda", "float16", dict(os.environ))
    aliases = cublas_aliases(work / "cublas12")
    after = probe(words_model, "cuda", "float16", dict(os.environ))
    return {"without_aliases": before, "aliases": aliases, "with_aliases": after}


def build_models(mode: Mode, work: Path) -> dict[str, Any]:
    """Random-weight models at each architecture, built in parallel processes."""
    from scribe.testing.testmodel import make_test_model

    began = time.monotonic()
    with ProcessPoolExecutor(len(mode.models), mp_context=get_context("spawn")) as pool:
        futures = {name: pool.submit(make_test_model, work / name, name,
                                     quantization=mode.compute_type) for name in mode.models}
        paths = {name: str(f.result()) for name, f in futures.items()}
    return {"paths": paths, "build_s": round(time.monotonic() - began, 1)}


def throughput_step(model_dir: str, mode: Mode, deadline: float) -> dict[str, Any]:
    """k = 1.. engine processes at each batch size; stops adding k past ``deadline``."""
    # no temperature fallback: random weights fail its gates on every chunk, and each
    # failure would decode the chunk five times more; no remainder decoding: their text
    # ends anywhere, so most chunks would be decoded again. Neither is what speech costs.
    options = TranscribeOptions(model=model_dir, device=mode.device,
                                compute_type=mode.compute_type, beam_size=5,
                                max_new_tokens=mode.max_new_tokens, language="en",
                                temperature_fallback=(), remainder_s=None)
    rows: list[throughput.Measurement] = []
    skipped = []
    for k in mode.actors:
        if time.monotonic() > deadline:
            skipped.append(k)
            continue
        rows += throughput.measure(options, actors=(k,), batch_sizes=mode.batch_sizes,
                                   rounds=mode.rounds, cpu_threads=mode.cpu_threads)
    return {"runs": [_row(m) for m in rows], "skipped_actors": skipped,
            "table": throughput.measurements_text(rows)}


def _row(m: throughput.Measurement) -> dict[str, Any]:
    return {**asdict(m), "chunks_per_s": round(m.chunks_per_s, 3), "rtfx": round(m.rtfx, 2)}


def words_step(model_dir: str, mode: Mode) -> dict[str, Any]:
    """jfk.flac through the engine (decode, VAD, features, batched model) on the device."""
    from scribe.pipeline.preprocess import preprocess
    from scribe.pipeline.whisper import WhisperEngine

    compute_type = "int8_float16" if mode.device == "cuda" else "int8"
    options = TranscribeOptions(model=model_dir, device=mode.device, compute_type=compute_type,
                                beam_size=5, language="en")
    engine = WhisperEngine(options, cpu_threads=mode.cpu_threads)
    prepared = preprocess(str(JFK), options, engine.n_mels)
    began = time.monotonic()
    outputs = engine.transcribe([dataclasses.replace(c, session_id="jfk")
                                 for c in prepared.chunks])
    model_s = time.monotonic() - began
    text = " ".join(s["text"].strip() for out in outputs for s in out.segments)
    return {"text": text, "matches_reference": _normalise(text) == JFK_TEXT,
            "compute_type": compute_type, "audio_s": round(prepared.duration_s, 2),
            "model_s": round(model_s, 3), "rtfx": round(prepared.duration_s / model_s, 1)}


def _normalise(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c == " ").split())


def summary(data: dict[str, Any]) -> str:
    """The table printed last: the findings, then each model's throughput table."""
    cublas = data.get("cublas", {})
    after = cublas.get("with_aliases", {}) if isinstance(cublas, dict) else {}
    lines = [f"device: {data.get('environment', {}).get('gpu') or 'cpu'}; "
             f"elapsed {data.get('elapsed_s')} s",
             f"cuBLAS 13 as .so.12: {_outcome(cublas, after)}",
             f"tiny.en on jfk.flac: {_words(data.get('words', {}))}"]
    for name, result in data.get("throughput", {}).items():
        lines += ["", f"{name}:", result.get("table") or f"failed: {result.get('error')}"]
        if result.get("skipped_actors"):
            lines.append(f"skipped for time: k = {result['skipped_actors']}")
    return "\n".join(lines)


def _outcome(cublas: dict[str, Any], after: dict[str, Any]) -> str:
    if "skipped" in cublas or "error" in cublas:
        return str(cublas.get("skipped") or cublas.get("error"))
    if after.get("ok"):
        return f"CTranslate2 loads and runs ({after['stdout'].splitlines()[-1]})"
    return f"fails: {(after.get('stderr') or '').splitlines()[-1:]}"


def _words(words: dict[str, Any]) -> str:
    if "error" in words:
        return f"failed: {words['error']}"
    return (f"{words.get('text')!r} (matches the reference: {words.get('matches_reference')}, "
            f"RTFx {words.get('rtfx')})")


def run(mode: Mode, out: Path, work: Path, words_model: str | None,
        limit_s: float) -> dict[str, Any]:
    """Every step in order; the JSON at ``out`` holds what each found."""
    report = Report(out, {"mode": asdict(mode)})
    deadline = report.started + limit_s
    report.step("environment", environment)
    models = report.step("models", lambda: build_models(mode, work))
    probe_model = words_model or models.get("paths", {}).get(mode.models[0])
    runs_here = True
    if probe_model:
        cublas = report.step("cublas", lambda: cublas_step(str(probe_model), mode, work))
        runs_here = mode.device != "cuda" or cublas.get("with_aliases", {}).get("ok", False)
    report.data["throughput"] = {}
    for name, path in models.get("paths", {}).items():
        if not runs_here:  # each actor would fail the same way as the probe
            report.data["throughput"][name] = {"error": "skipped: CTranslate2 failed on CUDA "
                                               "(see cublas.with_aliases)"}
            continue
        began = time.monotonic()
        report.data["throughput"][name] = _safe(lambda p=path: throughput_step(p, mode,
                                                                                deadline))
        report.data["step_s"][f"throughput {name}"] = round(time.monotonic() - began, 1)
        report.save()
        report.say(f"throughput {name}", report.data["throughput"][name].get("table")
                   or report.data["throughput"][name])
    if words_model or mode.device != "cuda":  # on a GPU, random weights' words say nothing
        report.step("words", lambda: _in_new_process(words_step, str(probe_model), mode))
    return report.data


def _in_new_process(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``fn`` in a spawned process: the loader reads ``LD_LIBRARY_PATH`` (the cuBLAS
    aliases) only when a process starts."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _safe(step: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return step()
    except Exception as exc:  # recorded like Report.step does
        return {"error": f"{type(exc).__name__}: {exc}"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="small sizes on CPU (CI)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gpu_check.json")
    parser.add_argument("--work", type=Path, default=Path("/tmp/scribe-gpu-check"),
                        help="where models are built and cuBLAS aliases made")
    parser.add_argument("--words-model", default=None,
                        help="the real tiny.en directory (default: the first built model)")
    parser.add_argument("--limit-s", type=float, default=390.0,
                        help="no new k is started past this many seconds")
    parser.add_argument("--models", nargs="+", help="architectures (default: the mode's)")
    parser.add_argument("--actors", nargs="+", type=int, help="k values (default: the mode's)")
    parser.add_argument("--batch-sizes", nargs="+", type=int,
                        help="batch sizes (default: the mode's)")
    parser.add_argument("--max-new-tokens", type=int, help="cap per chunk (default: the mode's)")
    args = parser.parse_args(argv)
    mode = CPU if args.cpu else GPU
    chosen = {"models": tuple(args.models or ()), "actors": tuple(args.actors or ()),
              "batch_sizes": tuple(args.batch_sizes or ()),
              "max_new_tokens": args.max_new_tokens}
    mode = dataclasses.replace(mode, **{k: v for k, v in chosen.items() if v})
    data = run(mode, args.out, args.work, args.words_model, args.limit_s)
    print(summary(data))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
