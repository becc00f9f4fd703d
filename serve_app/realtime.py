"""Realtime transcription sessions: ``/v1/realtime?intent=transcription`` over WebSocket.

The transcription half of OpenAI's Realtime API, as the ``openai`` package's realtime
types shape it: ``session.update`` with a ``transcription`` session, PCM16 audio at
24 kHz appended with ``input_audio_buffer.append``, turns cut by server VAD (Silero, with
the session's threshold, prefix padding and silence duration) or committed by the client,
and each turn's text as ``conversation.item.input_audio_transcription.delta`` and
``.completed``. A committed turn runs as an upload does (the preprocessor, then the model
in batches shared with every other request). The conversation and response half (a
``realtime`` session, ``response.*``, ``conversation.item.create``) is answered with an
``error`` event naming what is not supported, and the session stays open.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
import uuid
import wave
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from starlette.datastructures import UploadFile
from starlette.websockets import WebSocket, WebSocketDisconnect

from serve_app.events import token_usage
from serve_app.protocol import ApiError, TranscriptionRequest
from serve_app.streaming import InOrder

if TYPE_CHECKING:
    from serve_app.frontend import Frontend

logger = logging.getLogger(__name__)

RATE = 24_000  # the Realtime API's PCM16 rate
VAD_RATE = 16_000
MAX_TURN_S = 30.0  # one Whisper window: a longer turn is committed as it reaches this
MIN_COMMIT_MS = 100  # OpenAI refuses to commit less
CHECK_EVERY_MS = 100
VAD_GAP_MS = 100
VAD_CONTEXT_MS = 500  # how much new audio triggers a VAD pass
CLOSE_POLICY, CLOSE_TRY_LATER = 1008, 1013

Pcm = npt.NDArray[np.int16]


def _event_id() -> str:
    return f"event_{uuid.uuid4().hex[:20]}"


@dataclass
class TurnDetection:
    """Server VAD's settings (OpenAI's names and defaults)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500


@dataclass
class Settings:
    """A session's transcription settings; ``turns`` None means the client commits."""

    model: str = "whisper-1"
    language: str | None = None
    prompt: str | None = None
    turns: TurnDetection | None = field(default_factory=TurnDetection)

    def session(self) -> dict[str, Any]:
        """The session object of ``session.created`` / ``session.updated``."""
        detection = None if self.turns is None else {"type": "server_vad",
                                                     **self.turns.__dict__}
        return {"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": RATE},
            "transcription": {"model": self.model, "language": self.language,
                              "prompt": self.prompt or ""},
            "turn_detection": detection}}}


class Unsupported(Exception):
    """A client event or setting this server does not implement: an ``error`` event."""

    def __init__(self, message: str, code: str = "unsupported", param: str | None = None
                 ) -> None:
        super().__init__(message)
        self.code, self.param = code, param


def apply_update(settings: Settings, session: Any) -> Settings:
    """``settings`` changed by a ``session.update``'s ``session``; :class:`Unsupported`
    names the first part this server cannot do."""
    if not isinstance(session, dict) or session.get("type", "transcription") != "transcription":
        raise Unsupported("only transcription sessions (session.type=transcription) are "
                          "supported; connect with ?intent=transcription", param="session.type")
    audio = (session.get("audio") or {}).get("input") or {}
    fmt = audio.get("format") or {}
    if fmt and (fmt.get("type", "audio/pcm") != "audio/pcm" or fmt.get("rate", RATE) != RATE):
        raise Unsupported("input audio must be audio/pcm (16-bit mono) at 24000 Hz",
                          param="session.audio.input.format")
    if audio.get("noise_reduction"):
        raise Unsupported("noise_reduction is not supported",
                          param="session.audio.input.noise_reduction")
    changed = Settings(settings.model, settings.language, settings.prompt, settings.turns)
    transcription = audio.get("transcription") or {}
    changed.model = transcription.get("model") or changed.model
    changed.language = transcription.get("language", changed.language) or None
    changed.prompt = transcription.get("prompt", changed.prompt) or None
    if "turn_detection" in audio:
        changed.turns = _turns(audio["turn_detection"])
    return changed


def _turns(detection: Any) -> TurnDetection | None:
    if detection is None:
        return None
    if detection.get("type") != "server_vad":
        raise Unsupported("turn_detection: server_vad or null (client commits) only",
                          param="session.audio.input.turn_detection.type")
    defaults = TurnDetection()
    return TurnDetection(
        threshold=float(detection.get("threshold") or defaults.threshold),
        prefix_padding_ms=int(detection.get("prefix_padding_ms") or defaults.prefix_padding_ms),
        silence_duration_ms=int(detection.get("silence_duration_ms")
                                or defaults.silence_duration_ms))


class Buffer:
    """The input audio not yet committed, and where it starts in the session."""

    def __init__(self) -> None:
        self.parts: list[Pcm] = []
        self.samples = 0
        self.start = 0  # session sample of parts[0][0]
        self.checked = 0  # buffer samples the last VAD pass saw
        self.speech_from: int | None = None  # buffer sample where speech was detected
        self.speech_to = 0  # buffer sample where the last speech found ends

    def append(self, pcm: Pcm) -> None:
        self.parts.append(pcm)
        self.samples += len(pcm)

    def audio(self) -> Pcm:
        self.parts = [np.concatenate(self.parts)] if self.parts else []
        return self.parts[0] if self.parts else np.zeros(0, np.int16)

    def tail(self, since: int) -> Pcm:
        """The samples from buffer sample ``since`` on, copying only those parts."""
        kept: list[Pcm] = []
        end = self.samples
        for part in reversed(self.parts):
            if end <= since:
                break
            kept.append(part[max(0, since - (end - len(part))):])
            end -= len(part)
        return np.concatenate(kept[::-1]) if kept else np.zeros(0, np.int16)

    def take(self, upto: int) -> Pcm:
        """The first ``upto`` samples, removed."""
        audio = self.audio()
        taken, rest = audio[:upto], audio[upto:]
        self.parts, self.samples = [rest], len(rest)
        self.start += len(taken)
        self.checked, self.speech_from, self.speech_to = 0, None, 0
        return taken

    def ms(self, sample: int) -> int:
        """Session milliseconds of buffer sample ``sample``."""
        return (self.start + sample) * 1000 // RATE


def speech_ranges(pcm: Pcm, turns: TurnDetection) -> list[tuple[int, int]]:
    """Silero's speech ranges in ``pcm`` (24 kHz samples)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    audio = pcm.astype(np.float32) / 32768.0
    at_16k = np.interp(np.arange(0, len(audio), RATE / VAD_RATE), np.arange(len(audio)),
                       audio).astype(np.float32)  # Silero's model runs at 16 kHz
    # Short gaps end a range here: a range still open at the end of the audio runs to its
    # end, so the turn's own silence is counted by the caller, across passes.
    options = VadOptions(threshold=turns.threshold, min_silence_duration_ms=VAD_GAP_MS,
                         speech_pad_ms=0)
    scale = RATE / VAD_RATE
    return [(int(r["start"] * scale), int(r["end"] * scale))
            for r in get_speech_timestamps(at_16k, options)]


def wav_bytes(pcm: Pcm) -> bytes:
    """PCM16 at 24 kHz as a WAV file, the preprocessor's input."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype("<i2").tobytes())
    return out.getvalue()


class SessionLimit:
    """Realtime sessions open on this ingress replica, at most ``most``."""

    def __init__(self, most: int) -> None:
        self.most, self.open = most, 0


async def serve_realtime(front: Frontend, ws: WebSocket, limit: SessionLimit) -> None:
    """One WebSocket connection: refused with an error event (then closed) when it is not
    a transcription session or the replica has ``limit.most`` open, else the session."""
    await ws.accept()
    if ws.query_params.get("intent") != "transcription":
        await _refuse(ws, "only transcription sessions are supported: connect to "
                      "/v1/realtime?intent=transcription", "unsupported", CLOSE_POLICY)
        return
    if limit.open >= limit.most:
        await _refuse(ws, f"this replica has its {limit.most} realtime sessions open; "
                      "retry later", "session_limit", CLOSE_TRY_LATER)
        return
    limit.open += 1
    try:
        await RealtimeSession(front, ws).run()
    finally:
        limit.open -= 1


async def _refuse(ws: WebSocket, message: str, code: str, close_code: int) -> None:
    await ws.send_text(json.dumps(error_event(message, code)))
    await ws.close(close_code, message[:120])


def error_event(message: str, code: str, param: str | None = None,
                event_id: str | None = None) -> dict[str, Any]:
    """The Realtime API's ``error`` event (``RealtimeErrorEvent``)."""
    return {"type": "error", "event_id": _event_id(), "error": {
        "type": "invalid_request_error", "code": code, "message": message, "param": param,
        "event_id": event_id}}


class RealtimeSession:
    """One session's settings, input buffer and turns in flight."""

    def __init__(self, front: Frontend, ws: WebSocket) -> None:
        self.front, self.ws = front, ws
        self.settings = Settings()
        self.buffer = Buffer()
        self.previous_item: str | None = None
        self._pending_item: str | None = None
        self.turns: set[asyncio.Task[None]] = set()
        self._send_lock = asyncio.Lock()

    async def send(self, event: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_text(json.dumps({"event_id": _event_id(), **event}))

    async def run(self) -> None:
        """Events until the client closes, or sends nothing past the idle timeout while
        no turn of its is being transcribed."""
        await self.send({"type": "session.created", "session": self.settings.session()})
        idle_s = self.front.config.server.realtime_idle_timeout_s
        try:
            while True:
                try:
                    message = await asyncio.wait_for(self.ws.receive(), idle_s)
                except TimeoutError:
                    if self.turns:  # the client waits for a turn's text: not idle
                        continue
                    await _refuse(self.ws, f"no client event for {idle_s:g} s: session "
                                  "closed", "idle_timeout", CLOSE_POLICY)
                    return
                if message["type"] == "websocket.disconnect":
                    return
                await self.handle(message.get("text") or "")
        except WebSocketDisconnect:
            pass
        finally:
            for turn in self.turns:
                turn.cancel()

    async def handle(self, text: str) -> None:
        """One client event; a bad or unsupported one is answered with an error event."""
        try:
            event = json.loads(text)
            if not isinstance(event, dict):
                raise ValueError("not an object")
        except ValueError:
            await self.send(error_event("a client event must be a JSON object in a text "
                                        "frame", "invalid_json"))
            return
        try:
            await self._dispatch(event)
        except Unsupported as exc:
            await self.send(error_event(str(exc), exc.code, exc.param, event.get("event_id")))

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "session.update":
            self.settings = apply_update(self.settings, event.get("session"))
            await self.send({"type": "session.updated", "session": self.settings.session()})
        elif kind == "input_audio_buffer.append":
            self.buffer.append(_pcm(event.get("audio")))
            if self.settings.turns is not None:
                await self._detect(self.settings.turns)
        elif kind == "input_audio_buffer.commit":
            if self.buffer.samples * 1000 < MIN_COMMIT_MS * RATE:
                raise Unsupported(f"buffer too small: commit at least {MIN_COMMIT_MS} ms of "
                                  "audio", "input_audio_buffer_commit_empty")
            await self._commit(self.buffer.samples)
        elif kind == "input_audio_buffer.clear":
            self.buffer.take(self.buffer.samples)
            await self.send({"type": "input_audio_buffer.cleared"})
        else:
            raise Unsupported(f"{kind!r} is not supported: this server runs transcription "
                              "sessions only (session.update, input_audio_buffer.append, "
                              ".commit, .clear)", "unsupported_event", "type")

    async def _detect(self, turns: TurnDetection) -> None:
        """Server VAD: speech started, and a turn's end once the silence after it lasts
        ``silence_duration_ms``. Each pass reads only the audio since the last one, and a
        little before it for Silero's state; where speech last ended is kept across passes."""
        buffer = self.buffer
        if (buffer.samples - buffer.checked) * 1000 < CHECK_EVERY_MS * RATE:
            return
        silence = turns.silence_duration_ms * RATE // 1000
        pad = turns.prefix_padding_ms * RATE // 1000
        since = max(0, buffer.checked - VAD_CONTEXT_MS * RATE // 1000)
        buffer.checked = buffer.samples
        found = await asyncio.to_thread(speech_ranges, buffer.tail(since), turns)
        if not found and buffer.speech_from is None:
            if buffer.samples > pad:  # keep only the padding before any speech
                buffer.take(buffer.samples - pad)
            return
        if found and buffer.speech_from is None:
            buffer.speech_from = max(0, since + found[0][0] - pad)
            await self.send({"type": "input_audio_buffer.speech_started",
                             "item_id": self._item(),
                             "audio_start_ms": buffer.ms(buffer.speech_from)})
        if found:
            buffer.speech_to = max(buffer.speech_to, since + found[-1][1])
        if buffer.samples - buffer.speech_to >= silence or buffer.samples >= MAX_TURN_S * RATE:
            upto = min(buffer.samples, buffer.speech_to + silence)
            await self.send({"type": "input_audio_buffer.speech_stopped",
                             "item_id": self._item(), "audio_end_ms": buffer.ms(upto)})
            await self._commit(upto)

    def _item(self) -> str:
        """The id of the item the buffer will become."""
        if self._pending_item is None:
            self._pending_item = f"item_{uuid.uuid4().hex[:20]}"
        return self._pending_item

    async def _commit(self, upto: int) -> None:
        """The first ``upto`` samples become a turn: committed, and transcribed apart."""
        item, self._pending_item = self._item(), None
        start = self.buffer.speech_from or 0
        audio = self.buffer.take(upto)[start:]
        await self.send({"type": "input_audio_buffer.committed", "item_id": item,
                         "previous_item_id": self.previous_item})
        self.previous_item = item
        turn = asyncio.create_task(self._transcribe(item, audio, self.settings))
        self.turns.add(turn)
        turn.add_done_callback(self.turns.discard)

    async def _transcribe(self, item: str, audio: Pcm, settings: Settings) -> None:
        """One turn through the preprocessor and the batched model: its deltas, then
        completed (or failed)."""
        request = TranscriptionRequest(model=settings.model, language=settings.language,
                                       prompt=settings.prompt)
        upload = UploadFile(io.BytesIO(wav_bytes(audio)), filename=f"{item}.wav")
        order = InOrder()
        deltas: asyncio.Queue[str] = asyncio.Queue()

        def on_output(number: int, output: Any) -> None:
            for delta in order.add(number, output):
                deltas.put_nowait(delta)

        work: asyncio.Task[list[Any]] | None = None
        try:
            with self.front.metrics.answer("transcribe") as answer:
                started = await self.front.start(upload, request, item, answer)
                work = asyncio.create_task(self.front.model(
                    started, item, on_output=on_output))
                while not work.done() or not deltas.empty():
                    await self._send_deltas(item, deltas, work)
                chunks = work.result()
                record = self.front.record(started, chunks, item)
                answer.segments = record["segments"]  # counted by language
        except ApiError as exc:
            await self._failed(item, exc.message, exc.code or "transcription_failed")
            return
        except Exception as exc:  # the session goes on; the log has the reason
            logger.error("realtime turn %s failed", item, exc_info=exc)
            await self._failed(item, f"internal error (item {item})", "internal_error")
            return
        finally:
            if work is not None and not work.done():
                work.cancel()  # the session closed under this turn
        decoded = sum(len(s.get("tokens", ())) for c in chunks for s in c.segments)
        usage = token_usage(len(chunks), decoded).model_dump()
        await self.send({"type": "conversation.item.input_audio_transcription.completed",
                         "item_id": item, "content_index": 0, "transcript": record["text"],
                         "usage": usage})

    async def _send_deltas(self, item: str, deltas: asyncio.Queue[str],
                           work: asyncio.Task[Any]) -> None:
        getter = asyncio.ensure_future(deltas.get())
        await asyncio.wait({getter, work}, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            getter.cancel()
            return
        await self.send({"type": "conversation.item.input_audio_transcription.delta",
                         "item_id": item, "content_index": 0, "delta": getter.result()})

    async def _failed(self, item: str, message: str, code: str) -> None:
        await self.send({"type": "conversation.item.input_audio_transcription.failed",
                         "item_id": item, "content_index": 0, "error": {
                             "type": "server_error", "code": code, "message": message}})


def _pcm(audio: Any) -> Pcm:
    """An append's base64 PCM16 (little-endian) as samples."""
    try:
        raw = base64.b64decode(audio or "", validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise Unsupported("audio must be base64-encoded PCM16", "invalid_audio",
                          "audio") from exc
    if len(raw) % 2:
        raise Unsupported("PCM16 audio has an even number of bytes", "invalid_audio", "audio")
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)
