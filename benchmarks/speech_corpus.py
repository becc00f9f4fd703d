"""The quality benchmark's corpus: synthetic two-speaker sessions with known text, the real
example clips, a minute of room tone, and short clips cut from both.

Speech comes from eSpeak NG (:mod:`tests.speech`, from a PyPI wheel; two voices), laid out as a
conversation with pauses, one long silence and low room noise, then written as 44.1 kHz
stereo MP3 with PyAV, as a recorder would leave it. Everything is seeded and cached under
``benchmarks/.cache/`` (gitignored), keyed by what shaped it, so a rerun reads it back.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

from scribe.pipeline.audio import decode
from tests.media import EXAMPLES, SAMPLE_RATE, Samples, write_audio
from tests.speech import synthesize

CACHE = Path(__file__).resolve().parent / ".cache" / "quality"
VOICES = ("en-us+m3", "en+f3")
JFK = ("And so my fellow Americans, ask not what your country can do for you, "
       "ask what you can do for your country.")
# Real clips with their known words (None: no reference, used for throughput and words).
REAL_CLIPS = {"jfk.flac": JFK, "hotwords.mp3": None, "multilingual.mp3": None,
              "stereo_diarization.wav": None}
NOISE_RMS = 0.003  # about -50 dBFS: a quiet room, below speech by ~40 dB

_SUBJECTS = ["the design team", "our biggest customer", "the new intern", "the finance group",
             "the support desk", "my manager", "the people in London", "the vendor",
             "the board", "the marketing lead", "everyone on the call", "the night shift"]
_VERBS = ["asked about", "finished", "postponed", "reviewed", "complained about",
          "approved", "rewrote", "forgot", "tested", "cancelled", "presented", "questioned"]
_OBJECTS = ["the quarterly report", "the release plan", "the hiring budget",
            "the onboarding guide", "the pricing page", "the server migration",
            "the travel policy", "the training schedule", "the contract renewal",
            "the customer survey", "the office move", "the security audit"]
_WHEN = ["yesterday", "last week", "this morning", "on Friday", "before lunch",
         "after the holidays", "at the end of the month", "earlier today"]
_TEMPLATES = [
    "I think {s} {v} {o} {w}.",
    "Did you hear that {s} {v} {o} {w}?",
    "Honestly, {s} {v} {o}, and nobody told me.",
    "As far as I know, {s} {v} {o} {w}.",
    "We should check whether {s} {v} {o} before we decide anything.",
    "Right, so {s} {v} {o} {w}, which changes our plans.",
    "That makes sense, but {s} still has not looked at {o}.",
    "Could you send me a short summary of {o} by tomorrow?",
    "I agree with you about {o}, it needs more time.",
    "Let us move on to {o}, we only have a few minutes left.",
    "The main problem with {o} is that {s} never replied.",
    "Thank you, that was really helpful.",
    "Sorry, could you repeat that? The line is not very good.",
    "Okay, I will write it down and follow up with {s}.",
]


@dataclass(frozen=True)
class Utterance:
    """One sentence in a session: who said it, what, and where it lies (16 kHz samples)."""

    speaker: str
    text: str
    start: int
    end: int


def sentence(rng: random.Random) -> str:
    """One sentence of meeting talk from the templates."""
    return rng.choice(_TEMPLATES).format(s=rng.choice(_SUBJECTS), v=rng.choice(_VERBS),
                                         o=rng.choice(_OBJECTS), w=rng.choice(_WHEN))


def speak(text: str, voice: str) -> Samples:
    """``text`` spoken by eSpeak NG in ``voice`` at 160 words a minute, at 16 kHz mono,
    peak 0.5."""
    samples = synthesize(voice, text, words_per_minute=160)
    peak = max(1e-6, float(np.max(np.abs(samples))))
    scaled: Samples = samples * np.float32(0.5 / peak)
    return scaled


def room_noise(n: int, rng: np.random.Generator) -> Samples:
    """Low, dull room noise (pink: white noise shaped 1/f in the spectrum) at NOISE_RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.arange(len(spectrum)) + 1.0)
    pink = np.fft.irfft(spectrum, n).astype(np.float32)
    return pink * np.float32(NOISE_RMS / max(1e-9, float(np.sqrt(np.mean(pink ** 2)))))


def conversation(minutes: float, seed: int, long_silence_s: float = 45.0
                 ) -> tuple[Samples, list[Utterance]]:
    """Two speakers taking turns of 1-4 sentences, pauses between, one long silence in the
    middle, room noise under all of it."""
    rng = random.Random(seed)
    parts: list[Samples] = []
    said: list[Utterance] = []
    cursor = 0
    wanted = int(minutes * 60 * SAMPLE_RATE)
    silence_at = wanted // 2
    turn = 0
    while cursor < wanted:
        voice = VOICES[turn % 2]
        for _ in range(rng.randint(1, 4)):
            text = sentence(rng)
            clip = speak(text, voice)
            said.append(Utterance(voice, text, cursor, cursor + len(clip)))
            gap = np.zeros(int(rng.uniform(0.3, 1.2) * SAMPLE_RATE), dtype=np.float32)
            parts += [clip, gap]
            cursor += len(clip) + len(gap)
        long_silence_now = 0 <= silence_at <= cursor  # once, past the middle
        pause = long_silence_s if long_silence_now else rng.uniform(0.5, 2.5)
        silence_at = -1 if long_silence_now else silence_at
        parts.append(np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32))
        cursor += len(parts[-1])
        turn += 1
    audio = np.concatenate(parts)
    return audio + room_noise(len(audio), np.random.default_rng(seed)), said


@dataclass(frozen=True)
class Item:
    """One file of the corpus and its known words (None where nobody wrote them down)."""

    path: str
    kind: str  # "session", "real", "room tone" or "clip"
    reference: str | None
    duration_s: float


def _write_mp3(path: Path, samples: Samples) -> Path:
    return write_audio(path, samples, rate=44_100, channels=2)


def build_sessions(root: Path, count: int, minutes: float) -> tuple[list[Item], dict[
        str, tuple[Samples, list[Utterance]]]]:
    """``count`` synthetic conversations; also returns their audio for cutting clips."""
    items, audio = [], {}
    for i in range(count):
        samples, said = conversation(minutes, seed=100 + i,
                                     long_silence_s=min(45.0, minutes * 60 / 8))
        path = _write_mp3(root / f"session{i}.mp3", samples)
        items.append(Item(str(path), "session", " ".join(u.text for u in said),
                          len(samples) / SAMPLE_RATE))
        audio[path.stem] = (samples, said)
    return items, audio


def build_clips(root: Path, count: int, sessions: dict[str, tuple[Samples, list[Utterance]]],
                seed: int = 7) -> list[Item]:
    """``count`` clips of 4-20 s: runs of whole sentences from the sessions (their text
    known), and one in eight from the real clips."""
    rng = random.Random(seed)
    real = [decode(str(EXAMPLES / name)).samples for name in REAL_CLIPS]
    pools = list(sessions.values())
    items = []
    for i in range(count):
        path = root / f"clip{i:03d}.mp3"
        if i % 8 == 7:
            source = real[rng.randrange(len(real))]
            length = min(len(source), int(rng.uniform(4, 20) * SAMPLE_RATE))
            start = rng.randrange(max(1, len(source) - length + 1))
            reference = JFK if source is real[0] and length == len(source) else None
            samples = source[start:start + length]
        else:
            samples, reference = _sentence_run(rng, *pools[rng.randrange(len(pools))])
        items.append(Item(str(_write_mp3(path, samples)), "clip", reference,
                          len(samples) / SAMPLE_RATE))
    return items


def _sentence_run(rng: random.Random, audio: Samples, said: list[Utterance]
                  ) -> tuple[Samples, str]:
    """Consecutive sentences from a random start, as many as fit in 4-20 s."""
    while True:
        first = rng.randrange(len(said))
        last = first
        while last + 1 < len(said) and said[last + 1].end - said[first].start < 20 * SAMPLE_RATE:
            last += 1
        start, end = said[first].start, said[last].end
        if end - start >= 4 * SAMPLE_RATE:
            pad = int(0.2 * SAMPLE_RATE)
            text = " ".join(u.text for u in said[first:last + 1])
            return audio[max(0, start - pad):end + pad], text


def build(minutes: float, sessions: int, clips: int) -> dict[str, list[Item]]:
    """The corpus, from the cache when it was built with the same shape and synthesiser."""
    key = f"s{sessions}x{minutes:g}m-c{clips}-espeakng{version('espeakng-loader')}"
    root = CACHE / key
    index = root / "index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        return {name: [Item(**i) for i in items] for name, items in data.items()}
    for sub in ("mixed", "clips"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    long_items, audio = build_sessions(root / "mixed", sessions, minutes)
    tone = room_noise(60 * SAMPLE_RATE, np.random.default_rng(1))
    mixed = long_items + [Item(str(_write_mp3(root / "mixed" / "room_tone.mp3", tone)),
                               "room tone", "", 60.0)]
    for name, text in REAL_CLIPS.items():
        target = root / "mixed" / name
        shutil.copyfile(EXAMPLES / name, target)
        mixed.append(Item(str(target), "real", text, decode(str(target)).duration_s))
    corpus = {"mixed": mixed, "clips": build_clips(root / "clips", clips, audio)}
    index.write_text(json.dumps({k: [asdict(i) for i in v] for k, v in corpus.items()}))
    return corpus
