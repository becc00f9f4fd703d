"""The calibration harness: k engines side by side x batch sizes -> chunks per second ->
one table, from which :mod:`scribe.capacity.calibrate` picks the plan.

How the k engines run is a :class:`Runner`'s business: threads in this process on real
chunks (:class:`scribe.capacity.cpu_timing.ThreadRunner`, the CPU plan) or processes at a
barrier on a synthetic chunk with NVML sampling memory
(:class:`scribe.capacity.throughput.ProcessRunner`, the GPU plan and the GPU check). Both
hand back :class:`Measurement` rows, so the loop, the table and the choice are one code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)

CHUNK_S = 30.0  # audio per chunk of a synthetic run: every one is a full chunk


@dataclass(frozen=True)
class Measurement:
    """One (actors, batch size) run: throughput of all actors together, and memory.
    Plan files keep these rows, so new fields come last, with defaults."""

    actors: int
    batch_size: int
    chunks: int
    wall_s: float
    tokens_per_chunk: float
    actor_peak: int  # bytes: GPU memory of the largest actor (RSS on CPU; 0: not measured)
    device_peak: int  # bytes in use on the GPU at peak, every process counted (0 on CPU)
    memory_source: str
    error: str = ""
    threads: int = 0  # CPU threads per engine (0: CTranslate2's default)
    chunk_s: float = CHUNK_S  # mean audio seconds per chunk

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def rtfx(self) -> float:
        """Seconds of audio transcribed per wall-clock second."""
        return self.chunks_per_s * self.chunk_s


class Runner(Protocol):
    """Runs ``actors`` engines of ``threads`` threads each side by side."""

    def run(self, actors: int, threads: int, batch_sizes: Sequence[int]
            ) -> list[Measurement]:
        """One row per batch size, in the order given. A runner that can survive a failed
        run (e.g. out of memory) ends the shape there, the remaining rows carrying the
        error."""
        ...


def measure(runner: Runner, shapes: Iterable[tuple[int, int]], batch_sizes: Sequence[int]
            ) -> list[Measurement]:
    """Every (actors, threads) of ``shapes`` at every batch size, smallest batch first (a
    batch that fails ends its shape, and larger ones would fail too)."""
    batches = sorted(batch_sizes)
    table: list[Measurement] = []
    for actors, threads in shapes:
        for row in runner.run(actors, threads, batches):
            _log(row)
            table.append(row)
    return table


def _log(row: Measurement) -> None:
    shape = f"{row.actors} x {row.threads} thread(s)" if row.threads else f"{row.actors}"
    if row.error:
        logger.warning("%s actor(s) at batch %d failed: %s", shape, row.batch_size, row.error)
    else:
        logger.info("%s actor(s), batch %d: %.2f chunks/s", shape, row.batch_size,
                    row.chunks_per_s)


def fastest_within(table: Sequence[Measurement], budget: int | None = None
                   ) -> Measurement | None:
    """The run with the most chunks/s whose actors all fit ``budget`` bytes (None: any
    memory), or None when no run succeeded within it."""
    fits = [m for m in table if not m.error
            and (budget is None or m.actors * m.actor_peak <= budget)]
    return max(fits, key=lambda m: m.chunks_per_s, default=None)


def measurements_text(table: Sequence[Measurement], planned: Measurement | None = None
                      ) -> str:
    """One line per run, RTFx beside k = 1 at the same batch (one batched model per
    device), the ``planned`` run marked."""
    solo = {m.batch_size: m.rtfx for m in table if m.actors == 1 and not m.error}
    head = "k x threads" if any(m.threads for m in table) else "k"
    width = len(head)
    lines = [f"{head:>{width}} {'batch':>5} {'chunks/s':>9} {'RTFx':>7} {'vs k=1':>7} "
             f"{'tok/chunk':>9} {'actor peak':>11} {'card peak':>10}  memory read by"]
    for m in table:
        shape = f"{m.actors} x {m.threads}" if m.threads else str(m.actors)
        if m.error:
            lines.append(f"{shape:>{width}} {m.batch_size:>5}  failed: {m.error}")
            continue
        ratio = f"{m.rtfx / solo[m.batch_size]:.2f}x" if solo.get(m.batch_size) else "-"
        mark = "  <- planned" if m == planned else ""
        lines.append(f"{shape:>{width}} {m.batch_size:>5} {m.chunks_per_s:>9.2f} {m.rtfx:>7.1f} "
                     f"{ratio:>7} {m.tokens_per_chunk:>9.1f} {_mib(m.actor_peak):>11} "
                     f"{_mib(m.device_peak):>10}  {m.memory_source or '-'}{mark}")
    return "\n".join(lines)


def _mib(n: int) -> str:
    return f"{n / 1024**2:.0f} MiB" if n else "-"
