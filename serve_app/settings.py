"""The online service's config: the engine's own two groups plus the HTTP front's options.

``transcribe`` and ``resources`` are the very :class:`~scribe.config.TranscribeOptions` and
:class:`~scribe.config.ResourceConfig` the batch job reads, so one YAML block means the same
thing in both. ``server`` holds what only an HTTP service has. Replica counts, autoscaling
and queue bounds are Serve's own deployment options (``deployments:`` in config.yaml).
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

from scribe.config import ResourceConfig, TranscribeOptions

API_KEYS_ENV = "SCRIBE_API_KEYS"
GIB = 1024**3


class ServerOptions(BaseModel):
    """The HTTP front: limits, keys, names, and how long a batch waits to fill."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_names: tuple[str, ...] = Field(
        ("whisper-1",), description="names GET /v1/models lists; any name is accepted")
    max_body_bytes: int = Field(
        GIB, ge=1, description="larger request bodies get 413, counted while they stream in")
    api_keys: tuple[str, ...] = Field(
        (), description=f"bearer keys; empty (and ${API_KEYS_ENV} unset) means no auth")
    batch_wait_timeout_s: float = Field(
        0.01, ge=0, le=5, description="how long an idle model waits for a batch to fill")
    retry_after_s: int = Field(
        5, ge=1, description="Retry-After seconds sent with 503 when a queue is full")

    realtime_max_sessions: int = Field(
        16, ge=1, description="realtime sessions one ingress replica holds open at once")
    realtime_idle_timeout_s: float = Field(
        60.0, gt=0, description="a realtime session with no client event for this long "
        "is closed")

    def keys(self) -> tuple[str, ...]:
        """Configured keys plus those in ``$SCRIBE_API_KEYS`` (comma-separated)."""
        extra = [k.strip() for k in os.environ.get(API_KEYS_ENV, "").split(",")]
        return self.api_keys + tuple(k for k in extra if k)


class ServeConfig(BaseModel):
    """Everything ``app_builder`` takes: the ``args:`` of config.yaml, read (with the CLI's
    flags) by :func:`scribe.config.build`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    transcribe: TranscribeOptions = Field(default_factory=TranscribeOptions)
    resources: ResourceConfig = Field(default_factory=ResourceConfig)
    server: ServerOptions = Field(default_factory=ServerOptions)

