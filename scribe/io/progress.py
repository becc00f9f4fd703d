"""Where a long job stands, read from its outputs alone: sessions done, failed (by reason)
and, given the input, left, with the audio hours behind each. No cluster needed: the
per-session JSON records (:mod:`scribe.io.outputs`) are the job's state.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from scribe.errors import error_reason
from scribe.io import outputs
from scribe.io.sessions import SessionRef, list_sessions


@dataclass
class Progress:
    """Counts and audio seconds per state; ``left`` is None when no input was given.

    Audio left is unknown until decoded: ``left_audio_s_estimate`` scales the files'
    bytes by the audio per byte of the sessions already done (None without sizes)."""

    done: int = 0
    done_audio_s: float = 0.0
    failed: dict[str, int] = field(default_factory=dict)
    failed_audio_s: dict[str, float] = field(default_factory=dict)
    left: int | None = None
    left_bytes: int | None = None
    left_audio_s_estimate: float | None = None
    unknown: int = 0  # records under the output that the input does not list

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (``scribe status --json``)."""
        return asdict(self)


def progress(output: str, input: str | None = None) -> Progress:
    """The state of the job writing to ``output`` (and reading ``input``, when given)."""
    inputs = list_sessions(input) if input else None
    ids = [s.session_id for s in inputs] if inputs is not None else \
        outputs.recorded_sessions(output)
    records = outputs.read_records(output, ids)
    state = _tally(records.values())
    if inputs is not None:
        _add_left(state, inputs, records)
        state.unknown = len(set(outputs.recorded_sessions(output)) - set(ids))
    return state


def _tally(records: Any) -> Progress:
    failed: Counter[str] = Counter()
    failed_audio: defaultdict[str, float] = defaultdict(float)
    state = Progress()
    for record in records:
        audio = float(record.get("duration_s") or 0.0)
        if record.get("status") == "ok":
            state.done += 1
            state.done_audio_s += audio
        else:
            reason = error_reason(record.get("error"))
            failed[reason] += 1
            failed_audio[reason] += audio
    state.failed, state.failed_audio_s = dict(failed), dict(failed_audio)
    return state


def _add_left(state: Progress, inputs: list[SessionRef], records: dict[str, Any]) -> None:
    left = [s for s in inputs if s.session_id not in records]
    state.left = len(left)
    sizes = [s.size for s in left]
    state.left_bytes = sum(s for s in sizes if s) if all(s is not None for s in sizes) else None
    done_bytes = sum(s.size or 0 for s in inputs
                     if records.get(s.session_id, {}).get("status") == "ok")
    if state.left_bytes is not None and done_bytes and state.done_audio_s:
        state.left_audio_s_estimate = state.left_bytes * state.done_audio_s / done_bytes


def render(state: Progress) -> str:
    """A few lines for the terminal."""
    failed = sum(state.failed.values())
    lines = [f"done:   {state.done} sessions, {_hours(state.done_audio_s)} of audio",
             f"failed: {failed} sessions, {_hours(sum(state.failed_audio_s.values()))} "
             "(retried on the next run)"]
    lines += [f"  {reason}: {n} ({_hours(state.failed_audio_s[reason])})"
              for reason, n in sorted(state.failed.items(), key=lambda kv: -kv[1])]
    if state.left is not None:
        estimate = ("" if state.left_audio_s_estimate is None else
                    f", about {_hours(state.left_audio_s_estimate)} of audio "
                    "(from file sizes)")
        lines.append(f"left:   {state.left} sessions{estimate}")
    if state.unknown:
        lines.append(f"({state.unknown} records under the output are not in the input)")
    return "\n".join(lines)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"
