"""One speaker per channel: recognise such stereo recordings, and drop a channel's bleed.

Telehealth and call recorders, and two-lapel setups, put each person on their own channel.
There one channel carries a voice while the other is near silent, turn after turn, and
the channels' waveforms are unrelated. A stereo recording of one room (or a mono signal
copied to two channels) has the same speech on both, correlated and of similar level.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from scribe.config import SAMPLE_RATE
from scribe.pipeline.audio import Audio
from scribe.pipeline.vad import SampleRange

FRAME = SAMPLE_RATE // 50  # 20 ms energy frames
CHANNEL_NAMES = ("left", "right")
_ACTIVE_DB = 40.0  # a frame this far below the recording's loudest frame is silence
_ALONE_DB = 20.0  # a channel this far below the other is "near silent" in that frame
_MIN_ALONE_SHARE = 0.15  # share of active frames where one channel speaks alone
_MAX_CORRELATION = 0.5  # two microphones on one voice correlate above this
_BLEED_DB = 15.0  # a range this far below the other channel is the other voice leaking in


def frame_db(samples: Audio) -> npt.NDArray[np.float64]:
    """Energy in dBFS of each 20 ms frame."""
    n = len(samples) // FRAME
    framed = samples[: n * FRAME].reshape(n, FRAME).astype(np.float64)
    db: npt.NDArray[np.float64] = 10.0 * np.log10(
        np.einsum("ij,ij->i", framed, framed) / FRAME + 1e-12)
    return db


def one_speaker_per_channel(left: Audio, right: Audio) -> bool:
    """Whether the two channels look like one person each (see the module's docstring)."""
    db = np.stack([frame_db(left), frame_db(right)])
    if db.shape[1] == 0:
        return False
    loudest = db.max(axis=0)
    active = loudest > loudest.max() - _ACTIVE_DB
    alone = np.abs(db[0] - db[1]) > _ALONE_DB
    alone_share = float((alone & active).sum()) / max(int(active.sum()), 1)
    return alone_share >= _MIN_ALONE_SHARE and _correlation(left, right) < _MAX_CORRELATION


def _correlation(left: Audio, right: Audio) -> float:
    a = left.astype(np.float64) - float(left.mean())
    b = right.astype(np.float64) - float(right.mean())
    denominator = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return abs(float(np.dot(a, b))) / denominator if denominator > 0 else 1.0


def drop_bleed(ranges: list[SampleRange], own: Audio, other: Audio) -> list[SampleRange]:
    """``ranges`` (found on ``own``) less those where ``own`` only hears ``other``'s voice,
    much quieter: the VAD finds it, and it would be transcribed twice."""
    own_db, other_db = frame_db(own), frame_db(other)
    kept = []
    for r in ranges:
        a, b = r["start"] // FRAME, max(r["end"] // FRAME, r["start"] // FRAME + 1)
        gap = np.median(other_db[a:b] - own_db[a:b]) if b <= len(own_db) else 0.0
        if gap < _BLEED_DB:
            kept.append(r)
    return kept
