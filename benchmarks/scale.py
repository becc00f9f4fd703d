"""The job's driver at scale: 1k-100k sessions, with stand-in stages of known speed, so
that what is measured is the driver (listing, planning, Ray Data, the collector, the
writers, the summary, resume) and not decoding or the model.

    python benchmarks/scale.py                  # fresh 1k and 10k, reruns, 1/2/4 GPU nodes
    python benchmarks/scale.py --sizes 1000 3000 --resume-sizes --no-nodes
    python benchmarks/scale.py --sizes --resume-sizes 10000 --full   # reruns at 10k, 100k
    python benchmarks/scale.py --sizes 100000   # a fresh 100k run (35-45 min on 2 cores)
    python benchmarks/scale.py --s3             # reruns on the loopback S3 server too

What stands in for what:
- the sessions are a JSONL manifest of URIs (no audio is read; listing a prefix of 100k
  files is not what the driver holds);
- preprocessing (decode, VAD, features): a stage that sleeps PREPROCESS_S per session and
  emits one 20 s chunk with a one-value feature array;
- the model: a stage that sleeps MODEL_S per call and returns one segment per chunk.
The writers write every real output file (JSON, SRT, VTT, TXT, Parquet, the marker).

Each size runs in a process of its own (so its peak RSS, ru_maxrss, is the driver's own),
on a local Ray of 2 CPUs it starts; times count from Ray's being up. Printed per size:
the driver's peak memory, the time to the first model call, the per-session overhead
(wall time past the first call, less the stand-in model's work, per session), and two
reruns: over the finished bucket (nothing to do), and over the bucket plus 10 new
sessions against a run over the 10 alone. Then the model stage's throughput on 1, 2 and
4 simulated GPU nodes (ray.cluster_utils, ``simulated_gpus``), one model actor per node,
NODE_MODEL_S per call.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from ray_jobs import rows  # noqa: E402
from ray_jobs.stages import StageClasses  # noqa: E402
from scribe.config import JobConfig, ResourceConfig, TranscribeOptions  # noqa: E402
from scribe.pipeline.chunking import Chunk, ChunkOutput, ChunkPlan  # noqa: E402
from scribe.pipeline.transcript import record_base  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PREPROCESS_S = 0.002
MODEL_S = 0.002  # per call, in the driver runs: the driver must be the bottleneck
NODE_MODEL_S = 1.0  # per call, in the throughput runs (a GPU batch of large-v3: ~1-2 s)
NODE_CALLS = 48
CHUNK_S = 20.0


class StandInPreprocessor:
    """Preprocessing of known speed: PREPROCESS_S per session, one chunk out."""

    def __init__(self, **kwargs: Any) -> None:
        self.model = kwargs["model"]
        self.delay = float(os.environ.get("SCALE_PREPROCESS_S", PREPROCESS_S))

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        for session in batch.to_pylist():
            time.sleep(self.delay)
            base = record_base(session["session_id"], model=self.model, uri=session["uri"])
            base.update(duration_s=CHUNK_S, speech_duration_s=CHUNK_S,
                        timings={"decode": self.delay})
            plan = ChunkPlan(index=0, offset_s=0.0, duration_s=CHUNK_S,
                             ranges=[{"start": 0, "end": int(CHUNK_S * 16_000)}])
            chunk = Chunk(plan=plan, features=np.zeros((1, 1), dtype=np.float32))
            yield rows.encode([rows.chunk_row(base, chunk, n_chunks=1, features_s=0.0)])


class StandInModel:
    """The model of known speed: a call sleeps the seconds ``SCALE_MODEL_S`` says, one call
    at a time per actor as on a GPU (Ray Data may hand an actor several calls at once);
    the first call's time goes to ``SCALE_FIRST_CALL`` (a file) for the benchmark."""

    def __init__(self, **kwargs: Any) -> None:
        from ray_jobs.stages import actor_identity

        self.delay = float(os.environ.get("SCALE_MODEL_S", MODEL_S))
        self._one_at_a_time = threading.Lock()  # made in the actor: a lock does not pickle
        self.actor = actor_identity(time.time())
        self.first = os.environ.get("SCALE_FIRST_CALL", "")

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.first and not os.path.exists(self.first):
            Path(self.first).write_text(str(time.time()))
        with self._one_at_a_time:
            time.sleep(self.delay)
        # as the real model stage: its columns in and out with Arrow, the rest passed through
        chunks = rows.model_inputs(batch)
        outputs = {i: ChunkOutput(
            plan=chunk.plan, language="en", language_probability=1.0,
            timings={"model": self.delay},
            segments=[{"start": 0.0, "end": chunk.plan.duration_s, "text": " stand-in text.",
                       "tokens": [1, 2, 3], "avg_logprob": -0.2, "no_speech_prob": 0.01,
                       "compression_ratio": 1.2, "seek": 0}])
            for i, chunk in chunks.items()}
        return rows.with_outputs(batch, outputs, batch_size=len(chunks), batch_sessions=1,
                                 actor=self.actor)


STAND_INS = StageClasses(StandInPreprocessor, StandInModel)


# --------------------------------------------------------------------------- one run


def write_manifest(path: Path, ids: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"session_id": i, "uri": f"/standin/{i}.wav"}) + "\n"
                            for i in ids))
    return path


def one_run(manifest: str, output: str, model: str, simulated: bool) -> dict[str, Any]:
    """One job over ``manifest`` in this process; what it printed for the parent."""
    import ray

    from ray_jobs.transcribe import run_job

    first_call = Path(os.environ["SCALE_FIRST_CALL"])
    # a local Ray's workers inherit this process's environment (the stand-ins' settings);
    # a cluster's nodes were started with it (throughput_on)
    # a Ray of its own unless given one (ray.init's lookup would join any Ray that
    # `ray start` recorded on this machine)
    cluster = os.environ.get("RAY_ADDRESS")
    own: dict[str, Any] = {} if cluster else {"num_cpus": 2, "object_store_memory": 300 << 20}
    ray.init(address=cluster or "local", include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False, **own)
    start = time.time()  # Ray's own start is not the driver's path
    resources = (ResourceConfig(simulated_gpus="on", actors_per_gpu=1, model_batch_size=1)
                 if simulated else ResourceConfig(model_actors=1, model_batch_size=8,
                                                  preprocess_actors=1))
    # one session (one chunk) per model call on the GPU nodes, as the docstring says:
    # prompt chains (4 chunks of a session in a row) would make a call of 4 sessions
    options = (TranscribeOptions(model=model, device="cpu", condition_on_previous_text=False)
               if simulated else TranscribeOptions(model=model, device="cpu"))
    config = JobConfig(input=manifest, output=output, resources=resources,
                       transcribe=options)
    summary = run_job(config, stages=STAND_INS)
    first = float(first_call.read_text()) - start if first_call.exists() else None
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall_s": time.time() - start, "first_call_s": first, "peak_mb": peak_mb,
            "ok": summary["sessions"]["ok"], "skipped": summary["sessions"]["skipped"],
            "actors": summary["model_actors_used"], "summary_wall_s": summary["wall_s"]}


def run_child(manifest: Path | str, output: Path | str, model: str, *, address: str = "",
              simulated: bool = False, model_s: float = MODEL_S) -> dict[str, Any]:
    """:func:`one_run` in a fresh process (its own peak memory, its own Ray unless
    ``address``)."""
    first_call = Path(tempfile.mkdtemp(prefix="scale-first-")) / "t"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCALE_MODEL_S": str(model_s),
           "SCALE_FIRST_CALL": os.environ.get("SCALE_FIRST_CALL", str(first_call))}
    env.pop("RAY_ADDRESS", None)
    if address:
        env["RAY_ADDRESS"] = address
    cmd = [sys.executable, __file__, "--child", str(manifest), str(output), model]
    if simulated:
        cmd.append("--simulated")
    for _ in range(3):  # a loaded machine's Ray may time out starting: try it again
        done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True,
                              check=False)
        if "timed out during startup" not in done.stderr:
            break
    if done.returncode != 0:
        raise RuntimeError(f"run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- the driver


def driver_at(size: int, work: Path, model: str, output: str | None = None
              ) -> dict[str, Any]:
    """A fresh run over ``size`` sessions, then the reruns (:func:`reruns`)."""
    ids = [f"s{i:06d}" for i in range(size)]
    bucket = write_manifest(work / f"in{size}" / "bucket.jsonl", ids)
    out = output or str(work / f"out{size}")
    fresh = run_child(bucket, out, model)
    model_work = size * MODEL_S / 8  # calls of 8 on one actor
    overhead = (fresh["wall_s"] - (fresh["first_call_s"] or 0.0) - model_work) / size
    return {"size": size, "fresh": fresh, "overhead_ms": overhead * 1000,
            **reruns(ids, bucket, out, work / f"in{size}", model)}


def resume_at(size: int, work: Path, model: str, output: str | None = None
              ) -> dict[str, Any]:
    """The reruns over a bucket of ``size`` sessions finished beforehand (the files the job
    writes, written directly, in a few minutes: a fresh run of 100k sessions takes 35-45
    minutes on 2 cores)."""
    ids = [f"s{i:06d}" for i in range(size)]
    bucket = write_manifest(work / f"in{size}" / "bucket.jsonl", ids)
    out = output or str(work / f"out{size}")
    prefill(out, ids)
    return {"size": size, **reruns(ids, bucket, out, work / f"in{size}", model)}


def reruns(ids: list[str], bucket: Path, out: str, folder: Path, model: str
           ) -> dict[str, Any]:
    """A rerun over the finished bucket, one over it plus 10 new sessions, and one over the
    10 alone (into an empty output)."""
    rerun = run_child(bucket, out, model)
    new = [f"new{i:02d}" for i in range(10)]
    resumed = run_child(write_manifest(folder / "plus10.jsonl", ids + new), out, model)
    alone = run_child(write_manifest(folder / "ten.jsonl", new), out + "-ten-alone", model)
    return {"rerun": rerun, "resumed": resumed, "alone": alone}


def prefill(out: str, ids: list[str]) -> None:
    """Every session of ``ids`` finished under ``out``, as the job leaves it."""
    from concurrent.futures import ThreadPoolExecutor

    from scribe.io import outputs

    def write(sid: str) -> None:
        outputs.write_session(out, {
            "session_id": sid, "status": "ok", "error": None, "language": "en",
            "duration_s": CHUNK_S, "speech_duration_s": CHUNK_S, "text": "stand-in text.",
            "segments": [{"id": 0, "start": 0.0, "end": CHUNK_S, "text": " stand-in text.",
                          "avg_logprob": -0.2, "no_speech_prob": 0.01}]})

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, ids))


def print_driver(results: list[dict[str, Any]], where: str) -> None:
    print(f"\nDriver, fresh runs ({where}; stand-in stages; a shared, loaded 2-core machine)")
    print(f"{'sessions':>9} {'peak MB':>8} {'1st call s':>10} {'wall s':>7} "
          f"{'ms/session':>10}")
    for r in results:
        f = r["fresh"]
        print(f"{r['size']:>9} {f['peak_mb']:>8.0f} {f['first_call_s']:>10.1f} "
              f"{f['wall_s']:>7.1f} {r['overhead_ms']:>10.2f}")
        assert f["ok"] == r["size"], f
    if len(results) > 1:
        base, top = results[0], results[-1]
        print(f"peak driver memory at {top['size']} / at {base['size']}: "
              f"{top['fresh']['peak_mb'] / base['fresh']['peak_mb']:.2f}x (target <= 1.2x)")


def print_reruns(results: list[dict[str, Any]], where: str) -> None:
    print(f"\nReruns ({where}): over the finished bucket, over it plus 10 new sessions, "
          "and the 10 alone")
    print(f"{'sessions':>9} {'rerun s':>8} {'rerun MB':>8} {'+10 1st call s':>14} "
          f"{'+10 MB':>7} {'10 alone 1st call s':>19} {'target s':>8}")
    for r in results:
        rr, res, al = r["rerun"], r["resumed"], r["alone"]
        limit = 2 * al["first_call_s"] + 10
        print(f"{r['size']:>9} {rr['wall_s']:>8.1f} {rr['peak_mb']:>8.0f} "
              f"{res['first_call_s']:>14.1f} {res['peak_mb']:>7.0f} "
              f"{al['first_call_s']:>19.1f} {limit:>8.1f}")
        assert rr["skipped"] == r["size"] and res["ok"] == 10 and al["ok"] == 10


# --------------------------------------------------------------------------- GPU nodes


def throughput_on(nodes: int, work: Path, model: str, model_s: float = NODE_MODEL_S,
                  calls: int = NODE_CALLS) -> float:
    """Model calls per second on ``nodes`` simulated GPU nodes, from the first call."""
    from ray.cluster_utils import Cluster

    store = 200 * 1024 * 1024
    # the nodes' workers inherit the stand-ins' settings from this process
    first_call = work / f"nodes{nodes}" / "first-call"
    first_call.parent.mkdir(parents=True, exist_ok=True)
    os.environ.update(SCALE_MODEL_S=str(model_s), SCALE_FIRST_CALL=str(first_call),
                      PYTHONPATH=str(ROOT))
    cluster = _started(lambda: Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": store, "include_dashboard": False}))
    try:
        for _ in range(nodes):
            cluster.add_node(num_cpus=2, num_gpus=1, object_store_memory=store)
        cluster.wait_for_nodes()
        ids = [f"n{nodes}-{i:04d}" for i in range(calls * nodes)]
        manifest = write_manifest(work / f"nodes{nodes}" / "in.jsonl", ids)
        result = run_child(manifest, work / f"nodes{nodes}" / "out", model,
                           address=cluster.address, simulated=True, model_s=model_s)
    finally:
        cluster.shutdown()
    assert result["ok"] == len(ids) and result["actors"] == nodes, result
    return len(ids) / (result["wall_s"] - result["first_call_s"])


def _started(start: Any, tries: int = 3) -> Any:
    """``start()``, tried again where a loaded machine's Ray times out starting."""
    for attempt in range(tries):
        try:
            return start()
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def print_nodes(work: Path, model: str, model_s: float = NODE_MODEL_S,
                calls: int = NODE_CALLS) -> None:
    print(f"\nModel stage on simulated GPU nodes ({model_s} s per call, one actor a "
          f"node, {calls} calls a node)")
    one = throughput_on(1, work, model, model_s, calls)
    print(f"1 node: {one:.2f} calls/s")
    for nodes in (2, 4):
        rate = throughput_on(nodes, work, model, model_s, calls)
        print(f"{nodes} nodes: {rate:.2f} calls/s = {rate / one / nodes:.2f}x linear "
              f"(target >= 0.9x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10_000],
                        help="fresh runs, then reruns, at these sizes")
    parser.add_argument("--resume-sizes", type=int, nargs="*", default=[10_000],
                        help="reruns over a bucket written beforehand, at these sizes")
    parser.add_argument("--full", action="store_true", help="reruns over 100k sessions too")
    parser.add_argument("--s3", action="store_true", help="also the driver over S3")
    parser.add_argument("--no-nodes", action="store_true", help="skip the GPU nodes part")
    parser.add_argument("--node-model-s", type=float, default=NODE_MODEL_S,
                        help="the stand-in model's seconds per call on the GPU nodes")
    parser.add_argument("--node-calls", type=int, default=NODE_CALLS,
                        help="model calls per GPU node (one session each)")
    parser.add_argument("--child", nargs=3, metavar=("MANIFEST", "OUTPUT", "MODEL"))
    parser.add_argument("--simulated", action="store_true")
    args = parser.parse_args()
    if args.child:
        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(one_run(*args.child, simulated=args.simulated)))
        return
    from scribe.testing.testmodel import cached_test_model

    model = str(cached_test_model("tiny"))
    work = Path(tempfile.mkdtemp(prefix="scribe-scale-"))
    try:
        if args.sizes:
            runs = [driver_at(n, work, model) for n in args.sizes]
            print_driver(runs, "local disk")
            print_reruns(runs, "local disk")
        resume = args.resume_sizes + ([100_000] if args.full else [])
        if resume:
            print_reruns([resume_at(n, work, model) for n in resume],
                         "local disk, bucket written beforehand")
        if args.s3:
            print_s3(resume[:1] or [1000], work, model)
        if not args.no_nodes:
            print_nodes(work, model, args.node_model_s, args.node_calls)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def print_s3(sizes: list[int], work: Path, model: str) -> None:
    from tests.s3 import S3Server

    server = S3Server.start()
    try:
        os.environ.update(server.env())
        bucket = server.create_bucket()
        print_reruns([resume_at(n, work / "s3", model, f"s3://{bucket}/out{n}")
                      for n in sizes], "loopback S3 server, bucket written beforehand")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
