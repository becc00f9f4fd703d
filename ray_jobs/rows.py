"""The rows between the batch job's stages: one Arrow schema, and the only code that writes
or reads it.

A row is one chunk of a session on its way to the model (``features`` set) or back from
it (``result`` set, ``features`` dropped), or a session alone: one that failed (``status``
``"error"``) or one with no speech (``n_chunks`` 0); such a row has no ``chunk``. Every row
carries its session's record base (``session``). A session's chunks leave while its audio
is still being searched for speech, so only the rows of its last block know their count
(``n_chunks``; before them :data:`COUNT_UNKNOWN`) and carry the whole analysis (speech
duration, timings) in their base; the driver builds the record from that base once it has
the count and every chunk, in whatever order they arrive.

The columns are typed Arrow (structs, lists, a map), never JSON text: features travel as
float32 ``[n_mels][frames]`` lists and come back as numpy arrays without a copy. In Python
a row is a dict keyed by :data:`SCHEMA`'s names, as :func:`decode` gives it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa

from scribe.pipeline.chunking import Chunk, ChunkOutput, ChunkPlan
from scribe.pipeline.speakers.voices import VoiceWindow
from scribe.schema import RecordBase

Row = dict[str, Any]

COUNT_UNKNOWN = -1
"""``n_chunks`` of a chunk row sent before its session's last block."""

_RANGE = pa.struct([("start", pa.int64()), ("end", pa.int64())])
_SOURCE = pa.struct([
    ("sample_rate", pa.int64()), ("channels", pa.int64()), ("codec", pa.string()),
    ("trimmed_start_s", pa.float64()), ("trimmed_end_s", pa.float64()),
])
SESSION = pa.struct([
    ("session_id", pa.string()), ("uri", pa.string()), ("model", pa.string()),
    ("language", pa.string()), ("duration_s", pa.float64()),
    ("speech_duration_s", pa.float64()), ("timings", pa.map_(pa.string(), pa.float64())),
    ("warnings", pa.list_(pa.string())), ("source", _SOURCE),
    ("speakers", pa.string()), ("num_speakers", pa.int32()), ("min_speakers", pa.int32()),
    ("max_speakers", pa.int32()), ("word_timestamps", pa.bool_()),
])
"""A record's base fields: what the session is, what analysing its audio found, how its
speakers are to be labelled, and whether its words go in the record."""

_VOICE = pa.struct([("start_s", pa.float64()), ("end_s", pa.float64()),
                    ("embedding", pa.list_(pa.float32()))])
CHUNK = pa.struct([
    ("index", pa.int32()), ("offset_s", pa.float64()), ("duration_s", pa.float64()),
    ("ranges", pa.list_(_RANGE)), ("features_s", pa.float64()),
    ("channel", pa.int32()), ("voices", pa.list_(_VOICE)),
])
"""Where a chunk lies (collapsed timeline; sample ranges on the session's; the channel it
was cut from), its speech windows' speaker embeddings, and how long its features took."""

FEATURES = pa.list_(pa.list_(pa.float32()))
"""A chunk's log-mel features, ``[n_mels][frames]``."""

_WORD = pa.struct([("start", pa.float64()), ("end", pa.float64()), ("word", pa.string()),
                   ("probability", pa.float64())])
_SEGMENT = pa.struct([
    ("start", pa.float64()), ("end", pa.float64()), ("text", pa.string()),
    ("tokens", pa.list_(pa.int32())), ("avg_logprob", pa.float64()),
    ("no_speech_prob", pa.float64()), ("compression_ratio", pa.float64()),
    ("seek", pa.int64()), ("words", pa.list_(_WORD)), ("language", pa.string()),
    ("temperature", pa.float64()),
])
RESULT = pa.struct([
    ("segments", pa.list_(_SEGMENT)), ("language", pa.string()),
    ("language_probability", pa.float64()), ("model_s", pa.float64()),
    ("batch_size", pa.int32()), ("batch_sessions", pa.int32()), ("actor", pa.string()),
    ("node", pa.string()), ("actor_gpus", pa.float64()), ("actor_started", pa.float64()),
])
"""The model's output for a chunk, the batch it ran in, and the model actor that ran it:
its id, its node, the GPUs it holds and when (Unix time) it loaded its model."""

SCHEMA = pa.schema([
    ("status", pa.string()), ("error", pa.string()), ("n_chunks", pa.int32()),
    ("session", SESSION), ("chunk", CHUNK), ("features", FEATURES), ("result", RESULT),
])
"""Every row between the stages, ok or error, before the model or after it."""


@dataclasses.dataclass(frozen=True)
class ActorIdentity:
    """The model actor that ran a chunk, as its results carry it (empty outside Ray)."""

    actor: str = ""
    node: str = ""
    actor_gpus: float = 0.0
    actor_started: float = 0.0


# --------------------------------------------------------------------------- rows


def session_row(base: RecordBase, error: str | None = None) -> Row:
    """A session alone: failed (with ``error``), or ok with no speech."""
    return {"status": "ok" if error is None else "error", "error": error or "",
            "n_chunks": 0, "session": base, "chunk": None, "features": None, "result": None}


def filler_row(base: RecordBase) -> Row:
    """No chunk: it pads a block to whole prompt chains, so that no model call cuts one
    (:class:`ray_jobs.stages.Preprocessor`); the model skips it and the driver drops it."""
    return {"status": "filler", "error": "", "n_chunks": 0, "session": base, "chunk": None,
            "features": None, "result": None}


def chunk_row(base: RecordBase, chunk: Chunk, *, n_chunks: int, features_s: float) -> Row:
    """One of a session's ``n_chunks`` chunks (:data:`COUNT_UNKNOWN` before its last
    block), with its features, for the model."""
    plan = chunk.plan
    place = {"index": plan.index, "offset_s": plan.offset_s, "duration_s": plan.duration_s,
             "ranges": plan.ranges, "features_s": features_s, "channel": plan.channel,
             "voices": [dataclasses.asdict(v) for v in plan.voices]}
    return {"status": "ok", "error": "", "n_chunks": n_chunks, "session": base,
            "chunk": place, "features": chunk.features, "result": None}


def model_input(row: Row) -> Chunk:
    """A chunk row as the model takes it: grouped by session, in the session's language."""
    session = row["session"]
    return Chunk(plan=_plan(row), features=row["features"], session_id=session["session_id"],
                 language=session["language"])


def set_output(row: Row, output: ChunkOutput, *, batch_size: int, batch_sessions: int,
               actor: ActorIdentity | None = None) -> None:
    """``row`` after the model: its output in, its features (no longer needed) out."""
    row["features"] = None
    row["result"] = _result(output, batch_size=batch_size, batch_sessions=batch_sessions,
                            actor=actor)


def _result(output: ChunkOutput, *, batch_size: int, batch_sessions: int,
            actor: ActorIdentity | None) -> dict[str, Any]:
    return {"segments": output.segments, "language": output.language,
            "language_probability": output.language_probability,
            "model_s": output.timings["model"], "batch_size": batch_size,
            "batch_sessions": batch_sessions, **dataclasses.asdict(actor or ActorIdentity())}


def model_inputs(table: pa.Table) -> dict[int, Chunk]:
    """The chunks of a :data:`SCHEMA` table as the model takes them (:func:`model_input`),
    by row number; rows without features (fillers, sessions alone) are not among them.
    Only the columns the model reads are decoded."""
    features = _features_of(table.column("features"))
    present = pa.array([i for i, f in enumerate(features) if f is not None], pa.int64())
    places = table.column("chunk").take(present).to_pylist()
    session = table.column("session").take(present)
    ids = pa.chunked_array([c.field("session_id") for c in session.chunks],
                           pa.string()).to_pylist()
    languages = pa.chunked_array([c.field("language") for c in session.chunks],
                                 pa.string()).to_pylist()
    return {i: model_input({"chunk": place, "features": features[i],
                            "session": {"session_id": sid, "language": language}})
            for i, place, sid, language in zip(present.to_pylist(), places, ids, languages,
                                                strict=True)}


def with_outputs(table: pa.Table, outputs: dict[int, ChunkOutput], *, batch_size: int,
                 batch_sessions: int, actor: ActorIdentity | None = None) -> pa.Table:
    """``table`` after the model, ``outputs`` given for every row with features
    (:func:`model_inputs`): their results in and every row's features out, as
    :func:`set_output` does row by row; the other columns pass through as they came."""
    if len(outputs) != len(table) - table.column("features").null_count:
        raise ValueError("every row with features needs its output")
    results: list[dict[str, Any] | None] = [None] * len(table)
    for i, output in outputs.items():
        results[i] = _result(output, batch_size=batch_size, batch_sessions=batch_sessions,
                             actor=actor)
    table = table.set_column(SCHEMA.get_field_index("features"), "features",
                             pa.nulls(len(table), FEATURES))
    return table.set_column(SCHEMA.get_field_index("result"), "result",
                            pa.array(results, type=RESULT))


def model_output(row: Row) -> ChunkOutput:
    """A chunk row back from the model, as the assembler takes it."""
    result = row["result"]
    return ChunkOutput(plan=_plan(row), segments=result["segments"],
                       language=result["language"],
                       language_probability=result["language_probability"],
                       timings={"model": result["model_s"]})


def _plan(row: Row) -> ChunkPlan:
    chunk = row["chunk"]
    return ChunkPlan(index=chunk["index"], offset_s=chunk["offset_s"],
                     duration_s=chunk["duration_s"], ranges=chunk["ranges"],
                     channel=chunk["channel"],
                     voices=tuple(VoiceWindow(**v) for v in chunk["voices"] or ()))


# --------------------------------------------------------------------------- Arrow


def encode(rows: list[Row]) -> pa.Table:
    """``rows`` as one table of :data:`SCHEMA`."""
    arrays = []
    for field in SCHEMA:
        values = [row[field.name] for row in rows]
        if field.name == "session":
            values = [{**s, "source": s["source"] or None} for s in values]
        arrays.append(_features_array(values) if field.name == "features"
                      else pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def decode(table: pa.Table) -> list[Row]:
    """The rows of a :data:`SCHEMA` table, exactly as :func:`encode` took them."""
    rows: list[Row] = table.drop_columns(["features"]).to_pylist()
    for row, features in zip(rows, _features_of(table.column("features")), strict=True):
        row["features"] = features
        session = row["session"]
        session["timings"] = dict(session["timings"])
        session["source"] = session["source"] or {}
        for segment in (row["result"] or {}).get("segments", []):
            if segment["words"] is None:
                del segment["words"]
    return rows


def _features_array(features: list[np.ndarray | None]) -> pa.Array:
    present = [np.ascontiguousarray(f, dtype=np.float32) for f in features if f is not None]
    values = pa.array(np.concatenate([f.ravel() for f in present]) if present
                      else np.zeros(0, np.float32))
    frames = np.repeat([f.shape[1] for f in present], [f.shape[0] for f in present])
    mels = pa.ListArray.from_arrays(_offsets(frames), values)
    per_row = [0 if f is None else f.shape[0] for f in features]
    return pa.ListArray.from_arrays(_offsets(per_row), mels, type=FEATURES,
                                    mask=pa.array([f is None for f in features]))


def _offsets(lengths: Any) -> pa.Array:
    return pa.array(np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]), pa.int32())


def _features_of(column: pa.ChunkedArray) -> list[np.ndarray | None]:
    """Each row's features as a read-only ``[n_mels, frames]`` view of the column."""
    out: list[np.ndarray | None] = []
    for value in (v for chunk in column.chunks for v in chunk):
        if not value.is_valid:
            out.append(None)
            continue
        mels = value.values
        out.append(mels.flatten().to_numpy().reshape(len(mels), -1))
    return out
