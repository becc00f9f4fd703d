"""The online service against faster-whisper in-process, on one machine, one model.

    python benchmarks/serve.py [--size base] [--max-new-tokens 32] [--requests 15]

A random-weights Whisper of a real size (``cached_test_model``: real shapes, so real
compute; gibberish text) is loaded by both contenders on the CPU (int8), with greedy
decoding, language ``en`` and the same ``max_new_tokens``:

1. Latency of one 11 s clip (examples/sessions/jfk.flac): faster-whisper's
   ``BatchedInferencePipeline`` in this process and ``POST /v1/audio/transcriptions``
   through a local Ray Serve (HTTP proxy, ingress, preprocessor, transcriber), alternated
   request by request. Ratio of p50s; target <= 1.25.
2. Throughput at 1, 4 and 16 concurrent clients sending 5-30 s clips; target at 16 clients
   >= 2x the requests/s of 1 client, from batching chunks across requests.
3. For context, the model alone (``WhisperEngine``) at batch 1 and 16: the most that
   batching can add on this hardware.

``--streaming`` runs :mod:`benchmarks.streaming` instead: ``stream=true`` against plain
answers for a 10-minute session with the real tiny.en (time to the first delta and to done).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make scribe/, serve_app/ and tests/ importable

JFK = ROOT / "examples" / "sessions" / "jfk.flac"
CLIP_SECONDS = (5, 10, 15, 20, 25, 30)
CLIENTS = {1: 8, 4: 4, 16: 2}  # clients -> requests each
LATENCY_TARGET = 1.25
THROUGHPUT_TARGET = 2.0
# Every contender's CTranslate2 gets all cores: under Ray, "0" (its default) would mean
# one thread, as Ray sets OMP_NUM_THREADS to an actor's num_cpus.
THREADS = os.cpu_count() or 1


def options(model: str, max_new_tokens: int) -> Any:
    from scribe.config import TranscribeOptions

    # Equal work: BatchedInferencePipeline has no temperature fallback.
    return TranscribeOptions(model=model, device="cpu", compute_type="int8", beam_size=1,
                             max_new_tokens=max_new_tokens, language="en",
                             temperature_fallback=())


def latencies(model: str, max_new_tokens: int, url: str, n: int
              ) -> tuple[list[float], list[float]]:
    """The clip ``n`` times each way, alternating, so the machine's other load (this is a
    shared box) falls on both contenders alike: faster-whisper's batched pipeline in this
    process, and the endpoint."""
    import httpx
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    pipeline = BatchedInferencePipeline(WhisperModel(
        model, device="cpu", compute_type="int8", cpu_threads=THREADS))

    def local() -> float:
        start = time.perf_counter()
        segments, _ = pipeline.transcribe(
            str(JFK), language="en", beam_size=1, max_new_tokens=max_new_tokens,
            without_timestamps=False, batch_size=16, vad_filter=True)
        list(segments)  # the generator does the work
        return time.perf_counter() - start

    with httpx.Client(base_url=url, timeout=600) as client:
        local(), post(client, JFK)  # warm both
        pairs = [(local(), post(client, JFK)) for _ in range(n)]
    return [a for a, _ in pairs], [b for _, b in pairs]


def model_alone(model: str, max_new_tokens: int) -> dict[int, float]:
    """Chunks per second of the engine's model call at batch 1 and 16 (best of 2)."""
    from scribe.pipeline.preprocess import preprocess
    from scribe.pipeline.whisper import WhisperEngine

    opts = options(model, max_new_tokens)
    engine = WhisperEngine(opts, cpu_threads=THREADS)
    chunk = preprocess(str(JFK), opts, engine.n_mels).chunks[0]
    item = dataclasses.replace(chunk, session_id="a", language="en")
    engine.transcribe([item], opts)
    rates = {}
    for batch in (1, 16):
        best = min(_timed(lambda b=batch: engine.transcribe([item] * b, opts, batch_size=b))
                   for _ in range(2))
        rates[batch] = batch / best
    return rates


def _timed(run: Any) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def make_clips(folder: Path) -> list[Path]:
    from tests import media

    return [media.write_audio(folder / f"clip_{s}s.flac", media.speech(s, seed=s))
            for s in CLIP_SECONDS]


def start_serve(model: str, max_new_tokens: int, port: int, batch_size: int) -> None:
    import ray
    from ray import serve

    from scribe.config import ResourceConfig
    from serve_app.app import build_app
    from serve_app.settings import ServeConfig

    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    config = ServeConfig(transcribe=options(model, max_new_tokens),
                         resources=ResourceConfig(model_batch_size=batch_size,
                                                  cpu_threads=THREADS))
    serve.run(build_app(config), name="scribe", route_prefix="/")


def post(client: Any, path: Path) -> float:
    start = time.perf_counter()
    response = client.post("/v1/audio/transcriptions", data={"model": "whisper-1"},
                           files={"file": (path.name, path.read_bytes())})
    response.raise_for_status()
    return time.perf_counter() - start


def throughput(url: str, clients: int, per_client: int, clips: list[Path]
               ) -> tuple[float, float]:
    """(requests/s, chunk-weighted mean model batch) with ``clients`` sending at once."""
    import httpx

    before = httpx.get(url + "/v1/stats").json()["batch_sizes"]
    start_line = threading.Barrier(clients)

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            start_line.wait()
            for k in range(per_client):
                post(http, clips[(index * per_client + k) % len(clips)])

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - start
    after = httpx.get(url + "/v1/stats").json()["batch_sizes"]
    sizes = {int(k): v - before.get(k, 0) for k, v in after.items()}
    chunks = sum(sizes.values())
    mean_batch = sum(k * v for k, v in sizes.items()) / chunks if chunks else 0.0
    return clients * per_client / wall, mean_batch


def report(local: list[float], remote: list[float], rates: dict[int, tuple[float, float]],
           alone: dict[int, float], args: argparse.Namespace) -> None:
    p50_local, p50_remote = statistics.median(local), statistics.median(remote)
    ratio = p50_remote / p50_local
    print(f"\nmodel: random-weights {args.size} (CTranslate2 int8, CPU), beam 1, "
          f"max_new_tokens {args.max_new_tokens}, language en; model_batch_size "
          f"{args.batch_size}; {THREADS} CTranslate2 threads on {os.cpu_count()} cpus\n")
    print(f"{'latency, jfk.flac (11 s)':<34}{'p50 (s)':>9}{'p90 (s)':>9}{'n':>4}")
    for name, values in (("faster-whisper in-process", local), ("endpoint (HTTP + Serve)", remote)):
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:<34}{statistics.median(values):9.3f}{p90:9.3f}{len(values):4d}")
    print(f"p50 overhead ratio: {ratio:.2f}x (target <= {LATENCY_TARGET}: "
          f"{'met' if ratio <= LATENCY_TARGET else 'MISSED'})\n")
    print(f"{'clients':>7}{'requests/s':>12}{'x 1 client':>12}{'mean model batch':>18}")
    for clients, (rps, batch) in rates.items():
        print(f"{clients:7d}{rps:12.3f}{rps / rates[1][0]:12.2f}{batch:18.1f}")
    scale = rates[16][0] / rates[1][0]
    print(f"16 clients / 1 client: {scale:.2f}x (target >= {THROUGHPUT_TARGET}: "
          f"{'met' if scale >= THROUGHPUT_TARGET else 'MISSED'})\n")
    print(f"model alone (WhisperEngine): {alone[1]:.2f} chunks/s at batch 1, "
          f"{alone[16]:.2f} at batch 16 ({alone[16] / alone[1]:.2f}x): "
          "the most batching can add here")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--streaming" in argv:
        from benchmarks import streaming

        streaming.main([a for a in argv if a != "--streaming"])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="base", choices=("tiny", "base", "small"))
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--requests", type=int, default=15, help="latency samples each")
    parser.add_argument("--port", type=int, default=8130)
    parser.add_argument("--batch-size", type=int, default=16,
                        help="the service's model_batch_size (chunks per model call)")
    args = parser.parse_args(argv)
    from scribe.testing.testmodel import cached_test_model

    model = str(cached_test_model(args.size))
    print(f"model {model}; the model alone ...", flush=True)
    alone = model_alone(model, args.max_new_tokens)
    gc.collect()  # its threads and memory gone before Serve loads its own
    print("starting Ray Serve ...", flush=True)
    start_serve(model, args.max_new_tokens, args.port, args.batch_size)
    url = f"http://127.0.0.1:{args.port}"
    try:
        local, remote = latencies(model, args.max_new_tokens, url, args.requests)
        gc.collect()
        with tempfile.TemporaryDirectory() as folder:
            clips = make_clips(Path(folder))
            rates = {c: throughput(url, c, n, clips) for c, n in CLIENTS.items()}
    finally:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()
    report(local, remote, rates, alone, args)


if __name__ == "__main__":
    main()
