"""The Serve preprocessor's stream, driven in this process (no Ray): a long upload's first
chunks leave once its first VAD window is searched, not after the whole upload is, and
the chunks are the ones the whole-upload plan has. Counted in VAD windows, not timed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scribe.config import TranscribeOptions
from scribe.pipeline import preprocess
from scribe.pipeline.chunking import Chunk
from scribe.pipeline.vad import VAD_WINDOW_S
from serve_app.deployments import Analysed, PreprocessorReplica
from tests import media

pytestmark = pytest.mark.serve


async def _bytes(data: bytes) -> bytes:
    return data


async def _items(path: Path, options: TranscribeOptions, searched: list[int]
                 ) -> list[tuple[Analysed | Chunk, int]]:
    """Each item the preprocessor yields, with the VAD windows searched by then."""
    replica = PreprocessorReplica(n_mels=80)
    stream = replica.prepare([_bytes(path.read_bytes())], options)
    return [(item, len(searched)) async for item in stream]


@pytest.fixture
def searched(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The real VAD, each window it searches counted as it is handed on."""
    counted: list[int] = []
    real = preprocess.speech_windows

    def counting(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for window in real(*args, **kwargs):
            counted.append(len(window))
            yield window

    monkeypatch.setattr(preprocess, "speech_windows", counting)
    return counted


def test_long_upload_yields_chunks_after_its_first_vad_window(
        tmp_path: Path, test_options: TranscribeOptions, searched: list[int]) -> None:
    path = media.long_session(tmp_path / "long.flac", minutes=5)  # three VAD windows
    items = asyncio.run(_items(path, test_options, searched))

    first, _ = items[0]
    assert isinstance(first, Analysed) and not first.planned and first.error is None
    assert first.duration_s == pytest.approx(300, abs=1) and first.n_chunks == 0
    chunks = [(item, n) for item, n in items if isinstance(item, Chunk)]
    windows = -(-300 // VAD_WINDOW_S)
    assert len(searched) == windows == 3
    assert chunks[0][1] == 1, "the first chunk left once the first window was searched"
    assert sum(n < windows for _, n in chunks) >= 3, "chunks of the first two windows"
    last, _ = items[-1]
    assert isinstance(last, Analysed) and last.planned and last.error is None
    assert last.n_chunks == len(chunks) and last.speech_duration_s > 0
    assert "vad" in last.timings and "features" in last.timings

    whole = preprocess.analyse(path.open("rb"), test_options)
    assert [c.plan for c, _ in chunks] == whole.plans, "the same chunks as planned whole"
    assert last.speech_duration_s == pytest.approx(whole.speech_duration_s)


def test_split_channels_are_planned_whole_first(
        tmp_path: Path, test_options: TranscribeOptions, searched: list[int]) -> None:
    stereo = Path("examples/sessions/stereo_diarization.wav")
    options = test_options.model_copy(update={"speakers": "channels"})
    items = asyncio.run(_items(stereo, options, searched))

    chunks = [item for item, _ in items if isinstance(item, Chunk)]
    assert chunks and {c.plan.channel for c in chunks} == {0, 1}
    last = items[-1][0]
    assert isinstance(last, Analysed) and last.planned and last.n_chunks == len(chunks)


def test_undecodable_upload_is_the_only_item(
        tmp_path: Path, test_options: TranscribeOptions, searched: list[int]) -> None:
    items = asyncio.run(_items(media.not_audio(tmp_path / "page.mp3"), test_options,
                               searched))
    assert len(items) == 1
    failed = items[0][0]
    assert isinstance(failed, Analysed) and failed.error and 400 <= failed.status < 500
    assert not searched


def test_prompt_chains_do_not_hold_chunks_back(
        tmp_path: Path, test_options: TranscribeOptions, searched: list[int]) -> None:
    """The ingress keeps the chains (a chunk goes with its chain's text): the preprocessor
    sends each chunk once it is made, the first after the first window."""
    path = media.long_session(tmp_path / "long.flac", minutes=5)
    options = test_options.model_copy(update={"condition_on_previous_text": True,
                                              "prompt_chain": 4})
    items = asyncio.run(_items(path, options, searched))

    chunks = [(item, n) for item, n in items if isinstance(item, Chunk)]
    assert [c.plan.index for c, _ in chunks] == list(range(len(chunks)))
    assert chunks[0][1] == 1, "the first chunk left once the first window was searched"
