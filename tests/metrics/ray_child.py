"""A dedicated local Ray for the Prometheus test, in a child process.

The session's ``ray_local`` may already hold this process's Ray (without a known metrics
port, and with counters from other tests), so this test gets its own: a child that starts
Ray with its metrics agent on a given port and a 1 s report interval, runs the batch job
on ``INPUT`` into ``OUTPUT``, then serves the test app on loopback. It prints one JSON line
(the Serve URL) when both are up, and shuts Serve and Ray down when its stdin closes, so
it cannot outlive the test.

    python -m tests.metrics.ray_child INPUT OUTPUT METRICS_PORT SERVE_PORT OPTIONS_JSON

OPTIONS_JSON is the tests' ``test_options``, which the parent has as a fixture.
"""

from __future__ import annotations

import json
import logging
import sys

from scribe.config import JobConfig, ResourceConfig, TranscribeOptions

# The metrics agent flushes what workers record every report interval (Ray's default is
# 10 s); 1 s keeps the test's wait for Prometheus short.
REPORT_INTERVAL_MS = 1000


def main(input: str, output: str, metrics_port: int, serve_port: int,
         options: TranscribeOptions) -> None:
    import ray
    from ray import serve

    from ray_jobs.transcribe import run_job
    from serve_app.app import build_app
    from tests.serve.support import serve_config

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False, _metrics_export_port=metrics_port,
             _system_config={"metrics_report_interval_ms": REPORT_INTERVAL_MS})
    try:
        run_job(JobConfig(input=input, output=output, transcribe=options,
                          resources=ResourceConfig(model_batch_size=8)))
        serve.start(http_options={"host": "127.0.0.1", "port": serve_port})
        serve.run(build_app(serve_config(options)), name="scribe", route_prefix="/")
        print(json.dumps({"url": f"http://127.0.0.1:{serve_port}"}), flush=True)
        sys.stdin.read()  # the parent holds it open until it is done (or gone)
        serve.shutdown()  # type: ignore[no-untyped-call]
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
         TranscribeOptions.model_validate_json(sys.argv[5]))
