"""Conversations with a known answer, for the speaker tests and benchmark.

Two-speaker ones alternate between two voices, spaced by pauses, and now and then the
next speaker starts before the last one has finished. Group ones (:func:`group_conversation`)
have two to four speakers in any order, longer overlaps, and short backchannels ("mm-hmm",
"right": 0.3-1 s) inside another's turn. Voices are real recordings (each example clip,
and each channel of the stereo example, is one person) or eSpeak NG voices
(:mod:`tests.speech`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from scribe.config import SAMPLE_RATE
from scribe.pipeline.audio import decode
from tests.media import EXAMPLES, Samples
from tests.speech import synthesize

SENTENCES = (
    "The weather today is quite pleasant and I think we should go for a walk.",
    "Please remember to bring the documents to the meeting tomorrow morning.",
    "I have been reading a fascinating book about the history of navigation.",
    "Could you tell me how you have been feeling since our last session?",
    "Honestly, the last two weeks were harder than I expected them to be.",
    "What do you think made the difference between this week and the last?",
    "I started sleeping better once I stopped checking my phone at night.",
    "That sounds like a real change. How did your family react to it?",
    "They noticed I was calmer at dinner, and we talked more than usual.",
    "Let us write that down, so we can come back to it next time we meet.",
)
VOICE_PAIRS = (("en-us+m3", "en+f3"), ("en+m1", "en-us+f2"), ("en-gb+m2", "en+f4"))
# one synthesiser's variants of one sex: the encoder hears them as near one voice
SAME_SEX_PAIRS = (("en-us+m3", "en+m1"), ("en+f3", "en-us+f2"))
# three and four voices of both sexes, and same-sex pairs of other voices than above
GROUPS = (("en-us+m3", "en+f3", "en-gb+m2"), ("en+m1", "en-us+f2", "en+f4"),
          ("en-us+m3", "en+f3", "en+m1", "en-us+f2"), ("en-gb+m2", "en+f4", "en+m1", "en+f3"))
MORE_SAME_SEX = (("en-gb+m2", "en-us+m3"), ("en+f4", "en+f3"), ("en+m1", "en-gb+m2"),
                 ("en-us+f2", "en+f4"))
BACKCHANNELS = ("Mm-hmm.", "Right.", "Yeah.", "Okay.", "I see.", "Sure.", "Uh-huh.")
_FRAME = SAMPLE_RATE // 50


@dataclass(frozen=True)
class Conversation:
    """Mono samples and the reference turns ``(start_s, end_s, speaker)``."""

    samples: Samples
    turns: list[tuple[float, float, str]]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@functools.cache
def espeak(voice: str, text: str) -> Samples:
    """``text`` spoken by eSpeak NG's ``voice`` ("en-us+m3", "de", ...), at 16 kHz,
    trimmed to its speech and at peak 0.8."""
    return _speech_only(synthesize(voice, text))


def _speech_only(samples: Samples, floor_db: float = 40.0) -> Samples:
    """``samples`` without leading and trailing frames ``floor_db`` below the loudest."""
    n = len(samples) // _FRAME
    power = np.square(samples[: n * _FRAME].reshape(n, _FRAME)).mean(axis=1) + 1e-12
    loud = np.flatnonzero(10 * np.log10(power / power.max()) > -floor_db)
    peak = float(np.abs(samples).max())
    if len(loud) == 0 or peak == 0.0:
        return samples[:0]
    return samples[loud[0] * _FRAME:(loud[-1] + 1) * _FRAME] * np.float32(0.8 / peak)


@functools.cache
def real_voices() -> dict[str, tuple[Samples, ...]]:
    """Utterances of five real speakers: the example clips, and the stereo example's two
    channels (one person each), cut at pauses the energy finds."""
    stereo = decode(str(EXAMPLES / "stereo_diarization.wav"), keep_channels=True).channels
    assert stereo is not None
    # the right channel is silent after 2.5 s; in multilingual.mp3's first 30 s the encoder
    # finds one voice (the benchmark's one-speaker set checks it)
    sources = {"jfk": decode(str(EXAMPLES / "jfk.flac")).samples,
               "hotwords": decode(str(EXAMPLES / "hotwords.mp3")).samples,
               "multilingual": decode(str(EXAMPLES / "multilingual.mp3")).samples[:30 * 16000],
               "left": stereo[0], "right": stereo[1][: int(2.5 * SAMPLE_RATE)]}
    return {name: _utterances(samples) for name, samples in sources.items()}


def _utterances(samples: Samples, min_s: float = 1.0) -> tuple[Samples, ...]:
    """Cuts at 300 ms pauses, each trimmed to its speech, shorter ones joined to the next."""
    n = len(samples) // _FRAME
    power = np.square(samples[: n * _FRAME].reshape(n, _FRAME)).mean(axis=1) + 1e-12
    quiet = 10 * np.log10(power / power.max()) < -35
    pieces, start, run = [], 0, 0
    for i, q in enumerate(quiet):
        run = run + 1 if q else 0
        if run == 15 and (i - start) * _FRAME >= min_s * SAMPLE_RATE:
            pieces.append(_speech_only(samples[start * _FRAME:i * _FRAME]))
            start = i
    pieces.append(_speech_only(samples[start * _FRAME:]))
    return tuple(p for p in pieces if len(p) >= 0.5 * SAMPLE_RATE)


def conversation(voices: tuple[tuple[Samples, ...], tuple[Samples, ...]], *, turns: int = 16,
                 seed: int = 0, overlap_share: float = 0.2) -> Conversation:
    """``turns`` alternating turns of one to two utterances each, 0.2-1.2 s apart; with
    probability ``overlap_share`` a turn starts 0.3-0.8 s before the previous one ends."""
    rng = np.random.default_rng(seed)
    placed: list[tuple[int, Samples, str]] = []
    cursor = 0
    for t in range(turns):
        who = t % 2
        clips = [voices[who][int(rng.integers(len(voices[who])))]
                 for _ in range(int(rng.integers(1, 3)))]
        speech = np.concatenate(clips)
        if t and rng.random() < overlap_share:
            start = cursor - int(rng.uniform(0.3, 0.8) * SAMPLE_RATE)
        else:
            start = cursor + int(rng.uniform(0.2, 1.2) * SAMPLE_RATE)
        placed.append((max(start, 0), speech, "AB"[who]))
        cursor = max(start, 0) + len(speech)
    return _mix(placed)


def _mix(placed: list[tuple[int, Samples, str]]) -> Conversation:
    end = max(s + len(x) for s, x, _ in placed) + SAMPLE_RATE // 2
    mix = np.zeros(end, dtype=np.float32)
    for start, speech, _ in placed:
        mix[start:start + len(speech)] += speech
    mix /= max(float(np.abs(mix).max()), 1e-6) / 0.9
    turns = [(s / SAMPLE_RATE, (s + len(x)) / SAMPLE_RATE, who) for s, x, who in placed]
    return Conversation(mix, turns)


def espeak_voices(pair: tuple[str, str]) -> tuple[tuple[Samples, ...], tuple[Samples, ...]]:
    """Each voice of ``pair`` saying every sentence."""
    a, b = (tuple(espeak(v, s) for s in SENTENCES) for v in pair)
    return a, b


Voice = tuple[Samples, ...]


def group_conversation(voices: tuple[Voice, ...], backchannels: tuple[Voice, ...], *,
                       turns: int = 16, seed: int = 0, overlap_share: float = 0.6,
                       backchannel_share: float = 0.5) -> Conversation:
    """``turns`` turns of one to three utterances, each by another speaker than the last
    (at random); with probability ``overlap_share`` a turn starts 0.5-2 s before the
    previous one ends, and with ``backchannel_share`` another speaker's short clip from
    ``backchannels`` lands inside a turn."""
    rng = np.random.default_rng(seed)
    placed: list[tuple[int, Samples, str]] = []
    cursor, who = 0, 0
    for t in range(turns):
        if t:
            who = int(rng.choice([k for k in range(len(voices)) if k != who]))
        clips = [voices[who][int(rng.integers(len(voices[who])))]
                 for _ in range(int(rng.integers(1, 4)))]
        speech = np.concatenate(clips)
        if t and rng.random() < overlap_share:
            start = max(cursor - int(rng.uniform(0.5, 2.0) * SAMPLE_RATE), 0)
        else:
            start = cursor + int(rng.uniform(0.2, 1.0) * SAMPLE_RATE)
        placed.append((start, speech, "ABCD"[who]))
        if rng.random() < backchannel_share and len(speech) > 2 * SAMPLE_RATE:
            other = int(rng.choice([k for k in range(len(voices)) if k != who]))
            short = backchannels[other][int(rng.integers(len(backchannels[other])))]
            at = start + int(rng.uniform(0.3, 0.7) * (len(speech) - len(short)))
            placed.append((at, short, "ABCD"[other]))
        cursor = start + len(speech)
    return _mix(placed)


def espeak_backchannels(voice: str) -> Voice:
    """``voice`` saying each of :data:`BACKCHANNELS` (0.3-0.7 s each)."""
    return tuple(espeak(voice, s) for s in BACKCHANNELS)


def real_backchannels(utterances: Voice, seed: int = 0) -> Voice:
    """0.3-1 s pieces cut from ``utterances`` (a real speaker has no "mm-hmm" on record)."""
    rng = np.random.default_rng(seed)
    pieces = []
    for u in utterances:
        length = min(int(rng.uniform(0.3, 1.0) * SAMPLE_RATE), len(u))
        at = int(rng.integers(0, len(u) - length + 1))
        pieces.append(u[at:at + length])
    return tuple(pieces)


def overlap_share(conv: Conversation) -> float:
    """The share of the reference speech where two or more people talk at once."""
    n = int(conv.duration_s * 100) + 1
    active = np.zeros(n, dtype=np.int64)
    for start, end, _ in conv.turns:
        active[int(start * 100):int(end * 100)] += 1
    return float((active > 1).sum()) / max(int((active > 0).sum()), 1)
