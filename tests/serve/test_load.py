"""Concurrency and limits: batches form across clients, overload is shed with 503, and
oversized uploads are refused with 413 without the server buffering them."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.serve.support import (
    EXAMPLES,
    INGRESS_ONGOING,
    INGRESS_QUEUED,
    MAX_BODY_BYTES,
    Server,
    descendants,
)

pytestmark = pytest.mark.serve

GIB = 1024**3
MIB = 1024**2


def test_sixteen_concurrent_clients_all_succeed_in_shared_batches(
        openai_client: Any, http: Any) -> None:
    clips = [EXAMPLES / name for name in ("jfk.flac", "hotwords.mp3")] * 8
    before = http.get("/v1/stats").json()

    def one(path: Path) -> str:
        with path.open("rb") as f:
            result = openai_client.audio.transcriptions.create(model="whisper-1", file=f)
        return str(result.text)

    with ThreadPoolExecutor(len(clips)) as pool:
        texts = list(pool.map(one, clips))
    assert len(texts) == 16 and all(texts)
    after = http.get("/v1/stats").json()
    assert after["chunks"] - before["chunks"] == 16
    # Chunks of different requests shared model calls: this burst's chunks by the size of
    # the batch each ran in include batches larger than one.
    grown = {int(size): count - before["batch_sizes"].get(size, 0)
             for size, count in after["batch_sizes"].items()}
    assert any(size > 1 and count > 0 for size, count in grown.items()), grown


def _stalled_upload(release: threading.Event) -> Iterator[bytes]:
    """A multipart body that stops after its first bytes until ``release`` is set."""
    yield b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
    release.wait(60)
    yield (b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.mp3"\r\n'
           b"Content-Type: audio/mpeg\r\n\r\nnot audio at all\r\n--b--\r\n")


def test_overload_is_shed_with_503_and_retry_after(server: Server) -> None:
    import httpx

    release = threading.Event()
    # Twice what the ingress takes: Serve's admission counts are approximate under a burst
    # (a few more than max_ongoing + max_queued get in), never unbounded.
    total = 2 * (INGRESS_ONGOING + INGRESS_QUEUED)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=90) as client:
            return client.post("/v1/audio/transcriptions", content=_stalled_upload(release),
                               headers={"Content-Type": "multipart/form-data; boundary=b"})

    with ThreadPoolExecutor(total) as pool:
        futures = [pool.submit(one, i) for i in range(total)]
        threading.Timer(5.0, release.set).start()
        responses = [f.result() for f in futures]
    statuses = sorted(r.status_code for r in responses)
    shed = [r for r in responses if r.status_code == 503]
    assert len(shed) >= total // 4, statuses
    assert all(r.headers.get("retry-after") == "2" for r in shed)
    # Every request that got in was answered on its merits (the file is not audio).
    assert set(statuses) <= {400, 503}, statuses
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/health").status_code == 200


def _huge_upload(total: int, piece: int = MIB) -> Iterator[bytes]:
    """A well-formed multipart upload whose file part is ``total`` bytes of zeros."""
    yield (b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
           b"Content-Type: audio/wav\r\n\r\n")
    block = bytes(piece)
    for _ in range(total // piece):
        yield block


def _peak_rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _proxy_pid() -> int:
    """Serve's HTTP proxy actor among this test process's Ray workers."""
    procs = descendants(os.getpid())
    return next(pid for pid, cmd in procs.items() if cmd.startswith(b"ray::ProxyActor"))


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_two_gigabyte_upload_is_413_without_buffering(server: Server, http: Any,
                                                      declared: bool) -> None:
    ingress = http.get("/v1/stats").json()["pid"]
    proxy = _proxy_pid()
    before = {pid: _peak_rss(pid) for pid in (ingress, proxy)}
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    if declared:
        headers["Content-Length"] = str(2 * GIB)
    response = http.post("/v1/audio/transcriptions", content=_huge_upload(2 * GIB),
                         headers=headers)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "request_too_large" and str(MAX_BODY_BYTES) in error["message"]
    for pid, peak in before.items():
        grown = _peak_rss(pid) - peak
        assert grown < 256 * MIB, f"pid {pid} grew {grown / MIB:.0f} MiB"
    assert http.get("/health").status_code == 200


def test_requests_with_different_options_share_the_server(openai_client: Any) -> None:
    """Chunks that cannot share a generate call (temperature, prompt, word timestamps)
    are grouped apart inside one batch; each request still gets its own options."""
    jfk = EXAMPLES / "jfk.flac"
    variants: list[dict[str, Any]] = [
        {}, {"temperature": 0.5}, {"prompt": "Ask not"}, {"language": "de"},
        {"timestamp_granularities": ["word"]}, {"language": "fr", "prompt": "Ask not"},
    ]

    def one(extra: dict[str, Any]) -> Any:
        with jfk.open("rb") as f:
            return openai_client.audio.transcriptions.create(
                model="whisper-1", file=f, response_format="verbose_json", **extra)

    with ThreadPoolExecutor(len(variants)) as pool:
        results = list(pool.map(one, variants))
    assert results[3].language == "de" and results[5].language == "fr"
    assert results[4].words is not None and results[0].words is None
    assert all(r.duration == pytest.approx(11.0, abs=0.1) for r in results)


def test_options_key_keeps_what_one_generate_call_needs_equal() -> None:
    from scribe.config import TranscribeOptions
    from serve_app.deployments import options_key

    base = TranscribeOptions(model="m")
    assert options_key(base) == options_key(base.model_copy(update={"language": "de"}))
    for change in ({"temperature": 0.5}, {"initial_prompt": "x"}, {"word_timestamps": True},
                   {"task": "translate"}, {"beam_size": 1}):
        assert options_key(base) != options_key(base.model_copy(update=change)), change
