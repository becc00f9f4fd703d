"""``python -m ray_jobs.transcribe --input PREFIX --output PREFIX``: every session under a
prefix to transcripts, on Ray Data.

Sessions stream through CPU preprocessing actors into model actors (a fraction of a GPU
each); the driver assembles each session as soon as its last chunk comes back and writes
it, so a job stopped after an hour has kept an hour of work. Under ``ray job submit`` it
joins the cluster; alone it starts a local Ray.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import sys
import time
from typing import Any

from ray_jobs.cluster import connect_ray, cpu_nodes, held_gpus, leave_to_others
from ray_jobs.collect import SessionCollector
from ray_jobs.graph import job_rows
from ray_jobs.layout import JobLayout, fit_to_work, plan_resources
from ray_jobs.metrics import JobMetrics
from ray_jobs.preflight import preflight, preflight_nodes
from ray_jobs.progress_display import ProgressDisplay
from ray_jobs.quiet import filter_native_stderr, quiet_ray_data
from scribe import config as cfg
from scribe.capacity import packing
from scribe.config import JobConfig, ResourceConfig, TranscribeOptions
from scribe.errors import ScribeError, describe
from scribe.io import outputs, storage
from scribe.io.sessions import SessionRef, list_sessions
from scribe.io.summary import summarize, summary_text
from scribe.pipeline.languages import check_sessions
from scribe.pipeline.whisper import model_n_mels, resolve_model_path
from scribe.schema import Record

logger = logging.getLogger("ray_jobs.transcribe")  # also when run as __main__


def run_job(config: JobConfig) -> dict[str, Any]:
    """Transcribe every session of ``config.input`` not yet done; returns the summary."""
    import ray

    start = time.perf_counter()
    preflight(config)
    sessions = list_sessions(config.input)
    if config.limit:
        sessions = sessions[: config.limit]
    check_sessions(config.transcribe, [(s.session_id, s.language) for s in sessions])
    storage.clean_stale_temps(config.output)
    done = {} if config.overwrite else outputs.finished_sessions(
        config.output, [s.session_id for s in sessions])
    todo = _longest_first([s for s in sessions if s.session_id not in done])
    logger.info("%d sessions, %d already done, %d to transcribe",
                len(sessions), len(done), len(todo))
    connect_ray(config)
    reserved = held_gpus()
    layout = plan_resources(config.transcribe, config.resources,
                          ray.cluster_resources(),  # type: ignore[no-untyped-call]
                          reserved_gpus=reserved, saved=packing.read_plan(),
                          gpus_here=packing.read_gpus(), cpu_nodes=cpu_nodes())
    leave_to_others(reserved)
    options = config.transcribe.model_copy(update={"device": layout.device}).resolved()
    assert options.model is not None
    preflight_nodes(options, layout.device)
    n_mels = model_n_mels(resolve_model_path(options.model))
    layout = fit_to_work(layout, todo, options, config.resources)
    logger.info("plan: %s", layout)
    with JobMetrics(start, layout.gpus, config.gpu_hourly_usd) as metrics:
        records, collector = _run(todo, options, config, layout, n_mels, metrics)
    wall = time.perf_counter() - start
    summary = summarize(
        records, wall_s=wall, gpus=layout.gpus, gpu_hourly_usd=config.gpu_hourly_usd,
        skipped=len(done), extra={
            "model": options.model, "device": layout.device, "plan": layout.__dict__,
            "mean_batch_size": _mean(collector.batch_sizes),
            "max_batch_sessions": max(collector.batch_sessions, default=0),
            "model_actors_used": len(collector.actors),
        })
    storage.write_atomic(storage.join(config.output, outputs.SUMMARY_FILE),
                         json.dumps(summary, indent=2))
    return summary

def _longest_first(sessions: list[SessionRef]) -> list[SessionRef]:
    """Longest recordings first (:attr:`SessionRef.estimated_duration_s`): a long session's
    decode and VAD run before any of its chunks leave, so started last it starves the model
    actor at the end (the benchmark's profile showed a 23 s gap); started first, it
    overlaps the model actors' start-up, and short sessions fill the end."""
    return sorted(sessions, key=lambda s: -s.estimated_duration_s)


def _run(todo: list[SessionRef], options: TranscribeOptions, config: JobConfig,
         layout: JobLayout, n_mels: int, metrics: JobMetrics
         ) -> tuple[list[Record], SessionCollector]:
    """Stream rows, write each finished session in the background, return all records."""
    collector = SessionCollector()
    records: list[Record] = []
    if not todo:
        return records, collector
    quiet_ray_data(config.verbose)
    with (concurrent.futures.ThreadPoolExecutor(max_workers=8) as writers,
          ProgressDisplay(todo, sys.stderr, tty=sys.stderr.isatty()) as progress):
        futures = []
        for row in job_rows(todo, options, config.resources, layout, n_mels):
            record = collector.add(row)
            if record is not None:
                records.append(record)
                futures.append(writers.submit(_write, config.output, record, metrics,
                                              progress))
        for record in collector.incomplete():
            records.append(record)
            futures.append(writers.submit(_write, config.output, record, metrics, progress))
        for future in futures:
            future.result()
    return records, collector


def _write(output: str, record: Record, metrics: JobMetrics,
           progress: ProgressDisplay) -> None:
    try:
        outputs.write_session(output, record)
    except Exception as exc:
        logger.error("could not write %s: %s", record["session_id"], describe(exc))
        record["status"] = "error"
        record["error"] = f"writing outputs failed: {describe(exc)}"
    metrics.session(record)
    progress.session(record)


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else 0.0


def parse_args(argv: list[str] | None) -> JobConfig:
    """The job's config from ``--config FILE`` (YAML) overridden by flags."""
    parser = argparse.ArgumentParser(
        prog="python -m ray_jobs.transcribe",
        description="Transcribe every session under --input into --output.")
    parser.add_argument("--config", help="YAML file with job, transcribe and resources keys")
    cfg.add_arguments(parser, JobConfig)
    cfg.add_arguments(parser.add_argument_group("transcription"), TranscribeOptions)
    cfg.add_arguments(parser.add_argument_group("resources"), ResourceConfig)
    args = vars(parser.parse_args(argv))
    config_file = args.pop("config")
    base = cfg.load_yaml(config_file) if config_file else {}
    if "input" not in args and "input" not in base or "output" not in args and "output" not in base:
        parser.error("--input and --output are required (as flags or in --config)")
    config: JobConfig = cfg.build(JobConfig, base, args)
    return config


def main(argv: list[str] | None = None) -> int:
    """CLI entry: exit 0 when every session is ok, 1 when any failed, 2 on bad usage."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = parse_args(argv)
        if not config.verbose:
            filter_native_stderr()
        summary = run_job(config)
    except ScribeError as exc:
        logger.error("%s", describe(exc))
        return 2
    sys.stdout.write(summary_text(summary) + "\n")
    return 1 if summary["sessions"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
