"""The model actors a job saw and the GPU time they held."""

from __future__ import annotations

from typing import Any

import pytest

from ray_jobs.ledger import ModelActorLedger

pytestmark = pytest.mark.unit


def _result(actor: str, node: str, gpus: float = 0.5, started: float = 100.0) -> dict[str, Any]:
    return {"actor": actor, "node": node, "actor_gpus": gpus, "actor_started": started}


def test_actors_are_held_until_the_end_or_their_lost_nodes_last_result() -> None:
    ledger = ModelActorLedger()
    ledger.saw(_result("a", "n1"), 110.0)
    ledger.saw(_result("b", "n1"), 120.0)
    ledger.saw(_result("c", "n2"), 130.0)
    ledger.saw(_result("c", "n2"), 150.0)  # n2 leaves after this
    ledger.saw(_result("c", "n3", started=160.0), 170.0)  # restarted on a new node
    report = ledger.report(ended=200.0, live_nodes={"n1", "n3"})
    assert report["model_actors_used"] == 3
    assert report["model_actor_nodes"] == {"n1": 2, "n2": 1, "n3": 1}
    held = {(e["actor"], e["node"]): e["held_s"] for e in report["model_actors"]}
    assert held == {("a", "n1"): 100.0, ("b", "n1"): 100.0, ("c", "n2"): 50.0,
                    ("c", "n3"): 40.0}
    assert report["model_gpu_hours"] == pytest.approx(0.5 * 290.0 / 3600.0)


def test_each_pass_holds_its_own_actors_until_it_ends() -> None:
    """Passes of a bounded size (ray_jobs.recovery) each start actors anew: an actor is
    billed until its pass ended, and the summary counts the most one pass ran."""
    ledger = ModelActorLedger()
    ledger.saw(_result("a", "n1"), 110.0)
    ledger.saw(_result("b", "n2"), 120.0)
    ledger.pass_ended(150.0)
    ledger.saw(_result("c", "n1", started=160.0), 170.0)
    ledger.saw(_result("d", "n1", started=160.0), 175.0)
    ledger.pass_ended(190.0)
    report = ledger.report(ended=500.0, live_nodes={"n1", "n2"})
    held = {e["actor"]: e["held_s"] for e in report["model_actors"]}
    assert held == {"a": 50.0, "b": 50.0, "c": 30.0, "d": 30.0}
    assert report["model_actors_used"] == 2
    assert report["model_actor_nodes"] == {"n1": 2, "n2": 1}
    assert report["model_gpu_hours"] == pytest.approx(0.5 * 160.0 / 3600.0)
