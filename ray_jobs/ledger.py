"""Which model actors ran a job, on which nodes, and the GPU time they held.

The driver learns it from the chunks' results (:class:`ray_jobs.rows.ActorIdentity`): an
actor holds its GPUs from the moment it loaded its model until its pass ends (one Ray Data
execution: :mod:`ray_jobs.recovery`), or, where its node left the cluster mid-job, until
its last result came back. A restarted actor on another node counts on both. A few
numbers per actor, never per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class _Held:
    actor: str
    node: str
    gpus: float
    started: float
    last_seen: float
    pass_index: int
    closed: float | None = None


class ModelActorLedger:
    """The model actors seen in a job's results."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], _Held] = {}
        self._pass = 0

    def saw(self, result: dict[str, Any], now: float) -> None:
        """A chunk's result (Unix time ``now``) from the actor it names."""
        key = (result["actor"], result["node"])
        held = self._held.get(key)
        if held is None:
            self._held[key] = _Held(result["actor"], result["node"], result["actor_gpus"],
                                    result["actor_started"], now, self._pass)
        else:
            held.last_seen = max(held.last_seen, now)

    def pass_ended(self, now: float) -> None:
        """A pass ended at Unix time ``now``: Ray Data stopped its actors, which hold
        nothing from then on; the next results come from the next pass's actors."""
        for held in self._held.values():
            if held.closed is None:
                held.closed = now
        self._pass += 1

    def report(self, ended: float, live_nodes: set[str]) -> dict[str, Any]:
        """The summary's fields: the most actors one pass ran and, per node, the most it
        held in one pass; each actor's GPUs and held seconds, and their GPU hours
        (``ended``: when the model stage ended, for actors whose pass is still open)."""
        held_s = {key: max(0.0, ((held.closed or ended) if held.node in live_nodes
                                 else held.last_seen) - held.started)
                  for key, held in self._held.items()}
        per_pass: dict[int, set[str]] = {}
        per_node: dict[tuple[int, str], int] = {}
        for held in self._held.values():
            per_pass.setdefault(held.pass_index, set()).add(held.actor)
            key = (held.pass_index, held.node)
            per_node[key] = per_node.get(key, 0) + 1
        nodes: dict[str, int] = {}
        for (_, node), count in per_node.items():
            nodes[node] = max(nodes.get(node, 0), count)
        return {
            "model_actors_used": max((len(a) for a in per_pass.values()), default=0),
            "model_actor_nodes": nodes,
            "model_actors": [{"actor": h.actor, "node": h.node, "gpus": h.gpus,
                              "held_s": held_s[key]} for key, h in self._held.items()],
            "model_gpu_hours": sum(h.gpus * held_s[key]
                                   for key, h in self._held.items()) / 3600.0,
        }
