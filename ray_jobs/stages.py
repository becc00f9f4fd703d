"""The Ray Data stages: callable classes whose ``__init__`` loads state and whose
``__call__(batch)`` maps rows through the engine's pure functions.

Rows between the stages are *chunks*: one per 30 s of speech, features as raw float32
bytes (a binary column keeps ok and error rows in one schema). A session with no speech,
or one that failed, is a single row with ``n_chunks == 0`` that skips the model.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from scribe.config import TranscribeOptions
from scribe.errors import EmptyAudioError, ScribeError, describe
from scribe.io.storage import open_input, resolve
from scribe.pipeline.preprocess import AnalysedSession, analyse, iter_chunks
from scribe.pipeline.whisper import ChunkInput, WhisperEngine

logger = logging.getLogger(__name__)

Batch = dict[str, Any]
CHUNK_COLUMNS = ("session_id", "uri", "chunk_index", "n_chunks", "status", "error",
                 "session", "features", "n_frames", "chunk")


def _columns(rows: list[dict[str, Any]], names: tuple[str, ...]) -> Batch:
    return {name: [row[name] for row in rows] for name in names}


class Preprocessor:
    """CPU stage: one session in, its chunks out in blocks (or one error row).

    A generator: a 3-hour session's ~360 chunks leave in blocks of ``ROWS_PER_BLOCK`` as
    their features are computed, so the actor never holds them all."""

    ROWS_PER_BLOCK = 16
    # Preprocessing shares the cores with the model actors' threads (it needs a few percent
    # of their CPU time): at a lower priority it fills their idle moments instead of
    # preempting a CTranslate2 thread, which stalls the whole batch until it runs again.
    NICENESS = 10

    def __init__(self, options: TranscribeOptions, n_mels: int, model: str) -> None:
        os.nice(self.NICENESS)  # this actor's own worker process: nothing else is affected
        self.options = options
        self.n_mels = n_mels
        self.model = model

    def __call__(self, batch: Batch) -> Iterator[Batch]:
        for sid, uri, language in zip(batch["session_id"], batch["uri"], batch["language"],
                                      strict=True):
            for rows in self._session_blocks(str(sid), str(uri), str(language) or None):
                yield _columns(rows, CHUNK_COLUMNS)

    def _session_blocks(self, sid: str, uri: str, language: str | None
                        ) -> Iterator[list[dict[str, Any]]]:
        base: dict[str, Any] = {"session_id": sid, "uri": uri, "model": self.model,
                                "language": language}
        try:
            session = self._analyse(uri)
        except Exception as exc:  # any failure is this session's error record, never the job's
            yield [_error_row(base, exc)]
            return
        base.update(duration_s=session.duration_s, speech_duration_s=session.speech_duration_s,
                    timings=dict(session.timings), warnings=session.warnings,
                    source=session.source)
        if not session.plans:
            yield [_row(base, "ok", "")]
            return
        try:
            yield from self._chunk_blocks(base, session)
        except Exception as exc:
            yield [_error_row(base, exc)]

    def _chunk_blocks(self, base: dict[str, Any], session: AnalysedSession
                      ) -> Iterator[list[dict[str, Any]]]:
        rows: list[dict[str, Any]] = []
        started = time.perf_counter()
        for c in iter_chunks(session, self.n_mels):
            chunk = {"offset_s": c.offset_s, "duration_s": c.duration_s, "ranges": c.segments,
                     "features_s": time.perf_counter() - started}
            rows.append(_row(base, "ok", "", index=c.index, n_chunks=len(session.plans),
                             features=c.features, chunk=chunk))
            if len(rows) == self.ROWS_PER_BLOCK:
                yield rows
                rows = []
            started = time.perf_counter()
        if rows:
            yield rows

    def _analyse(self, uri: str) -> AnalysedSession:
        fs, path = resolve(uri)
        if fs.get_file_info(path).size == 0:
            raise EmptyAudioError("the file is empty (0 bytes)")
        with open_input(uri) as source:
            return analyse(source, self.options)


def _error_row(base: dict[str, Any], exc: Exception) -> dict[str, Any]:
    if not isinstance(exc, ScribeError):
        logger.error("unexpected error preprocessing session %s", base["session_id"],
                     exc_info=exc)
    return _row(base, "error", describe(exc))


def _row(base: dict[str, Any], status: str, error: str, *, index: int = -1, n_chunks: int = 0,
         features: np.ndarray | None = None, chunk: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    return {
        "session_id": base["session_id"], "uri": base["uri"], "chunk_index": index,
        "n_chunks": n_chunks, "status": status, "error": error,
        "session": json.dumps(base),
        "features": b"" if features is None else features.tobytes(),
        "n_frames": 0 if features is None else features.shape[1],
        "chunk": json.dumps(chunk or {}),
    }


RESULT_COLUMNS = ("session_id", "chunk_index", "n_chunks", "status", "error", "session",
                  "chunk", "result")


class Transcriber:
    """Model stage: a batch of chunks from any sessions through one model call."""

    def __init__(self, options: TranscribeOptions, cpu_threads: int = 0) -> None:
        self.engine = WhisperEngine(options, cpu_threads=cpu_threads)
        self.n_mels = self.engine.n_mels

    def __call__(self, batch: Batch) -> Batch:
        n = len(batch["session_id"])
        todo = [i for i in range(n) if batch["n_frames"][i] > 0]
        results: dict[int, dict[str, Any]] = {}
        if todo:
            results = self._run(batch, todo)
        out = {name: list(batch[name]) for name in RESULT_COLUMNS if name != "result"}
        out["result"] = [json.dumps(results.get(i, {})) for i in range(n)]
        return out

    def _run(self, batch: Batch, todo: list[int]) -> dict[int, dict[str, Any]]:
        items = [self._item(batch, i) for i in todo]
        start = time.perf_counter()
        outputs = self.engine.transcribe(items)
        share = (time.perf_counter() - start) / len(items)
        sessions = len({item.group for item in items})
        return {
            i: {"segments": out.segments, "language": out.language,
                "language_probability": out.language_probability, "model_s": share,
                "batch_size": len(items), "batch_sessions": sessions}
            for i, out in zip(todo, outputs, strict=True)
        }

    def _item(self, batch: Batch, i: int) -> ChunkInput:
        frames = int(batch["n_frames"][i])
        features = np.frombuffer(batch["features"][i], dtype=np.float32).reshape(-1, frames)
        chunk = json.loads(batch["chunk"][i])
        session = json.loads(batch["session"][i])
        return ChunkInput(features=features, offset_s=chunk["offset_s"],
                          duration_s=chunk["duration_s"], group=str(batch["session_id"][i]),
                          language=session.get("language"))
