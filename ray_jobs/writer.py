"""The driver's background writes: each finished session's files, a few at once, with its
numbers added to the summary's totals once written; a record is dropped as soon as it is.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from types import TracebackType

from ray_jobs.metrics import JobMetrics
from ray_jobs.progress_display import ProgressDisplay
from scribe.errors import describe
from scribe.io import outputs
from scribe.io.summary import SummaryTotals
from scribe.schema import Record

logger = logging.getLogger(__name__)

WRITERS = 8
# Records waiting to be written at most: past it the driver waits for a write before it
# takes more rows, so a slow store holds back the job instead of filling the driver.
MAX_PENDING = 64


class SessionWriter:
    """Writes records in threads; ``with`` waits for every write on leaving. Each written
    record is counted in the metrics, the progress display (if any) and the totals."""

    def __init__(self, output: str, totals: SummaryTotals, metrics: JobMetrics,
                 progress: ProgressDisplay | None = None) -> None:
        self._output, self._totals, self._metrics = output, totals, metrics
        self._progress = progress
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=WRITERS)
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._wait(0)
        finally:
            self._pool.shutdown(wait=True)

    def submit(self, record: Record) -> None:
        """Write ``record`` in the background (after waiting, if too many are pending)."""
        self._wait(MAX_PENDING - 1)
        self._pending.add(self._pool.submit(self._write, record))

    def _wait(self, at_most: int) -> None:
        while len(self._pending) > at_most:
            finished, self._pending = concurrent.futures.wait(
                self._pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                future.result()

    def _write(self, record: Record) -> None:
        try:
            outputs.write_session(self._output, record)
        except Exception as exc:
            logger.error("could not write %s: %s", record["session_id"], describe(exc))
            record["status"] = "error"
            record["error"] = f"writing outputs failed: {describe(exc)}"
        self._metrics.session(record)
        if self._progress is not None:
            self._progress.session(record)
        with self._lock:
            self._totals.add(record)
