"""One table of Whisper architectures: names resolve to it, and every reader agrees."""

from __future__ import annotations

import pytest

from scribe.architectures import ARCHITECTURES, architecture, canonical_name, n_mels_by_name

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("name", "canonical"), [
    ("large-v3", "large-v3"), ("Systran/faster-whisper-large-v3", "large-v3"),
    ("/models/faster-whisper-small.en/", "small"), ("turbo", "large-v3-turbo"),
    ("Systran/faster-distil-whisper-large-v3", "distil-large-v3"), ("large", "large-v3"),
    ("deepdml/faster-whisper-large-v3-turbo-ct2", "large-v3-turbo"), ("my-finetune", None),
])
def test_model_names_map_to_architectures(name: str, canonical: str | None) -> None:
    assert canonical_name(name) == canonical


@pytest.mark.parametrize(("name", "mels"), [
    ("large-v3", 128), ("turbo", 128), ("Systran/faster-distil-whisper-large-v3", 128),
    ("large-v2", 80), ("small.en", 80), ("my-finetune", 80),
])
def test_mel_bins_follow_the_table(name: str, mels: int) -> None:
    assert n_mels_by_name(name) == mels


def test_distilled_and_turbo_models_keep_the_encoder_and_cut_the_decoder() -> None:
    large = ARCHITECTURES["large-v3"]
    for name in ("large-v3-turbo", "distil-large-v3"):
        arch = architecture(name)
        assert arch is not None
        assert (arch.d_model, arch.encoder_layers, arch.heads) == (
            large.d_model, large.encoder_layers, large.heads)
        assert arch.decoder_layers < large.decoder_layers and arch.params < large.params
