"""Whisper models with random weights, in the real CTranslate2 format, for tests.

The directory a builder writes is what ``ct2-transformers-converter`` writes for a real
Whisper checkpoint (``model.bin``, ``config.json``, ``vocabulary.json``, plus
``tokenizer.json`` and ``preprocessor_config.json``), so faster-whisper's ``WhisperModel``
and ``BatchedInferencePipeline`` load and run it unchanged, offline. Only the weights are
fake: transcripts are gibberish, but every shape, token id and config key is the real
one, so the whole pipeline (features, prompts, decoding, timestamps) is exercised.

The tokenizer is a real byte-level BPE built offline: GPT-2's 256 byte symbols, synthetic
merges up to Whisper's 50257 text tokens, then Whisper's special tokens at their real ids.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from ctranslate2.specs import WhisperSpec, attention_spec, common_spec, transformer_spec
from ctranslate2.specs.whisper_spec import WhisperEncoderSpec
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from scribe.architectures import ARCHITECTURES, WhisperArchitecture, architecture

logger = logging.getLogger(__name__)

__all__ = ["cached_test_model", "make_test_model"]


MARKER_FILE = "scribe-test-model.json"

_N_AUDIO_CTX = 1500  # encoder positions: 30 s of 10 ms frames after the stride-2 conv
_N_TEXT_CTX = 448  # decoder positions
_N_TEXT_TOKENS = 50257  # regular (BPE) tokens of the multilingual tokenizer
_N_TIMESTAMPS = 1501  # <|0.00|> .. <|30.00|> in 20 ms steps
_STD = 0.02

# Whisper's own order (whisper/tokenizer.py LANGUAGES), which fixes the token ids:
# <|en|> is 50259 in every multilingual model. large-v3 appended "yue".
_LANGUAGES = tuple(
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta "
    "no th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk "
    "sq sw gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb "
    "my bo tl mg as tt haw ln ha ba jw su yue".split()
)

# Letters by English frequency: merges built from them make English-looking text
# compress roughly the way a real vocabulary does.
_MERGE_LETTERS = "etaoinshrdlucmfwypvbgkjqxz"

Float16Array = npt.NDArray[np.float16]


def make_test_model(
    out_dir: str | Path,
    size: str = "tiny",
    *,
    n_mels: int | None = None,
    seed: int = 0,
    quantization: str = "float16",
) -> Path:
    """Write a random-weight Whisper model in CTranslate2 format into ``out_dir``.

    Args:
        out_dir: Directory to write into; created if missing, files in it are overwritten.
        size: A Whisper model name (see :mod:`scribe.architectures`): its depths, width and
            heads. The larger sizes take minutes and gigabytes to build.
        n_mels: 80 (vocabulary of the 80-mel models, 99 languages) or 128 (large-v3's
            layout, 100 languages); defaults to the size's own.
        seed: Seed of the weights; the same seed gives byte-identical ``model.bin``.
        quantization: CTranslate2 storage type of the weights (``float16``, ``int8``, ...).

    Returns:
        ``out_dir`` as a ``Path``.

    Raises:
        ValueError: If ``size`` or ``n_mels`` is not supported.
    """
    arch = _arch(size, n_mels)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(n_languages=_n_languages(arch.n_mels))
    spec = _build_spec(arch, tokenizer, np.random.default_rng(seed))
    spec.optimize(quantization=quantization)
    spec.save(str(out))
    tokenizer.save(str(out / "tokenizer.json"))
    _write_json(out / "preprocessor_config.json", _preprocessor_config(arch.n_mels))
    _write_json(out / MARKER_FILE, _marker(size, arch.n_mels, seed, quantization))
    logger.debug("wrote random-weight %s Whisper model (%d mels) to %s", size, arch.n_mels, out)
    return out


def cached_test_model(size: str = "tiny", *, n_mels: int | None = None, seed: int = 0) -> Path:
    """Build a test model once per machine and return its directory.

    The cache lives under ``$SCRIBE_TEST_MODEL_CACHE`` (default
    ``~/.cache/ray-scribe/test-models``) in ``<size>-<n_mels>-<seed>``. The model is built
    in a temporary directory beside it and renamed into place, so a reader never sees a
    half-written model and two processes racing to build it both end up with one.
    """
    arch = _arch(size, n_mels)
    root = _cache_root()
    final = root / f"{size}-{arch.n_mels}-{seed}"
    if (final / MARKER_FILE).is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        make_test_model(tmp, size, n_mels=arch.n_mels, seed=seed)
        _publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _cache_root() -> Path:
    configured = os.environ.get("SCRIBE_TEST_MODEL_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "ray-scribe" / "test-models"


def _publish(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; losing the race to another builder is fine."""
    try:
        os.rename(tmp, final)
    except OSError:
        # rename(2) refuses to replace a non-empty directory: someone else got there first.
        if not (final / MARKER_FILE).is_file():
            raise
        logger.debug("test model %s was built concurrently; keeping that one", final)


def _arch(size: str, n_mels: int | None) -> WhisperArchitecture:
    arch = architecture(size)
    if arch is None:
        raise ValueError(f"unknown test model size {size!r}; choose one of {list(ARCHITECTURES)}")
    mels = arch.n_mels if n_mels is None else n_mels
    if mels not in (80, 128):
        raise ValueError(f"n_mels must be 80 or 128, got {mels}")
    return dataclasses.replace(arch, n_mels=mels)


def _n_languages(n_mels: int) -> int:
    # The vocabulary follows the mel count as in the real models: only large-v3 (128 mels)
    # has "yue". CTranslate2 counts the languages between <|startoftranscript|> and
    # <|translate|>, so one more language shifts every later special token by one.
    return len(_LANGUAGES) if n_mels == 128 else len(_LANGUAGES) - 1


# --- tokenizer -------------------------------------------------------------------------


def _byte_symbols() -> list[str]:
    """The 256 byte symbols in GPT-2's ``bytes_to_unicode`` order (so "Ġ", a space, is 220)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(rest))]


def _synthetic_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary of exactly 50257 tokens and the merges that build it.

    Ids 0-255 are the byte symbols, 256-50255 merge results, 50256 the empty string.

    Left parts grow breadth-first from "Ġ" and the letters, right parts are single
    letters, so every merge joins two existing tokens into a new one ("Ġ"+"t", then
    "Ġt"+"h", "Ġth"+"e", ...) and no two merges produce the same string.
    """
    vocab = {symbol: i for i, symbol in enumerate(_byte_symbols())}
    merges: list[tuple[str, str]] = []
    lefts = ["Ġ", *_MERGE_LETTERS]
    for left in lefts:  # the list grows while it is walked: that is the breadth-first part
        for right in _MERGE_LETTERS:
            if len(vocab) == _N_TEXT_TOKENS - 1:
                # CTranslate2 (4.8's WhisperReplica) calls a model multilingual only when
                # the empty string is in its vocabulary, as it is in the real multilingual
                # ones; the last text slot is where it does least harm here.
                vocab[""] = len(vocab)
                return vocab, merges
            vocab[left + right] = len(vocab)
            merges.append((left, right))
            lefts.append(left + right)
    raise AssertionError("unreachable: the merge frontier never runs out")


def _special_tokens(n_languages: int) -> list[str]:
    """Whisper's special tokens in id order, starting at 50257."""
    languages = [f"<|{code}|>" for code in _LANGUAGES[:n_languages]]
    tasks = ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>"]
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(_N_TIMESTAMPS)]
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *languages,
        *tasks,
        "<|nospeech|>",
        "<|notimestamps|>",
        *timestamps,
    ]


def _build_tokenizer(n_languages: int) -> Tokenizer:
    vocab, merges = _synthetic_bpe()
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False) for t in _special_tokens(n_languages)]
    tokenizer.add_special_tokens(specials)
    return tokenizer


def _vocabulary(tokenizer: Tokenizer) -> list[str]:
    """Every token string in id order: what the converter registers with CTranslate2."""
    by_id = {i: token for token, i in tokenizer.get_vocab(with_added_tokens=True).items()}
    if sorted(by_id) != list(range(len(by_id))):
        raise AssertionError("tokenizer ids are not contiguous")
    return [by_id[i] for i in range(len(by_id))]


# --- weights ---------------------------------------------------------------------------


def _build_spec(arch: WhisperArchitecture, tokenizer: Tokenizer,
                rng: np.random.Generator) -> WhisperSpec:
    tokens = _vocabulary(tokenizer)
    spec = WhisperSpec(arch.encoder_layers, arch.heads, arch.decoder_layers, arch.heads)
    _fill_encoder(spec.encoder, arch, rng)
    _fill_decoder(spec.decoder, arch, len(tokens), rng)
    _set_config(spec, arch, tokenizer)
    spec.register_vocabulary(tokens)
    spec.validate()
    return spec


def _normal(rng: np.random.Generator, *shape: int, std: float = _STD) -> Float16Array:
    # float16 from the start: random weights need no more precision, and it halves the
    # peak memory of the larger sizes.
    return (rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float16)


def _zeros(n: int) -> Float16Array:
    return np.zeros(n, dtype=np.float16)


def _set_linear(spec: common_spec.LinearSpec, rng: np.random.Generator, out: int, inp: int) -> None:
    spec.weight = _normal(rng, out, inp)
    spec.bias = _zeros(out)


def _set_layer_norm(spec: common_spec.LayerNormSpec, d_model: int) -> None:
    spec.gamma = np.ones(d_model, dtype=np.float16)
    spec.beta = _zeros(d_model)


def _set_attention(
    spec: attention_spec.MultiHeadAttentionSpec, d: int, rng: np.random.Generator, *, cross: bool
) -> None:
    """Self-attention fuses q,k,v into one linear; cross-attention has q, then fused k,v."""
    _set_layer_norm(spec.layer_norm, d)
    if cross:
        _set_linear(spec.linear[0], rng, d, d)
        _set_linear(spec.linear[1], rng, 2 * d, d)
    else:
        _set_linear(spec.linear[0], rng, 3 * d, d)
    _set_linear(spec.linear[-1], rng, d, d)


def _set_ffn(spec: transformer_spec.FeedForwardSpec, d: int, rng: np.random.Generator) -> None:
    _set_layer_norm(spec.layer_norm, d)
    _set_linear(spec.linear_0, rng, 4 * d, d)
    _set_linear(spec.linear_1, rng, d, 4 * d)


def _sinusoids(length: int, channels: int) -> Float16Array:
    """Whisper's fixed encoder position embedding: sines then cosines."""
    increment = math.log(10000) / (channels // 2 - 1)
    inv_timescales = np.exp(-increment * np.arange(channels // 2, dtype=np.float32))
    scaled = np.arange(length, dtype=np.float32)[:, None] * inv_timescales[None, :]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1).astype(np.float16)


def _fill_encoder(spec: WhisperEncoderSpec, arch: WhisperArchitecture,
                  rng: np.random.Generator) -> None:
    d = arch.d_model
    spec.conv1.weight = _normal(rng, d, arch.n_mels, 3)
    spec.conv1.bias = _zeros(d)
    spec.conv2.weight = _normal(rng, d, d, 3)
    spec.conv2.bias = _zeros(d)
    spec.position_encodings.encodings = _sinusoids(_N_AUDIO_CTX, d)
    _set_layer_norm(spec.layer_norm, d)
    for layer in spec.layer:
        _set_attention(layer.self_attention, d, rng, cross=False)
        _set_ffn(layer.ffn, d, rng)


def _fill_decoder(
    spec: transformer_spec.TransformerDecoderSpec,
    arch: WhisperArchitecture,
    vocab_size: int,
    rng: np.random.Generator,
) -> None:
    d = arch.d_model
    embeddings = _normal(rng, vocab_size, d)
    spec.embeddings.weight = embeddings
    # Tied, as in Whisper: optimize() stores the projection as an alias of the embeddings.
    spec.projection.weight = embeddings
    spec.position_encodings.encodings = _normal(rng, _N_TEXT_CTX, d, std=0.01)
    _set_layer_norm(spec.layer_norm, d)
    for layer in spec.layer:
        _set_attention(layer.self_attention, d, rng, cross=False)
        _set_attention(layer.attention, d, rng, cross=True)
        _set_ffn(layer.ffn, d, rng)


# --- config and side files -------------------------------------------------------------


def _set_config(spec: WhisperSpec, arch: WhisperArchitecture, tokenizer: Tokenizer) -> None:
    """What the converter's ``WhisperLoader.set_config`` writes for a real checkpoint."""
    config = spec.config
    config.suppress_ids = _suppress_ids(tokenizer)
    # Real models suppress a leading blank ("Ġ", 220) and an immediate end of text.
    config.suppress_ids_begin = [_token_id(tokenizer, "Ġ"), _token_id(tokenizer, "<|endoftext|>")]
    config.lang_ids = sorted(_token_id(tokenizer, f"<|{code}|>") for code in _language_codes(arch))
    # The converter's default when a checkpoint names no alignment heads: all heads of
    # the upper half of the decoder.
    config.alignment_heads = [
        (layer, head)
        for layer in range(arch.decoder_layers // 2, arch.decoder_layers)
        for head in range(arch.heads)
    ]


def _language_codes(arch: WhisperArchitecture) -> tuple[str, ...]:
    return _LANGUAGES[: _n_languages(arch.n_mels)]


def _suppress_ids(tokenizer: Tokenizer) -> list[int]:
    """Non-speech symbols plus the task tokens, as in Whisper's ``suppress_tokens``."""
    # faster-whisper computes the same list per call; the config copy is what
    # CTranslate2 uses when a caller passes suppress_tokens=[-1] to generate() directly.
    from faster_whisper.tokenizer import Tokenizer as WhisperTokenizer

    non_speech = WhisperTokenizer(tokenizer, multilingual=False).non_speech_tokens
    tasks = ["<|startoftranscript|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>"]
    tasks += ["<|startofprev|>", "<|nospeech|>"]
    return sorted({*non_speech, *(_token_id(tokenizer, t) for t in tasks)})


def _token_id(tokenizer: Tokenizer, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise AssertionError(f"token {token!r} missing from the test tokenizer")
    return int(token_id)


def _preprocessor_config(n_mels: int) -> dict[str, Any]:
    # faster-whisper passes the keys FeatureExtractor accepts; the rest mirror the
    # Hugging Face file so other tools read it too.
    return {
        "chunk_length": 30,
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": n_mels,
        "hop_length": 160,
        "n_fft": 400,
        "n_samples": 480000,
        "nb_max_frames": 3000,
        "padding_side": "right",
        "padding_value": 0.0,
        "processor_class": "WhisperProcessor",
        "return_attention_mask": False,
        "sampling_rate": 16000,
    }


def _marker(size: str, n_mels: int, seed: int, quantization: str) -> dict[str, Any]:
    return {
        "generator": __name__,
        "size": size,
        "n_mels": n_mels,
        "seed": seed,
        "quantization": quantization,
        "note": "random weights: transcripts are gibberish",
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
