"""The driver's assembly: chunk results gathered per session into its record, yielded as
soon as the session's last chunk is back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ray_jobs import rows
from ray_jobs.ledger import ModelActorLedger
from ray_jobs.rows import Row
from scribe.pipeline.chunking import ChunkOutput
from scribe.pipeline.speakers.diarize import SpeakerRequest
from scribe.pipeline.transcript import error_record, ok_record
from scribe.schema import Record, RecordBase


@dataclass
class _Pending:
    base: RecordBase
    expected: int | None = None  # known from the session's last block
    # by chunk index: a retried task may deliver a chunk twice; it must count once
    chunks: dict[int, ChunkOutput] = field(default_factory=dict)
    features_s: dict[int, float] = field(default_factory=dict)


class SessionCollector:
    """Gathers chunk results per session; yields a record when a session is complete."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._failed: set[str] = set()
        # running totals, not lists: the driver's memory must not grow with the bucket
        self.chunks = 0
        self.batch_size_sum = 0
        self.max_batch_sessions = 0
        self.actors = ModelActorLedger()

    def add(self, row: Row) -> Record | None:
        """Take one row (:mod:`ray_jobs.rows`); a record when it completes its session."""
        base = row["session"]
        sid = base["session_id"]
        # _failed keeps only ids of sessions that failed part-way (a few bytes each)
        if sid in self._failed or row["status"] == "filler":
            return None
        if row["status"] != "ok":
            # a session can fail after some of its chunks left: drop them, report once
            self._failed.add(sid)
            self._pending.pop(sid, None)
            return error_record(base, row["error"])
        if row["n_chunks"] == 0:
            return ok_record(base, [], _speaker_request(base))
        pending = self._pending.setdefault(sid, _Pending(base=base))
        if row["n_chunks"] != rows.COUNT_UNKNOWN:  # the last block's: the whole analysis
            pending.expected, pending.base = row["n_chunks"], base
        result = row["result"]
        self.chunks += 1
        self.batch_size_sum += result["batch_size"]
        self.max_batch_sessions = max(self.max_batch_sessions, result["batch_sessions"])
        self.actors.saw(result, time.time())
        output = rows.model_output(row)
        pending.features_s[output.plan.index] = row["chunk"]["features_s"]
        pending.chunks[output.plan.index] = output
        if pending.expected is None or len(pending.chunks) < pending.expected:
            return None
        del self._pending[sid]
        pending.base["timings"]["features"] = sum(pending.features_s.values())
        return ok_record(pending.base, list(pending.chunks.values()),
                         _speaker_request(pending.base))

    @property
    def mean_batch_size(self) -> float:
        """Chunks per model call, averaged over the chunks that came back."""
        return self.batch_size_sum / self.chunks if self.chunks else 0.0

    def drop_unfinished(self) -> None:
        """Forget the chunks of sessions not yet complete: a pass given up after a node
        loss (:mod:`ray_jobs.recovery`) runs them again from the start."""
        self._pending.clear()

    def incomplete(self) -> list[Record]:
        """Error records for sessions whose chunks did not all come back (none should)."""
        return [error_record(p.base, f"incomplete: {len(p.chunks)} of "
                             + ("an unknown number of" if p.expected is None
                                else f"{p.expected}")
                             + " chunks came back from the model stage")
                for p in self._pending.values()]


def _speaker_request(base: RecordBase) -> SpeakerRequest | None:
    """The session's speaker labelling, as its preprocessing resolved it; None when off."""
    if base.get("speakers", "off") == "off":
        return None
    return SpeakerRequest(num_speakers=base.get("num_speakers"),
                          min_speakers=base["min_speakers"], max_speakers=base["max_speakers"])

