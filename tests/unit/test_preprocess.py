"""The whole CPU side on real recordings: decode, trim, normalise, VAD, chunk, features."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps
from threadpoolctl import threadpool_limits

from scribe.config import TranscribeOptions
from scribe.errors import AudioDecodeError, EmptyAudioError, InvalidInputError, ScribeError
from scribe.pipeline.audio import decode
from scribe.pipeline.features import N_FRAMES
from scribe.pipeline.preprocess import PreparedSession, analyse, preprocess
from tests import media

pytestmark = pytest.mark.unit

SR = media.SAMPLE_RATE
OPTIONS = TranscribeOptions()
STAGES = {"decode", "trim", "vad", "chunk", "features"}
JFK = media.EXAMPLES / "jfk.flac"


@pytest.fixture(scope="session")
def session_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("sessions")
    return root, media.make_session_tree(root)


@pytest.fixture(scope="module")
def jfk() -> PreparedSession:
    return preprocess(str(JFK), OPTIONS, n_mels=128)


def _assert_consistent(session: PreparedSession, n_mels: int) -> None:
    assert set(session.timings) == STAGES
    assert all(t >= 0 for t in session.timings.values())
    assert 0 <= session.speech_duration_s <= session.duration_s
    assert [c.plan.index for c in session.chunks] == list(range(len(session.chunks)))
    for c in session.chunks:
        assert c.features.shape[0] == n_mels
        assert 0 < c.features.shape[1] <= N_FRAMES
        assert c.features.dtype == np.float32
        assert c.features.shape[1] == int(round(c.plan.duration_s * SR)) // 160


def test_real_clip_gives_chunks(jfk: PreparedSession) -> None:
    _assert_consistent(jfk, 128)
    assert jfk.duration_s == pytest.approx(11.0, abs=0.05)
    assert len(jfk.chunks) == 1
    assert 5.0 < jfk.speech_duration_s <= jfk.duration_s
    assert jfk.warnings == []


def test_real_clip_source_info(jfk: PreparedSession) -> None:
    source = jfk.source
    assert (source["sample_rate"], source["channels"], source["codec"]) == (44_100, 2, "flac")
    assert 0 <= source["trimmed_start_s"] < source["trimmed_end_s"] <= jfk.duration_s


def test_segments_lie_inside_the_trimmed_range(jfk: PreparedSession) -> None:
    start = jfk.source["trimmed_start_s"] * SR
    end = jfk.source["trimmed_end_s"] * SR
    segments = [s for c in jfk.chunks for s in c.plan.ranges]
    assert segments
    assert all(start <= s["start"] < s["end"] <= end for s in segments)


def test_from_file_object(jfk: PreparedSession) -> None:
    with open(JFK, "rb") as handle:
        session = preprocess(handle, OPTIONS, n_mels=128)
    assert session.speech_duration_s == jfk.speech_duration_s
    np.testing.assert_array_equal(session.chunks[0].features, jfk.chunks[0].features)


def test_silence_gives_no_chunks(tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "muted.wav", media.silence(5.0))
    session = preprocess(str(path), OPTIONS, n_mels=80)
    assert session.chunks == []
    assert session.speech_duration_s == 0
    assert session.duration_s == pytest.approx(5.0)
    assert set(session.timings) == STAGES


def test_six_channel_96k(tmp_path: Path) -> None:
    path = media.six_channel_96k(tmp_path / "studio.wav", seconds=6.0)
    session = preprocess(str(path), OPTIONS, n_mels=80)
    _assert_consistent(session, 80)
    assert (session.source["sample_rate"], session.source["channels"]) == (96_000, 6)
    assert session.duration_s == pytest.approx(6.0, abs=0.05)
    assert session.chunks


def test_without_vad_chunks_cover_the_trimmed_audio(tmp_path: Path) -> None:
    path = media.write_audio(tmp_path / "long.flac", media.speech(70.0, seed=20))
    options = OPTIONS.model_copy(update={"vad_filter": False})
    session = preprocess(str(path), options, n_mels=80)
    _assert_consistent(session, 80)
    kept = session.source["trimmed_end_s"] - session.source["trimmed_start_s"]
    assert session.speech_duration_s == pytest.approx(kept)
    assert [c.plan.duration_s for c in session.chunks][:2] == [30.0, 30.0]


def test_matches_faster_whisper_batched_pipeline_without_trim_or_normalise() -> None:
    options = OPTIONS.model_copy(update={"trim_silence": False, "normalize": False})
    ours = preprocess(str(JFK), options, n_mels=80)
    audio = decode(str(JFK)).samples
    speech = get_speech_timestamps(audio, VadOptions(max_speech_duration_s=30,
                                                     min_silence_duration_ms=160))
    pieces, metadata = collect_chunks(audio, speech, max_duration=30)
    with threadpool_limits(limits=1, user_api="blas"):  # ours run on one thread, in any process
        theirs = [FeatureExtractor(feature_size=80)(p)[..., :-1] for p in pieces]
    assert [c.plan.offset_s for c in ours.chunks] == [m["offset"] for m in metadata]
    for chunk, features in zip(ours.chunks, theirs, strict=True):
        np.testing.assert_array_equal(chunk.features, features)


def test_unreadable_input_raises_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError):
        preprocess(str(media.zero_bytes(tmp_path / "empty.wav")), OPTIONS, n_mels=80)


def test_an_empty_input_is_refused_before_decoding(tmp_path: Path) -> None:
    for source in (str(media.zero_bytes(tmp_path / "empty.wav")), io.BytesIO()):
        with pytest.raises(EmptyAudioError, match="0 bytes"):
            analyse(source, OPTIONS)


def test_a_listed_size_spares_the_stat() -> None:
    with pytest.raises(EmptyAudioError):
        analyse(str(JFK), OPTIONS, size=0)  # the listing said so; nothing was read


def test_an_input_is_analysed_from_its_start(jfk: PreparedSession) -> None:
    with open(JFK, "rb") as handle:
        handle.seek(0, io.SEEK_END)  # as an upload is, once spooled
        session = analyse(handle, OPTIONS)
    assert session.speech_duration_s == analyse(str(JFK), OPTIONS).speech_duration_s
    assert session.speech_duration_s == jfk.speech_duration_s


def test_session_tree_outcomes_match_expectations(
    session_tree: tuple[Path, dict[str, str]],
) -> None:
    root, expected = session_tree
    assert any("/" in name for name in expected)  # nested folders are part of the mix
    assert sorted(expected) == sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    outcomes = {}
    for name in expected:
        try:
            session = preprocess(str(root / name), OPTIONS, n_mels=80)
            _assert_consistent(session, 80)
            outcomes[name] = "ok"
        except InvalidInputError as exc:
            assert str(exc)
            outcomes[name] = "error"
    assert outcomes == expected


def test_session_tree_silence_and_truncation(session_tree: tuple[Path, dict[str, str]]) -> None:
    root, _ = session_tree
    assert preprocess(str(root / "muted.wav"), OPTIONS, n_mels=80).chunks == []
    cut = preprocess(str(root / "2024" / "cut_off.mp3"), OPTIONS, n_mels=80)
    assert 8.0 < cut.duration_s < 12.0
    assert cut.chunks


@pytest.mark.slow
def test_long_session(tmp_path: Path) -> None:
    path = media.long_session(tmp_path / "all_hands.flac", minutes=10)
    session = preprocess(str(path), OPTIONS, n_mels=128)
    _assert_consistent(session, 128)
    assert session.duration_s == pytest.approx(600.0, abs=0.05)
    assert len(session.chunks) >= 600 * 0.5 / OPTIONS.chunk_length_s
    assert all(c.plan.duration_s <= OPTIONS.chunk_length_s for c in session.chunks)


def test_errors_are_scribe_errors_with_4xx(session_tree: tuple[Path, dict[str, str]]) -> None:
    root, expected = session_tree
    for name in (n for n, outcome in expected.items() if outcome == "error"):
        with pytest.raises(ScribeError) as caught:
            preprocess(str(root / name), OPTIONS, n_mels=80)
        assert 400 <= caught.value.http_status < 500
