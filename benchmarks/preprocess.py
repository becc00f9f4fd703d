"""Preprocessing a 45-minute session on one core: ours against plain faster-whisper.

    python benchmarks/preprocess.py [--minutes 45] [--n-mels 128]

Builds (once, cached in ~/.cache/ray-scribe/bench/) a 44.1 kHz stereo MP3 of real speech
with gaps, pins this process to one core with one thread per library, then times
``scribe.pipeline.preprocess.preprocess`` stage by stage next to what faster-whisper's batched
pipeline does on the CPU for the same file: ``decode_audio``, Silero VAD
(``get_speech_timestamps``), ``collect_chunks`` and its ``FeatureExtractor`` per chunk.
Figures to beat: the old pipeline took 539 s on 45 minutes; the target is 15 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ray-scribe" / "bench"
OLD_PIPELINE_S = 539.0
TARGET_S = 15.0
STAGES = ("decode", "trim", "vad", "chunk", "features")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS")


def pin_to_one_core() -> None:
    """One core, one thread: must run before numpy/onnxruntime are first imported."""
    if "numpy" in sys.modules:
        raise RuntimeError("pin_to_one_core() must run before numpy is imported")
    for name in _THREAD_VARS:
        os.environ[name] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    sys.path.insert(0, str(ROOT))  # run as a script: make scribe/ and tests/ importable


def session_file(minutes: float) -> Path:
    """The cached benchmark MP3, encoded on first use (about a minute for 45 minutes)."""
    path = CACHE / f"speech_{minutes:g}min_44k_stereo_v1.mp3"
    if path.exists():
        return path
    from tests import media

    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"encoding {minutes:g} min of speech to {path} (once) ...", flush=True)
    start = time.perf_counter()
    partial = path.with_suffix(".partial.mp3")
    samples = media.speech(minutes * 60, seed=45, gap_s=(0.3, 4.0))
    media.write_audio(partial, samples, rate=44_100, channels=2)
    partial.replace(path)  # atomic: an interrupted run never leaves a short file cached
    print(f"encoded in {time.perf_counter() - start:.1f} s", flush=True)
    return path


def timed(timings: dict[str, float], stage: str, run: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = run()
    timings[stage] = time.perf_counter() - start
    return result


def run_ours(path: Path, n_mels: int) -> tuple[dict[str, float], dict[str, Any]]:
    from scribe.config import TranscribeOptions
    from scribe.pipeline.preprocess import preprocess

    start = time.perf_counter()
    session = preprocess(str(path), TranscribeOptions(), n_mels=n_mels)
    timings = dict(session.timings)
    timings["total"] = time.perf_counter() - start
    facts = {"duration": session.duration_s, "speech": session.speech_duration_s,
             "chunks": len(session.chunks)}
    return timings, facts


def run_faster_whisper(path: Path, n_mels: int) -> tuple[dict[str, float], dict[str, Any]]:
    """What ``BatchedInferencePipeline.transcribe`` does on the CPU before the model."""
    from faster_whisper.audio import decode_audio
    from faster_whisper.feature_extractor import FeatureExtractor
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    timings: dict[str, float] = {}
    extractor = FeatureExtractor(feature_size=n_mels)
    options = VadOptions(max_speech_duration_s=30, min_silence_duration_ms=160)
    start = time.perf_counter()
    audio = timed(timings, "decode", lambda: decode_audio(str(path)))
    speech = timed(timings, "vad", lambda: get_speech_timestamps(audio, options))
    chunks, _ = timed(timings, "chunk", lambda: collect_chunks(audio, speech, max_duration=30))
    timed(timings, "features", lambda: [extractor(c)[..., :-1] for c in chunks])
    timings["total"] = time.perf_counter() - start
    facts = {"duration": len(audio) / 16_000,
             "speech": sum(r["end"] - r["start"] for r in speech) / 16_000,
             "chunks": len(chunks)}
    return timings, facts


def warm_up() -> None:
    """Load Silero once, outside both timings (each pipeline would load it only once)."""
    import numpy as np
    from faster_whisper.vad import get_vad_model

    get_vad_model()(np.zeros(512, dtype=np.float32))


def report(ours: dict[str, float], theirs: dict[str, float], facts: dict[str, Any],
           their_facts: dict[str, Any]) -> None:
    _stage_table(ours, theirs, facts, their_facts)
    _ratios(ours["total"], theirs["total"], facts["duration"])


def _stage_table(ours: dict[str, float], theirs: dict[str, float], facts: dict[str, Any],
                 their_facts: dict[str, Any]) -> None:
    def cell(timings: dict[str, float], stage: str) -> str:
        return f"{timings[stage]:10.2f}" if stage in timings else f"{'-':>10}"

    audio_s = facts["duration"]
    print(f"\naudio {audio_s / 60:.1f} min; speech kept: ours {facts['speech'] / 60:.1f} min "
          f"in {facts['chunks']} chunks, faster-whisper {their_facts['speech'] / 60:.1f} min "
          f"in {their_facts['chunks']} chunks\n")
    print(f"{'stage':<14}{'ours (s)':>10}{'f-w (s)':>10}")
    for stage in (*STAGES, "total"):
        print(f"{stage:<14}{cell(ours, stage)}{cell(theirs, stage)}")
    print(f"{'x real-time':<14}{audio_s / ours['total']:10.0f}{audio_s / theirs['total']:10.0f}")


def _ratios(ours_s: float, theirs_s: float, audio_s: float) -> None:
    # Both reference figures are for 45 minutes; a shorter run is compared pro rata.
    scale = audio_s / (45 * 60)
    old, target = OLD_PIPELINE_S * scale, TARGET_S * scale
    note = "" if abs(scale - 1) < 0.01 else f" (45-min figures scaled x{scale:.2f})"
    print(f"\nours vs old pipeline ({old:.0f} s): {old / ours_s:.0f}x faster{note}")
    print(f"ours vs target ({target:.1f} s):     {ours_s / target:.2f} of the budget "
          f"({'met' if ours_s <= target else 'MISSED'})")
    print(f"ours / faster-whisper:        {ours_s / theirs_s:.2f} "
          f"(faster-whisper takes {theirs_s / ours_s:.2f}x our time)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=45.0, help="session length")
    parser.add_argument("--n-mels", type=int, default=128, choices=(80, 128))
    args = parser.parse_args(argv)
    pin_to_one_core()
    path = session_file(args.minutes)
    print(f"session: {path} ({path.stat().st_size / 1e6:.0f} MB); "
          f"cores: {sorted(os.sched_getaffinity(0))}; OMP_NUM_THREADS=1", flush=True)
    warm_up()
    ours, facts = run_ours(path, args.n_mels)
    theirs, their_facts = run_faster_whisper(path, args.n_mels)
    report(ours, theirs, facts, their_facts)


if __name__ == "__main__":
    main()
