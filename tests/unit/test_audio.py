"""Decode any container to 16 kHz mono float32; refuse bad input with the right error; trim
and normalise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.fs
import pytest

from scribe.errors import (
    AudioDecodeError,
    DecodeTimeoutError,
    EmptyAudioError,
    UnsupportedAudioError,
)
from scribe.pipeline.audio import decode, peak_normalize, trim_silence
from tests import media

pytestmark = pytest.mark.unit

SR = media.SAMPLE_RATE
TOLERANCE_S = 0.05
FRAME = SR * 20 // 1000

# name -> (source rate, channels, seconds). Opus decodes at 48 kHz whatever it was fed.
CONTAINERS = {
    "speech.wav": (16_000, 1, 3.0),
    "speech.flac": (44_100, 2, 3.2),
    "speech.mp3": (44_100, 2, 3.4),
    "speech.m4a": (48_000, 2, 3.6),
    "speech.ogg": (48_000, 1, 3.8),
    "speech.opus": (24_000, 1, 4.0),
    "speech.webm": (48_000, 2, 4.2),
    "screen.mp4": (48_000, 2, 4.4),
}


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("audio")
    made = {
        name: media.write_audio(root / name, media.speech(seconds, seed=i), rate=rate,
                                channels=channels)
        for i, (name, (rate, channels, seconds)) in enumerate(CONTAINERS.items())
    }
    made["phone_8k.wav"] = media.wav_8k_mono(root / "phone_8k.wav", seconds=3.0)
    made["studio_96k.wav"] = media.six_channel_96k(root / "studio_96k.wav", seconds=3.0)
    made["empty.wav"] = media.zero_bytes(root / "empty.wav")
    made["error_page.mp3"] = media.not_audio(root / "error_page.mp3")
    made["no_audio.mp4"] = media.video_without_audio(root / "no_audio.mp4")
    made["cut_off.mp3"] = media.truncated_mp3(root / "cut_off.mp3", seconds=20.0)
    return made


def _tone(hz: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _magnitude_at(samples: np.ndarray, hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(samples)) / (len(samples) / 2)
    return float(spectrum[int(round(hz * len(samples) / SR))])


def _dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / SR)[np.argmax(spectrum)])


def _assert_16k_mono(samples: np.ndarray, seconds: float) -> None:
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert len(samples) / SR == pytest.approx(seconds, abs=TOLERANCE_S)


# --- decode: containers, file objects, channels and rates ---------------------------------


@pytest.mark.parametrize("name", list(CONTAINERS))
def test_every_container_decodes_to_16k_mono(files: dict[str, Path], name: str) -> None:
    rate, channels, seconds = CONTAINERS[name]
    decoded = decode(str(files[name]))
    _assert_16k_mono(decoded.samples, seconds)
    assert decoded.duration_s == pytest.approx(seconds, abs=TOLERANCE_S)
    assert decoded.source_channels == channels
    assert decoded.source_sample_rate == (48_000 if decoded.codec == "opus" else rate)
    assert decoded.warnings == []
    assert np.max(np.abs(decoded.samples)) > 0.1  # speech, not silence


def test_lossless_16k_round_trip_is_sample_exact(files: dict[str, Path]) -> None:
    decoded = decode(str(files["speech.wav"])).samples
    original = media.speech(3.0, seed=0)
    np.testing.assert_allclose(decoded, original, atol=1 / 32768 + 1e-6)


@pytest.mark.parametrize("name", ["speech.wav", "speech.mp3", "speech.m4a", "screen.mp4"])
def test_decodes_from_file_object(files: dict[str, Path], name: str) -> None:
    with open(files[name], "rb") as handle:
        decoded = decode(handle)
    _assert_16k_mono(decoded.samples, CONTAINERS[name][2])


@pytest.mark.parametrize("name", ["speech.flac", "speech.mp3", "screen.mp4"])
def test_decodes_from_pyarrow_input_file(files: dict[str, Path], name: str) -> None:
    with pyarrow.fs.LocalFileSystem().open_input_file(str(files[name])) as handle:
        decoded = decode(handle)
    _assert_16k_mono(decoded.samples, CONTAINERS[name][2])


@pytest.mark.parametrize("suffix", [".wav", ".mp3"])
def test_stereo_downmix_keeps_both_channels(tmp_path: Path, suffix: str) -> None:
    left, right = _tone(440, 2.0), _tone(1000, 2.0)
    path = media.write_audio(tmp_path / f"lr{suffix}", np.stack([left, right]), rate=44_100,
                             channels=2)
    mono = decode(str(path)).samples[: 2 * SR]
    # Equal weights: neither channel is dropped nor favoured (ffmpeg mixes at -3 dB each).
    assert _magnitude_at(mono, 440) == pytest.approx(_magnitude_at(mono, 1000), rel=0.02)
    assert _magnitude_at(mono, 440) > 0.3
    assert np.corrcoef(mono, left + right)[0, 1] > 0.99


@pytest.mark.parametrize(("rate", "channels"), [(8_000, 1), (96_000, 6)])
def test_resampling_keeps_length_and_pitch(tmp_path: Path, rate: int, channels: int) -> None:
    path = media.write_audio(tmp_path / f"tone_{rate}.wav", _tone(1000, 2.5), rate=rate,
                             channels=channels)
    decoded = decode(str(path))
    _assert_16k_mono(decoded.samples, 2.5)
    assert (decoded.source_sample_rate, decoded.source_channels) == (rate, channels)
    assert _dominant_hz(decoded.samples) == pytest.approx(1000, abs=1)


@pytest.mark.parametrize("name", ["phone_8k.wav", "studio_96k.wav"])
def test_generated_odd_rates_decode(files: dict[str, Path], name: str) -> None:
    _assert_16k_mono(decode(str(files[name])).samples, 3.0)


# --- decode: bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.wav", "error_page.mp3"])
def test_unreadable_input_is_a_decode_error(files: dict[str, Path], name: str) -> None:
    with pytest.raises((AudioDecodeError, EmptyAudioError)) as caught:
        decode(str(files[name]))
    assert str(caught.value)


def test_unreadable_file_object_is_a_decode_error(files: dict[str, Path]) -> None:
    with open(files["error_page.mp3"], "rb") as handle, \
            pytest.raises((AudioDecodeError, EmptyAudioError)):
        decode(handle)


def test_video_without_audio_is_unsupported(files: dict[str, Path]) -> None:
    with pytest.raises(UnsupportedAudioError, match="no audio track"):
        decode(str(files["no_audio.mp4"]))


def test_longer_than_max_duration_is_unsupported(files: dict[str, Path]) -> None:
    with pytest.raises(UnsupportedAudioError, match="longer than the limit"):
        decode(str(files["speech.flac"]), max_duration_s=1.0)


def test_max_duration_above_length_is_fine(files: dict[str, Path]) -> None:
    assert decode(str(files["speech.flac"]), max_duration_s=3.5).duration_s > 3.0


def test_decode_past_timeout_fails(files: dict[str, Path]) -> None:
    with pytest.raises(DecodeTimeoutError):
        decode(str(files["cut_off.mp3"]), timeout_s=1e-9)


def test_truncated_mp3_keeps_what_decodes(files: dict[str, Path]) -> None:
    decoded = decode(str(files["cut_off.mp3"]))
    # Cut at half its bytes: about 10 of the 20 s survive; a warning is allowed, never a raise.
    assert 8.0 < decoded.duration_s < 12.0
    assert all(isinstance(w, str) and w for w in decoded.warnings)


# --- trim_silence --------------------------------------------------------------------------


def _framed_silence_around(lead: int, loud: int, tail: int) -> np.ndarray:
    # Every loud sample at +-0.5, so a frame holding even one of them is above -50 dBFS.
    square = np.where(np.arange(loud) % 2 == 0, 0.5, -0.5).astype(np.float32)
    return np.concatenate([np.zeros(lead, np.float32), square, np.zeros(tail, np.float32)])


@pytest.mark.parametrize(("lead", "tail"), [(8_000, 4_800), (8_100, 5_005), (7_999, 1)])
def test_trim_cuts_at_frame_precision(lead: int, tail: int) -> None:
    loud = SR
    samples = _framed_silence_around(lead, loud, tail)
    start, end = trim_silence(samples)
    assert 0 <= lead - start < FRAME
    assert end >= lead + loud
    assert end - (lead + loud) < FRAME or end == len(samples)
    assert start % FRAME == 0


def test_trim_keeps_a_partial_last_frame_after_loud_audio() -> None:
    samples = _framed_silence_around(0, SR + 7, 0)
    assert trim_silence(samples) == (0, len(samples))


def test_trim_all_silent_is_empty() -> None:
    assert trim_silence(np.zeros(SR, np.float32)) == (0, 0)


def test_trim_low_noise_below_threshold_is_empty() -> None:
    rng = np.random.default_rng(0)
    noise = (0.001 * rng.standard_normal(2 * SR)).astype(np.float32)  # -60 dBFS RMS
    assert trim_silence(noise, threshold_db=-50.0) == (0, 0)


def test_trim_without_silence_keeps_everything() -> None:
    samples = media.speech(2.0)[4_000:]  # starts inside the first clip
    samples[:FRAME] = _tone(300, FRAME / SR)
    samples[-FRAME:] = _tone(300, FRAME / SR)
    assert trim_silence(samples) == (0, len(samples))


@pytest.mark.parametrize(("samples", "expected"), [
    (np.zeros(0, np.float32), (0, 0)),
    (np.zeros(100, np.float32), (0, 0)),
    (np.full(100, 0.5, np.float32), (0, 100)),
    (np.full(FRAME, 0.5, np.float32), (0, FRAME)),
])
def test_trim_very_short_input(samples: np.ndarray, expected: tuple[int, int]) -> None:
    assert trim_silence(samples) == expected


# --- peak_normalize ------------------------------------------------------------------------


def test_normalize_brings_peak_to_095() -> None:
    samples = media.speech(2.0) * np.float32(0.3)
    out = peak_normalize(samples)
    assert out.dtype == np.float32
    assert float(np.max(np.abs(out))) == pytest.approx(0.95, rel=1e-5)


def test_normalize_lowers_a_peak_above_one() -> None:
    # Downmixing identical channels at -3 dB each lands above 1.0; normalising brings it back.
    out = peak_normalize(np.array([0.1, -1.4, 0.7], np.float32))
    assert float(np.max(np.abs(out))) == pytest.approx(0.95, rel=1e-6)
    assert out.dtype == np.float32


def test_normalize_leaves_near_silence_alone() -> None:
    hiss = np.full(SR, 5e-5, np.float32)
    out = peak_normalize(hiss)
    np.testing.assert_array_equal(out, hiss)
    assert out.dtype == np.float32


def test_normalize_empty() -> None:
    assert len(peak_normalize(np.zeros(0, np.float32))) == 0
