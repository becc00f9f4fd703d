"""Chunks per second that k engine processes sustain sharing one device, and each one's
peak memory: what fractional packing does (k actors of ``1/k`` GPU are k processes on one
card), measured rather than summed. Several models on one GPU can compete and lose
throughput (faster-whisper #1192), so how many actors pay is a measurement.

Each process loads one :class:`~scribe.pipeline.whisper.WhisperEngine`; per batch size
they warm up, start together at a barrier, run the same batches of one synthetic 30 s
chunk, and stop at a barrier, while this process samples memory.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scribe.capacity.footprint import process_memory
from scribe.config import SAMPLE_RATE, TranscribeOptions

logger = logging.getLogger(__name__)

CHUNK_S = 30.0  # audio per chunk: every synthetic chunk is a full one
_BARRIER_TIMEOUT_S = 900.0  # one load plus one round of the slowest batch, with room


@dataclass(frozen=True)
class Measurement:
    """One (actors, batch size) run: throughput of all actors together, and memory."""

    actors: int
    batch_size: int
    chunks: int
    wall_s: float
    tokens_per_chunk: float
    actor_peak: int  # bytes: GPU memory of the largest actor (RSS on CPU)
    device_peak: int  # bytes in use on the GPU at peak, every process counted (0 on CPU)
    memory_source: str
    error: str = ""

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def rtfx(self) -> float:
        """Seconds of audio transcribed per wall-clock second."""
        return self.chunks_per_s * CHUNK_S


def synthetic_features(n_mels: int, seed: int = 0) -> Any:
    """Log-mel features of 30 s of noise with a speech-band tone: real-looking spectra, and
    decoding that tends to run long, which is the peak worth measuring."""
    import numpy as np

    from scribe.pipeline.features import log_mel

    rng = np.random.default_rng(seed)
    t = np.arange(int(CHUNK_S * SAMPLE_RATE), dtype=np.float32) / SAMPLE_RATE
    audio = 0.1 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 220 * t)
    return log_mel(audio.astype(np.float32), n_mels)


def measure(options: TranscribeOptions, *, actors: Sequence[int], batch_sizes: Sequence[int],
            rounds: int = 3, cpu_threads: int = 0, gpu_index: int = 0) -> list[Measurement]:
    """Every (k, batch) of ``actors`` x ``batch_sizes``, each k in its own processes, batch
    sizes in increasing order (a run that fails, e.g. out of memory, ends its k)."""
    from scribe.pipeline.whisper import model_n_mels

    opts = options.resolved()
    assert opts.model is not None
    with tempfile.TemporaryDirectory(prefix="scribe-throughput-") as tmp:
        features = Path(tmp) / "chunk.npy"
        _save(features, synthetic_features(model_n_mels(opts.model)))
        run = _Run(opts, features, sorted(batch_sizes), rounds, cpu_threads, gpu_index)
        return [row for k in actors for row in run.actors(k)]


def _save(path: Path, array: Any) -> None:
    import numpy as np

    np.save(path, array)


@dataclass(frozen=True)
class _Run:
    options: TranscribeOptions
    features: Path
    batch_sizes: list[int]
    rounds: int
    cpu_threads: int
    gpu_index: int

    def actors(self, k: int) -> list[Measurement]:
        """Start k engine processes and measure each batch size with all k running."""
        ctx = multiprocessing.get_context("spawn")  # CUDA state must not be forked
        barrier = ctx.Barrier(k + 1, timeout=_BARRIER_TIMEOUT_S)
        results = ctx.Queue()
        args = (self.options.model_dump_json(), str(self.features), self.batch_sizes,
                self.rounds, self.cpu_threads, barrier, results)
        procs = [ctx.Process(target=_actor, args=args, daemon=True) for _ in range(k)]
        for proc in procs:
            proc.start()
        try:
            return self._phases(k, barrier, results, procs)
        finally:
            for proc in procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.kill()

    def _phases(self, k: int, barrier: Any, results: Any, procs: list[Any]
                ) -> list[Measurement]:
        rows: list[Measurement] = []
        pids = [p.pid or 0 for p in procs]
        with _memory_sampler(self.options.device == "cuda", self.gpu_index, pids) as sampler:
            for batch in self.batch_sizes:
                sampler.reset()
                try:
                    _meet(barrier, k, procs)  # all loaded and warmed up at this batch size
                    _meet(barrier, k, procs)  # all done
                except threading.BrokenBarrierError:
                    return rows + self._failed(k, batch, results, procs)
                reports = [results.get(timeout=60) for _ in range(k)]
                rows.append(_row(k, batch, reports, sampler))
        return rows

    def _failed(self, k: int, batch: int, results: Any, procs: list[Any]
                ) -> list[Measurement]:
        codes = [p.exitcode for p in procs if p.exitcode]
        error = _first_error(results, k) or f"an actor process died (exit codes {codes})"
        logger.warning("%d actor(s) at batch %d failed: %s", k, batch, error)
        return [Measurement(k, b, 0, 0.0, 0.0, 0, 0, "", error)
                for b in self.batch_sizes if b >= batch]


def _first_error(results: Any, reports: int) -> str:
    """The first error among up to ``reports`` reports, or "" (a queue delivers a moment
    after a put, so each gets a few seconds)."""
    for _ in range(reports):
        try:
            report = results.get(timeout=10)
        except queue.Empty:
            break
        if "error" in report:
            return str(report["error"])
    return ""


def _meet(barrier: Any, k: int, procs: list[Any]) -> None:
    """Wait at ``barrier`` with the k actors; abort it when one dies first: a crash in
    native code reports nothing and would leave the others waiting."""
    deadline = time.monotonic() + _BARRIER_TIMEOUT_S
    while barrier.n_waiting < k and not barrier.broken:
        if any(p.exitcode is not None for p in procs) or time.monotonic() > deadline:
            barrier.abort()
            break
        time.sleep(0.05)
    barrier.wait()  # BrokenBarrierError once aborted


def _row(k: int, batch: int, reports: list[dict[str, Any]], sampler: _Sampler) -> Measurement:
    start = min(r["start"] for r in reports)
    end = max(r["end"] for r in reports)
    chunks = sum(r["chunks"] for r in reports)
    tokens = sum(r["tokens"] for r in reports)
    actor_peak, device_peak, source = sampler.peaks(k, max(r["rss"] for r in reports))
    return Measurement(k, batch, chunks, end - start, tokens / max(1, chunks), actor_peak,
                       device_peak, source)


def _actor(options_json: str, features_path: str, batch_sizes: list[int], rounds: int,
           cpu_threads: int, barrier: Any, results: Any) -> None:
    """One engine process: warm up, then time ``rounds`` batches between two barriers."""
    try:
        import numpy as np

        from scribe.pipeline.chunking import Chunk, ChunkPlan
        from scribe.pipeline.whisper import WhisperEngine

        engine = WhisperEngine(TranscribeOptions.model_validate_json(options_json),
                               cpu_threads=cpu_threads)
        features = np.load(features_path)
        for batch in batch_sizes:
            plan = ChunkPlan(index=0, offset_s=0.0, duration_s=CHUNK_S, ranges=[])
            items = [Chunk(plan=plan, features=features, session_id=str(i)) for i in range(batch)]
            # one model call of ``batch`` (each chunk its own session: no prompt)
            engine.transcribe(items, batch_size=batch)  # warm-up: allocator caches, cuBLAS
            barrier.wait()
            start, tokens = time.time(), 0
            for _ in range(rounds):
                tokens += sum(len(s["tokens"]) for out in engine.transcribe(
                    items, batch_size=batch) for s in out.segments)
            results.put({"start": start, "end": time.time(), "chunks": batch * rounds,
                         "tokens": tokens, "rss": process_memory()[1]})
            barrier.wait()
    except Exception as exc:  # reported to the parent, which records it in the table
        results.put({"error": f"{type(exc).__name__}: {exc}"})
        barrier.abort()


class _Sampler:
    """Peak GPU memory, per process and for the whole card, since the last reset."""

    def __init__(self, pynvml: Any, handle: Any, pids: list[int]) -> None:
        self._nvml, self._handle, self._pids = pynvml, handle, set(pids)
        self._baseline = self._used()
        self._device = 0
        self._per_pid: dict[int, int] = {}
        self._lock = threading.Lock()

    def _used(self) -> int:
        return int(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used) if self._nvml else 0

    def sample(self) -> None:
        if not self._nvml:
            return
        try:
            procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except self._nvml.NVMLError:  # some drivers and VMs don't say: the card's figure stays
            procs = []
        used = self._used()
        with self._lock:
            self._device = max(self._device, used)
            for proc in procs:
                if proc.pid in self._pids and proc.usedGpuMemory:
                    self._per_pid[proc.pid] = max(self._per_pid.get(proc.pid, 0),
                                                  int(proc.usedGpuMemory))

    def reset(self) -> None:
        with self._lock:
            self._device, self._per_pid = 0, {}

    def peaks(self, k: int, rss: int) -> tuple[int, int, str]:
        """(largest actor, whole card, how the actor's figure was read)."""
        with self._lock:
            if not self._nvml:
                return rss, 0, "process peak RSS (CPU)"
            if self._per_pid:
                return max(self._per_pid.values()), self._device, "NVML, per process"
            # NVML names no process here (a PID namespace hides them): share the card's rise
            rise = max(0, self._device - self._baseline)
            return rise // k, self._device, "NVML, card's rise / k"


@contextmanager
def _memory_sampler(cuda: bool, index: int, pids: list[int],
                    interval_s: float = 0.01) -> Iterator[_Sampler]:
    """Sample in a thread while the block runs. Sampling, not a final reading: CTranslate2's
    caching allocator hands memory back past its cache limit, so a peak can be gone by the
    time a call returns."""
    pynvml = _nvml() if cuda else None
    sampler = _Sampler(pynvml, pynvml.nvmlDeviceGetHandleByIndex(index) if pynvml else None,
                       pids)
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(sampler.sample, stop, interval_s),
                              daemon=True)
    thread.start()
    try:
        yield sampler
    finally:
        stop.set()
        thread.join()
        if pynvml:
            pynvml.nvmlShutdown()


def _loop(step: Callable[[], None], stop: threading.Event, interval_s: float) -> None:
    while not stop.is_set():
        step()
        stop.wait(interval_s)


def _nvml() -> Any:
    import pynvml

    pynvml.nvmlInit()
    return pynvml


def fastest_within(table: Sequence[Measurement], budget: int) -> Measurement | None:
    """The run with the most chunks/s whose actors all fit ``budget`` bytes, or None."""
    fits = [m for m in table if not m.error and m.actors * m.actor_peak <= budget]
    return max(fits, key=lambda m: m.chunks_per_s, default=None)


def measurements_text(table: Sequence[Measurement]) -> str:
    """One line per run, RTFx beside k = 1 at the same batch (one batched model per GPU)."""
    solo = {m.batch_size: m.rtfx for m in table if m.actors == 1 and not m.error}
    lines = [f"{'k':>2} {'batch':>5} {'chunks/s':>9} {'RTFx':>7} {'vs k=1':>7} "
             f"{'tok/chunk':>9} {'actor peak':>11} {'card peak':>10}  memory read by"]
    for m in table:
        if m.error:
            lines.append(f"{m.actors:>2} {m.batch_size:>5}  failed: {m.error}")
            continue
        ratio = f"{m.rtfx / solo[m.batch_size]:.2f}x" if solo.get(m.batch_size) else "-"
        lines.append(f"{m.actors:>2} {m.batch_size:>5} {m.chunks_per_s:>9.2f} {m.rtfx:>7.1f} "
                     f"{ratio:>7} {m.tokens_per_chunk:>9.1f} {_mib(m.actor_peak):>11} "
                     f"{_mib(m.device_peak):>10}  {m.memory_source}")
    return "\n".join(lines)


def _mib(n: int) -> str:
    return f"{n / 1024**2:.0f} MiB"

