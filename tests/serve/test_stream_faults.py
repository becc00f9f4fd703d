"""Faults under a stream: a model replica killed after the 200 ends the stream with an
error event (the ``openai`` client raises it), never a hang; then streams work again."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests import media
from tests.serve.test_replica_faults import _replica_pid

pytestmark = [pytest.mark.serve, pytest.mark.faults]


def test_replica_killed_mid_stream_ends_it_with_an_error_event(openai_client: Any,
                                                               tmp_path: Path) -> None:
    import openai

    path = media.long_session(tmp_path / "long.flac", minutes=10)
    victim = _replica_pid("Transcriber")
    started = time.monotonic()
    seen: list[str] = []
    with path.open("rb") as f, pytest.raises(openai.APIError) as caught:
        for event in openai_client.audio.transcriptions.create(
                model="whisper-1", file=f, stream=True):
            seen.append(event.type)
            if len(seen) == 1:
                os.kill(victim, signal.SIGKILL)
    assert seen and "transcript.text.done" not in seen
    assert "restarted" in caught.value.message and "Traceback" not in caught.value.message
    assert time.monotonic() - started < 120, "the stream ended, it did not hang"
    deadline = time.monotonic() + 120
    while _replica_pid_or_none() in (None, victim) and time.monotonic() < deadline:
        time.sleep(0.5)
    with (media.EXAMPLES / "jfk.flac").open("rb") as f:
        events = list(_retrying(openai_client, f))
    assert events[-1].type == "transcript.text.done"


def _replica_pid_or_none() -> int | None:
    try:
        return _replica_pid("Transcriber")
    except AssertionError:
        return None


def _retrying(client: Any, f: Any, attempts: int = 30) -> list[Any]:
    """A stream once the replacement replica takes calls (503 + Retry-After until then)."""
    import openai

    for _ in range(attempts):
        f.seek(0)
        try:
            return list(client.audio.transcriptions.create(model="whisper-1", file=f,
                                                           stream=True))
        except (openai.APIStatusError, openai.APIError):
            time.sleep(2)
    raise AssertionError("streams did not come back after the replica was replaced")
