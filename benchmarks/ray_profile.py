"""Where a job's wall time goes on Ray: per-actor busy and idle time from Ray's timeline,
and Ray Data's own stats (which the job logs at DEBUG once its dataset is consumed)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Captured:
    """What the job logged about its dataset, and the wall window it ran in."""

    text: str = ""
    started: float = 0.0  # time.time(), as Ray's timeline counts
    ended: float = 0.0


class _Collect(logging.Handler):
    def __init__(self, into: Captured) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Ray Data stats"):
            self.into.text = message


@contextmanager
def capture() -> Iterator[Captured]:
    """Collect the job's Ray Data stats while the block runs."""
    logger = logging.getLogger("ray_jobs.graph")
    captured = Captured(started=time.time())
    handler = _Collect(captured)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield captured
    finally:
        captured.ended = time.time()
        logger.removeHandler(handler)
        logger.setLevel(level)


@dataclass
class Worker:
    """One Ray worker's tasks inside a window: when it worked, and the gaps between."""

    name: str
    busy_s: float = 0.0
    tasks: int = 0
    first: float = float("inf")
    last: float = 0.0
    spans: list[tuple[float, float]] = field(default_factory=list)

    def add(self, begin: float, end: float) -> None:
        self.busy_s += end - begin
        self.tasks += 1
        self.first, self.last = min(self.first, begin), max(self.last, end)
        self.spans.append((begin, end))

    def lanes(self) -> list[Worker]:
        """The worker's tasks in lanes, each the next task that starts after its last one
        ends: one lane per call an actor runs at once (a model actor's replicas)."""
        lanes: list[Worker] = []
        for begin, end in sorted(self.spans):
            lane = next((lane for lane in lanes if lane.last <= begin), None)
            if lane is None:
                lane = Worker(self.name)
                lanes.append(lane)
            lane.add(begin, end)
        return lanes

    def largest_gap(self) -> float:
        ordered = sorted(self.spans)
        return max((b[0] - a[1] for a, b in zip(ordered, ordered[1:], strict=False)),
                   default=0.0)


def workers(events: list[dict[str, Any]], started: float, ended: float) -> list[Worker]:
    """Ray's timeline events (chrome trace, microseconds) for whole tasks and actor calls
    (``cat`` ``task::Class.method``) that ran in [started, ended], grouped by worker, and
    a worker's calls that ran at once in lanes (:meth:`Worker.lanes`); a worker is named
    after the job's stage it ran, where it ran one."""
    by_worker: dict[tuple[Any, Any], Worker] = {}
    for event in events:
        category = str(event.get("cat", ""))
        if event.get("ph") != "X" or not category.startswith("task::"):
            continue
        begin = event["ts"] / 1e6
        end = begin + event.get("dur", 0.0) / 1e6
        if end < started or begin > ended:
            continue
        worker = by_worker.setdefault((event.get("pid"), event.get("tid")),
                                      Worker(category.removeprefix("task::")[:30]))
        worker.name = _stage(category) or worker.name
        worker.add(begin, end)
    return sorted((lane for worker in by_worker.values() for lane in worker.lanes()),
                  key=lambda w: w.first)


def _stage(category: str) -> str | None:
    for stage in ("Preprocessor", "Transcriber", "FromItems"):
        if stage in category:
            return stage
    return None


def render(rows: list[Worker], started: float, ended: float) -> list[str]:
    """One line per worker: busy, idle inside its own span and inside the job's window."""
    window = ended - started
    lines = [f"  {'worker (busy in tasks)':<30} {'tasks':>5} {'busy s':>7} {'first s':>8} "
             f"{'last s':>7} {'idle in window':>15} {'largest gap s':>14}"]
    by_name: dict[str, int] = defaultdict(int)
    for w in rows:
        by_name[w.name] += 1
        label = f"{w.name}#{by_name[w.name]}"
        lines.append(f"  {label[:30]:<30} {w.tasks:>5} {w.busy_s:>7.1f} {w.first - started:>8.1f} "
                     f"{w.last - started:>7.1f} {1 - w.busy_s / window:>14.0%} "
                     f"{w.largest_gap():>14.1f}")
    return lines


def _tree_cpu_s(root: int) -> dict[int, float]:
    """CPU seconds (user and system) each live process at or below ``root`` has used, from
    /proc. An ended Ray worker's time is not added to its parent's, so whoever sums must
    have seen it alive."""
    proc = Path("/proc")
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = defaultdict(list)
    seconds: dict[int, float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while being listed
        # after the name: state, parent, ..., then utime and stime (fields 14 and 15)
        fields = stat[stat.rindex(")") + 2:].split()
        children[int(fields[1])].append(int(entry.name))
        seconds[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    found: dict[int, float] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        found[pid] = seconds.get(pid, 0.0)
        todo += children.get(pid, [])
    return found


# What a process under the benchmark is, by its command line (Ray names a worker after the
# actor it holds: ray::MapWorker(MapBatches(Transcriber)), ray::_StatsActor, ray::IDLE).
MODEL, PREPROCESSING, DRIVER = "model actors", "preprocessing actors", "driver"
RAY_WORKERS = "Ray's other workers"  # Ray Data's own actors, workers started idle
RAY_NODE = "Ray's node processes"  # GCS, raylet, agents, dashboard, monitors


def process_kind(command: str, *, driver: bool = False) -> str:
    """Which of the kinds above a process is, from its command line."""
    if driver:
        return DRIVER
    if "Transcriber" in command:
        return MODEL
    if "Preprocessor" in command:
        return PREPROCESSING
    if command.startswith("ray::") and not command.endswith("Agent"):
        return RAY_WORKERS
    return RAY_NODE


class CpuMeter:
    """CPU seconds this process and every process below it use while the block runs (Ray's
    workers are children of its raylet, itself a child of the process that started Ray),
    sampled every ``interval_s`` so that a worker that ends is counted up to its last
    sample; ``by_kind`` splits them by :func:`process_kind`. ``seconds`` is None where there
    is no /proc. A scan takes about a millisecond."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.seconds: float | None = None
        self.by_kind: dict[str, float] = {}
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._commands: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def __enter__(self) -> CpuMeter:
        if Path("/proc/self/stat").exists():
            self._first = _tree_cpu_s(os.getpid())
            self._last = dict(self._first)
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join()
        self._sample()
        used = {pid: t - self._first.get(pid, 0.0) for pid, t in self._last.items()}
        self.seconds = sum(used.values())
        for pid, seconds in used.items():
            kind = process_kind(self._commands.get(pid, ""), driver=pid == os.getpid())
            self.by_kind[kind] = self.by_kind.get(kind, 0.0) + seconds

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        found = _tree_cpu_s(os.getpid())
        self._last.update(found)
        for pid in found:
            # the last name seen: a worker started idle is named after the actor it takes
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if command.strip():
                self._commands[pid] = command.decode(errors="replace").strip()
