"""The batch job's one progress display: sessions done and failed of the total, hours of
audio, speed and time left. On a terminal it is one line redrawn in place; elsewhere (a
log file, ``ray job submit``'s captured output) a log line every ``interval_s``, and one
at the end."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

from scribe.io.sessions import SessionRef

logger = logging.getLogger(__name__)
_BAR = 20  # characters of the bar on a terminal


def format_duration(seconds: float) -> str:
    """``1:02:03``, ``2:03``: hours only when there are some."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressDisplay:
    """Counts finished sessions (:meth:`session`) and shows where the job stands.

    The time left is the wall time so far scaled by the audio still to do, measured in
    each session's estimated length (:attr:`SessionRef.estimated_duration_s`): sessions
    differ in length by hours, so a count of sessions would mislead. It keeps the
    estimates only of the sessions it was told to expect (:meth:`expect`, a pass's) and
    not yet finished, so that its memory does not grow with the bucket.
    """

    def __init__(self, sessions: Sequence[SessionRef], stream: TextIO, *, tty: bool,
                 interval_s: float = 30.0, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.total = len(sessions)
        self._estimates: dict[str, float] = {}
        self._estimated_total_s = sum(s.estimated_duration_s for s in sessions)
        self._stream, self._tty, self._interval_s, self._clock = stream, tty, interval_s, clock
        self._start = clock()
        self._last_shown = self._start
        self.done = self.failed = 0
        self.audio_s = 0.0  # measured, of the sessions finished
        self._estimated_done_s = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> ProgressDisplay:
        """Show the line now, and keep it (and the time left) fresh while nothing finishes."""
        if self._tty:  # a log line clears the progress line first; the next tick redraws it
            for handler in logging.getLogger().handlers:
                handler.addFilter(self._clear_line)
        self._show()
        self._ticker = threading.Thread(target=self._tick, name="job-progress", daemon=True)
        self._ticker.start()
        return self

    def expect(self, sessions: Iterable[SessionRef]) -> None:
        """These sessions run next: keep their estimates until they finish."""
        with self._lock:
            self._estimates.update((s.session_id, s.estimated_duration_s) for s in sessions)

    def session(self, record: Mapping[str, Any]) -> None:
        """One session finished: ``record`` is its ok or error record."""
        with self._lock:
            ok = record.get("status") == "ok"
            self.done += ok
            self.failed += not ok
            self.audio_s += float(record.get("duration_s") or 0.0)
            self._estimated_done_s += self._estimates.pop(record.get("session_id", ""), 0.0)
        if self._tty or self._clock() - self._last_shown >= self._interval_s:
            self._show()

    def close(self) -> None:
        """The final line; on a terminal the cursor moves past it."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._clear_line)
        self._show()
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()

    def __enter__(self) -> ProgressDisplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _clear_line(self, record: logging.LogRecord) -> bool:
        self._stream.write("\r\x1b[K")
        return True

    def _tick(self) -> None:
        period = 1.0 if self._tty else self._interval_s
        while not self._stop.wait(period):
            if self._tty or self._clock() - self._last_shown >= self._interval_s:
                self._show()

    def _show(self) -> None:
        with self._lock:
            self._last_shown = self._clock()
            text = self.line()
        if self._tty:
            self._stream.write("\r" + text + "\x1b[K")  # redraw in place, clear the rest
            self._stream.flush()
        else:
            logger.info("progress: %s", text)

    def fraction(self) -> float:
        """The share of the work done, by estimated audio (by sessions where no size is
        known)."""
        if self._estimated_total_s > 0:
            return min(1.0, self._estimated_done_s / self._estimated_total_s)
        return (self.done + self.failed) / self.total if self.total else 1.0

    def eta_s(self) -> float | None:
        """Seconds left at the speed so far; None before the first session finishes."""
        share = self.fraction()
        if share <= 0.0:
            return None
        return (self._clock() - self._start) * (1.0 - share) / share

    def line(self) -> str:
        """``3/10 sessions (1 failed), 0.52 h of audio, 41.3 audio-s/s, 2:05 left``; on a
        terminal a bar leads it."""
        elapsed = max(self._clock() - self._start, 1e-9)
        finished = self.done + self.failed
        failed = f" ({self.failed} failed)" if self.failed else ""
        eta = self.eta_s()
        left = ("done" if finished == self.total else "time left unknown" if eta is None
                else f"{format_duration(eta)} left")
        text = (f"{finished}/{self.total} sessions{failed}, {self.audio_s / 3600:.2f} h of "
                f"audio, {self.audio_s / elapsed:.1f} audio-s/s, {left} "
                f"({format_duration(elapsed)} so far)")
        if not self._tty:
            return text
        filled = int(round(self.fraction() * _BAR))
        return f"[{'#' * filled}{'.' * (_BAR - filled)}] {text}"
