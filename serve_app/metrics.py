"""The online service's metrics through ``ray.serve.metrics`` (which adds the deployment,
replica and application tags): what Serve's own ``ray_serve_*`` metrics do not say,
namely each transcription's outcome code, its audio and its processing time, and the
model's batch sizes. Request counts by HTTP status and latencies are Serve's
(``ray_serve_num_http_requests_total``, ``ray_serve_http_request_latency_ms``).

The catalogue (names, units, tags) is :mod:`scribe.telemetry`.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ray.serve import metrics as api

from scribe import telemetry as t
from scribe.schema import Segment


@dataclass
class Answer:
    """What one request did; the handler fills in the audio it transcribed and the
    segments it answered with (their languages are counted)."""

    audio_s: float = 0.0
    segments: list[Segment] = field(default_factory=list)


class OnlineMetrics:
    """One ingress replica's: requests by task and outcome, audio and processing time."""

    def __init__(self) -> None:
        self._requests = t.ONLINE_REQUESTS.make(api)
        self._audio = t.ONLINE_AUDIO.make(api)
        self._seconds = t.ONLINE_SECONDS.make(api)
        self._languages = t.ONLINE_LANGUAGES.make(api)
        self.language_seconds: defaultdict[str, float] = defaultdict(float)  # as counted

    @contextmanager
    def answer(self, task: str) -> Iterator[Answer]:
        """Count one request: ``ok``, or the code of the error that ends it."""
        answer, start, code = Answer(), time.perf_counter(), "ok"
        try:
            yield answer
        except asyncio.CancelledError:
            code = "cancelled"
            raise
        except Exception as exc:
            # ApiError and ScribeError carry the OpenAI-style code the client sees
            code = str(getattr(exc, "code", None) or "internal_error")
            raise
        finally:
            self._record(task, code, answer, time.perf_counter() - start)

    def _record(self, task: str, code: str, answer: Answer, seconds: float) -> None:
        self._requests.inc(1.0, tags={"task": task, "code": code})
        if code == "ok":
            t.add(self._audio, answer.audio_s, {"task": task})
            t.add(self._seconds, seconds, {"task": task})
            for language, spoken in t.language_seconds(answer.segments).items():
                t.add(self._languages, spoken, {"task": task, "language": language})
                self.language_seconds[language] += spoken


def batch_histogram() -> Any:
    """Chunks per model call, observed by each transcriber replica."""
    return t.ONLINE_BATCH.make(api)
