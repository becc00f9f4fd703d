"""Resume markers: a rerun learns what is done from ``_done/`` without reading records,
and a record without a marker (older outputs) still counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scribe.io import done, outputs

pytestmark = pytest.mark.unit


def _record(sid: str, status: str = "ok") -> dict[str, Any]:
    return {"session_id": sid, "status": status, "error": None if status == "ok" else "bad",
            "segments": [{"id": 0, "start": 0.0, "end": 1.0, "text": "hi",
                          "avg_logprob": -0.1, "no_speech_prob": 0.0}],
            "language": "en"}


def _done_in(output: str, ids: list[str]) -> set[str]:
    return outputs.done_sessions(output, ids)


def test_an_ok_record_is_marked_and_found_without_reading_it(tmp_path: Path) -> None:
    out = str(tmp_path)
    outputs.write_session(out, _record("a"))
    outputs.write_session(out, _record("nested/b"))
    outputs.write_session(out, _record("c", "error"))
    assert done.marked_sessions(out) == {"a", "nested/b"}
    (tmp_path / "a.json").write_text("not json: a marked record is not read")
    assert _done_in(out, ["a", "nested/b", "c", "new"]) == {"a", "nested/b"}


def test_a_record_without_a_marker_counts_and_gets_one(tmp_path: Path) -> None:
    out = str(tmp_path)
    (tmp_path / "old.json").write_text(json.dumps(_record("old")))
    (tmp_path / "failed.json").write_text(json.dumps(_record("failed", "error")))
    assert _done_in(out, ["old", "failed"]) == {"old"}
    assert done.marked_sessions(out) == {"old"}


def test_many_unmarked_sessions_are_found_by_one_listing(tmp_path: Path) -> None:
    out = str(tmp_path)
    ids = [f"s{i:04d}" for i in range(outputs.READ_EACH_AT_MOST + 20)]
    (tmp_path / "s0003.json").write_text(json.dumps(_record("s0003")))
    assert _done_in(out, ids) == {"s0003"}


def test_a_session_rewritten_as_failed_loses_its_marker(tmp_path: Path) -> None:
    out = str(tmp_path)
    outputs.write_session(out, _record("a"))
    outputs.write_session(out, _record("a", "error"))
    assert _done_in(out, ["a"]) == set()


@pytest.mark.s3
def test_markers_on_s3(s3_bucket: str) -> None:
    out = f"s3://{s3_bucket}/out"
    outputs.write_session(out, _record("a"))
    outputs.write_session(out, _record("x/b"))
    assert done.marked_sessions(out) == {"a", "x/b"}
    assert _done_in(out, ["a", "x/b", "c"]) == {"a", "x/b"}
    outputs.write_session(out, _record("a", "error"))
    assert _done_in(out, ["a", "x/b"]) == {"x/b"}
