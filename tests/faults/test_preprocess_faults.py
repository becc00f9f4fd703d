"""Preprocessing under hostile input: fuzzed bytes, and a 3-hour session's memory."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scribe.config import TranscribeOptions
from scribe.errors import ScribeError
from scribe.pipeline.preprocess import preprocess

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
SEEDS = {name: (ROOT / "examples" / "sessions" / name).read_bytes()
         for name in ("hotwords.mp3", "stereo_diarization.wav")}
OPTIONS = TranscribeOptions(decode_timeout_s=20.0, max_duration_s=600.0)


@st.composite
def mutated_audio(draw: st.DrawFn) -> bytes:
    """A real file with bytes flipped, a cut, or a splice: what a broken upload looks like."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 40))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] if draw(st.booleans()) else data[cut:]
    if draw(st.booleans()):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(max_size=2048))
    return bytes(data)


@settings(max_examples=80, deadline=30_000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_audio())
def test_decode_path_returns_chunks_or_raises_its_own_error(data: bytes) -> None:
    try:
        session = preprocess(io.BytesIO(data), OPTIONS, 80)
    except ScribeError as exc:
        assert str(exc)
        return
    assert session.duration_s > 0
    assert all(c.features.shape[0] == 80 for c in session.chunks)


_MEASURE = textwrap.dedent("""
    import sys
    from scribe.capacity.footprint import process_memory
    from scribe.config import TranscribeOptions
    from scribe.pipeline.preprocess import analyse, iter_chunks
    session = analyse(sys.argv[1], TranscribeOptions())
    chunks = sum(1 for _ in iter_chunks(session, 128))
    peak_mb = process_memory()[1] / 2**20
    print(session.duration_s, chunks, peak_mb)
""")


def _three_hours(path: Path) -> Path:
    """Three hours of speech as 16 kHz FLAC, written in ten-minute blocks."""
    import av

    from tests.media import speech

    block = (speech(600.0, seed=9) * 32767).astype("int16")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=16_000)
        stream.layout = "mono"
        for _ in range(18):
            frame = av.AudioFrame.from_ndarray(block[None, :], format="s16", layout="mono")
            frame.sample_rate = 16_000
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.mark.slow
def test_three_hour_session_preprocesses_under_1_5_gb(tmp_path: Path) -> None:
    """What a preprocessing actor does (analyse, then features chunk by chunk), measured in
    a fresh process so the peak is this session's alone."""
    path = _three_hours(tmp_path / "three_hours.flac")
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], cwd=ROOT, check=True,
                         capture_output=True, text=True, timeout=600)
    duration_s, chunks, peak_mb = (float(x) for x in out.stdout.split())
    assert duration_s == pytest.approx(3 * 3600, abs=1)
    assert chunks > 300
    assert peak_mb < 1536, f"peak RSS {peak_mb:.0f} MB"
