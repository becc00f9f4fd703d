"""A session's speakers at assembly: cluster its voice windows (or take its channels) and
put a speaker on every segment and word. Runs where the session is assembled, on the
embeddings that travelled with its chunks: no audio is needed here."""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

from scribe.config import MAX_SPEAKERS
from scribe.pipeline.speakers import assign, cluster
from scribe.pipeline.speakers.channels import CHANNEL_NAMES
from scribe.pipeline.speakers.voices import VoiceWindow
from scribe.schema import Segment

Segments = list[Segment]


@dataclass(frozen=True)
class SpeakerRequest:
    """What the caller asked: how many speakers (exactly, or within bounds), and known
    speakers' reference embeddings (name -> embedding) to name the clusters after.
    ``distance`` overrides the encoder's calibrated clustering threshold, ``estimator``
    the way the count is estimated (for tuning and comparing: see ``cluster``)."""

    num_speakers: int | None = None
    max_speakers: int = MAX_SPEAKERS
    known: dict[str, list[float]] = field(default_factory=dict)
    min_speakers: int = 1
    distance: float | None = None
    estimator: str = "eigengap"


def default_name(index: int) -> str:
    """``A``, ``B``, ... as OpenAI's diarized transcripts label unknown speakers."""
    letters = string.ascii_uppercase
    return letters[index] if index < len(letters) else f"S{index}"


def voice_turns(windows: list[VoiceWindow], request: SpeakerRequest) -> list[assign.Turn]:
    """The session's turns from its voice windows, clustered and named."""
    if not windows:
        return []
    vectors = np.array([w.embedding for w in windows], dtype=np.float32)
    labels = cluster.cluster(vectors, num_speakers=request.num_speakers,
                             max_speakers=request.max_speakers,
                             min_speakers=request.min_speakers, distance=request.distance,
                             estimator=request.estimator)
    names = [default_name(i) for i in range(int(labels.max()) + 1)]
    if request.known:
        known = {k: np.asarray(v, dtype=np.float32) for k, v in request.known.items()}
        matched = cluster.name_speakers(cluster.centroids(vectors, labels), known)
        names = [m or n for m, n in zip(matched, names, strict=True)]
    spans = [(w.start_s, w.end_s) for w in windows]
    return assign.turns_from_windows(spans, labels.tolist(), names)


def speaker_segments(restored: dict[int | None, Segments], windows: list[VoiceWindow],
                     request: SpeakerRequest) -> Segments:
    """The session's segments with speakers: by channel when chunks came from channels,
    else from the clustered voice windows."""
    if any(channel is not None for channel in restored):
        merged = [seg for channel, segs in restored.items() if channel is not None
                  for seg in assign.label_channel(segs, CHANNEL_NAMES[channel])]
        merged.sort(key=lambda seg: (seg["start"], seg["end"]))
        for i, seg in enumerate(merged):
            seg["id"] = i
        return merged
    return assign.label_segments(restored.get(None, []), voice_turns(windows, request))
