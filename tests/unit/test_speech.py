"""The tests' speech synthesiser (eSpeak NG from its wheel): the voices the tests use, the
same samples for the same text whatever came before, and a skip that says why where it
cannot run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scribe.config import SAMPLE_RATE
from tests.speech import synthesize

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
TEXT = "Please remember to bring the documents to the meeting tomorrow morning."


def test_a_text_says_the_same_samples_every_time() -> None:
    first = synthesize("en-us+m3", TEXT)
    synthesize("de", "Guten Morgen, wie geht es Ihnen heute?")  # state a process would keep
    assert np.array_equal(synthesize("en-us+m3", TEXT), first)
    assert first.dtype == np.float32
    assert 2.5 < len(first) / SAMPLE_RATE < 6.0, "about a dozen words at 175 a minute"


@pytest.mark.parametrize("voice", ["en-us+m3", "en+f3", "en-gb+m2", "de", "es", "fr", "it"])
def test_the_voices_the_tests_use_speak(voice: str) -> None:
    samples = synthesize(voice, "One, two, three, four, five.")
    assert 0.8 < len(samples) / SAMPLE_RATE < 4.0
    assert float(np.abs(samples).max()) > 0.1


def test_a_variant_and_the_rate_change_the_voice() -> None:
    # "en-gb" names a language, not a voice file: its variant must still apply
    plain, variant = synthesize("en-gb", TEXT), synthesize("en-gb+m2", TEXT)
    assert not np.array_equal(plain, variant)
    assert len(synthesize("en", TEXT, words_per_minute=120)) > 1.2 * len(
        synthesize("en", TEXT, words_per_minute=200))


def test_an_unknown_voice_is_refused() -> None:
    with pytest.raises(ValueError, match="no voice 'xx-nowhere'"):
        synthesize("xx-nowhere", TEXT)


def test_without_the_wheel_a_test_that_speaks_skips_saying_why(tmp_path: Path) -> None:
    shadow = tmp_path / "espeakng_loader"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('not installed here')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    node = f"{Path(__file__).relative_to(ROOT)}::test_a_text_says_the_same_samples_every_time"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           node], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 skipped" in done.stdout
    assert "speech synthesis unavailable: speech synthesis needs the espeakng-loader" in (
        done.stdout)
