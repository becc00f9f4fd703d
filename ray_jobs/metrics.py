"""The batch job's metrics through ``ray.util.metrics``: the driver's, the CPU stage's and
the model actors'. Each process builds its own (Ray's metric objects do not travel);
every node's metrics agent exports them (``ray_scribe_job_*``), and Prometheus scrapes
the agents (``dashboards/prometheus.yml``).

The catalogue (names, units, tags) is :mod:`scribe.telemetry`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from ray.util import metrics as api

from scribe import telemetry as t
from scribe.errors import error_reason

# How often the driver adds the GPUs' held time to the cost counters while the job runs.
BILLING_PERIOD_S = 5.0


class JobMetrics:
    """The driver's: sessions as they are written, and the held GPUs' time and cost,
    billed as the summary bills them (wall x GPUs; one machine on a CPU-only job)."""

    def __init__(self, started: float, gpus: float, gpu_hourly_usd: float) -> None:
        self._sessions, self._audio, self._speech, self._gpu, self._cost, self._languages = (
            spec.make(api) for spec in (t.JOB_SESSIONS, t.JOB_AUDIO, t.JOB_SPEECH,
                                        t.JOB_GPU, t.JOB_COST, t.JOB_LANGUAGES))
        self._started, self._gpus, self._price = started, gpus, gpu_hourly_usd
        self._billed_s = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_until_stopped, daemon=True,
                                        name="scribe-billing")

    def __enter__(self) -> JobMetrics:
        self._ticker.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._ticker.join()
        self.bill()

    def session(self, record: Mapping[str, Any]) -> None:
        """One session's final record (after its files are written)."""
        ok = record["status"] == "ok"
        reason = "none" if ok else error_reason(record.get("error"))
        self._sessions.inc(1.0, tags={"status": str(record["status"]), "reason": reason})
        if ok:
            t.add(self._audio, record.get("duration_s", 0.0))
            t.add(self._speech, record.get("speech_duration_s", 0.0))
            for language, seconds in t.language_seconds(record.get("segments", [])).items():
                t.add(self._languages, seconds, {"language": language})

    def bill(self) -> None:
        """Add the time since the last bill (from the job's start) to the counters."""
        with self._lock:
            elapsed = time.perf_counter() - self._started
            delta, self._billed_s = elapsed - self._billed_s, elapsed
        t.add(self._gpu, delta * self._gpus)
        t.add(self._cost, delta * max(self._gpus, 1.0) * self._price / 3600.0)

    def _tick_until_stopped(self) -> None:
        while not self._stop.wait(BILLING_PERIOD_S):
            self.bill()


class PreprocessMetrics:
    """The CPU stage's: audio decoded and seconds per preprocessing step."""

    def __init__(self) -> None:
        self._seconds = t.PREPROCESS_SECONDS.make(api)
        self._audio = t.PREPROCESS_AUDIO.make(api)

    def session(self, duration_s: float, timings: Mapping[str, float]) -> None:
        """A session decoded and planned: its length and the seconds each step took."""
        t.add(self._audio, duration_s)
        for stage, seconds in timings.items():
            self.stage(stage, seconds)

    def stage(self, stage: str, seconds: float) -> None:
        """Seconds spent in one step (``features`` is added chunk by chunk)."""
        t.add(self._seconds, seconds, {"stage": stage})


class ModelMetrics:
    """A model actor's: chunks, their audio (RTFx per actor), batch sizes, time per chunk,
    and time busy in model calls against time waiting for the next batch."""

    def __init__(self) -> None:
        self._chunks, self._audio, self._busy, self._idle, self._batch, self._per_chunk = (
            spec.make(api) for spec in (t.MODEL_CHUNKS, t.MODEL_AUDIO, t.MODEL_BUSY,
                                        t.MODEL_IDLE, t.MODEL_BATCH, t.MODEL_CHUNK_SECONDS))
        tags = {t.ACTOR_TAG: _actor_id()}
        for metric in (self._chunks, self._audio, self._busy, self._idle, self._batch,
                       self._per_chunk):
            metric.set_default_tags(tags)
        self._last_end: float | None = None

    def batch(self, durations_s: Sequence[float], started: float, ended: float,
              per_call: int | None = None) -> None:
        """One model call over chunks of these lengths, between two ``perf_counter``s;
        ``per_call``: the chunks each of its model calls took, where it made several (prompt
        chains decoded side by side)."""
        if self._last_end is not None:
            t.add(self._idle, started - self._last_end)
        self._last_end = ended
        t.add(self._busy, ended - started)
        t.add(self._chunks, len(durations_s))
        t.add(self._audio, sum(durations_s))
        self._batch.observe(per_call or len(durations_s))
        per_chunk = (ended - started) / max(1, len(durations_s))
        for _ in durations_s:
            self._per_chunk.observe(per_chunk)


def _actor_id() -> str:
    """This actor's id, shortened (unique enough among one job's actors), or ``none``
    outside an actor."""
    import ray

    actor = ray.get_runtime_context().get_actor_id() if ray.is_initialized() else None
    return actor[:12] if actor else "none"
