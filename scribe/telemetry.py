"""The application metrics, declared once: name, kind, unit, tags and buckets.

The adapters build them with Ray's metrics API (``ray_jobs.metrics`` with
``ray.util.metrics``, ``serve_app.metrics`` with ``ray.serve.metrics``); this module
imports neither, so the dashboard test and the docs read the same catalogue without Ray.

Names follow Prometheus style under one prefix, with the unit last (``_seconds``,
``_usd``, ``_chunks``). Ray prefixes ``ray_`` on export and appends ``_total`` to
counters, so ``scribe_job_audio_seconds`` is scraped as ``ray_scribe_job_audio_seconds_total``.
Tags are bounded sets (status, error kind, stage, task): never a session id, a path or
text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

PREFIX = "scribe_"
RAY_PREFIX = "ray_"
Kind = Literal["Counter", "Gauge", "Histogram"]

# Seconds of model time per chunk, and chunks per model call.
_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_CHUNKS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class MetricSpec:
    """One metric as ``ray.util.metrics`` takes it; ``kind`` names the class."""

    name: str
    kind: Kind
    description: str
    tag_keys: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the Ray metric class named by ``kind``."""
        args: dict[str, Any] = {"name": self.name, "description": self.description,
                                "tag_keys": self.tag_keys}
        if self.kind == "Histogram":
            args["boundaries"] = list(self.boundaries)
        return args

    def make(self, api: Any) -> Any:
        """This metric built with ``api``: ``ray.util.metrics`` or ``ray.serve.metrics``
        (which adds the deployment, replica and application tags)."""
        return getattr(api, self.kind)(**self.kwargs())

    def exported(self) -> tuple[str, ...]:
        """The series names Prometheus sees for this metric once Ray exports it."""
        base = RAY_PREFIX + self.name
        if self.kind == "Counter":
            return (base + "_total",)
        if self.kind == "Histogram":
            return (base + "_bucket", base + "_sum", base + "_count")
        return (base,)


def _counter(name: str, description: str, *tags: str) -> MetricSpec:
    return MetricSpec(PREFIX + name, "Counter", description, tags)


def _histogram(name: str, description: str, boundaries: tuple[float, ...],
               *tags: str) -> MetricSpec:
    return MetricSpec(PREFIX + name, "Histogram", description, tags, boundaries)


# The batch job: the driver (sessions, audio, cost), the CPU stage and the model actors.
JOB_SESSIONS = _counter("job_sessions", "sessions finished, by status and error kind",
                        "status", "reason")
JOB_AUDIO = _counter("job_audio_seconds", "audio seconds of the sessions finished ok")
JOB_SPEECH = _counter("job_speech_seconds", "speech seconds (after VAD) of the ok sessions")
JOB_LANGUAGES = _counter("job_language_seconds",
                         "seconds of the ok sessions' segments, by the language each was "
                         "decoded in (detected, or given)", "language")
JOB_GPU = _counter("job_gpu_seconds",
                   "GPU-seconds the model actors hold (wall x GPUs; a CPU-only job counts "
                   "one machine, as the summary bills it)")
JOB_COST = _counter("job_cost_usd", "what the held GPUs cost at --gpu-hourly-usd")
PREPROCESS_SECONDS = _counter("job_preprocess_seconds",
                              "CPU seconds of preprocessing, by stage", "stage")
PREPROCESS_AUDIO = _counter("job_preprocess_audio_seconds",
                            "audio seconds the preprocessing actors decoded")
# Model actors tag their series with a short actor id (a job has a few dozen): Ray no
# longer exports its own WorkerId label by default (2.53+), and RTFx is per actor.
ACTOR_TAG = "actor"
MODEL_CHUNKS = _counter("job_model_chunks", "chunks through the model", ACTOR_TAG)
MODEL_AUDIO = _counter("job_model_audio_seconds",
                       "audio seconds of the chunks through the model (per actor: RTFx)",
                       ACTOR_TAG)
MODEL_BUSY = _counter("job_model_busy_seconds", "seconds a model actor spent in model calls",
                      ACTOR_TAG)
MODEL_IDLE = _counter("job_model_idle_seconds",
                      "seconds a model actor waited for its next batch (starved by the queue)",
                      ACTOR_TAG)
MODEL_BATCH = _histogram("job_model_batch_chunks", "chunks per model call", _CHUNKS,
                         ACTOR_TAG)
MODEL_CHUNK_SECONDS = _histogram("job_chunk_model_seconds", "model seconds per chunk",
                                 _SECONDS, ACTOR_TAG)

# The online service: what Serve's own ray_serve_* metrics do not say.
ONLINE_REQUESTS = _counter("online_requests",
                           "transcription requests answered, by task and outcome code "
                           "(ok, or the OpenAI error code: overloaded, empty_audio, ...)",
                           "task", "code")
ONLINE_AUDIO = _counter("online_audio_seconds", "audio seconds transcribed online", "task")
ONLINE_SECONDS = _counter("online_processing_seconds",
                          "seconds spent on requests answered ok (with online audio: RTFx)",
                          "task")
ONLINE_LANGUAGES = _counter("online_language_seconds",
                            "seconds of the ok answers' segments, by the language each was "
                            "decoded in (detected, or given)", "task", "language")
ONLINE_BATCH = _histogram("online_model_batch_chunks",
                          "chunks per model call across the requests in flight", _CHUNKS)

ALL = (JOB_SESSIONS, JOB_AUDIO, JOB_SPEECH, JOB_LANGUAGES, JOB_GPU, JOB_COST, PREPROCESS_SECONDS,
       PREPROCESS_AUDIO, MODEL_CHUNKS, MODEL_AUDIO, MODEL_BUSY, MODEL_IDLE, MODEL_BATCH,
       MODEL_CHUNK_SECONDS, ONLINE_REQUESTS, ONLINE_AUDIO, ONLINE_SECONDS, ONLINE_LANGUAGES,
       ONLINE_BATCH)


def add(counter: Any, value: float, tags: dict[str, str] | None = None) -> None:
    """``counter.inc(value)`` for a positive value: Ray's counters refuse 0 (a session
    with no speech, a stage that took no time) with an error."""
    if value > 0:
        counter.inc(float(value), tags=tags)


def language_seconds(segments: Any) -> dict[str, float]:
    """Seconds of ``segments`` (a record's) per language they were decoded in; a language
    tag is one of Whisper's hundred codes, a bounded set."""
    found: dict[str, float] = {}
    for segment in segments:
        language = segment.get("language") or "unknown"
        found[language] = found.get(language, 0.0) + segment["end"] - segment["start"]
    return found


def exported_names() -> set[str]:
    """Every series name the application exports through Ray."""
    return {name for spec in ALL for name in spec.exported()}
