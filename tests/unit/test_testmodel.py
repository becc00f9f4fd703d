"""The random-weight test model loads and runs in faster-whisper exactly like a real one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tokenizers
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.tokenizer import _LANGUAGE_CODES, Tokenizer
from faster_whisper.transcribe import Segment

from scribe.testing import testmodel
from scribe.testing.testmodel import MARKER_FILE, cached_test_model, make_test_model

pytestmark = pytest.mark.unit

SAMPLE_RATE = 16000


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_model(tmp_path_factory.mktemp("tiny"), "tiny", seed=0)


@pytest.fixture(scope="module")
def tiny_128_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_test_model(tmp_path_factory.mktemp("tiny128"), "tiny", n_mels=128, seed=0)


@pytest.fixture(scope="module")
def tiny_model(tiny_dir: Path) -> WhisperModel:
    return WhisperModel(str(tiny_dir), device="cpu", compute_type="int8", cpu_threads=2)


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def test_directory_has_the_converter_files(tiny_dir: Path) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    expected = {"model.bin", "config.json", "vocabulary.json", "tokenizer.json"}
    assert expected | {"preprocessor_config.json", MARKER_FILE} <= names
    assert (tiny_dir / "model.bin").stat().st_size < 100 * 2**20


def test_marker_says_it_is_a_test_model(tiny_dir: Path) -> None:
    marker = json.loads((tiny_dir / MARKER_FILE).read_text())
    assert marker["size"] == "tiny"
    assert marker["n_mels"] == 80
    assert marker["seed"] == 0
    assert "random weights" in marker["note"]


def test_loads_as_multilingual_80_mel(tiny_model: WhisperModel) -> None:
    assert tiny_model.model.is_multilingual
    assert tiny_model.model.n_mels == 80
    assert tiny_model.model.num_languages == 99
    assert tiny_model.feature_extractor.mel_filters.shape[0] == 80


def test_128_mel_variant_has_large_v3_layout(tiny_128_dir: Path) -> None:
    model = WhisperModel(str(tiny_128_dir), device="cpu", compute_type="int8", cpu_threads=2)
    assert model.model.is_multilingual
    assert model.model.n_mels == 128
    assert model.model.num_languages == 100
    assert model.feature_extractor.mel_filters.shape[0] == 128
    tok = Tokenizer(model.hf_tokenizer, True, task="transcribe", language="yue")
    assert (tok.language, tok.transcribe, tok.no_timestamps) == (50358, 50360, 50364)
    assert model.hf_tokenizer.get_vocab_size() == 51866
    segments, _ = model.transcribe(
        _noise(2), beam_size=1, max_new_tokens=4, language="en", temperature=0.0
    )
    list(segments)


def test_special_token_ids_match_whisper(tiny_model: WhisperModel) -> None:
    tok = Tokenizer(tiny_model.hf_tokenizer, True, task="transcribe", language="en")
    assert tok.sot == 50258
    assert tok.eot == 50257
    assert tok.language == 50259
    assert tok.translate == 50358
    assert tok.transcribe == 50359
    assert tok.sot_prev == 50361
    assert tok.no_speech == 50362
    assert tok.no_timestamps == 50363
    assert tok.timestamp_begin == 50364
    hf = tiny_model.hf_tokenizer
    assert hf.get_vocab_size() == 51865
    assert hf.id_to_token(51864) == "<|30.00|>"
    assert {hf.id_to_token(i)[2:-2] for i in range(50259, 50358)} == set(_LANGUAGE_CODES) - {"yue"}


@pytest.mark.parametrize(
    "text", ["Hello, world!", " the quick brown fox", "naïve café ♪ 日本語 -- 12:30", "a\nb\tc  "]
)
def test_tokenizer_round_trips(tiny_model: WhisperModel, text: str) -> None:
    tok = Tokenizer(tiny_model.hf_tokenizer, True, task="transcribe", language="en")
    ids = tok.encode(text)
    assert all(i < tok.eot for i in ids)
    assert tok.decode(ids) == text


def test_tokenizer_file_loads_on_its_own(tiny_dir: Path) -> None:
    hf = tokenizers.Tokenizer.from_file(str(tiny_dir / "tokenizer.json"))
    assert hf.decode(hf.encode("round trip").ids) == "round trip"


def test_ctranslate2_vocabulary_matches_tokenizer(tiny_dir: Path) -> None:
    vocabulary = json.loads((tiny_dir / "vocabulary.json").read_text())
    hf = tokenizers.Tokenizer.from_file(str(tiny_dir / "tokenizer.json"))
    assert vocabulary == [hf.id_to_token(i) for i in range(hf.get_vocab_size())]


def test_config_has_the_converter_keys(tiny_dir: Path) -> None:
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["lang_ids"] == list(range(50259, 50358))
    assert config["suppress_ids_begin"] == [220, 50257]
    assert 50258 in config["suppress_ids"]
    assert [2, 0] in config["alignment_heads"]
    assert json.loads((tiny_dir / "preprocessor_config.json").read_text())["feature_size"] == 80


def _decodes_its_tokens(model: WhisperModel, segment: Segment) -> bool:
    """Whether the segment's text is its tokens through the model's own tokenizer."""
    tok = Tokenizer(model.hf_tokenizer, True, task="transcribe", language="en")
    return bool(segment.tokens) and tok.decode(segment.tokens) == segment.text


def test_transcribe_runs_on_noise(tiny_model: WhisperModel) -> None:
    segments, info = tiny_model.transcribe(
        _noise(3), beam_size=1, max_new_tokens=8, language="en", vad_filter=False
    )
    segments = list(segments)
    assert segments
    assert all(0.0 <= s.start < s.end and _decodes_its_tokens(tiny_model, s) for s in segments)
    assert info.language == "en"
    assert info.duration == 3.0


def test_language_detection_runs(tiny_model: WhisperModel) -> None:
    segments, info = tiny_model.transcribe(
        _noise(2), beam_size=1, max_new_tokens=4, temperature=0.0, vad_filter=False
    )
    list(segments)
    assert info.language in _LANGUAGE_CODES


def test_word_timestamps_run(tiny_model: WhisperModel) -> None:
    segments, _ = tiny_model.transcribe(
        _noise(2),
        beam_size=1,
        max_new_tokens=4,
        language="en",
        temperature=0.0,
        word_timestamps=True,
        # With timestamp tokens this random model's guesses leave no segment on this clip;
        # without, its text is one segment that the cross-attention alignment splits.
        without_timestamps=True,
    )
    segments = list(segments)
    assert segments
    for segment in segments:
        assert segment.words
        assert "".join(w.word for w in segment.words) == segment.text
        assert all(segment.start <= w.start <= w.end <= segment.end <= 2.0
                   for w in segment.words)


def test_batched_pipeline_runs(tiny_model: WhisperModel) -> None:
    pipeline = BatchedInferencePipeline(tiny_model)
    # Without VAD the batched pipeline needs clip_timestamps past 30 s: stay under it.
    segments, _ = pipeline.transcribe(
        _noise(20), batch_size=4, beam_size=1, max_new_tokens=8, language="en", vad_filter=False
    )
    segments = list(segments)
    # one chunk, and without timestamps one segment over all of it
    assert [(s.start, s.end) for s in segments] == [(0.0, 20.0)]
    assert _decodes_its_tokens(tiny_model, segments[0])


def test_same_seed_same_bytes_other_seed_other_bytes(tiny_dir: Path, tmp_path: Path) -> None:
    again = make_test_model(tmp_path / "again", "tiny", seed=0)
    other = make_test_model(tmp_path / "other", "tiny", seed=1)
    first = (tiny_dir / "model.bin").read_bytes()
    assert (again / "model.bin").read_bytes() == first
    assert (other / "model.bin").read_bytes() != first


def test_cached_model_is_built_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRIBE_TEST_MODEL_CACHE", str(tmp_path))
    first = cached_test_model("tiny", seed=3)
    mtime = (first / "model.bin").stat().st_mtime_ns
    second = cached_test_model("tiny", seed=3)
    assert second == first == tmp_path / "tiny-80-3"
    assert (second / "model.bin").stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-80-3"]


def test_cached_model_tolerates_a_concurrent_builder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process publishes first: ours is dropped, theirs is returned."""
    monkeypatch.setenv("SCRIBE_TEST_MODEL_CACHE", str(tmp_path))
    final = tmp_path / "tiny-80-0"

    def racing_build(out_dir: Path, *args: object, **kwargs: object) -> Path:
        final.mkdir()
        (final / MARKER_FILE).write_text('{"winner": true}')
        (Path(out_dir) / MARKER_FILE).write_text('{"winner": false}')
        return Path(out_dir)

    monkeypatch.setattr(testmodel, "make_test_model", racing_build)
    assert cached_test_model("tiny") == final
    assert json.loads((final / MARKER_FILE).read_text()) == {"winner": True}
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-80-0"]


@pytest.mark.parametrize(("size", "n_mels"), [("huge", None), ("tiny", 96)])
def test_rejects_unknown_shapes(tmp_path: Path, size: str, n_mels: int | None) -> None:
    with pytest.raises(ValueError):
        make_test_model(tmp_path, size, n_mels=n_mels)


def test_decoder_depth_follows_the_architecture_table(tmp_path: Path) -> None:
    # distil-small: 12 encoder layers, 2 decoder layers (the smallest distilled shape)
    out = make_test_model(tmp_path / "distil", "distil-small", quantization="int8")
    weights = (out / "model.bin").read_bytes()
    assert b"encoder/layer_11/" in weights and b"decoder/layer_1/" in weights
    assert b"decoder/layer_2/" not in weights
    model = WhisperModel(str(out), device="cpu", compute_type="int8", cpu_threads=2)
    segments, _ = model.transcribe(_noise(2), beam_size=1, max_new_tokens=4, language="en")
    assert all(s.end >= s.start for s in segments)
