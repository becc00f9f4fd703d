"""What a run did and what it cost: throughput, time per stage, cost per audio hour."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

OPENAI_USD_PER_AUDIO_HOUR = 0.36  # $0.006 per audio minute


def summarize(
    records: Iterable[Mapping[str, Any]],
    *,
    wall_s: float,
    gpus: float,
    gpu_hourly_usd: float,
    skipped: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's summary. Billed hours are wall time x GPUs held (x1 on a CPU-only run)."""
    records = list(records)
    ok = [r for r in records if r["status"] == "ok"]
    failed = [r for r in records if r["status"] != "ok"]
    audio_s = sum(r["duration_s"] for r in ok)
    speech_s = sum(r["speech_duration_s"] for r in ok)
    stages: defaultdict[str, float] = defaultdict(float)
    for r in records:
        for stage, seconds in r.get("timings", {}).items():
            stages[stage] += seconds
    billed_hours = wall_s / 3600.0 * max(gpus, 1.0)
    cost = billed_hours * gpu_hourly_usd
    audio_hours = audio_s / 3600.0
    return {
        "sessions": {"ok": len(ok), "failed": len(failed), "skipped": skipped},
        "failures": [{"session_id": r["session_id"], "error": r["error"]} for r in failed],
        "audio_hours": audio_hours,
        "speech_hours": speech_s / 3600.0,
        "wall_s": wall_s,
        "throughput_audio_s_per_wall_s": audio_s / wall_s if wall_s > 0 else 0.0,
        "stage_seconds": dict(stages),
        "gpus": gpus,
        "gpu_hours": wall_s / 3600.0 * gpus,
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
