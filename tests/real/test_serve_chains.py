"""Streamed text against the plain answer and the batch job's, with the real tiny.en: a
prompt chain's text does not depend on what shares the model's batches, nor on when.

Decoding here has no temperature fallback: a fallback samples, and CTranslate2's sampler
cannot be seeded per call (its generator is one per worker thread, seeded once), so a
chunk that falls back reads differently from one run to the next, streamed or not, as
with OpenAI's own fallback (docs/streaming.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from scribe.config import TranscribeOptions
from tests import media
from tests.real.conftest import JFK_WORDS, words
from tests.serve.support import served

pytestmark = [pytest.mark.real, pytest.mark.serve]


@pytest.fixture(scope="module")
def greedy(real_options: TranscribeOptions) -> TranscribeOptions:
    """tiny.en as the tier runs it, without the sampled fallback."""
    return real_options.model_copy(update={"temperature_fallback": ()})


@pytest.fixture(scope="module")
def api(ray_local: Any, greedy: TranscribeOptions) -> Iterator[str]:
    """Model batches of 3, fewer than a chain's 4 chunks: batching cuts every chain."""
    with served(greedy, "chains", model_batch_size=3) as url:
        yield url


def _as_the_job(path: str, options: TranscribeOptions) -> tuple[int, str]:
    """The session's chunks and text as the job's model stage makes them: all its chunks
    in one engine call (its chains whole), in a Ray worker like the job's (holding no CPU:
    Serve holds them here). A worker's threads are set as the replica's are, and
    CTranslate2's output changes with them."""
    from scribe.pipeline.preprocess import preprocess
    from scribe.pipeline.transcript import ok_record, record_base
    from scribe.pipeline.whisper import WhisperEngine

    prepared = preprocess(path, options, 80)
    outputs = WhisperEngine(options).transcribe(prepared.chunks)
    record = ok_record(record_base("job", model=None, analysis=prepared), outputs)
    return len(prepared.chunks), record["text"]


def test_streamed_text_is_the_plain_and_the_jobs_text_whatever_shares_the_batches(
        api: str, greedy: TranscribeOptions, tmp_path: Any) -> None:
    """200 s of speech: seven chunks, two prompt chains, cut by VAD's 120 s windows and by
    batches of 3. The stream runs alone, the plain answer beside another upload (other
    batches, other timing); both give, letter for letter, what the engine's chains give
    in one call, as the batch job decodes them."""
    import ray
    from openai import OpenAI

    client = OpenAI(base_url=api, api_key="unused", max_retries=0, timeout=600)
    path = media.write_audio(tmp_path / "talk.flac", media.speech(200, seed=5))
    other = media.write_audio(tmp_path / "other.flac", media.speech(150, seed=8))
    with path.open("rb") as f:
        events = list(client.audio.transcriptions.create(model="whisper-1", file=f,
                                                         stream=True))
    with ThreadPoolExecutor(1) as pool, path.open("rb") as f, other.open("rb") as g:
        beside = pool.submit(client.audio.transcriptions.create, model="whisper-1", file=g)
        plain = client.audio.transcriptions.create(model="whisper-1", file=f)
        assert beside.result().text
    chunks, job = ray.get(ray.remote(num_cpus=0)(_as_the_job).remote(str(path), greedy))

    assert chunks > greedy.prompt_chain, "two chains or more"
    *deltas, done = events
    assert len(deltas) == chunks and done.type == "transcript.text.done"
    assert "".join(d.delta for d in deltas) == done.text
    assert done.text == plain.text, "streamed alone, plain beside another upload"
    assert plain.text == job, "the job's chains"
    assert set(JFK_WORDS.split()) <= set(words(done.text).split())
