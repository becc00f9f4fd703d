"""The job's passes: the sessions in passes of a bounded size, each watched for a stall
and run again over what it left after a node loss.

A pass is one Ray Data execution. Ray Data keeps each block's statistics in the driver
until the execution ends (a few KB a block, a session makes several), so a bucket of
100,000 sessions in one pass had grown the driver to 1.38 GB by its 20,000th; passes of
``sessions_per_pass`` keep it flat, at the price of one model load per actor per pass.
Between passes the driver also forgets the ids it kept of the pass and hands the heap
that the pass freed back to the system (:func:`release_freed_memory`).

Ray restarts a lost node's actors where there is room and rebuilds lost blocks from
their lineage, and Ray Data keeps a restarting actor in its pool, its tasks waiting for it.
An actor that no live node has room for (the room taken meanwhile by actors the pools
added) never restarts, and the blocks that wait for it never come: seen on two 2-CPU
nodes, a preprocessing actor restarting for minutes while model actors held the CPUs it
needed. So each pass is watched: once a node that the pass ran on is gone, a pass that
returns no block for ``stall_timeout_s`` is given up (Ray Data stops its actors, which
frees their room) and the sessions it did not finish run again, in a fresh pass on the
cluster as it is now. A pass that fails outright after a node left is treated the same.
Only passes that finish nothing, :data:`BARREN_PASSES` in a row, end the job, with an
error that says so: a rerun resumes from what was written.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from scribe.errors import ScribeError
from scribe.io.sessions import SessionRef

logger = logging.getLogger(__name__)

BARREN_PASSES = 3
# How often the watch asks Ray which nodes are alive (a GCS call) while a pass runs.
NODE_POLL_S = 2.0


class PassStalled(RuntimeError):
    """A pass returned no block for too long after a node it ran on was lost."""


class JobStalledError(ScribeError):
    """Passes after a node loss finished nothing: the job stops rather than wait forever."""

    code = "job_stalled"


class StallWatch:
    """Watches one pass: which nodes it has seen, which of them are gone, when its last
    block came. :meth:`check` runs in Ray Data's scheduling thread, :meth:`block` in the
    driver's; each only assigns a float (atomic), so it holds no lock, and it travels
    with the DataContext that Ray Data ships to its actors (a lock cannot)."""

    def __init__(self, timeout_s: float, nodes: Callable[[], set[str]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout_s, self._nodes, self._clock = timeout_s, nodes, clock
        self._seen = nodes()
        self._lost: set[str] = set()
        self._last = clock()  # the later of the last block and the last node lost
        self._next_poll = self._last + NODE_POLL_S

    @property
    def node_lost(self) -> bool:
        """Whether a node this pass has seen is gone."""
        return bool(self._lost)

    def block(self) -> None:
        """A block came back: the pass is moving."""
        self._last = self._clock()

    def check(self) -> None:
        """Raise :class:`PassStalled` once a node is gone and nothing came back for the
        timeout since (or since the last block)."""
        now = self._clock()
        if now >= self._next_poll:
            self._next_poll = now + NODE_POLL_S
            self._poll(now)
        quiet = now - self._last
        if self._lost and quiet > self._timeout_s:
            raise PassStalled(f"no block for {quiet:.0f} s since a node was lost "
                              f"({len(self._lost)} gone)")

    def _poll(self, now: float) -> None:
        alive = self._nodes()
        gone = self._seen - alive - self._lost
        self._seen |= alive
        if gone:
            logger.warning("%d node(s) left the cluster mid-pass: %s", len(gone),
                           ", ".join(sorted(n[:12] for n in gone)))
            self._lost |= gone
            self._last = max(self._last, now)


def watch_callback(watch: StallWatch) -> type:
    """A Ray Data execution callback class (``DataContext.custom_execution_callback_classes``
    takes classes) that checks ``watch`` at every step of the scheduling loop: raised
    there, :class:`PassStalled` ends the pass's execution and reaches its iterator."""
    from ray.data._internal.execution.execution_callback import ExecutionCallback

    class StallCallback(ExecutionCallback):
        def on_execution_step(self, executor: Any) -> None:
            watch.check()

    return StallCallback


def rows_in_passes(sessions: Sequence[SessionRef],
                   run_pass: Callable[[list[SessionRef], StallWatch], Iterator[Any]],
                   new_watch: Callable[[], StallWatch],
                   finished: Callable[[], set[str]],
                   restart: Callable[[], None], *, pass_size: int = 0,
                   between: Callable[[], None] = lambda: None) -> Iterator[Any]:
    """``run_pass(sessions, watch)``'s rows, over ``sessions`` in passes of at most
    ``pass_size`` (0: one pass), in order: Ray Data holds each block's statistics in the
    driver until its execution ends, so a bounded pass bounds the driver's memory. Within
    a pass, after a node loss stalls or fails it, ``restart()`` (the driver drops what it
    holds of unfinished sessions) and another pass over its sessions not in
    ``finished()``. ``between()`` runs after each pass but the last (the driver lets go
    of what it kept of the pass)."""
    size = pass_size or max(1, len(sessions))
    count = -(-len(sessions) // size)
    for start in range(0, len(sessions), size):
        part = list(sessions[start:start + size])
        if count > 1:
            logger.info("pass %d of %d: %d sessions", start // size + 1, count, len(part))
        yield from _until_done(part, run_pass, new_watch, finished, restart)
        del part
        if start + size < len(sessions):
            between()


def release_freed_memory() -> bool:
    """Hand the heap that Python and Ray freed back to the system (glibc's
    ``malloc_trim``); False where the C library has none (not glibc). glibc keeps freed
    memory for reuse, and what a pass of Ray Data frees it could not all reuse: measured
    with the scale benchmark's stand-ins (20,000 sessions in passes of 2,000), the driver
    grew 4 MB a pass without this and 1.5 MB with it, and peaked at 351 MB against 376.
    Dask's workers trim for the same reason."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the process runs on
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


def _until_done(todo: list[SessionRef],
                run_pass: Callable[[list[SessionRef], StallWatch], Iterator[Any]],
                new_watch: Callable[[], StallWatch],
                finished: Callable[[], set[str]],
                restart: Callable[[], None]) -> Iterator[Any]:
    """One pass's rows, run again over what it left after a node loss stalled it."""
    barren = 0
    while todo:
        watch = new_watch()
        try:
            yield from run_pass(todo, watch)
            return
        except Exception as exc:
            if not watch.node_lost:
                raise
            reason = exc
        done = finished()
        left = [s for s in todo if s.session_id not in done]
        barren = barren + 1 if len(left) == len(todo) else 0
        if barren >= BARREN_PASSES:
            raise JobStalledError(
                f"{barren} passes in a row finished no session after nodes were lost "
                f"({len(left)} sessions left; last: {reason}); what was written is kept, "
                "and a rerun transcribes only the rest") from reason
        logger.warning("pass given up after a node was lost (%s): %d of %d sessions again, "
                       "on the nodes there are now", reason, len(left), len(todo))
        restart()
        todo = left
