"""The rows between the batch job's stages: one typed Arrow schema, every kind of row."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import ray

import ray_jobs
from ray_jobs import rows
from ray_jobs.stages import Preprocessor, Transcriber
from scribe.config import TranscribeOptions
from scribe.io.sessions import SessionRef, list_sessions
from scribe.pipeline import vad
from scribe.pipeline.preprocess import analyse, iter_chunks
from scribe.pipeline.transcript import record_base
from scribe.pipeline.whisper import WhisperEngine
from tests import media

pytestmark = pytest.mark.unit

JFK = str(media.EXAMPLES / "jfk.flac")


@pytest.fixture(scope="module")
def options(test_options: TranscribeOptions) -> TranscribeOptions:
    return test_options.model_copy(update={"word_timestamps": True})


@pytest.fixture(scope="module")
def analysed(options: TranscribeOptions) -> Any:
    return analyse(JFK, options)


@pytest.fixture(scope="module")
def base(analysed: Any) -> dict[str, Any]:
    return record_base("jfk", model="tiny", uri=JFK, analysis=analysed)


def _round_trip(batch: list[rows.Row]) -> list[rows.Row]:
    table = rows.encode(batch)
    assert table.schema == rows.SCHEMA
    return rows.decode(table)


def _assert_same(decoded: rows.Row, row: rows.Row) -> None:
    features = decoded.pop("features")
    expected = {**row, "features": None}
    if row["features"] is None:
        assert features is None
    else:
        assert features.dtype == np.float32 and features.shape == row["features"].shape
        np.testing.assert_array_equal(features, row["features"])
    assert {**decoded, "features": None} == expected


def test_a_chunk_row_round_trips_before_and_after_the_model(
        options: TranscribeOptions, analysed: Any, base: dict[str, Any]) -> None:
    chunks = list(iter_chunks(analysed, 80))
    before = [rows.chunk_row(base, c, n_chunks=len(chunks), features_s=0.5) for c in chunks]
    for decoded, row in zip(_round_trip(before), before, strict=True):
        _assert_same(decoded, row)
        assert decoded["session"]["source"]["codec"] == "flac", "the real source, typed"
    engine = WhisperEngine(options)
    outputs = engine.transcribe([rows.model_input(r) for r in before])
    assert any("words" in s for out in outputs for s in out.segments)
    for row, out in zip(before, outputs, strict=True):
        rows.set_output(row, out, batch_size=len(before), batch_sessions=1)
    for decoded, row, chunk in zip(_round_trip(before), before, chunks, strict=True):
        _assert_same(decoded, row)
        back = rows.model_output(decoded)
        assert back.plan == chunk.plan
        assert back.segments == row["result"]["segments"]
        assert back.timings["model"] == row["result"]["model_s"] > 0


def test_error_and_no_speech_rows_share_the_schema(base: dict[str, Any]) -> None:
    early = record_base("bad", model="tiny", uri="/bad.mp3", language="fr")
    batch = [rows.session_row(early, "audio_decode_error: boom"), rows.session_row(base)]
    error, silent = _round_trip(batch)
    _assert_same(error, batch[0])
    _assert_same(silent, batch[1])
    assert (error["status"], error["n_chunks"], error["chunk"]) == ("error", 0, None)
    assert (silent["status"], silent["error"], silent["result"]) == ("ok", "", None)


def test_the_stages_read_and_write_only_the_schema(
        options: TranscribeOptions, tmp_path: Path) -> None:
    media.write_audio(tmp_path / "silent.wav", media.silence(2.0))
    media.zero_bytes(tmp_path / "empty.wav")
    refs = [SessionRef(session_id="jfk", uri=JFK), *list_sessions(str(tmp_path))]
    sessions = pa.Table.from_pylist([ref.to_dict() for ref in refs])  # the job's input rows
    blocks = [block for i in range(3)
              for block in Preprocessor(options, 80, "tiny")(sessions.slice(i, 1))]
    assert all(block.schema == rows.SCHEMA for block in blocks)
    ray_was_up = ray.is_initialized()
    out = Transcriber(options)(pa.concat_tables(blocks))
    assert ray.is_initialized() == ray_was_up, "a stage used outside Ray starts no Ray"
    assert out.schema == rows.SCHEMA
    by_session = {r["session"]["session_id"]: r for r in rows.decode(out)}
    assert by_session["jfk"]["result"]["segments"] and by_session["jfk"]["features"] is None
    assert by_session["silent"]["status"] == "ok" and by_session["silent"]["result"] is None
    assert by_session["empty"]["status"] == "error" and "0 bytes" in by_session["empty"]["error"]


def test_the_model_stage_passes_the_columns_it_does_not_read_through(
        options: TranscribeOptions) -> None:
    """The model stage writes results with Arrow column operations; the table it returns
    is the one the row-by-row codec makes, and every other column is the input's."""
    sessions = pa.Table.from_pylist([SessionRef(session_id="jfk", uri=JFK).to_dict()])
    batch = pa.concat_tables(Preprocessor(options, 80, "tiny", align=2)(sessions))
    out = Transcriber(options)(batch)
    for name in ("status", "error", "n_chunks", "session", "chunk"):
        assert out.column(name).equals(batch.column(name)), name
    assert out.column("features").null_count == len(out)
    expected = rows.decode(batch)
    for row, done in zip(expected, rows.decode(out), strict=True):
        if row["features"] is not None:
            result = done["result"]
            rows.set_output(row, rows.model_output(done), batch_size=result["batch_size"],
                            batch_sessions=result["batch_sessions"],
                            actor=rows.ActorIdentity(result["actor"], result["node"],
                                                     result["actor_gpus"],
                                                     result["actor_started"]))
    assert rows.encode(expected).equals(out)
    assert Transcriber(options)(batch.filter(batch.column("features").is_null())
                                ).equals(batch.filter(batch.column("features").is_null()))


def test_a_long_session_streams_its_blocks_as_vad_goes(
        options: TranscribeOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks leave before VAD has searched the whole session; they hold the chunks the
    whole analysis plans, and only the last block carries the count and that analysis."""
    path = media.write_audio(tmp_path / "long.wav", media.speech(150.0, seed=3))
    monkeypatch.setattr(vad, "VAD_WINDOW_S", 20)
    searched: list[int] = []
    search = vad.get_speech_timestamps
    monkeypatch.setattr(vad, "get_speech_timestamps",
                        lambda *a: searched.append(1) or search(*a))
    ref = SessionRef(session_id="long", uri=str(path))
    blocks, seen = [], []
    for block in Preprocessor(options, 80, "tiny", rows_per_block=2)(
            pa.Table.from_pylist([ref.to_dict()])):
        seen.append(len(searched))
        blocks.append(rows.decode(block))
    assert seen[0] < seen[-1] == 8, "the first block waited for all 8 VAD windows"

    whole = analyse(str(path), options)
    chunks = list(iter_chunks(whole, 80))
    sent = [r for b in blocks for r in b]
    assert len(chunks) > 4 and [r["chunk"]["index"] for r in sent] == list(range(len(chunks)))
    for row, chunk in zip(sent, chunks, strict=True):
        np.testing.assert_array_equal(row["features"], chunk.features)
    assert all(len(b) == 2 for b in blocks[:-1])
    last = len(blocks[-1])
    assert [r["n_chunks"] for r in sent] == ([rows.COUNT_UNKNOWN] * (len(sent) - last)
                                            + [len(chunks)] * last)
    assert blocks[-1][0]["session"]["speech_duration_s"] == whole.speech_duration_s
    assert blocks[0][0]["session"]["speech_duration_s"] < whole.speech_duration_s


class _Recorded:
    """Stands in for the stage's metrics, keeping what it was told."""

    def __init__(self) -> None:
        self.audio_s = 0.0
        self.seconds: dict[str, float] = {}

    def session(self, duration_s: float, timings: dict[str, float]) -> None:
        self.audio_s += duration_s
        for stage, seconds in timings.items():
            self.stage(stage, seconds)

    def stage(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def test_the_preprocessing_metrics_count_each_step_once(options: TranscribeOptions) -> None:
    stage = Preprocessor(options, 80, "tiny", rows_per_block=1)
    stage.metrics = recorded = _Recorded()  # type: ignore[assignment]
    ref = SessionRef(session_id="jfk", uri=JFK)
    sent = [r for b in stage(pa.Table.from_pylist([ref.to_dict()])) for r in rows.decode(b)]
    assert recorded.audio_s == pytest.approx(11.0, abs=0.1)
    assert recorded.seconds["features"] == pytest.approx(
        sum(r["chunk"]["features_s"] for r in sent))
    assert {"decode", "vad", "chunk"} <= recorded.seconds.keys()


def test_a_session_that_fails_part_way_still_counts_what_it_decoded(
        options: TranscribeOptions, monkeypatch: pytest.MonkeyPatch) -> None:
    """Features fail after decode and VAD: the session is one error row, and the audio it
    decoded and the steps it took are counted all the same."""
    def fail(*_: object) -> Any:
        raise MemoryError("no room for features")
        yield

    monkeypatch.setattr(ray_jobs.stages, "iter_chunks", fail)
    stage = Preprocessor(options, 80, "tiny", rows_per_block=1)
    stage.metrics = recorded = _Recorded()  # type: ignore[assignment]
    ref = SessionRef(session_id="jfk", uri=JFK)
    sent = [r for b in stage(pa.Table.from_pylist([ref.to_dict()])) for r in rows.decode(b)]
    assert [r["status"] for r in sent] == ["error"] and "no room" in sent[0]["error"]
    assert recorded.audio_s == pytest.approx(11.0, abs=0.1)
    assert {"decode", "vad"} <= recorded.seconds.keys()


def test_the_schema_is_declared_once() -> None:
    """Only ray_jobs/rows.py declares Arrow types; no stage or driver parses JSON rows."""
    for path in Path(ray_jobs.__file__).parent.glob("*.py"):
        calls = {f"{n.func.value.id}.{n.func.attr}"
                 for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                 and isinstance(n.func.value, ast.Name)}
        if path.name != "rows.py":
            assert not {c for c in calls if c.startswith("pa.")}, path.name
            assert "json.loads" not in calls, path.name
