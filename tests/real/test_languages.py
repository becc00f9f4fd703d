"""Every language: the real multilingual base Whisper on sessions spoken by espeak in five
languages, one that switches from English to German, and translation into English.

Sessions are short (three sentences, one chunk, per language): base on two shared cores
is three to five times slower than tiny.en.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from ray_jobs.transcribe import run_job
from scribe.config import JobConfig, ResourceConfig, TranscribeOptions
from scribe.pipeline.preprocess import preprocess
from scribe.pipeline.transcript import ok_record, record_base
from scribe.pipeline.whisper import WhisperEngine
from tests.languages import LINES, spoken
from tests.media import write_audio
from tests.real.conftest import words

pytestmark = pytest.mark.real

# Words only English has (of those the sentences use), and only German.
ENGLISH = {"the", "and", "i", "you", "to", "of", "we", "is", "have", "about", "book"}
GERMAN = {"das", "und", "ich", "die", "der", "ist", "wir", "zur", "buch", "über"}
SWITCH_LINES = 6  # sentences of each language in the switching session


@pytest.fixture(scope="module")
def base_options(base_model: str) -> TranscribeOptions:
    """base on CPU, int8, as a user would run it, without temperature fallback (its
    sampling is random)."""
    return TranscribeOptions(model=base_model, device="cpu", compute_type="int8",
                             temperature_fallback=())


@pytest.fixture(scope="module")
def engine(base_options: TranscribeOptions) -> WhisperEngine:
    return WhisperEngine(base_options, cpu_threads=2)


def transcribe(engine: WhisperEngine, samples: np.ndarray,
               options: TranscribeOptions) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        write_audio(f.name, samples)
        prepared = preprocess(f.name, options, 80)
    chunks = list(prepared.chunks)
    return ok_record(record_base("s", model="base"), engine.transcribe(chunks, options))


def recall(text: str, reference: str) -> float:
    """The share of the reference's words that the text has."""
    said = set(words(text).split())
    wanted = words(reference).split()
    return sum(w in said for w in wanted) / len(wanted)


@pytest.mark.parametrize("language", ["de", "es", "fr", "it", "en"])
def test_each_language_is_detected_and_transcribed_in_it(
        engine: WhisperEngine, base_options: TranscribeOptions, language: str) -> None:
    samples, text = spoken(language, lines=3)
    record = transcribe(engine, samples, base_options)
    assert record["language"] == language
    assert {s["language"] for s in record["segments"]} == {language}
    assert recall(record["text"], text) >= 0.5, record["text"]


def test_translation_gives_english(engine: WhisperEngine,
                                   base_options: TranscribeOptions) -> None:
    samples, _ = spoken("de", lines=3)
    record = transcribe(engine, samples, base_options.model_copy(update={"task": "translate"}))
    said = words(record["text"]).split()
    assert record["language"] == "de"  # the language heard, as OpenAI's API reports it
    assert sum(w in ENGLISH for w in said) >= 3 * max(1, sum(w in GERMAN for w in said))
    assert record["segments"] and all(s["end"] > s["start"] for s in record["segments"])


@pytest.fixture(scope="module")
def switched(ray_local: Any, base_options: TranscribeOptions,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The job's output for a session of six English sentences, then six German ones."""
    src = tmp_path_factory.mktemp("switch-in")
    out = tmp_path_factory.mktemp("switch-out")
    write_audio(str(src / "switch.wav"), np.concatenate(
        [spoken("en", SWITCH_LINES)[0], spoken("de", SWITCH_LINES)[0]]))
    summary = run_job(JobConfig(input=str(src), output=str(out), transcribe=base_options,
                                resources=ResourceConfig(model_batch_size=8)))
    assert summary["sessions"]["failed"] == 0
    yield out


@pytest.mark.ray
def test_a_session_switching_language_keeps_both(switched: Path) -> None:
    record = json.loads((switched / "switch.json").read_text())
    by_language = {lang: " ".join(s["text"] for s in record["segments"]
                                  if s["language"] == lang) for lang in ("en", "de")}
    assert {s["language"] for s in record["segments"]} == {"en", "de"}
    said = {lang: " ".join(LINES[lang][:SWITCH_LINES]) for lang in ("en", "de")}
    assert recall(by_language["en"], said["en"]) >= 0.7, by_language["en"]
    assert recall(by_language["de"], said["de"]) >= 0.5, by_language["de"]
    german = words(by_language["de"]).split()
    assert sum(w in GERMAN for w in german) > 3 * sum(w in ENGLISH for w in german)
    languages = [s["language"] for s in record["segments"]]
    assert languages == sorted(languages, key=["en", "de"].index), "one switch, in order"
    table = pq.read_table(switched / "_segments" / "switch.parquet")
    assert table.column("language").to_pylist() == languages
    vtt = (switched / "switch.vtt").read_text()
    assert "<lang en>" in vtt and "<lang de>" in vtt
