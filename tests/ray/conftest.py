"""A real local Ray for the tier's tests, started once and shut down at the end."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from scribe.config import JobConfig, ResourceConfig, TranscribeOptions


@pytest.fixture(scope="session")
def ray_local(s3_server: Any) -> Iterator[Any]:
    """Ray on this machine only: 2 CPUs, no dashboard. Its workers inherit the environment
    at start, so the loopback S3 server's variables are set first."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def job_config(test_options: TranscribeOptions):  # type: ignore[no-untyped-def]
    """A factory: the job's config for ``input``/``output`` with the test model."""

    def make(input: str, output: str, **changes: Any) -> JobConfig:
        return JobConfig(input=input, output=output, transcribe=test_options,
                         resources=ResourceConfig(model_batch_size=8), **changes)

    return make
