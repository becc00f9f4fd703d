"""``python probe.py DASHBOARD_URL nodes|actors|job ID``: what the cluster says, as JSON.

Run inside the lab's client namespace (the "laptop"), with the token in the environment;
the test reads its stdout.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def nodes(address: str) -> list[dict[str, Any]]:
    from ray.util.state import list_nodes

    return [{"id": n.node_id, "ip": n.node_ip, "state": n.state, "head": n.is_head_node}
            for n in list_nodes(address=address, raise_on_missing_output=False)]


def actors(address: str) -> list[dict[str, Any]]:
    from ray.util.state import list_actors

    ip = {n["id"]: n["ip"] for n in nodes(address)}
    return [{"class": a.class_name, "state": a.state, "ip": ip.get(a.node_id, "")}
            for a in list_actors(address=address, detail=True, limit=10_000,
                                 raise_on_missing_output=False)]


def job(address: str, submission_id: str) -> dict[str, Any]:
    from ray.job_submission import JobSubmissionClient

    info = JobSubmissionClient(address).get_job_info(submission_id)
    driver = info.driver_info
    return {"status": str(info.status.value), "message": info.message,
            "driver_ip": driver.node_ip_address if driver else ""}


def main(argv: list[str]) -> int:
    address, what = argv[1], argv[2]
    result: Any = {"nodes": lambda: nodes(address), "actors": lambda: actors(address),
                   "job": lambda: job(address, argv[3])}[what]()
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
