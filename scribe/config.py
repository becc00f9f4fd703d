"""One typed config, declared once: CLI flags, YAML files, the batch job and online requests
all read the same fields with the same defaults.

Two groups, kept apart on purpose: :class:`TranscribeOptions` (what to compute: model,
decoding, preprocessing) and :class:`ResourceConfig` (how to lay it on the cluster:
actors, GPU fractions, batch size). A request to the online service may change the first,
never the second.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from scribe.errors import InvalidParameterError

SAMPLE_RATE = 16_000
DEFAULT_GPU_MODEL = "large-v3"
DEFAULT_CPU_MODEL = "small"
MAX_SPEAKERS = 8

M = TypeVar("M", bound=BaseModel)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TranscribeOptions(_Frozen):
    """What to compute for a session: model, decoding and preprocessing options."""

    model: str | None = Field(
        None,
        description="faster-whisper model name (large-v3, small, ...), Hugging Face repo id, "
        f"or local CTranslate2 directory; default {DEFAULT_GPU_MODEL} on GPU, "
        f"{DEFAULT_CPU_MODEL} on CPU",
    )
    device: Literal["auto", "cuda", "cpu"] = Field("auto", description="where the model runs")
    compute_type: str | None = Field(
        None, description="CTranslate2 compute type; default float16 on GPU, int8 on CPU"
    )
    language: str | None = Field(
        None, description="language code (en, de, ...); auto-detected when not set"
    )
    task: Literal["transcribe", "translate"] = Field(
        "transcribe", description="transcribe, or translate into English"
    )
    language_threshold: float = Field(
        0.9, gt=0.0, le=1.0, description="without a language, a chunk whose detected "
        "language is at least this probable is decoded in it (a session may change "
        "language chunk by chunk); a chunk below it is split at the pause nearest its middle "
        "and decoded in two languages where both halves are this sure of different ones, "
        "else in its session's language (the vote of its chunks)"
    )
    beam_size: int = Field(5, ge=1, le=16, description="beam width; 1 is greedy decoding")
    temperature: float = Field(0.0, ge=0.0, le=1.0, description="sampling temperature")
    max_new_tokens: int | None = Field(
        None, ge=1, le=440, description="cap on tokens generated per 30 s chunk"
    )
    initial_prompt: str | None = Field(
        None, description="text that conditions every chunk (names, jargon)"
    )
    condition_on_previous_text: bool = Field(
        True, description="prompt each chunk with the text of the chunks before it in its "
        "session, as sequential decoding does; a session's chunks are then decoded in chains "
        "of prompt_chain, one chunk of each chain per model call"
    )
    prompt_chain: int = Field(
        4, ge=2, description="with condition_on_previous_text, consecutive chunks decoded "
        "in a row, each prompted with the text before it; a batch of B x prompt_chain "
        "chunks makes prompt_chain model calls of B, and each chain's first chunk has no "
        "prompt"
    )
    prompt_tokens: int = Field(
        64, ge=1, le=223, description="with condition_on_previous_text, the most tokens of "
        "the text before a chunk that prompt it, after any initial_prompt; each one slows "
        "every decoding step (tiny.en on CPU: a call 1.1x as long at 64, up to 2x at 223, "
        "sequential faster-whisper's length)"
    )
    compression_ratio_threshold: float | None = Field(
        2.4, gt=0, description="a chunk whose text gzips better than this is re-decoded at "
        "the next fallback temperature (too repetitive); None: never"
    )
    log_prob_threshold: float | None = Field(
        -1.0, description="a chunk whose average token log-probability is below this is "
        "re-decoded at the next fallback temperature; None: never"
    )
    no_speech_threshold: float | None = Field(
        0.6, ge=0.0, le=1.0, description="a chunk whose no-speech probability is above this "
        "and whose log-probability is below log_prob_threshold gives no text; None: keep all"
    )
    temperature_fallback: tuple[float, ...] = Field(
        (0.2, 0.4, 0.6, 0.8, 1.0), description="temperatures tried, in turn and batched, for "
        "the chunks that fail the two gates above (sampling, best of 5); empty: no fallback"
    )
    hallucination_silence_threshold: float | None = Field(
        None, gt=0, description="with words (word timestamps, or aligned timestamps), drop "
        "a segment of improbable words with more than this many seconds of silence around "
        "it; None: keep"
    )
    remainder_s: float | None = Field(
        1.0, gt=0, description="a chunk whose text ends more than this many seconds "
        "before the chunk does is decoded again from its last timestamp, all such chunks "
        "of a batch together (sequential decoding's seek); with aligned timestamps, such a "
        "chunk is first decoded again with timestamp tokens, and so is a prompted chunk "
        "that leaves more than this plus two VAD paddings without a word (without its "
        "prompt); None: never"
    )
    window_padding_s: float | None = Field(
        10.0, ge=0, description="a chunk (or what a chunk's first decode left) is encoded "
        "as its own length plus this many seconds of padding, in 5 s steps, not always as "
        "Whisper's full 30 s window: a shorter encoder input is faster; None: the full window"
    )
    word_timestamps: bool = Field(False, description="add per-word timestamps")
    timestamps: Literal["aligned", "predicted", "chunk"] = Field(
        "aligned", description="how segments get their times: aligned (decode text alone, "
        "align its words to the audio, cut segments at sentence ends and pauses), predicted "
        "(Whisper's timestamp tokens, decoding again what a chunk's text leaves), or chunk "
        "(one segment per chunk)"
    )
    normalize: bool = Field(True, description="peak-normalise audio before VAD and features")
    trim_silence: bool = Field(True, description="trim leading/trailing silence")
    trim_threshold_db: float = Field(
        -50.0, le=0.0, description="RMS level (dBFS, 20 ms frames) below which audio is silence"
    )
    vad_filter: bool = Field(True, description="keep only speech found by Silero VAD")
    vad_threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Silero speech probability")
    vad_min_silence_ms: int = Field(
        160, ge=0, description="silence that splits two speech regions"
    )
    vad_speech_pad_ms: int = Field(400, ge=0, description="padding kept around speech")
    chunk_length_s: int = Field(30, ge=1, le=30, description="longest chunk fed to the model")
    max_duration_s: float = Field(
        6 * 3600.0, gt=0, description="longer recordings are refused (a guard against bad headers)"
    )
    decode_timeout_s: float = Field(
        900.0, gt=0, description="a session whose decode takes longer than this fails"
    )
    speakers: Literal["off", "auto", "channels", "voices"] = Field(
        "off",
        description="speaker labels: auto (one per channel when a stereo file is recorded so, "
        "else from voices), channels (trust each channel to be one speaker), voices, or off",
    )
    # the bounds come before num_speakers: its check reads them (pydantic checks in order)
    min_speakers: int = Field(
        1, ge=1, le=MAX_SPEAKERS,
        description="fewest speakers the estimate may find in a session",
    )
    max_speakers: int = Field(
        MAX_SPEAKERS, ge=1, le=MAX_SPEAKERS,
        description="most speakers the estimate may find in a session, at least min_speakers",
    )
    num_speakers: int | None = Field(
        None, ge=1, le=MAX_SPEAKERS,
        description="speakers in each session (min_speakers..max_speakers); estimated "
        "within those bounds when not set",
    )
    speaker_encoder: str = Field(
        "resemblyzer", description="registered speaker encoder that embeds voices: "
        "resemblyzer (GE2E) or campplus (CAM++; see docs/speakers.md)"
    )
    speaker_encoder_path: str | None = Field(
        None, description="the encoder's weights file; default: its fetched weights in the cache"
    )

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        if value not in _LANGUAGE_CODES:
            raise ValueError(f"unknown language code {value!r}")
        return value

    @field_validator("max_speakers")
    @classmethod
    def _not_below_min(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_speakers", 1)
        if value < low:
            raise ValueError(f"{value} is below min_speakers ({low})")
        return value

    @field_validator("num_speakers")
    @classmethod
    def _within_bounds(cls, value: int | None, info: ValidationInfo) -> int | None:
        low, high = info.data.get("min_speakers", 1), info.data.get("max_speakers", MAX_SPEAKERS)
        if value is not None and not low <= value <= high:
            raise ValueError(f"{value} is outside min_speakers..max_speakers ({low}..{high})")
        return value

    def resolved_device(self) -> str:
        """``cuda`` or ``cpu``: ``auto`` picks cuda when CTranslate2 sees a GPU."""
        if self.device != "auto":
            return self.device
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"

    def resolved(self) -> TranscribeOptions:
        """A copy with device, model and compute type filled in from the defaults."""
        device = self.resolved_device()
        gpu = device == "cuda"
        return self.model_copy(
            update={
                "device": device,
                "model": self.model or (DEFAULT_GPU_MODEL if gpu else DEFAULT_CPU_MODEL),
                "compute_type": self.compute_type or ("float16" if gpu else "int8"),
            }
        )


SPEAKER_COUNTS = ("num_speakers", "min_speakers", "max_speakers")


def speaker_counts(given: Mapping[str, int | None]) -> dict[str, int | None]:
    """The options' update for one session's own speaker count or bounds (a manifest row,
    a request's form): when it gives any of :data:`SPEAKER_COUNTS`, all three, the rest at
    their defaults, so the session's word replaces the job's or the service's whole and
    never mixes with it into a contradiction; nothing when it gives none."""
    own = {k: v for k, v in given.items() if k in SPEAKER_COUNTS and v is not None}
    if not own:
        return {}
    return {k: own.get(k, TranscribeOptions.model_fields[k].default) for k in SPEAKER_COUNTS}


class ResourceConfig(_Frozen):
    """How the work is laid on the cluster. Never part of a request."""

    preprocess_actors: int | None = Field(
        None, ge=1, description="CPU preprocessing actors at most; default: the cluster's CPUs"
    )
    preprocess_cpus: float = Field(1.0, gt=0, description="CPUs each preprocessing actor holds")
    model_actors: int | None = Field(
        None, ge=1, description="model actors; default: GPUs x actors-per-gpu, or on CPU one "
        "per node, holding a model replica per core (several actors share the replicas), and "
        "no more replicas than the sessions have model calls"
    )
    actors_per_gpu: int = Field(
        2, ge=1, le=16, description="model actors packed on one GPU (num_gpus = 1/k)"
    )
    model_batch_size: int = Field(
        16, ge=1, le=256, description="30 s chunks per model call, across sessions"
    )
    cpu_threads: int = Field(
        0, ge=0, description="threads per model replica on CPU (0: CTranslate2's default)"
    )
    max_model_actors: int | None = Field(
        None, ge=1, description="the model pool starts with what the cluster has and grows "
        "onto nodes that join mid-job up to this many actors (the preprocessing pool in "
        "proportion); default: as many as the sessions make model calls, at most "
        "256"
    )
    stall_timeout_s: float = Field(
        120.0, gt=0, description="after a node is lost mid-job, how long the job waits "
        "for a block to come back before it gives up the pass in flight and runs the "
        "sessions not yet written again on the nodes there are now"
    )
    sessions_per_pass: int = Field(
        2000, ge=1, description="the job runs the sessions through Ray Data in passes of at "
        "most this many (longest first): Ray Data keeps every block's statistics in the "
        "driver until its pass ends (~10 KB a session), so passes bound the driver's "
        "memory; each pass starts its actors anew (one model load per actor)"
    )
    simulated_gpus: Literal["off", "on", "over_real_gpus"] = Field(
        "off", description="lay the model actors out on the GPUs Ray's nodes declare "
        "(ray start --num-gpus N): num_gpus = 1/actors_per_gpu each, GPU hours and cost "
        "as they held them, while the engine computes on CPU; to rehearse a GPU cluster's "
        "layout on machines without GPUs. 'on' is refused where a node has a real GPU; "
        "'over_real_gpus' runs anyway"
    )

    def gpu_fraction(self) -> float:
        """The ``num_gpus`` each model actor asks for: always 1/k."""
        return 1.0 / self.actors_per_gpu


class JobConfig(_Frozen):
    """A batch job: where sessions come from and go to, plus the two groups above."""

    input: str = Field(description="folder, s3:// or gs:// prefix, or a CSV/JSONL/Parquet manifest")
    output: str = Field(description="folder, s3:// or gs:// prefix for transcripts")
    overwrite: bool = Field(False, description="redo sessions that already have an ok record")
    gpu_hourly_usd: float = Field(
        0.42, ge=0, description="price of one GPU-hour, for the cost report (RTX 3090 on Vast.ai)"
    )
    limit: int | None = Field(None, ge=1, description="transcribe at most this many sessions")
    dashboard: bool = Field(
        False, description="start Ray's dashboard when the job starts its own Ray (about 2-3 s "
        "of start-up on a small machine); a running cluster keeps its own"
    )
    verbose: bool = Field(
        False, description="show Ray Data's own progress bars and logs and Ray's messages "
        "as they come, beside the job's progress line"
    )
    transcribe: TranscribeOptions = Field(default_factory=TranscribeOptions)
    resources: ResourceConfig = Field(default_factory=ResourceConfig)


def _groups(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The fields of ``model`` that are option groups themselves (``transcribe``, ...)."""
    return {name: field.annotation for name, field in model.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar_type(annotation: Any) -> Any:
    """The Python type argparse should convert a flag's text to."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _scalar_type(args[0])
    if origin is Literal:
        return str
    return annotation


def add_arguments(parser: argparse._ActionsContainer, model: type[BaseModel],
                  skip: Collection[str] = ()) -> None:
    """One ``--flag`` per field of ``model`` but groups and ``skip``; unset flags stay out."""
    groups = _groups(model)
    for name, field in model.model_fields.items():
        if name in groups or name in skip:
            continue
        kind = _scalar_type(field.annotation)
        help_text = f"{field.description} (default: {field.default})"
        if kind is bool:
            parser.add_argument(
                _flag(name), dest=name, action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS, help=help_text,
            )
            continue
        if typing.get_origin(kind) is tuple:  # --temperature-fallback 0.2 0.4 (none: empty)
            parser.add_argument(_flag(name), dest=name, type=typing.get_args(kind)[0],
                                nargs="*", default=argparse.SUPPRESS, help=help_text)
            continue
        choices = typing.get_args(field.annotation) if typing.get_origin(
            field.annotation) is Literal else None
        if choices is None and kind in (int, float) and _optional(field.annotation):
            kind, help_text = _or_none(kind), f"{help_text}; 'none' turns it off"
        parser.add_argument(
            _flag(name), dest=name, type=kind, choices=choices,
            default=argparse.SUPPRESS, help=help_text,
        )


def _optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def _or_none(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """``kind``, or None for the word "none": a number flag whose field may be unset
    (``--remainder-s none``, ``--max-new-tokens none``)."""
    def convert(text: str) -> Any:
        return None if text.strip().lower() == "none" else kind(text)

    convert.__name__ = kind.__name__  # argparse names the type in its errors
    return convert


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a plain dict (an empty file is an empty config)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidParameterError("config", f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidParameterError("config", f"{path} must hold a mapping")
    return data


def build(model: type[M], base: Mapping[str, Any],
          flags: Mapping[str, Any] | None = None) -> M:
    """Validate ``base`` (a YAML file's mapping) overridden by ``flags`` into ``model``.

    The one loader of the batch job, ``scribe serve``, Serve's ``app_builder`` and each
    online request. ``flags`` are flat, as the command line has them: a name that is not
    a field of ``model`` itself goes into the group (``transcribe``, ``resources``,
    ``server``) that declares it. Raises :class:`~scribe.errors.InvalidParameterError`
    naming the first bad field (``transcribe.beam_size``).
    """
    data = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    groups = _groups(model)
    for key, value in (flags or {}).items():
        group = next((g for g, m in groups.items() if key in m.model_fields), None)
        if group and key not in model.model_fields:
            data[group] = {**(data.get(group) or {}), key: value}
        else:
            data[key] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or model.__name__
        raise InvalidParameterError(param, first["msg"]) from exc
