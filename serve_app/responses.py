"""A finished transcript record as the body OpenAI's API would send for each format."""

from __future__ import annotations

from starlette.responses import Response

from scribe import schema
from scribe.io.formats import full_text, to_json, to_srt, to_vtt
from scribe.schema import Record
from serve_app.languages import language_name
from serve_app.protocol import (
    MEDIA_TYPES,
    AudioRequest,
    DiarizedSegment,
    Segment,
    TranscriptionDiarized,
    TranscriptionJSON,
    TranscriptionVerbose,
    Usage,
    Word,
)


def transcription_response(record: Record, request: AudioRequest) -> Response:
    """The response for ``request.response_format``; NaN scores become null, not 500s."""
    segments = record["segments"]
    fmt = request.response_format
    if fmt == "srt":
        body = to_srt(segments)
    elif fmt == "vtt":
        body = to_vtt(segments)
    elif fmt == "text":
        body = full_text(segments) + "\n"
    elif fmt == "verbose_json":
        body = to_json(verbose(record, request).model_dump(exclude_none=True))
    elif fmt == "diarized_json":
        body = to_json(diarized(record).model_dump())
    else:
        usage = Usage(seconds=record["duration_s"])
        body = to_json(TranscriptionJSON(text=record["text"], usage=usage).model_dump())
    return Response(body, media_type=MEDIA_TYPES[fmt])


def verbose(record: Record, request: AudioRequest) -> TranscriptionVerbose:
    """``verbose_json``: segments unless only words were asked for, words when asked;
    the language by OpenAI's name for it (``english``), as OpenAI's API answers. A
    segment's temperature is the one it was decoded at (a fallback's, where its chunk
    fell back); the request's only for a segment that does not say (an older record)."""
    wanted = set(request.timestamp_granularities) or {"segment"}
    segments = [_segment(s, request.temperature) for s in record["segments"]]
    words = [Word(word=w["word"], start=w["start"], end=w["end"])
             for s in record["segments"] for w in s.get("words", [])]
    return TranscriptionVerbose(
        task=request.task, language=language_name(record["language"]),
        duration=record["duration_s"],
        text=record["text"], segments=segments if "segment" in wanted else None,
        words=words if "word" in wanted else None, usage=Usage(seconds=record["duration_s"]))


def diarized(record: Record) -> TranscriptionDiarized:
    """``diarized_json``: every segment with its speaker (``unknown`` only where no voice
    could be embedded: speech too short to say whose it is)."""
    segments = [DiarizedSegment(id=f"seg_{s['id']}", start=s["start"], end=s["end"],
                                text=s["text"], speaker=s.get("speaker") or "unknown")
                for s in record["segments"]]
    return TranscriptionDiarized(duration=record["duration_s"], text=record["text"],
                                 segments=segments, usage=Usage(seconds=record["duration_s"]))


def _segment(segment: schema.Segment, temperature: float) -> Segment:
    return Segment(
        id=segment["id"], start=segment["start"], end=segment["end"], text=segment["text"],
        temperature=segment.get("temperature", temperature), avg_logprob=segment["avg_logprob"],
        compression_ratio=segment["compression_ratio"],
        no_speech_prob=segment["no_speech_prob"])
