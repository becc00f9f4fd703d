"""``scribe serve``: the online service in the foreground, from config.yaml plus flags.

Reads the same file ``serve run`` reads (its first application's ``args`` and
``deployments``, and ``http_options``), lets the engine's typed flags override the args,
and runs until Ctrl-C. ``scribe serve --model large-v3`` is the whole story on a GPU box.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from pathlib import Path
from typing import Any

from scribe import config as cfg
from scribe.config import ResourceConfig, TranscribeOptions
from scribe.errors import ScribeError, describe

logger = logging.getLogger("serve_app.cli")

DEFAULT_CONFIG = Path(__file__).with_name("config.yaml")
_LISTEN = ("config", "host", "port")


# The batch job's pools and their recovery: a service has replicas, not these.
BATCH_ONLY = ("preprocess_actors", "model_actors", "max_model_actors", "stall_timeout_s",
              "sessions_per_pass")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Flags: the config file, where to listen, and every engine option."""
    parser = argparse.ArgumentParser(
        prog="scribe serve",
        description="Run the OpenAI-compatible transcription service on Ray Serve.")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help="Serve config file (default: %(default)s)")
    parser.add_argument("--host", help="address to listen on (default: the file's, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: the file's, 8000)")
    parser.add_argument("--max-body-bytes", type=int, dest="max_body_bytes",
                        default=argparse.SUPPRESS, help="larger uploads get 413 (default: 1 GiB)")
    cfg.add_arguments(parser.add_argument_group("transcription"), TranscribeOptions)
    cfg.add_arguments(parser.add_argument_group("resources"), ResourceConfig, skip=BATCH_ONLY)
    return parser.parse_args(argv)


def config_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The flags that override the file's args; where to listen and the file stay apart."""
    return {k: v for k, v in vars(args).items() if k not in _LISTEN}


def serve_forever(file: dict[str, Any], args: argparse.Namespace) -> None:
    """Start Serve with the file's HTTP options and run the app until interrupted."""
    import ray
    from ray import serve

    from ray_jobs.cluster import init_address
    from serve_app.app import APP_NAME, build_app
    from serve_app.settings import ServeConfig

    application = (file.get("applications") or [{}])[0]
    config = cfg.build(ServeConfig, application.get("args") or {}, config_flags(args))
    deployments = {d["name"]: d for d in application.get("deployments") or []}
    http = {"host": "127.0.0.1", "port": 8000, **(file.get("http_options") or {})}
    http.update({k: v for k, v in (("host", args.host), ("port", args.port)) if v})
    if not ray.is_initialized() and init_address() == "local":
        ray.init(address="local")  # a dead `ray start` record: serve.start would hang on it
    serve.start(http_options=http)
    # After Ray's own handlers: SIGTERM (docker stop, systemd, kubectl) then drains like
    # Ctrl-C instead of killing requests in flight.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        serve.run(build_app(config, deployments), name=application.get("name", APP_NAME),
                  route_prefix=application.get("route_prefix", "/"))
        logger.info("ready: http://%s:%s/v1 (Ctrl-C to stop)", http["host"], http["port"])
        while True:
            time.sleep(3600)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """CLI entry: 0 after Ctrl-C, 2 on a bad config or flag."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        file = cfg.load_yaml(args.config) if args.config else {}
        serve_forever(file, args)
    except ScribeError as exc:
        logger.error("%s", describe(exc))
        return 2
    except KeyboardInterrupt:
        logger.info("stopped")
    return 0
