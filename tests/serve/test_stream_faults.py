"""Faults under a stream: a model replica killed after the 200, or VAD failing on a later
window of the upload, ends the stream with an error event (the ``openai`` client raises
it), never a hang nor a stream cut short without one; then streams work again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scribe.errors import UnsupportedAudioError
from serve_app.deployments import PreprocessorReplica
from tests import media
from tests.serve.support import Server
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


class FailingVad(PreprocessorReplica):
    """The real preprocessor, its VAD (the engine's ``speech_windows``) failing with
    ``error`` on an upload's second window: after the 200 and the first window's chunks."""

    def __init__(self, n_mels: int, error: Exception) -> None:
        from scribe.pipeline import preprocess

        super().__init__(n_mels)
        searched = preprocess.speech_windows

        def failing(*args: Any, **kwargs: Any) -> Iterator[Any]:
            for number, window in enumerate(searched(*args, **kwargs)):
                if number == 1:
                    raise error
                yield window

        preprocess.speech_windows = failing


@pytest.fixture(params=["audio", "internal"])
def failing_vad(request: pytest.FixtureRequest, server: Server) -> Iterator[tuple[str, Any]]:
    """An ingress whose preprocessor's VAD fails on the second window (an audio error, or
    an internal one), sharing the test app's transcriber; its ``/v1`` URL, and the error."""
    from openai import OpenAI
    from ray import serve

    from serve_app.app import Ingress

    error = (UnsupportedAudioError("VAD could not read the audio") if request.param == "audio"
             else RuntimeError("the VAD model failed"))
    vad = serve.deployment(name="FailingVad", ray_actor_options={"num_cpus": 0})(FailingVad)
    serve.run(Ingress.options(name="FailingVadIngress").bind(
        server.config, vad.bind(80, error), serve.get_deployment_handle("Transcriber", "scribe")),
        name="failing-vad", route_prefix="/failing-vad")
    try:
        yield request.param, OpenAI(base_url=server.url + "/failing-vad/v1", api_key="unused",
                                    max_retries=0, timeout=120)
    finally:
        serve.delete("failing-vad")


def test_vad_failing_after_the_200_ends_the_stream_with_an_error_event(
        failing_vad: tuple[str, Any], tmp_path: Path) -> None:
    import openai

    kind, client = failing_vad
    path = media.long_session(tmp_path / "long.flac", minutes=5)  # three VAD windows
    started = time.monotonic()
    seen: list[str] = []
    with path.open("rb") as f, pytest.raises(openai.APIError) as caught:
        for event in client.audio.transcriptions.create(model="whisper-1", file=f,
                                                         stream=True):
            seen.append(event.type)
    assert "transcript.text.done" not in seen
    assert time.monotonic() - started < 120, "the stream ended, it did not hang"
    error = caught.value
    assert isinstance(error.body, dict) and "Traceback" not in error.message
    if kind == "audio":
        assert error.code == "unsupported_audio" and "VAD could not read" in error.message
    else:
        assert error.code == "internal_error" and "internal error (request" in error.message
