"""The pools' growth limits."""

from __future__ import annotations

import pytest

from ray_jobs import elastic
from ray_jobs.layout import plan_resources
from scribe.config import ResourceConfig, TranscribeOptions
from scribe.io.sessions import SessionRef

pytestmark = pytest.mark.unit

GPU = TranscribeOptions(model="/models/x", device="cuda", condition_on_previous_text=False)


def _clips(count: int, seconds: float | None = 15.0) -> list[SessionRef]:
    return [SessionRef(session_id=f"c{i}", uri=f"/in/c{i}.mp3",
                       size=None if seconds is None else int(seconds * 16_000))
            for i in range(count)]


def test_the_model_pool_grows_to_the_work_or_the_configs_limit() -> None:
    layout = plan_resources(GPU, ResourceConfig(model_batch_size=4), {"CPU": 8, "GPU": 1})
    assert (layout.model_actors, layout.preprocess_actors) == (2, 8)
    # 40 one-chunk sessions at batch 4: 10 calls, so at most 10 actors; preprocessing x5
    assert elastic.grow_limits(layout, _clips(40), GPU, ResourceConfig()) == (10, 40)
    limited = ResourceConfig(max_model_actors=4, preprocess_actors=3)
    assert elastic.grow_limits(layout, _clips(40), GPU, limited) == (4, 8)
    unknown = elastic.grow_limits(layout, _clips(3, None), GPU, ResourceConfig())
    assert unknown[0] == elastic.DEFAULT_MAX_MODEL_ACTORS
    # never below the start, and fixed actors stay fixed unless a maximum is set
    assert elastic.grow_limits(layout, _clips(1), GPU, ResourceConfig())[0] == 2
    fixed = ResourceConfig(model_actors=2)
    assert elastic.grow_limits(layout, _clips(40), GPU, fixed) == (2, 8)


def test_pools_grow_at_full_use_on_gpus_and_keep_rays_threshold_on_a_cpu_engine() -> None:
    from ray.data import DataContext

    context = DataContext.get_current().copy()
    gpu = plan_resources(GPU, ResourceConfig(model_batch_size=4), {"CPU": 8, "GPU": 1})
    elastic.tune_pools(context, gpu)
    assert context.autoscaling_config.actor_pool_util_upscaling_threshold == 1.0
    assert context.max_consecutive_actor_init_deaths >= elastic.ACTOR_INIT_DEATHS
    cpu = plan_resources(TranscribeOptions(model="/models/x", device="cpu"), ResourceConfig(),
                         {"CPU": 2})
    elastic.tune_pools(context, cpu)  # a model actor's threads use the cores Ray sees free
    assert context.autoscaling_config.actor_pool_util_upscaling_threshold == type(
        context.autoscaling_config)().actor_pool_util_upscaling_threshold
