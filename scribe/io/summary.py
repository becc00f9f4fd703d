"""What a run did and what it cost: throughput, time per stage, cost per audio hour."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

OPENAI_USD_PER_AUDIO_HOUR = 0.36  # $0.006 per audio minute


class SummaryTotals:
    """The few numbers per run the summary needs, added one record at a time, so that a
    driver over 100,000 sessions never holds their records (segments, text) to the end.
    Failed sessions are kept by id and error only."""

    def __init__(self) -> None:
        self.ok = 0
        self.audio_s = 0.0
        self.speech_s = 0.0
        self.stages: defaultdict[str, float] = defaultdict(float)
        self.failures: list[dict[str, Any]] = []

    def add(self, record: Mapping[str, Any]) -> None:
        """Count one finished session (ok or not); the record is not kept."""
        for stage, seconds in record.get("timings", {}).items():
            self.stages[stage] += seconds
        if record["status"] != "ok":
            self.failures.append({"session_id": record["session_id"],
                                  "error": record["error"]})
            return
        self.ok += 1
        self.audio_s += record["duration_s"]
        self.speech_s += record["speech_duration_s"]


def summarize(
    records: Iterable[Mapping[str, Any]] | SummaryTotals,
    *,
    wall_s: float,
    gpus: float,
    gpu_hourly_usd: float,
    skipped: int = 0,
    gpu_hours: float | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's summary, from the records or their :class:`SummaryTotals`. GPU hours are
    wall time x GPUs held unless ``gpu_hours`` gives what the model actors held; billed
    hours are those (x1 machine on a CPU-only run)."""
    if isinstance(records, SummaryTotals):
        totals = records
    else:
        totals = SummaryTotals()
        for record in records:
            totals.add(record)
    if gpu_hours is None:
        gpu_hours = wall_s / 3600.0 * gpus
        billed_hours = wall_s / 3600.0 * max(gpus, 1.0)  # a card is rented whole
    else:
        billed_hours = gpu_hours if gpus else wall_s / 3600.0
    cost = billed_hours * gpu_hourly_usd
    audio_hours = totals.audio_s / 3600.0
    return {
        "sessions": {"ok": totals.ok, "failed": len(totals.failures), "skipped": skipped},
        "failures": list(totals.failures),
        "audio_hours": audio_hours,
        "speech_hours": totals.speech_s / 3600.0,
        "wall_s": wall_s,
        "throughput_audio_s_per_wall_s": totals.audio_s / wall_s if wall_s > 0 else 0.0,
        "stage_seconds": dict(totals.stages),
        "gpus": gpus,
        "gpu_hours": gpu_hours,
        "gpu_hourly_usd": gpu_hourly_usd,
        "cost_usd": cost,
        "cost_per_audio_hour_usd": cost / audio_hours if audio_hours > 0 else None,
        "openai_cost_per_audio_hour_usd": OPENAI_USD_PER_AUDIO_HOUR,
        **(extra or {}),
    }


def summary_text(summary: dict[str, Any]) -> str:
    """The summary as a few human-readable lines for the terminal."""
    s = summary["sessions"]
    lines = [
        f"sessions: {s['ok']} ok, {s['failed']} failed, {s['skipped']} skipped (already done)",
        f"audio: {summary['audio_hours']:.3f} h ({summary['speech_hours']:.3f} h speech) "
        f"in {summary['wall_s']:.1f} s wall = "
        f"{summary['throughput_audio_s_per_wall_s']:.1f} audio-s per wall-s",
        "time per stage (s, summed over workers): " + ", ".join(
            f"{k} {v:.1f}" for k, v in sorted(summary["stage_seconds"].items())),
    ]
    per_hour = summary["cost_per_audio_hour_usd"]
    if per_hour is not None:
        held = (f"{summary['gpus']:g} GPUs" if summary["gpus"]
                else "no GPU: billed as one machine at that price")
        lines.append(
            f"cost: ${summary['cost_usd']:.4f} at ${summary['gpu_hourly_usd']:.2f}/GPU-h "
            f"({held}) = ${per_hour:.4f} per audio hour "
            f"(OpenAI API: ${summary['openai_cost_per_audio_hour_usd']:.2f})")
    lines += [f"FAILED {f['session_id']}: {f['error']}" for f in summary["failures"]]
    return "\n".join(lines)
