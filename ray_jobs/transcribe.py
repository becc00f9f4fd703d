"""``python -m ray_jobs.transcribe --input PREFIX --output PREFIX``: every session under a
prefix to transcripts, on Ray Data.

Sessions stream through CPU preprocessing actors into model actors (a fraction of a GPU
each); the driver assembles each session as soon as its last chunk comes back and writes
it, so a job stopped after an hour has kept an hour of work. Under ``ray job submit`` it
joins the cluster; alone it starts a local Ray.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ray_jobs import elastic
from ray_jobs.cluster import connect_ray, cpu_nodes, held_gpus, leave_to_others, live_nodes
from ray_jobs.collect import SessionCollector
from ray_jobs.graph import job_rows
from ray_jobs.layout import JobLayout, fit_to_work, layout_options, plan_resources, simulated
from ray_jobs.metrics import JobMetrics
from ray_jobs.preflight import preflight, preflight_nodes
from ray_jobs.progress_display import ProgressDisplay
from ray_jobs.quiet import filter_native_stderr, quiet_ray_data
from ray_jobs.recovery import JobStalledError, StallWatch, release_freed_memory, rows_in_passes
from ray_jobs.rows import Row
from ray_jobs.writer import SessionWriter
from scribe import config as cfg
from scribe.capacity import packing
from scribe.capacity.simulation import check_simulation
from scribe.config import JobConfig, ResourceConfig, TranscribeOptions
from scribe.errors import ScribeError, describe
from scribe.io import outputs, storage
from scribe.io.sessions import PackedSessions, SessionRef, list_sessions
from scribe.io.summary import SummaryTotals, summarize, summary_text
from scribe.pipeline.languages import check_sessions
from scribe.pipeline.whisper import model_n_mels, resolve_model_path

if TYPE_CHECKING:
    from ray_jobs.stages import StageClasses

logger = logging.getLogger("ray_jobs.transcribe")  # also when run as __main__


def run_job(config: JobConfig, stages: StageClasses | None = None) -> dict[str, Any]:
    """Transcribe every session of ``config.input`` not yet done; returns the summary.
    ``stages``: the Ray Data stages' classes (default :data:`ray_jobs.stages.JOB_STAGES`)."""
    import ray

    start = time.perf_counter()
    preflight(config)
    todo, skipped = _sessions_to_do(config)
    check_simulation(config.resources, config.transcribe)
    connect_ray(config)
    reserved = held_gpus()
    layout = plan_resources(layout_options(config.transcribe, config.resources),
                            config.resources,
                            ray.cluster_resources(),  # type: ignore[no-untyped-call]
                            reserved_gpus=reserved, saved=packing.read_plan(),
                            gpus_here=packing.read_gpus(), cpu_nodes=cpu_nodes())
    layout = simulated(layout, config.resources)
    leave_to_others(reserved)
    options = config.transcribe.model_copy(update={"device": layout.engine_device}).resolved()
    assert options.model is not None
    preflight_nodes(options, layout.engine_device, config.resources.simulated_gpus)
    n_mels = model_n_mels(resolve_model_path(options.model))
    layout = fit_to_work(layout, todo, options, config.resources)
    layout = elastic.with_grow_limits(layout, todo, options, config.resources)
    logger.info("plan: %s", layout)
    with JobMetrics(start, layout.gpus, config.gpu_hourly_usd) as metrics:
        totals, collector = _run(todo, options, config, layout, n_mels, metrics, stages)
    wall = time.perf_counter() - start
    actors = collector.actors.report(time.time(), live_nodes())
    summary = summarize(
        totals, wall_s=wall, gpus=layout.gpus, gpu_hourly_usd=config.gpu_hourly_usd,
        skipped=skipped,
        gpu_hours=actors["model_gpu_hours"] if layout.device == "cuda" and todo else None,
        extra={
            "model": options.model, "device": layout.device, "plan": layout.__dict__,
            "mean_batch_size": collector.mean_batch_size,
            "max_batch_sessions": collector.max_batch_sessions,
            **actors,
        })
    storage.write_atomic(storage.join(config.output, outputs.SUMMARY_FILE),
                         json.dumps(summary, indent=2))
    return summary


def _sessions_to_do(config: JobConfig) -> tuple[PackedSessions, int]:
    """The sessions of the input not yet done, longest first, and how many are done. The
    driver keeps them packed (:class:`PackedSessions`) for the whole job, and gives back
    the memory of the listing and of the set of those done before Ray starts."""
    sessions = list_sessions(config.input)
    if config.limit:
        sessions = sessions[: config.limit]
    check_sessions(config.transcribe, [(s.session_id, s.language) for s in sessions])
    storage.clean_stale_temps(config.output)
    done = set() if config.overwrite else outputs.done_sessions(
        config.output, [s.session_id for s in sessions])
    skipped = len(done)
    todo = PackedSessions(_longest_first([s for s in sessions if s.session_id not in done]))
    logger.info("%d sessions, %d already done, %d to transcribe",
                len(sessions), len(done), len(todo))
    del sessions, done
    release_freed_memory()  # the listing's, before Ray's start takes more
    return todo, skipped


def _longest_first(sessions: list[SessionRef]) -> list[SessionRef]:
    """Longest recordings first (:attr:`SessionRef.estimated_duration_s`): a long session's
    decode and VAD run before any of its chunks leave, so started last it starves the model
    actor at the end (the benchmark's profile showed a 23 s gap); started first, it
    overlaps the model actors' start-up, and short sessions fill the end."""
    return sorted(sessions, key=lambda s: -s.estimated_duration_s)


def _run(todo: PackedSessions, options: TranscribeOptions, config: JobConfig,
         layout: JobLayout, n_mels: int, metrics: JobMetrics, stages: StageClasses | None
         ) -> tuple[SummaryTotals, SessionCollector]:
    """Stream rows, write each finished session in the background; the summary's totals.
    A record lives only until it is written (:class:`ray_jobs.writer.SessionWriter`)."""
    collector = SessionCollector()
    totals = SummaryTotals()
    if not todo:
        return totals, collector
    quiet_ray_data(config.verbose)
    # ids only (tens of bytes a session), of the pass in flight: what a pass after a node
    # loss leaves out
    finished: set[str] = set()

    progress = ProgressDisplay(todo, sys.stderr, tty=sys.stderr.isatty())

    def between_passes() -> None:
        finished.clear()
        release_freed_memory()

    def run_pass(sessions: list[SessionRef], watch: StallWatch) -> Iterator[Row]:
        progress.expect(sessions)
        try:
            yield from job_rows(sessions, options, config.resources, layout, n_mels, stages,
                                watch)
        finally:  # done or given up: Ray Data has stopped the pass's actors
            collector.actors.pass_ended(time.time())

    passes = rows_in_passes(
        todo, run_pass, lambda: StallWatch(config.resources.stall_timeout_s, live_nodes),
        lambda: finished, collector.drop_unfinished,
        pass_size=config.resources.sessions_per_pass, between=between_passes)
    with progress, SessionWriter(config.output, totals, metrics, progress) as writer:
        for row in passes:
            record = collector.add(row)
            if record is not None:
                finished.add(record["session_id"])
                writer.submit(record)
        for record in collector.incomplete():
            writer.submit(record)
    return totals, collector


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
    """CLI entry: exit 0 when every session is ok, 1 when any failed, 2 on bad usage, 3
    when the cluster stalled (run it again: it resumes)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = parse_args(argv)
        if not config.verbose:
            filter_native_stderr()
        summary = run_job(config)
    except JobStalledError as exc:
        logger.error("%s", describe(exc))
        return 3
    except ScribeError as exc:
        logger.error("%s", describe(exc))
        return 2
    sys.stdout.write(summary_text(summary) + "\n")
    return 1 if summary["sessions"]["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
