"""Test media made at test time: real speech re-encoded with PyAV, plus broken files.

Nothing big is committed. Speech comes from the short clips in ``examples/sessions``,
cut and spaced with seeded random silences, and every container is encoded on the fly,
so a fixture is a few hundred milliseconds to make and always matches the code reading it.
"""

from __future__ import annotations

import functools
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from scribe.pipeline.audio import decode

SAMPLE_RATE = 16_000
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "sessions"
EXAMPLE_CLIPS = ("jfk.flac", "hotwords.mp3", "multilingual.mp3", "stereo_diarization.wav")

Samples = npt.NDArray[np.float32]
PathLike = str | os.PathLike[str]

# Extension -> audio encoder. There is no libvorbis in PyAV's bundled ffmpeg (only the
# experimental native vorbis encoder), so every Ogg flavour carries Opus.
AUDIO_CODECS = {
    ".wav": "pcm_s16le",
    ".flac": "flac",
    ".mp3": "libmp3lame",
    ".m4a": "aac",
    ".ogg": "libopus",
    ".opus": "libopus",
    ".webm": "libopus",
    ".mp4": "aac",
}
VIDEO_EXTENSIONS = frozenset({".mp4"})
_VIDEO_SIZE = 64
_VIDEO_FPS = 4
_BLOCK = 30 * SAMPLE_RATE  # encode in 30 s blocks, so memory stays flat for long sessions


def write_audio(
    path: PathLike,
    samples: Samples,
    *,
    rate: int = SAMPLE_RATE,
    channels: int = 1,
    codec: str | None = None,
) -> Path:
    """Encode 16 kHz ``samples`` into ``path``, the container and codec from its extension.

    ``samples`` is mono ``(n,)`` (copied to every channel) or ``(channels, n)`` (one row
    per channel, for tests that need distinct left and right). ``.mp4`` also gets a small
    video track, so it reads like a screen recording.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    planar = _planar(samples, channels)
    with av.open(str(path), mode="w") as container:
        stream = _add_audio(container, codec or AUDIO_CODECS[suffix], rate, channels)
        video = _add_video(container) if suffix in VIDEO_EXTENSIONS else None
        _encode_audio(container, stream, planar)
        if video is not None:
            _encode_video(container, video, planar.shape[1] / SAMPLE_RATE)
    return path


def _planar(samples: Samples, channels: int) -> Samples:
    """A ``(channels, n)`` float32 view; mono is broadcast, not copied (45 minutes is big)."""
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 1:
        data = np.broadcast_to(data, (channels, len(data)))
    if data.shape[0] != channels:
        raise ValueError(f"samples have {data.shape[0]} channels, expected {channels}")
    return data


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo", 6: "5.1"}.get(channels, f"{channels}c")


def _add_audio(container: av.container.OutputContainer, codec: str, rate: int,
               channels: int) -> av.AudioStream:
    stream = container.add_stream(codec, rate=rate)
    if not isinstance(stream, av.AudioStream):
        raise ValueError(f"{codec} is not an audio encoder")
    stream.layout = _layout(channels)
    return stream


def _encode_audio(container: av.container.OutputContainer, stream: av.AudioStream,
                  planar: Samples) -> None:
    ctx = stream.codec_context
    # Fixed-frame codecs (mp3, aac, opus) reject frames of any other size.
    resampler = av.AudioResampler(
        format=ctx.format.name, layout=stream.layout.name, rate=stream.rate,
        frame_size=ctx.frame_size or None,
    )
    for start in range(0, planar.shape[1], _BLOCK):
        frame = _frame(planar[:, start : start + _BLOCK], stream.layout.name, start)
        for out in resampler.resample(frame):
            container.mux(stream.encode(out))
    for out in resampler.resample(None):
        container.mux(stream.encode(out))
    container.mux(stream.encode(None))


def _frame(block: Samples, layout: str, pts: int) -> av.AudioFrame:
    # Clipped here rather than left to each encoder: past full scale they disagree.
    data = np.ascontiguousarray(np.clip(block, -1.0, 1.0))
    frame = av.AudioFrame.from_ndarray(data, format="fltp", layout=layout)
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = Fraction(1, SAMPLE_RATE)
    return frame


def _add_video(container: av.container.OutputContainer) -> av.VideoStream:
    video = container.add_stream("libx264", rate=_VIDEO_FPS)
    video.width = video.height = _VIDEO_SIZE
    video.pix_fmt = "yuv420p"
    video.options = {"preset": "ultrafast"}
    return video


def _encode_video(container: av.container.OutputContainer, video: av.VideoStream,
                  seconds: float) -> None:
    """A grey ramp that changes every frame, like slides with a moving cursor."""
    for i in range(max(1, int(np.ceil(seconds * _VIDEO_FPS)))):
        pixels = np.full((_VIDEO_SIZE, _VIDEO_SIZE, 3), (i * 16) % 256, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts = i
        container.mux(video.encode(frame))
    container.mux(video.encode(None))


@functools.cache
def example_clips() -> tuple[Samples, ...]:
    """The example sessions at 16 kHz mono, each peak-normalised to 0.8 (decoded once)."""
    clips = []
    for name in EXAMPLE_CLIPS:
        samples = decode(str(EXAMPLES / name)).samples
        clips.append((samples * np.float32(0.8 / np.max(np.abs(samples)))).astype(np.float32))
    return tuple(clips)


def speech(seconds: float, *, seed: int = 0, gap_s: tuple[float, float] = (0.3, 1.5)) -> Samples:
    """``seconds`` of real speech: the example clips in turn, spaced by random silences."""
    rng = np.random.default_rng(seed)
    clips = example_clips()
    wanted = int(round(seconds * SAMPLE_RATE))
    parts: list[Samples] = []
    total = 0
    while total < wanted:
        clip = clips[len(parts) // 2 % len(clips)]
        gap = silence(float(rng.uniform(*gap_s)))
        parts += [clip, gap]
        total += len(clip) + len(gap)
    return np.concatenate(parts)[:wanted]


def silence(seconds: float) -> Samples:
    """Digital silence at 16 kHz."""
    return np.zeros(int(round(seconds * SAMPLE_RATE)), dtype=np.float32)


def long_session(path: PathLike, minutes: float = 10) -> Path:
    """A long recording of speech; use ``.flac`` or ``.wav`` (16 kHz mono, ~1-2 s to write)."""
    return write_audio(path, speech(minutes * 60, seed=1))


def zero_bytes(path: PathLike) -> Path:
    """An empty file, as an interrupted upload leaves behind."""
    path = Path(path)
    path.write_bytes(b"")
    return path


def not_audio(path: PathLike) -> Path:
    """Text with an audio extension (an HTML error page saved as ``.mp3``)."""
    path = Path(path)
    page = "<!DOCTYPE html><html><body><h1>403 Forbidden</h1></body></html>\n" * 64
    path.write_text(page, encoding="utf-8")
    return path


def truncated_mp3(path: PathLike, seconds: float = 20.0) -> Path:
    """An MP3 of ``seconds`` of speech cut at about half its bytes, inside a frame."""
    path = Path(path)
    write_audio(path, speech(seconds, seed=2), rate=44_100, channels=2)
    data = path.read_bytes()
    # An odd offset past the middle: MP3 frames are ~418 bytes here, so this is mid-frame.
    path.write_bytes(data[: len(data) // 2 + 137])
    return path


def wav_8k_mono(path: PathLike, seconds: float = 3.0) -> Path:
    """Telephone-quality speech: 8 kHz mono WAV."""
    return write_audio(path, speech(seconds, seed=3), rate=8_000)


def mp3_44k_stereo(path: PathLike, seconds: float = 4.0) -> Path:
    """The most common upload: 44.1 kHz stereo MP3."""
    return write_audio(path, speech(seconds, seed=4), rate=44_100, channels=2)


def video_with_audio(path: PathLike, seconds: float = 4.0) -> Path:
    """A screen recording: 64x64 H.264 video plus 48 kHz stereo AAC speech."""
    return write_audio(path, speech(seconds, seed=5), rate=48_000, channels=2)


def video_without_audio(path: PathLike, seconds: float = 2.0) -> Path:
    """A video with no audio track at all (slides recorded without a microphone)."""
    path = Path(path)
    with av.open(str(path), mode="w") as container:
        _encode_video(container, _add_video(container), seconds)
    return path


def six_channel_96k(path: PathLike, seconds: float = 3.0) -> Path:
    """A studio export: 5.1 (6 channels) at 96 kHz, speech on every channel."""
    return write_audio(path, speech(seconds, seed=6), rate=96_000, channels=6)


def _good_formats(root: Path) -> dict[str, str]:
    """Speech in every container the engine should read."""
    made: dict[str, str] = {}
    for i, (name, rate, channels) in enumerate([
        ("standup.wav", 16_000, 1),
        ("interview.flac", 44_100, 2),
        ("podcast.m4a", 44_100, 2),
        ("voice_note.ogg", 48_000, 1),
        ("voice_note.opus", 24_000, 1),
        ("meeting.webm", 48_000, 2),
    ]):
        write_audio(root / name, speech(3.0 + i * 0.5, seed=10 + i), rate=rate, channels=channels)
        made[name] = "ok"
    return made


def make_session_tree(root: PathLike, *, long: bool = False) -> dict[str, str]:
    """A folder of good and bad sessions; returns ``{relative path: "ok" | "error"}``.

    Silence is ``ok`` (a transcript with no segments) and so is a truncated MP3 (what
    decodes is kept, with a warning); empty files, non-audio and video without a
    sound track are ``error``. ``long=True`` adds a 10-minute FLAC.
    """
    root = Path(root)
    (root / "2024" / "march").mkdir(parents=True, exist_ok=True)
    expected = _good_formats(root)
    makers = {
        "calls/phone_8k.wav": (wav_8k_mono, "ok"),
        "2024/march/lecture.mp3": (mp3_44k_stereo, "ok"),
        "2024/march/screen_recording.mp4": (video_with_audio, "ok"),
        "2024/studio_5.1_96k.wav": (six_channel_96k, "ok"),
        "2024/cut_off.mp3": (truncated_mp3, "ok"),
        "empty_upload.wav": (zero_bytes, "error"),
        "error_page.mp3": (not_audio, "error"),
        "slides_no_mic.mp4": (video_without_audio, "error"),
    }
    for name, (make, outcome) in makers.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        make(root / name)
        expected[name] = outcome
    write_audio(root / "muted.wav", silence(5.0))
    expected["muted.wav"] = "ok"
    if long:
        long_session(root / "2024" / "all_hands.flac")
        expected["2024/all_hands.flac"] = "ok"
    return expected
