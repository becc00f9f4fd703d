"""Which model actors ran a job, on which nodes, and the GPU time they held.

The driver learns it from the chunks' results (:class:`ray_jobs.rows.ActorIdentity`): an
actor holds its GPUs from the moment it loaded its model until the model stage ends, or,
where its node left the cluster mid-job, until its last result came back. A restarted
actor on another node counts on both. A few numbers per actor, never per session.
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


class ModelActorLedger:
    """The model actors seen in a job's results."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], _Held] = {}

    def saw(self, result: dict[str, Any], now: float) -> None:
        """A chunk's result (Unix time ``now``) from the actor it names."""
        key = (result["actor"], result["node"])
        held = self._held.get(key)
        if held is None:
            self._held[key] = _Held(result["actor"], result["node"], result["actor_gpus"],
                                    result["actor_started"], now)
        else:
            held.last_seen = max(held.last_seen, now)

    def report(self, ended: float, live_nodes: set[str]) -> dict[str, Any]:
        """The summary's fields: actors used, actors per node, each actor's GPUs and held
        seconds, and their GPU hours (``ended``: when the model stage ended)."""
        held_s = {key: max(0.0, (ended if held.node in live_nodes else held.last_seen)
                           - held.started) for key, held in self._held.items()}
        nodes: dict[str, int] = {}
        for held in self._held.values():
            nodes[held.node] = nodes.get(held.node, 0) + 1
        return {
            "model_actors_used": len({actor for actor, _ in self._held}),
            "model_actor_nodes": nodes,
            "model_actors": [{"actor": h.actor, "node": h.node, "gpus": h.gpus,
                              "held_s": held_s[key]} for key, h in self._held.items()],
            "model_gpu_hours": sum(h.gpus * held_s[key]
                                   for key, h in self._held.items()) / 3600.0,
        }
