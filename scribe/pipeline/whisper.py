"""The model stage: batched Whisper generation over chunks from any mix of sessions.

Built from faster-whisper's own pieces, in the order its ``BatchedInferencePipeline``
uses them, with one change: each chunk carries its own language (given, or detected from
the encoder output the batch computes anyway), so chunks from different sessions can
share one model call. Text and timestamps do not depend on which chunks share a batch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from scribe.architectures import n_mels_by_name
from scribe.config import TranscribeOptions
from scribe.errors import ModelLoadError
from scribe.pipeline import alignment, chains, repair
from scribe.pipeline.bundled import local_model_path
from scribe.pipeline.chunking import Chunk, ChunkOutput, ChunkPlan
from scribe.pipeline.features import stack_padded, window_frames
from scribe.pipeline.languages import Detected, detect
from scribe.pipeline.repair import EncodedRow, Piece
from scribe.pipeline.safeguards import (
    drop_hallucinations,
    is_silence,
)
from scribe.pipeline.sentences import pauses, split_segment
from scribe.schema import Segment

logger = logging.getLogger(__name__)

# faster-whisper's batched defaults, kept in one place.
# Prompt lengths (text tokens) up to Whisper's own limit (223), below ``prompt_tokens``:
# chunks prompted with the text before them share a model call per level, as CTranslate2
# batches one length only.
_PROMPT_LEVELS = (32, 64, 128)

def resolve_model_path(model: str) -> str:
    """A local directory for ``model``: itself when it is one, the installed tiny.en for its
    names (see :mod:`scribe.pipeline.bundled`), else the (cached) download."""
    local = local_model_path(model)
    if local is not None:
        return local
    from faster_whisper.utils import download_model

    try:
        path: str = download_model(model)
    except Exception as exc:
        raise ModelLoadError(
            f"model {model!r} is neither a local CTranslate2 directory nor downloadable "
            f"({exc.__class__.__name__}: {exc}); pass --model PATH to a converted model, "
            "or run `scribe make-test-model DIR` for an offline test model"
        ) from exc
    return path


def model_n_mels(model: str) -> int:
    """Mel bins the model expects, without loading it (128 for large-v3 and turbo)."""
    if os.path.isdir(model):
        config = os.path.join(model, "preprocessor_config.json")
        if os.path.isfile(config):
            with open(config, encoding="utf-8") as f:
                return int(json.load(f).get("feature_size", 80))
        return 80
    return n_mels_by_name(model)


class WhisperEngine:
    """A loaded faster-whisper model that transcribes batches of prepared chunks."""

    def __init__(self, options: TranscribeOptions, *, cpu_threads: int = 0,
                 workers: int = 1) -> None:
        """``workers`` model replicas (faster-whisper's ``num_workers``) of ``cpu_threads``
        threads each: that many :meth:`transcribe` calls from as many threads run at once,
        in one process with one copy of the weights."""
        from faster_whisper import WhisperModel

        opts = options.resolved()
        assert opts.model is not None and opts.compute_type is not None
        self.options = opts
        path = resolve_model_path(opts.model)
        try:
            self.model = WhisperModel(
                path, device=opts.device, compute_type=opts.compute_type,
                cpu_threads=cpu_threads, num_workers=workers,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelLoadError(f"could not load model {opts.model!r}: {exc}") from exc
        self._tokenizers: dict[tuple[str, str], Any] = {}
        logger.info("loaded %s on %s (%s)", opts.model, opts.device, opts.compute_type)

    @property
    def n_mels(self) -> int:
        return int(self.model.model.n_mels)

    @property
    def is_multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def tokenizer(self, language: str, task: str) -> Any:
        """faster-whisper's tokenizer for one language and task, built once."""
        from faster_whisper.tokenizer import Tokenizer

        key = (language, task)
        if key not in self._tokenizers:
            self._tokenizers[key] = Tokenizer(
                self.model.hf_tokenizer, self.is_multilingual, task=task, language=language
            )
        return self._tokenizers[key]

    def transcribe(
        self, items: Sequence[Chunk], options: TranscribeOptions | None = None, *,
        batch_size: int | None = None, prompts: Sequence[str | None] | None = None,
    ) -> list[ChunkOutput]:
        """Transcribe ``items`` together; outputs are in the same order, each with its share
        of the call's time.

        Each chunk is encoded at its own window (:meth:`_window`): chunks of equal window
        share a model call, so a batch of mixed lengths makes one call per window.

        With ``timestamps="aligned"`` (the default) a chunk is decoded as text alone, and
        its words, aligned to the audio, are cut into segments
        (:mod:`scribe.pipeline.sentences`); the words stay on the segments, since the
        record maps segment times through them. With ``"predicted"`` Whisper's timestamp
        tokens cut the text, and what it leaves is decoded again
        (:func:`scribe.pipeline.repair.decode_remainders`); with ``"chunk"`` a chunk is
        one segment.

        With ``condition_on_previous_text`` each chunk is prompted with the text before it
        in its session (:func:`scribe.pipeline.chains.transcribe_chains`), in model calls
        of at most ``batch_size`` chunks (default: ``len(items) / prompt_chain``).
        Given ``prompts`` (the online service, which chains a request's chunks itself),
        each chunk is prompted with its own, all in one call, and no chain is formed here;
        a chunk split by language gives its prompt to its first part only, as a chain
        gives it (a later part, in another language, starts its own chain)."""
        if not items:
            return []
        opts = options or self.options
        found = (detect(self, items, opts) if self.is_multilingual
                 else Detected(list(items), [None] * len(items), list(range(len(items))),
                               [1.0] * len(items)))
        # A GPU's encoder outputs cannot be sliced (:meth:`_encode`): they are let go, and
        # the decode encodes again, rather than holding the call's outputs on the card.
        rows = found.rows if self._on_cpu else [None] * len(found.chunks)
        if prompts is not None:
            outputs = self._transcribe(found.chunks, opts,
                                       chains.first_parts(prompts, found.parents), rows)
        elif opts.condition_on_previous_text:
            outputs = chains.transcribe_chains(
                self, found.chunks, opts,
                self.chunks_per_call(len(found.chunks), opts, batch_size=batch_size), rows)
        else:
            outputs = self._transcribe(found.chunks, opts, [None] * len(found.chunks), rows)
        return _merged(items, outputs, found)

    def encode_at_windows(self, features: Sequence[Any], opts: TranscribeOptions
                          ) -> list[EncodedRow]:
        """Each chunk's encoding at its own window (:meth:`_window`), chunks of one window
        in one encoder output."""
        groups: defaultdict[int, list[int]] = defaultdict(list)
        for i, feats in enumerate(features):
            groups[self._window(feats.shape[1], opts)].append(i)
        rows: list[EncodedRow] = [(None, 0)] * len(features)
        for width, group in groups.items():
            encoded = self._encode([features[i] for i in group], width, [None] * len(group))
            for n, i in enumerate(group):
                rows[i] = (encoded, n)
        return rows

    def detect_language(self, encoded: Any) -> list[list[tuple[str, float]]]:
        """CTranslate2's language detection on an encoder output: per row, every language
        and its probability, the likeliest first."""
        return [[(token[2:-2], prob) for token, prob in ranked]
                for ranked in self.model.model.detect_language(encoded)]

    def chunks_per_call(self, count: int, options: TranscribeOptions | None = None, *,
                        batch_size: int | None = None) -> int:
        """The most chunks one model call takes when :meth:`transcribe` is given ``count``
        chunks: all of them, or with prompt chains ``batch_size`` (default
        ``count / prompt_chain``)."""
        opts = options or self.options
        if not opts.condition_on_previous_text:
            return count
        return min(count, batch_size or math.ceil(count / opts.prompt_chain))

    def _transcribe(self, items: Sequence[Chunk], opts: TranscribeOptions,
                    prompts: Sequence[str | None],
                    known: Sequence[EncodedRow | None] | None = None,
                    decoded: Sequence[dict[str, Any] | None] | None = None
                    ) -> list[ChunkOutput]:
        """One batch, each chunk with its own prompt (the text before it, or None), and
        where its encoding already is, if anywhere (``known``: a redo's chunks), and its
        decode under ``opts`` where one was made already (``decoded``: a redo's chunks
        that the fallback decoded so), which is then not made again.

        Chunks share a model call when they share an encoder width and a prompt length
        (CTranslate2 decodes a batch only from prompts of one length), so a prompt is cut
        to one of :data:`_PROMPT_LEVELS` tokens: what a chunk is given depends on its own
        text before, never on its neighbours'."""
        start = time.perf_counter()
        previous = [self._previous_tokens(opts, said) for said in prompts]
        decoded = decoded or [None] * len(items)
        groups: defaultdict[tuple[int, int, bool], list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            groups[self._window(item.features.shape[1], opts), len(previous[i]),
                   decoded[i] is not None].append(i)
        known = known or [None] * len(items)
        encoded = {key: self._encode([items[i].features for i in group], key[0],
                                     [known[i] for i in group])
                   for key, group in groups.items()}
        rows: list[EncodedRow] = [(None, 0)] * len(items)
        for key, group in groups.items():
            for n, i in enumerate(group):
                rows[i] = (encoded[key], n)
        languages = [(item.language or opts.language or "en", 1.0) if self.is_multilingual
                     else ("en", 1.0) for item in items]
        tokenizers = [self.tokenizer(lang, opts.task) for lang, _ in languages]
        pieces: list[list[Piece]] = [[] for _ in items]
        for key, group in groups.items():
            toks = [tokenizers[i] for i in group]
            given = [result for i in group if (result := decoded[i]) is not None]
            results = given or repair.fall_back(
                self, [items[i] for i in group], toks, self._generate(
                    encoded[key], toks, opts, previous=[previous[i] for i in group]),
                opts, key[0], encoded[key])
            for i, result in zip(group, results, strict=True):
                pieces[i].append((0.0, result))
        pieces = repair.decode_remainders(self, items, tokenizers, pieces, opts)
        outputs = [
            ChunkOutput(plan=item.plan, language=lang, language_probability=prob,
                        segments=[seg for start, res in chunk_pieces if not is_silence(res, opts)
                                  for seg in self._split(item.plan, tok, res, start)])
            for item, tok, chunk_pieces, (lang, prob) in zip(
                items, tokenizers, pieces, languages, strict=True)
        ]
        if opts.word_timestamps or opts.timestamps == "aligned":
            for key, group in groups.items():
                self._add_words([items[i] for i in group], [outputs[i] for i in group],
                                [tokenizers[i] for i in group], encoded[key], key[0])
            if opts.timestamps == "aligned":
                repair.redo_early_ends(self, items, outputs, opts, prompts, rows,
                                       [chunk_pieces[0][1] for chunk_pieces in pieces])
                for item, out, tok in zip(items, outputs, tokenizers, strict=True):
                    breaks = pauses(item.plan)
                    out.segments = [part for seg in out.segments
                                    for part in split_segment(seg, breaks, tok.encode)]
            self._drop_hallucinations(items, outputs, opts)
        share = (time.perf_counter() - start) / len(items)
        for out in outputs:
            out.timings["model"] = share
        return outputs

    def _encode(self, features: Sequence[Any], width: int,
                known: Sequence[EncodedRow | None]) -> Any:
        """The encoder output for ``features`` at ``width`` (one chunk each), from the rows
        already encoded at that width where every chunk has one (``known``): the whole
        output when it holds exactly those rows, in order; on CPU, those rows copied out
        (a chunk's encoding does not depend on its batch neighbours); otherwise, and on
        a GPU (whose outputs CTranslate2 cannot slice), encoded again. A redo of a chunk
        at batch 1 on CPU re-encoded it: 3 of 46 encodes on two 12-minute sessions."""
        rows = [row for row in known if row is not None]
        if rows and len(rows) == len(features):
            output = rows[0][0]
            if (all(out is output for out, _ in rows) and output.shape[0] == len(rows)
                    and [n for _, n in rows] == list(range(len(rows)))):
                return output
            if self._on_cpu:
                return _stacked([np.asarray(out)[n] for out, n in rows])
        return self._run_encoder(stack_padded(list(features), width))

    def _run_encoder(self, batch: Any) -> Any:
        """The encoder output of ``batch`` (chunks' features, padded to one width). A GPU
        is given the batch in one call; on CPU each chunk is encoded alone and the outputs
        are stacked: CTranslate2's CPU encoder costs less per chunk alone (tiny.en, int8,
        eight 30 s chunks: 2.4-2.8 CPU-s one by one against 3.2-3.6 in batches of four and
        3.5-4.1 in one of eight, at one thread or two), as a batch's activations outgrow the
        caches. Its output is the same either way."""
        if not self._on_cpu or len(batch) == 1:
            return self.model.encode(batch)
        return _stacked([np.asarray(self.model.encode(batch[k:k + 1]))[0]
                         for k in range(len(batch))])

    def _window(self, frames: int, opts: TranscribeOptions) -> int:
        """The encoder width for a chunk (or remainder) of ``frames``: its length plus
        ``window_padding_s``, in 5 s steps, at most Whisper's 30 s (see
        :func:`~scribe.pipeline.features.window_frames`). It depends on the chunk alone, so
        batch neighbours change nothing."""
        return window_frames(frames, opts.window_padding_s, self._fps)

    def _previous_tokens(self, opts: TranscribeOptions, said: str | None) -> list[int]:
        """A chunk's prompt text as tokens: ``initial_prompt``, then the last tokens of
        what was said before the chunk, cut to the largest level the text reaches:
        :data:`_PROMPT_LEVELS` below ``prompt_tokens``, and ``prompt_tokens`` itself (text
        shorter than the least is not used). The whole stays within Whisper's limit."""
        hf = self.model.hf_tokenizer
        initial = (hf.encode(opts.initial_prompt, add_special_tokens=False).ids
                   if opts.initial_prompt else [])
        limit = self.model.max_length // 2 - 1
        if not said:
            return list(initial[-limit:])
        tokens = hf.encode(" " + said.strip(), add_special_tokens=False).ids
        cap = min(opts.prompt_tokens, limit)
        levels = (*(n for n in _PROMPT_LEVELS if n < cap), cap)
        level = max((n for n in levels if n <= len(tokens)), default=0)
        return [*initial, *tokens[len(tokens) - level:]][-limit:]

    def _generate(
        self, encoder_output: Any, tokenizers: list[Any], opts: TranscribeOptions,
        best_of: int = 1, previous: Sequence[list[int]] | None = None,
    ) -> list[dict[str, Any]]:
        """One decode of each chunk, with the temperature it was decoded at; ``previous``
        are the prompt's text tokens of each, all of one length (None: ``initial_prompt``
        alone)."""
        from faster_whisper.transcribe import get_suppressed_tokens

        texts = previous or [self._previous_tokens(opts, None)] * len(tokenizers)
        prompt_tokens = [
            self.model.get_prompt(tok, previous_tokens=text,
                                  without_timestamps=opts.timestamps != "predicted")
            for tok, text in zip(tokenizers, texts, strict=True)
        ]
        longest = max(len(p) for p in prompt_tokens)
        max_length = self.model.max_length
        if opts.max_new_tokens is not None:
            max_length = min(max_length, longest + opts.max_new_tokens)
        # CTranslate2 samples only with sampling_topk=0 (its default, 1, is greedy whatever
        # the temperature), and sampling is single-beam, as in faster-whisper's fallback.
        sampling: dict[str, Any] = (
            {"beam_size": 1, "sampling_topk": 0, "num_hypotheses": best_of}
            if opts.temperature > 0
            else {"beam_size": opts.beam_size})
        results = self.model.model.generate(
            encoder_output, prompt_tokens, patience=1.0,
            length_penalty=1.0, max_length=max_length, suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizers[0], [-1]),
            return_scores=True, return_no_speech_prob=True,
            sampling_temperature=opts.temperature, repetition_penalty=1.0,
            no_repeat_ngram_size=0, **sampling,
        )
        outputs = []
        for result in results:
            tokens = result.sequences_ids[0]
            cum_logprob = result.scores[0] * len(tokens)
            outputs.append({
                "avg_logprob": cum_logprob / (len(tokens) + 1),
                "no_speech_prob": result.no_speech_prob,
                "tokens": tokens, "temperature": opts.temperature,
            })
        return outputs

    @property
    def _on_cpu(self) -> bool:
        """Whether the model runs on CPU, where CTranslate2's encoder and aligner are given
        one chunk per call and encoder outputs can be sliced (:meth:`_run_encoder`)."""
        return bool(self.model.model.device == "cpu")

    @property
    def _fps(self) -> int:
        return int(self.model.frames_per_second)

    def _split(self, plan: ChunkPlan, tokenizer: Any, result: dict[str, Any],
               start_s: float = 0.0) -> list[Segment]:
        """Cut one decode's tokens into segments at its timestamp tokens; ``start_s`` is
        where in the chunk that decode began."""
        from faster_whisper.transcribe import get_compression_ratio

        duration = plan.duration_s - start_s
        subsegments, _, _ = self.model._split_segments_by_timestamps(
            tokenizer=tokenizer, tokens=result["tokens"], time_offset=plan.offset_s + start_s,
            segment_size=int(math.ceil(duration) * self._fps), segment_duration=duration,
            seek=0,
        )
        segments: list[Segment] = []
        for sub in subsegments:
            text = tokenizer.decode(sub["tokens"])
            segments.append({
                "start": sub["start"], "end": sub["end"], "text": text,
                "tokens": list(sub["tokens"]), "avg_logprob": result["avg_logprob"],
                "no_speech_prob": result["no_speech_prob"],
                "compression_ratio": get_compression_ratio(text),
                "temperature": result["temperature"],
                "seek": int((plan.offset_s + start_s) * self._fps),
            })
        return segments

    def _add_words(self, items: Sequence[Chunk], outputs: list[ChunkOutput],
                   tokenizers: list[Any], encoder_output: Any, frames: int) -> None:
        """Word timestamps (:func:`scribe.pipeline.alignment.add_words`), each chunk's
        encoding taken from ``encoder_output`` at ``frames`` (:meth:`_encode`)."""
        def encode(indices: list[int]) -> Any:
            return self._encode([items[i].features for i in indices], frames,
                                [(encoder_output, i) for i in indices])

        alignment.add_words(self.model, items, outputs, tokenizers, encode,
                            one_by_one=self._on_cpu)

    def _drop_hallucinations(self, items: Sequence[Chunk], outputs: list[ChunkOutput],
                             opts: TranscribeOptions) -> None:
        threshold = opts.hallucination_silence_threshold
        if threshold is None:
            return
        for item, out in zip(items, outputs, strict=True):
            plan = item.plan
            out.segments = drop_hallucinations(
                out.segments, plan.offset_s, plan.offset_s + plan.duration_s, threshold)

def _merged(items: Sequence[Chunk], outputs: list[ChunkOutput], found: Detected
            ) -> list[ChunkOutput]:
    """One output per chunk of ``items`` from the outputs of ``found``'s chunks (a chunk
    decoded in two halves, in two languages, gives its segments in order and the language
    of its longer half); every segment names its language."""
    parts: defaultdict[int, list[tuple[ChunkOutput, float]]] = defaultdict(list)
    for out, parent, prob in zip(outputs, found.parents, found.probabilities, strict=True):
        for segment in out.segments:
            segment["language"] = out.language
        parts[parent].append((out, prob))
    merged = []
    for i, item in enumerate(items):
        longest, prob = max(parts[i], key=lambda part: part[0].plan.duration_s)
        merged.append(ChunkOutput(
            plan=item.plan, language=longest.language, language_probability=prob,
            segments=[seg for out, _ in parts[i] for seg in out.segments],
            timings={"model": sum(out.timings.get("model", 0.0) for out, _ in parts[i])}))
    return merged


def _stacked(rows: list[Any]) -> Any:
    """One CTranslate2 encoder output from per-chunk rows (arrays of the same width)."""
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.stack(rows))
