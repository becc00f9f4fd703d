"""The batch job's output kept to what a user reads: Ray Data's own progress bars and INFO
logs off (``--verbose`` keeps them), and one message of Ray's core, which reads like a
failure on every run, said once in our words instead.

That message, ``core_worker.cc: Actor ... has constructor arguments in the object store
and max_restarts > 0``, comes from Ray Data itself: it hands every actor of a pool its
set-up (the map function and the DataContext) through the object store, and Ray's core
warns that an actor restarted after that object was lost would fail to start
(ray-project/ray#53727, #57733). Our own constructor arguments are a few small options.
Ray's C++ core writes it straight to the process's stderr, past Python's logging, so the
job's stderr descriptor goes through a small filter process that drops it; Python's own
output keeps the terminal directly.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

RAY_DATA_CONSTRUCTOR_NOTE = (
    "has constructor arguments in the object store and max_restarts > 0")
OUR_WORDS = (
    "note: Ray Data passes each actor its set-up through Ray's object store; Ray warns "
    "that such an actor cannot restart if that object is lost (ray-project/ray#53727). "
    "Nothing failed; --verbose shows Ray's own messages.")
# The filter: forwards its stdin to its stdout as it comes, lines that carry the note
# replaced by our words once. It outlives a crashed job long enough to pass on its last
# words (it reads until every writer has closed).
_FILTER = f"""
import sys
note, words, said = {RAY_DATA_CONSTRUCTOR_NOTE!r}.encode(), {OUR_WORDS!r}.encode(), False
out = sys.stdout.buffer
clear = b"\\r\\x1b[K" if out.isatty() else b""  # over the progress line, redrawn next
for line in sys.stdin.buffer:
    if note in line:
        if not said:
            out.write(clear + words + b"\\n")
            said = True
    else:
        out.write(line)
    out.flush()
"""


def filter_native_stderr() -> None:
    """Route this process's stderr descriptor (Ray's C++ core, child processes) through
    the filter, and point Python's ``sys.stderr`` at the terminal directly, so logging and
    the progress line are not held back a line at a time. Nothing changes where Python's
    stderr was redirected already (a test's capture, a caller's own stream)."""
    if sys.stderr is not sys.__stderr__ or sys.stderr is None:
        return
    direct = os.dup(2)
    child = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER],
                             stdin=subprocess.PIPE, stdout=direct, close_fds=True)
    assert child.stdin is not None
    os.dup2(child.stdin.fileno(), 2)
    child.stdin.close()  # fd 2 is the pipe's only writer here now: EOF when we exit
    previous = sys.stderr
    sys.stderr = os.fdopen(direct, "w", buffering=1, encoding=previous.encoding,
                           errors="backslashreplace")
    for handler in logging.getLogger().handlers:  # logging.basicConfig's, if it ran
        if isinstance(handler, logging.StreamHandler) and handler.stream is previous:
            handler.setStream(sys.stderr)


class _DropNotice(logging.Filter):
    """Drops Ray Data's notice that its progress bars are off: we turned them off."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Progress bars disabled")


def quiet_ray_data(verbose: bool) -> None:
    """Ray Data's progress bars and INFO logs to the console off unless ``verbose`` (its
    log file in the session's ``logs/ray-data`` keeps everything). Call before the
    dataset is created: a dataset keeps the context it was created with."""
    if verbose:
        return
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, logging.StreamHandler) or isinstance(
                handler, logging.FileHandler):
            continue  # its log file keeps everything
        handler.setLevel(max(handler.level, logging.WARNING))
        handler.addFilter(_DropNotice())
