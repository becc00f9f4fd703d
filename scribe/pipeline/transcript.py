"""Assemble a session from its chunks' model outputs, and build its record.

Chunk outputs arrive in any order and from any batch; timestamps are mapped from the
collapsed speech timeline back onto the session's own with faster-whisper's
``restore_speech_timestamps``, as its batched pipeline does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from scribe.config import SAMPLE_RATE, TranscribeOptions
from scribe.io.formats import full_text
from scribe.pipeline.chunking import ChunkOutput
from scribe.pipeline.speakers.diarize import SpeakerRequest, speaker_segments
from scribe.schema import Analysis, Record, RecordBase, Segment, Word


def restore_segments(chunks: Iterable[ChunkOutput]) -> list[Segment]:
    """All segments of a session, in order, with timestamps on the session's timeline."""
    from faster_whisper.transcribe import Segment, Word, restore_speech_timestamps

    ordered = sorted(chunks, key=lambda c: c.plan.index)
    speech = [r for c in ordered for r in c.plan.ranges]
    segments = [
        Segment(
            id=0, seek=0, start=round(s["start"], 3), end=round(s["end"], 3), text=s["text"],
            tokens=s.get("tokens", []), avg_logprob=s["avg_logprob"],
            compression_ratio=s["compression_ratio"], no_speech_prob=s["no_speech_prob"],
            words=[Word(**w) for w in s["words"]] if s.get("words") else None,
            temperature=s.get("temperature"),
        )
        for c in ordered for s in c.segments
    ]
    if speech:
        segments = list(restore_speech_timestamps(segments, speech, SAMPLE_RATE))
    languages = [s.get("language") or c.language for c in ordered for s in c.segments]
    return in_order([_segment_dict(i, seg, language)
                     for i, (seg, language) in enumerate(zip(segments, languages, strict=True))])


def in_order(segments: list[Segment]) -> list[Segment]:
    """Segments (and their words) that never start before the previous one ends, each
    word inside its segment: the order of one timeline, not its bounds (the record's
    :func:`clamp_to`).

    A model's timestamp tokens can run backwards, most often at a chunk's first segment
    (a 12-minute session gave 68.72-68.82 then 68.28-98.66); a subtitle track or a
    diarisation step downstream needs a timeline that only moves forward.
    """
    floor = -math.inf
    for seg in segments:
        seg["start"] = max(seg["start"], floor)
        seg["end"] = max(seg["end"], seg["start"])
        word_floor = seg["start"]
        for word in seg.get("words", []):
            word["start"] = min(max(word["start"], word_floor), seg["end"])
            word["end"] = min(max(word["end"], word["start"]), seg["end"])
            word_floor = word["end"]
        floor = seg["end"]
    return segments


def _segments(chunks: list[ChunkOutput], speakers: SpeakerRequest | None
              ) -> list[Segment]:
    """The session's segments; with one speaker per channel each channel is restored on
    its own timeline (its own speech ranges) and the two are merged by time."""
    if speakers is None:
        return restore_segments(chunks)
    by_channel: defaultdict[int | None, list[ChunkOutput]] = defaultdict(list)
    for c in chunks:
        by_channel[c.plan.channel].append(c)
    restored = {channel: restore_segments(group) for channel, group in by_channel.items()}
    windows = [w for c in chunks for w in c.plan.voices]
    return speaker_segments(restored, windows, speakers)


def _segment_dict(index: int, segment: Any, language: str | None) -> Segment:
    out = Segment(id=index, start=segment.start, end=segment.end, text=segment.text.strip(),
                  avg_logprob=segment.avg_logprob, no_speech_prob=segment.no_speech_prob,
                  compression_ratio=segment.compression_ratio, language=language)
    if segment.temperature is not None:
        out["temperature"] = segment.temperature
    if segment.words:
        out["words"] = [Word(start=w.start, end=w.end, word=w.word, probability=w.probability)
                        for w in segment.words]
    return out


def clamp_to(segments: list[Segment], duration_s: float) -> list[Segment]:
    """Segments (and words) inside ``[0, duration_s]``: a model can emit a timestamp token
    past the end of its chunk, and a cue after the recording ends helps nobody. The one
    clamp to the session's bounds, made by :func:`ok_record` once its segments are on the
    session's timeline (with speakers, once its channels are merged)."""
    def fit(t: float) -> float:
        return min(max(t, 0.0), duration_s) if duration_s > 0 else max(t, 0.0)

    for seg in segments:
        seg["start"], seg["end"] = fit(seg["start"]), fit(seg["end"])
        for word in seg.get("words", []):
            word["start"], word["end"] = fit(word["start"]), fit(word["end"])
    return segments


def session_language(chunks: Iterable[ChunkOutput]) -> tuple[str | None, float]:
    """The language spoken most (by chunk duration), and the share of chunks' weight it has."""
    weight: defaultdict[str, float] = defaultdict(float)
    for c in chunks:
        weight[c.language] += sum(r["end"] - r["start"] for r in c.plan.ranges) or 1
    if not weight:
        return None, 0.0
    best = max(weight, key=weight.__getitem__)
    return best, weight[best] / sum(weight.values())


def record_base(session_id: str, *, model: str | None, uri: str = "",
                language: str | None = None, analysis: Analysis | None = None,
                options: TranscribeOptions | None = None) -> RecordBase:
    """The fields a session's record starts from: which session, where, the model, the
    language asked for, how ``options`` label its speakers and whether they ask for its
    words (default: no speakers, no words), and what ``analysis`` found (zeros and empties
    before any), its containers copied."""
    asked = options or TranscribeOptions()
    found = analysis or Analysis()
    return {
        "session_id": session_id, "uri": uri, "model": model, "language": language,
        "speakers": asked.speakers, "num_speakers": asked.num_speakers,
        "min_speakers": asked.min_speakers, "max_speakers": asked.max_speakers,
        "word_timestamps": asked.word_timestamps,
        "duration_s": found.duration_s, "speech_duration_s": found.speech_duration_s,
        "timings": dict(found.timings), "warnings": list(found.warnings),
        "source": dict(found.source),
    }


def ok_record(base: RecordBase, chunks: list[ChunkOutput],
              speakers: SpeakerRequest | None = None) -> Record:
    """A finished session's record: ``base`` (:func:`record_base`) plus its transcript;
    with ``speakers``, a ``speaker`` on every segment and word. Words the base did not ask
    for (aligned timestamps find them anyway) are left out once they have placed their
    segments."""
    segments = clamp_to(_segments(chunks, speakers), base.get("duration_s", 0.0))
    if not base.get("word_timestamps", True):
        for segment in segments:
            segment.pop("words", None)
    language, share = session_language(chunks)
    model_time = sum(c.timings.get("model", 0.0) for c in chunks)
    timings = dict(base.get("timings", {}))
    timings["model"] = model_time
    return {**empty_record(base), "status": "ok", "language": language,
            "language_probability": share, "segments": segments,
            "text": full_text(segments), "timings": timings}


def error_record(base: RecordBase, error: str) -> Record:
    """A failed session's record: the same keys as an ok one, with the reason."""
    return {**empty_record(base), "status": "error", "error": error}


def empty_record(base: RecordBase) -> Record:
    """Every key a record has, so ok and error records share one schema."""
    return {
        "session_id": base["session_id"], "uri": base.get("uri", ""), "status": "ok",
        "error": None, "language": None, "language_probability": 0.0,
        "duration_s": base.get("duration_s", 0.0),
        "speech_duration_s": base.get("speech_duration_s", 0.0),
        "segments": [], "text": "", "timings": dict(base.get("timings", {})),
        "warnings": list(base.get("warnings", [])), "source": dict(base.get("source", {})),
        "model": base.get("model"),
    }
