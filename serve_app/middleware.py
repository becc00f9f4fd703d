"""Pure ASGI middlewares that answer before a request body is read.

Both decide from headers (and, for the size limit, from the byte count of the body as it
streams in), so an unauthenticated or oversized upload is refused without being parsed,
spooled or buffered.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_app.protocol import error_body


async def _reply(scope: Scope, receive: Receive, send: Send, status: int, message: str,
                 code: str, headers: dict[str, str] | None = None) -> None:
    body = error_body(status, message, code=code)
    await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)


class ApiKeyAuth:
    """``Authorization: Bearer <key>`` on every ``/v1/`` route (realtime WebSockets too)
    when keys are configured.

    Keys are compared as SHA-256 digests with :func:`hmac.compare_digest`, and against
    every key without stopping early, so timing tells neither a key's bytes nor its length.
    """

    def __init__(self, app: ASGIApp, keys: Sequence[str]) -> None:
        self.app = app
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] not in ("http", "websocket") or not self._digests
                or not _protected(scope)):
            await self.app(scope, receive, send)
            return
        if self._allowed(Headers(scope=scope).get("authorization", "")):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            # closed before it is accepted: the handshake is answered 403
            await send({"type": "websocket.close", "code": 1008,
                        "reason": "missing or incorrect API key"})
            return
        await _reply(scope, receive, send, 401, "missing or incorrect API key "
                     "(send Authorization: Bearer <key>)", "invalid_api_key",
                     {"WWW-Authenticate": "Bearer"})

    def _allowed(self, authorization: str) -> bool:
        scheme, _, key = authorization.partition(" ")
        digest = hashlib.sha256(key.strip().encode()).digest()
        match = False
        for known in self._digests:
            match |= hmac.compare_digest(known, digest)
        return match and scheme.lower() == "bearer"


def _protected(scope: Scope) -> bool:
    """The API proper; health, docs and the schema stay open for probes and humans."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path.startswith("/v1/")


class BodyLimit:
    """413 for bodies over ``max_bytes``: at once from Content-Length, else as the bytes
    stream in. Past the limit the app sees a disconnect and whatever it then sends is
    dropped, so the 413 is the one answer and nothing waits for the rest of the body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        guard = _Guard(self, scope, receive, send)
        await self.app(scope, guard.receive, guard.send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Connection: close, so the server stops reading the rest of a huge body.
        await _reply(scope, receive, send, 413,
                     f"request body is larger than the limit of {self.max_bytes} bytes",
                     "request_too_large", {"Connection": "close"})


class _Guard:
    """One request's byte count, and the switch that hands its answer to the 413."""

    def __init__(self, limit: BodyLimit, scope: Scope, receive: Receive, send: Send) -> None:
        self.limit, self.scope, self._receive, self._send = limit, scope, receive, send
        self.received = 0
        self.started = False
        self.refused = False

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit.max_bytes:
                self.refused = True
                if not self.started:
                    await self.limit._refuse(self.scope, self._receive, self._send)
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class StatusCounter:
    """Counts answers by status, including those the middlewares give (401, 413)."""

    def __init__(self, app: ASGIApp, counts: Counter[int]) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.counts[int(message["status"])] += 1
            await send(message)

        await self.app(scope, receive, counting_send)
