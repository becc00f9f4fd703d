"""The driver-side assembler: sessions complete once, whatever order or repeats chunks have."""

from __future__ import annotations

from typing import Any

import pytest

from ray_jobs import rows
from ray_jobs.collect import SessionCollector

pytestmark = pytest.mark.unit


def _row(sid: str, index: int, n: int, *, status: str = "ok", text: str = "hi") -> dict[str, Any]:
    start = index * 16_000 * 10
    seg = {"start": index * 10.0, "end": index * 10.0 + 5.0, "text": text, "tokens": [1],
           "avg_logprob": -0.5, "no_speech_prob": 0.1, "compression_ratio": 1.0}
    base = {"session_id": sid, "uri": f"/x/{sid}.wav", "duration_s": 10.0 * n,
            "speech_duration_s": 5.0 * n, "timings": {"decode": 0.1}, "warnings": [],
            "source": {}, "model": "m", "language": None}
    row = {"status": status, "error": "audio_decode_error: boom" if status == "error" else "",
           "n_chunks": n, "session": base,
           "chunk": {"index": index, "offset_s": index * 10.0, "duration_s": 10.0,
                     "ranges": [{"start": start, "end": start + 160_000}], "features_s": 0.01},
           "features": None,
           "result": {"segments": [seg], "language": "en", "language_probability": 1.0,
                      "model_s": 0.2, "batch_size": 4, "batch_sessions": 2,
                      "actor": "a1"}}
    return rows.decode(rows.encode([row]))[0]  # as the driver gets it from the dataset


def test_out_of_order_and_repeated_chunks_complete_once() -> None:
    collector = SessionCollector()
    rows = [_row("a", 2, 3), _row("a", 0, 3), _row("a", 0, 3), _row("b", 0, 1), _row("a", 1, 3)]
    done = [r for r in map(collector.add, rows) if r is not None]
    assert [r["session_id"] for r in done] == ["b", "a"]
    a = done[1]
    assert [s["start"] for s in a["segments"]] == [0.0, 10.0, 20.0], "no duplicate segments"
    assert a["timings"]["features"] == pytest.approx(0.03)
    assert a["timings"]["model"] == pytest.approx(0.6)
    assert collector.incomplete() == []


def test_a_failure_after_some_chunks_is_reported_once_and_later_chunks_ignored() -> None:
    collector = SessionCollector()
    assert collector.add(_row("a", 0, 3)) is None
    failed = collector.add(_row("a", -1, 0, status="error"))
    assert failed is not None and failed["status"] == "error" and "boom" in failed["error"]
    assert collector.add(_row("a", 1, 3)) is None and collector.add(_row("a", 2, 3)) is None
    assert collector.incomplete() == []


def test_missing_chunks_are_reported_not_dropped() -> None:
    collector = SessionCollector()
    collector.add(_row("a", 0, 2))
    (lost,) = collector.incomplete()
    assert lost["status"] == "error" and "1 of 2 chunks" in lost["error"]


def test_a_streamed_session_completes_once_its_count_and_every_chunk_are_in() -> None:
    collector = SessionCollector()
    early = rows.COUNT_UNKNOWN  # sent before the session's audio was all searched
    assert collector.add(_row("a", 0, early)) is None
    assert collector.add(_row("a", 3, 4)) is None, "the last block's row came in first"
    assert collector.add(_row("a", 1, early)) is None
    done = collector.add(_row("a", 2, 4))
    assert done is not None and [s["start"] for s in done["segments"]] == [0, 10, 20, 30]
    assert done["speech_duration_s"] == 20.0, "the record takes the last block's analysis"
    assert collector.incomplete() == []


def test_chunks_without_their_count_are_not_a_session() -> None:
    collector = SessionCollector()
    assert collector.add(_row("a", 0, rows.COUNT_UNKNOWN)) is None
    assert collector.add(_row("a", 1, rows.COUNT_UNKNOWN)) is None
    (lost,) = collector.incomplete()
    assert lost["status"] == "error" and "2 of an unknown number of chunks" in lost["error"]
