"""A real S3-compatible server on loopback for the tests: moto's server in a child process.

A child process rather than a thread in pytest's process: its state cannot be reset by a
``mock_aws`` elsewhere in the session, it keeps serving while the test process is busy,
and Ray workers reach it over HTTP like any bucket. The child exits when its stdin closes,
so it cannot outlive a killed pytest.

Run as a script, this file is the child: it binds 127.0.0.1 on a free port, prints the
port on stdout, and serves.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

START_TIMEOUT_S = 30.0

# moto 5.2.x answers CompleteMultipartUpload with <CompleteMultipartUploadResponse>; S3
# (and MinIO) answer <CompleteMultipartUploadResult>, and Arrow's S3 client takes any
# other root element for an error embedded in a 200 OK: every multipart upload from
# pyarrow fails. Fixed upstream (getmoto/moto#10055); until then the child renames it.
_WRONG_ROOT = b"CompleteMultipartUploadResponse"
_RIGHT_ROOT = b"CompleteMultipartUploadResult"


class S3Server:
    """A running moto server; ``endpoint_url`` is what clients pass as their endpoint."""

    def __init__(self, process: subprocess.Popen[bytes], endpoint_url: str) -> None:
        self._process = process
        self.endpoint_url = endpoint_url

    @classmethod
    def start(cls) -> S3Server:
        """Start the child and wait until it listens."""
        process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            port = _read_port(process)
        except BaseException:
            _terminate(process)
            raise
        return cls(process, f"http://127.0.0.1:{port}")

    def env(self) -> dict[str, str]:
        """The environment a client (pyarrow, boto3, a Ray worker) needs to use this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            # Never ask an EC2 metadata endpoint for credentials or a region.
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> Any:
        """A boto3 S3 client talking to this server."""
        import boto3

        env = self.env()
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique name unless given) and return its name."""
        bucket = name or f"test-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def stop(self) -> None:
        """Stop the child and wait for it to exit."""
        _terminate(self._process)


def _read_port(process: subprocess.Popen[bytes]) -> int:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
    line = process.stdout.readline() if ready else b""
    if not line.strip().isdigit():
        raise RuntimeError(
            f"moto server did not start within {START_TIMEOUT_S:.0f} s "
            f"(exit code {process.poll()}, said {line!r})"
        )
    return int(line)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


# --------------------------------------------------------------------------- the child

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _fix_multipart_root(app: WsgiApp) -> WsgiApp:
    """Wrap moto's WSGI app so CompleteMultipartUpload answers with S3's root element."""

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        is_complete = environ.get("REQUEST_METHOD") == "POST" and "uploadId=" in environ.get(
            "QUERY_STRING", ""
        )
        if not is_complete:
            return app(environ, start_response)
        captured: list[Any] = []
        chunks = app(environ, lambda status, headers, *exc: captured.extend([status, headers]))
        body = b"".join(chunks).replace(_WRONG_ROOT, _RIGHT_ROOT)
        headers = [(k, v) for k, v in captured[1] if k.lower() != "content-length"]
        start_response(captured[0], [*headers, ("Content-Length", str(len(body)))])
        return [body]

    return wrapped


def _exit_when_parent_goes() -> None:
    # The parent holds our stdin open; EOF means it is gone, however it died.
    sys.stdin.buffer.read()
    os._exit(0)


def _serve() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass  # one line per request would bury the test output

    app = _fix_multipart_root(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    _serve()
