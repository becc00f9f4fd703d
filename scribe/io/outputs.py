"""Write a session's outputs, and find which sessions an earlier run finished.

The JSON record is written last of the session's files: it is the commit. A session
whose JSON says ``ok`` has all its files; a rerun skips it, learning so from the small
marker written after the record (:mod:`scribe.io.done`). Every write is atomic.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa

from scribe.io import done, formats, storage
from scribe.schema import Record

logger = logging.getLogger(__name__)

SEGMENTS_DIR = "_segments"
# Past this many unmarked sessions, one listing of the output finds their records sooner
# than asking for each (a GET per session on S3, most of them for records not there).
READ_EACH_AT_MOST = 256
SUMMARY_FILE = "_summary.json"
_SEGMENT_SCHEMA = pa.schema([
    ("session_id", pa.string()), ("segment", pa.int32()), ("start", pa.float64()),
    ("end", pa.float64()), ("text", pa.string()), ("language", pa.string()),
    ("avg_logprob", pa.float64()), ("no_speech_prob", pa.float64()), ("speaker", pa.string()),
    ("temperature", pa.float64()),
])


def record_uri(output: str, session_id: str, suffix: str = ".json") -> str:
    """Where a session's file with ``suffix`` goes under ``output``."""
    return storage.join(output, session_id + suffix)


def write_session(output: str, record: Record) -> None:
    """Write ``record`` and, when it is ok, its SRT/VTT/TXT and segment Parquet; JSON last."""
    sid = record["session_id"]
    if record["status"] == "ok":
        segments = record["segments"]
        storage.write_atomic(record_uri(output, sid, ".srt"), formats.to_srt(segments))
        storage.write_atomic(record_uri(output, sid, ".vtt"), formats.to_vtt(segments))
        storage.write_atomic(record_uri(output, sid, ".txt"), formats.to_txt(segments))
        storage.write_parquet_atomic(
            storage.join(output, SEGMENTS_DIR, sid + ".parquet"), segment_table(record))
    else:
        done.unmark(output, sid)  # an earlier run's ok must not outlive this record
    storage.write_atomic(record_uri(output, sid), formats.to_json(record))
    if record["status"] == "ok":
        done.mark_done(output, sid)


def segment_table(record: Record) -> pa.Table:
    """One row per segment, for analytics over all sessions."""
    segs = record["segments"]
    return pa.table({
        "session_id": [record["session_id"]] * len(segs),
        "segment": [s["id"] for s in segs],
        "start": [s["start"] for s in segs],
        "end": [s["end"] for s in segs],
        "text": [s["text"] for s in segs],
        "language": [s.get("language") or record["language"] for s in segs],
        "avg_logprob": [s["avg_logprob"] for s in segs],
        "no_speech_prob": [s["no_speech_prob"] for s in segs],
        "speaker": [s.get("speaker") for s in segs],
        "temperature": [s.get("temperature") for s in segs],
    }, schema=_SEGMENT_SCHEMA)


def done_sessions(output: str, session_ids: Sequence[str]) -> set[str]:
    """The ids of ``session_ids`` that have an ok record under ``output``: marked ones
    without reading them, the others by reading their record (and marking them)."""
    marked = done.marked_sessions(output)
    unmarked = [sid for sid in session_ids if sid not in marked]
    if len(unmarked) > READ_EACH_AT_MOST:
        recorded = set(recorded_sessions(output))
        unmarked = [sid for sid in unmarked if sid in recorded]
    found = {sid for sid, rec in read_records(output, unmarked).items()
             if rec.get("status") == "ok"}
    if found:
        logger.info("%d finished sessions had no marker: marking them", len(found))
    for sid in found:
        done.mark_done(output, sid)
    wanted = set(session_ids)
    return (marked & wanted) | found


def finished_sessions(output: str, session_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Records of ``session_ids`` whose JSON under ``output`` says ``ok``."""
    records = read_records(output, session_ids)
    return {sid: rec for sid, rec in records.items() if rec.get("status") == "ok"}


def read_records(output: str, session_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The JSON records of ``session_ids`` under ``output`` that exist and parse."""
    def read(sid: str) -> tuple[str, dict[str, Any] | None]:
        text = storage.read_text(record_uri(output, sid))
        if text is None:
            return sid, None
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            return sid, None
        return sid, record if isinstance(record, dict) else None

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        found = pool.map(read, list(session_ids))
        return {sid: rec for sid, rec in found if rec is not None}


def recorded_sessions(output: str) -> list[str]:
    """Ids of the sessions that have a JSON record under ``output``, whatever its status
    (the summary, ``_segments/`` and temporary files are not records)."""
    return sorted(name[: -len(".json")] for name in storage.iter_files(output)
                  if name.endswith(".json")
                  and not any(part.startswith((".", "_")) for part in name.split("/")))
