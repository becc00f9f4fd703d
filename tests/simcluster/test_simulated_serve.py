"""Serve's GPU layout on nodes that declare GPUs (``simulated_gpus``): k Transcriber
replicas per declared GPU, each asking for 1/k of one, every node used, while the engine
computes on CPU and answers the ``openai`` client with the real tiny.en's words."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.simcluster.conftest import ROOT, add_gpu_node

pytestmark = pytest.mark.simcluster

# Run in a child joined to the cluster: this process may hold the suite's own Ray, and a
# process connects to one Ray at a time.
SERVE_ON_CLUSTER = """
import json, sys
import ray
from openai import OpenAI
from ray import serve
from ray._private import state
from scribe.config import ResourceConfig, TranscribeOptions
from scribe.pipeline.bundled import bundled_model_path
from serve_app.app import build_app
from serve_app.settings import ServeConfig
from tests.serve.support import free_port, wait_for_serve_to_exit

ray.init(address=sys.argv[1], log_to_driver=False)
port = free_port()
serve.start(http_options={"host": "127.0.0.1", "port": port})
try:
    config = ServeConfig(
        transcribe=TranscribeOptions(model=str(bundled_model_path("tiny.en"))),
        resources=ResourceConfig(simulated_gpus="on", actors_per_gpu=2, preprocess_cpus=0.5,
                                 model_batch_size=4))
    serve.run(build_app(config), name="simulated", route_prefix="/")
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0)
    with open(sys.argv[2], "rb") as audio:
        text = client.audio.transcriptions.create(model="whisper-1", file=audio).text
    replicas = [a["Address"]["NodeID"] for a in state.actors().values()
                if "Transcriber" in a["ActorClassName"] and a["State"] == "ALIVE"]
    gpus = [ray.cluster_resources().get("GPU"), ray.available_resources().get("GPU", 0.0)]
    print("FOUND " + json.dumps({"text": text, "replicas": replicas, "gpus": gpus}), flush=True)
finally:
    serve.shutdown()
    wait_for_serve_to_exit()
    ray.shutdown()
"""


def test_k_replicas_per_declared_gpu_on_every_node_answer_with_words(sim_cluster: Any) -> None:
    nodes = [add_gpu_node(sim_cluster) for _ in range(2)]
    jfk = ROOT / "examples" / "sessions" / "jfk.flac"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-c", SERVE_ON_CLUSTER, sim_cluster.address,
                           str(jfk)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("FOUND ")]
    assert lines, done.stdout[-4000:]
    found = json.loads(lines[-1].removeprefix("FOUND "))
    assert "ask not what your country can do for you" in found["text"].lower()
    assert sorted(found["replicas"]) == sorted(n.node_id for n in nodes for _ in "ab"), \
        "two replicas on each node's one declared GPU"
    assert found["gpus"] == [2.0, 0.0], "the four replicas hold the two GPUs, half each"
