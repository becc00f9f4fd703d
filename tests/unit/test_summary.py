"""The run's summary: what counts toward throughput and cost, and how failures show."""

from __future__ import annotations

from typing import Any

import pytest

from scribe.io.summary import OPENAI_USD_PER_AUDIO_HOUR, summarize, summary_text

pytestmark = pytest.mark.unit


def _record(session_id: str, status: str = "ok", duration_s: float = 0.0,
            speech_s: float = 0.0, error: str | None = None,
            **timings: float) -> dict[str, Any]:
    return {"session_id": session_id, "status": status, "error": error,
            "duration_s": duration_s, "speech_duration_s": speech_s, "timings": timings}


RECORDS = [
    _record("a", duration_s=1800.0, speech_s=1500.0, decode=2.0, model=10.0),
    _record("b", duration_s=5400.0, speech_s=4000.0, decode=3.0, model=30.0),
    # a failed session's audio is not throughput, but its time was spent
    _record("c", "error", duration_s=600.0, speech_s=0.0, error="not audio", decode=0.5),
]


def test_throughput_and_hours_count_only_ok_sessions() -> None:
    summary = summarize(RECORDS, wall_s=720.0, gpus=1.0, gpu_hourly_usd=0.42)
    assert summary["audio_hours"] == pytest.approx(2.0)
    assert summary["speech_hours"] == pytest.approx(5500.0 / 3600.0)
    assert summary["throughput_audio_s_per_wall_s"] == pytest.approx(7200.0 / 720.0)
    assert summary["stage_seconds"] == {"decode": 5.5, "model": 40.0}


def test_cost_per_audio_hour_bills_every_gpu_held() -> None:
    summary = summarize(RECORDS, wall_s=1800.0, gpus=2.0, gpu_hourly_usd=0.40)
    assert summary["gpu_hours"] == pytest.approx(1.0)
    assert summary["cost_usd"] == pytest.approx(0.40)
    assert summary["cost_per_audio_hour_usd"] == pytest.approx(0.20)
    assert summary["openai_cost_per_audio_hour_usd"] == OPENAI_USD_PER_AUDIO_HOUR


def test_a_cpu_only_run_is_billed_as_one_machine() -> None:
    summary = summarize(RECORDS, wall_s=3600.0, gpus=0.0, gpu_hourly_usd=0.30)
    assert summary["gpu_hours"] == 0.0
    assert summary["cost_usd"] == pytest.approx(0.30)
    assert summary["cost_per_audio_hour_usd"] == pytest.approx(0.15)


def test_no_audio_means_no_cost_per_hour_and_no_throughput() -> None:
    summary = summarize([RECORDS[2]], wall_s=0.0, gpus=1.0, gpu_hourly_usd=0.42)
    assert summary["cost_per_audio_hour_usd"] is None
    assert summary["throughput_audio_s_per_wall_s"] == 0.0
    assert "cost:" not in summary_text(summary)


def test_failed_and_skipped_are_counted_and_failures_named() -> None:
    summary = summarize(RECORDS, wall_s=60.0, gpus=1.0, gpu_hourly_usd=0.42, skipped=4,
                        extra={"model": "tiny"})
    assert summary["sessions"] == {"ok": 2, "failed": 1, "skipped": 4}
    assert summary["failures"] == [{"session_id": "c", "error": "not audio"}]
    assert summary["model"] == "tiny"


def test_the_text_says_counts_throughput_cost_and_each_failure() -> None:
    text = summary_text(summarize(RECORDS, wall_s=720.0, gpus=1.0, gpu_hourly_usd=0.42,
                                  skipped=4))
    lines = text.splitlines()
    assert lines[0] == "sessions: 2 ok, 1 failed, 4 skipped (already done)"
    assert "10.0 audio-s per wall-s" in lines[1]
    assert "decode 5.5, model 40.0" in lines[2]
    assert "at $0.42/GPU-h" in lines[3] and "$0.0420 per audio hour" in lines[3]
    assert lines[-1] == "FAILED c: not audio"


def test_totals_added_one_by_one_give_the_summary_of_the_records() -> None:
    from scribe.io.summary import SummaryTotals

    totals = SummaryTotals()
    for record in RECORDS:
        totals.add(record)
    kwargs: dict[str, Any] = {"wall_s": 720.0, "gpus": 1.0, "gpu_hourly_usd": 0.42}
    assert summarize(totals, **kwargs) == summarize(RECORDS, **kwargs)


def test_gpu_hours_the_actors_held_are_billed_as_given() -> None:
    summary = summarize(RECORDS, wall_s=3600.0, gpus=2.0, gpu_hourly_usd=0.5, gpu_hours=1.5)
    assert summary["gpu_hours"] == 1.5
    assert summary["cost_usd"] == pytest.approx(0.75)
