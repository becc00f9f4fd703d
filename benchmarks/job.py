"""The whole batch job against plain faster-whisper on the same files and model.

    python benchmarks/job.py            # 20 sessions of 60-120 s, then 200 clips of 5-20 s
    python benchmarks/job.py --quick    # a smoke run (4 sessions, 24 clips)

Contenders, each from model load to the last transcript, on the same random-weights model
at a real size (``base``), greedy, with the same ``max_new_tokens`` so decoding work is equal:
- sequential: a loop of ``WhisperModel.transcribe`` (VAD on, one temperature);
- batched: a loop of ``BatchedInferencePipeline.transcribe`` (batches within a file only);
- job: ``ray_jobs.transcribe.run_job`` with Ray already running, as under ``ray job submit``
  (batches across files).
Prints audio-seconds per wall-second for each, and the ratios.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scribe.config import JobConfig, ResourceConfig, TranscribeOptions  # noqa: E402
from scribe.pipeline.audio import decode  # noqa: E402
from scribe.testing.testmodel import cached_test_model  # noqa: E402
from tests.media import speech, write_audio  # noqa: E402

MAX_NEW_TOKENS = 16
THREADS = os.cpu_count() or 2
BASELINE_BATCH = 8  # BatchedInferencePipeline's default
PLANS: list[dict[str, object]] = []


def make_corpus(root: Path, count: int, low_s: float, high_s: float, seed: int) -> list[Path]:
    """``count`` speech files of ``low_s``..``high_s`` seconds (44.1 kHz stereo MP3)."""
    import random

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        seconds = rng.uniform(low_s, high_s)
        files.append(write_audio(root / f"s{i:03d}.mp3", speech(seconds, seed=seed + i),
                                 rate=44_100, channels=2))
    return files


def audio_seconds(files: list[Path]) -> float:
    return sum(decode(str(f)).duration_s for f in files)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sequential(model_path: str, files: list[Path]) -> None:
    from faster_whisper import WhisperModel

    model = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=THREADS)
    for f in files:
        segments, _ = model.transcribe(str(f), beam_size=1, temperature=0.0, vad_filter=True,
                                       max_new_tokens=MAX_NEW_TOKENS, language="en")
        list(segments)


def batched(model_path: str, files: list[Path], batch_size: int) -> None:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(model_path, device="cpu", compute_type="int8", cpu_threads=THREADS)
    pipeline = BatchedInferencePipeline(model)
    for f in files:
        segments, _ = pipeline.transcribe(str(f), beam_size=1, batch_size=batch_size,
                                          max_new_tokens=MAX_NEW_TOKENS, language="en",
                                          without_timestamps=False)
        list(segments)


def job(model_path: str, src: Path, batch_size: int | None) -> None:
    from ray_jobs.transcribe import run_job

    out = Path(tempfile.mkdtemp(prefix="bench-job-"))
    try:
        # Equal work: the loops decode once at temperature 0, so no fallback here either.
        options = TranscribeOptions(model=model_path, device="cpu", compute_type="int8",
                                    beam_size=1, max_new_tokens=MAX_NEW_TOKENS, language="en",
                                    temperature_fallback=())
        resources = ResourceConfig(model_batch_size=batch_size) if batch_size else ResourceConfig()
        summary = run_job(JobConfig(input=str(src), output=str(out), transcribe=options,
                                    resources=resources))
        assert summary["sessions"]["failed"] == 0, summary["failures"]
        PLANS.append(summary["plan"])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def compare(name: str, model_path: str, files: list[Path], batch_size: int | None
            ) -> list[str]:
    audio = audio_seconds(files)
    results = {
        "sequential": timed(lambda: sequential(model_path, files)),
        "batched": timed(lambda: batched(model_path, files, BASELINE_BATCH)),
        "job": timed(lambda: job(model_path, files[0].parent, batch_size)),
    }
    speed = {k: audio / v for k, v in results.items()}
    return [
        f"{name:<28} {audio:8.0f} " + " ".join(f"{speed[k]:10.1f}" for k in results)
        + f" {speed['job'] / speed['batched']:11.2f}x {speed['job'] / speed['sequential']:11.2f}x"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--model-size", default="base")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="the job's model batch (default: the job's own plan)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray

    ray.init(address="local", logging_level=logging.WARNING, include_dashboard=False,
             log_to_driver=False)
    model_path = str(cached_test_model(args.model_size))
    sessions, clips = (4, 24) if args.quick else (20, 200)
    work = Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    try:
        rows = ["", f"model: random-weights {args.model_size}, int8 CPU, greedy, "
                f"max_new_tokens={MAX_NEW_TOKENS}; loops: {THREADS} threads, batched loop at "
                f"batch {BASELINE_BATCH}",
                f"{'corpus':<28} {'audio s':>8} {'sequential':>10} {'batched':>10} "
                f"{'job':>10} {'job/batched':>12} {'job/seq':>12}",
                "(audio-seconds per wall-second; higher is better)"]
        long_files = make_corpus(work / "sessions", sessions, 60, 120, seed=1000)
        rows += compare(f"{sessions} sessions (60-120 s)", model_path, long_files,
                        args.batch_size)
        short_files = make_corpus(work / "clips", clips, 5, 20, seed=5000)
        rows += compare(f"{clips} clips (5-20 s)", model_path, short_files, args.batch_size)
        plan = PLANS[-1]
        rows.append(f"job plan: {plan['model_actors']} model actors x "
                    f"{plan['model_workers']} replica(s) x {plan['cpu_threads']} "
                    f"thread(s), batch {plan['model_batch_size']}, "
                    f"{plan['preprocess_actors']} preprocessing actor(s) ({plan['source']})")
        print("\n".join(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        ray.shutdown()


if __name__ == "__main__":
    main()
