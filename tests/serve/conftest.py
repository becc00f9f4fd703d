"""A real Serve on loopback with the test model, started once for the whole serve tier.

Two applications share one set of model replicas: ``scribe`` at ``/`` (no keys) and
``locked`` at ``/locked``, a second ingress with API keys whose routes call the first
app's preprocessor and transcriber, so auth on and off is tested without a second model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scribe.config import TranscribeOptions
from tests.serve.support import (
    API_KEY,
    EXAMPLES,
    INGRESS_ONGOING,
    INGRESS_QUEUED,
    Server,
    free_port,
    serve_config,
    wait_for_serve_to_exit,
)


@pytest.fixture(scope="package")
def server(ray_local: Any, test_options: TranscribeOptions) -> Iterator[Server]:
    """``scribe`` and ``locked`` on 127.0.0.1 and a free port, on the session's Ray; Serve
    is shut down, with every process it started, when the serve tier ends."""
    from ray import serve

    from serve_app.app import Ingress, build_app, resolve_options

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        config = serve_config(test_options)
        ingress = {"max_ongoing_requests": INGRESS_ONGOING,
                   "max_queued_requests": INGRESS_QUEUED}
        serve.run(build_app(config, {"Ingress": ingress}), name="scribe", route_prefix="/")
        locked = serve_config(resolve_options(test_options), api_keys=(API_KEY,))
        serve.run(Ingress.options(name="LockedIngress").bind(
            locked, serve.get_deployment_handle("Preprocessor", "scribe"),
            serve.get_deployment_handle("Transcriber", "scribe")),
            name="locked", route_prefix="/locked")
        url = f"http://127.0.0.1:{port}"
        yield Server(url, url + "/locked", config)
    finally:
        serve.shutdown()
        wait_for_serve_to_exit()


@pytest.fixture
def openai_client(server: Server) -> Any:
    """The official OpenAI client pointed at the open app."""
    from openai import OpenAI

    return OpenAI(base_url=server.api, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def http(server: Server) -> Iterator[Any]:
    """A plain HTTP client on the server's root."""
    import httpx

    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="session")
def jfk() -> Path:
    """11 s of real speech (FLAC)."""
    return EXAMPLES / "jfk.flac"
