"""Which language each chunk is in, and which languages and tasks a model can do.

Detection runs per chunk, on the encoder output the model call needs anyway:

- a language given (the request, the job's ``--language``, the manifest's ``language``)
  wins: nothing is detected;
- otherwise a chunk whose top language reaches ``language_threshold`` is in that language,
  so a session that changes language changes with it, chunk by chunk;
- a chunk below it, or next to a chunk of its session sure of another language (a chunk
  is in its majority's language, so a switch a few seconds before its end leaves it sure),
  has each of its speech ranges (VAD regions, about a sentence) detected alone, as the
  likeliest of the languages around it: runs of ranges in one language are decoded
  apart, each in its own (a lone range between two of another language keeps its own
  only if it is sure of it and a chunk of its session was too);
- a chunk that stays unsure takes its session's language, the vote of the session's chunks
  in the call (their probabilities summed), as a short or unclear chunk's own guess is the
  least reliable.

The numbers behind the threshold are in docs/languages.md.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from scribe.config import SAMPLE_RATE, TranscribeOptions
from scribe.errors import InvalidParameterError
from scribe.pipeline.bundled import local_model_path
from scribe.pipeline.chunking import Chunk
from scribe.pipeline.repair import EncodedRow

# faster-whisper's multilingual vocabulary starts here; English-only models have one less.
_MULTILINGUAL_VOCABULARY = 51865
# An unsure chunk is searched range by range only where its two likeliest languages
# hold at least this much: a chunk of two languages splits its probability between them,
# while unclear audio spreads it over many (a random-weight model's every chunk did, and
# splitting each into ranges decoded apart made a 20-minute upload 3x slower).
_TWO_LANGUAGES = 0.5
# A speech range shorter than this is not detected on its own terms.
_SHORT_RANGE_S = 2.0


class Encoder(Protocol):
    """What detection needs from the engine: its encoder at a chunk's window, and
    CTranslate2's language detection on an encoder output."""

    def encode_at_windows(self, features: Sequence[Any], opts: TranscribeOptions
                          ) -> list[EncodedRow]: ...

    def detect_language(self, encoded: Any) -> list[list[tuple[str, float]]]: ...


@dataclass
class Detected:
    """Chunks ready to decode, each with its language and where its encoding is;
    ``parents[k]`` is the index of the chunk given that ``chunks[k]`` is (a split chunk
    gives two)."""

    chunks: list[Chunk]
    rows: list[EncodedRow | None]
    parents: list[int]
    probabilities: list[float]


def detect(encoder: Encoder, items: Sequence[Chunk], opts: TranscribeOptions) -> Detected:
    """Each chunk of ``items`` with its language (see the module's docstring)."""
    todo = [i for i, item in enumerate(items) if not (item.language or opts.language)]
    given = [dataclasses.replace(item, language=item.language or opts.language)
             for item in items]
    out = Detected([], [], [], [])
    if not todo:
        out.chunks, out.rows = given, [None] * len(items)
        out.parents, out.probabilities = list(range(len(items))), [1.0] * len(items)
        return out
    rows = dict(zip(todo, encoder.encode_at_windows([items[i].features for i in todo], opts),
                    strict=True))
    ranked = {i: _ranked(encoder, row) for i, row in rows.items()}
    votes = _votes(items, ranked)
    candidates = _flagged(items, ranked, votes, opts.language_threshold)
    usual = {i: r[0][0] if r[0][1] >= opts.language_threshold else votes[items[i].session_id][0]
             for i, r in ranked.items()}
    runs = _by_range(encoder, items, candidates, usual, ranked, opts)
    for i, item in enumerate(items):
        if i not in ranked:
            _add(out, given[i], None, i, 1.0)
        elif len(pieces := runs.get(i, [])) > 1:
            for first, last, language, prob in pieces:
                _add(out, part(item, first, last, language), None, i, prob)
        else:
            language, prob = ranked[i][0]
            if prob < opts.language_threshold:
                language, prob = votes[item.session_id]
            _add(out, dataclasses.replace(item, language=language), rows[i], i, prob)
    return out


def _add(out: Detected, chunk: Chunk, row: EncodedRow | None, parent: int,
         prob: float) -> None:
    out.chunks.append(chunk)
    out.rows.append(row)
    out.parents.append(parent)
    out.probabilities.append(prob)


def _ranked(encoder: Encoder, row: EncodedRow) -> list[tuple[str, float]]:
    encoded, n = row
    return encoder.detect_language(encoded)[n]


def _votes(items: Sequence[Chunk], found: dict[int, list[tuple[str, float]]]
           ) -> dict[str, tuple[str, float]]:
    """Each session's language: its chunks' probabilities summed, and the winner's share."""
    tally: defaultdict[str, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
    for i, ranked in found.items():
        for language, prob in ranked:
            tally[items[i].session_id][language] += prob
    return {group: (best := max(t, key=t.__getitem__), t[best] / sum(t.values()))
            for group, t in tally.items()}


def _flagged(items: Sequence[Chunk], ranked: dict[int, list[tuple[str, float]]],
             votes: dict[str, tuple[str, float]], threshold: float
             ) -> dict[int, set[str]]:
    """The chunks that may hold more than one language, each with the languages it may
    hold: unsure between two (its two likeliest, and its session's; a chunk whose two
    likeliest hold less than :data:`_TWO_LANGUAGES` is unclear audio, noise or music, not
    two languages, and takes its session's without a search), or next to a chunk of
    its session (in this call) sure of another language (its own, and that one). A
    chunk's language is its majority's, so a switch a few seconds before a chunk ends
    leaves it sure."""
    place = {(items[i].session_id, items[i].plan.channel, items[i].plan.index): i for i in ranked}
    flagged: dict[int, set[str]] = {}
    for i, ((language, prob), *rest) in ranked.items():
        plan = items[i].plan
        near = {ranked[j][0][0] for step in (-1, 1)
                if (j := place.get((items[i].session_id, plan.channel, plan.index + step)))
                is not None and ranked[j][0][1] >= threshold} - {language}
        if prob < threshold and prob + sum(p for _, p in rest[:1]) >= _TWO_LANGUAGES:
            near |= {votes[items[i].session_id][0], *(other for other, _ in rest[:1])}
        if near:
            flagged[i] = {language, *near}
    return flagged


def _by_range(encoder: Encoder, items: Sequence[Chunk], flagged: dict[int, set[str]],
              usual: dict[int, str], ranked: dict[int, list[tuple[str, float]]],
              opts: TranscribeOptions) -> dict[int, list[tuple[int, int, str, float]]]:
    """Each flagged chunk's runs of speech ranges in one language, ``(first, last + 1,
    language, probability)``: every range detected alone, as the likeliest of the
    languages the chunk may hold (one sentence is too little to choose among 99, enough
    to choose among two), but in the chunk's ``usual`` language (its own when sure, else
    its session's) unless the range is sure of the other (``language_threshold`` of the
    candidates' probability: a synthetic French sentence came out 'English' alone); a
    range shorter than :data:`_SHORT_RANGE_S` takes the language before it (the first,
    the one after). A range is encoded at its own length, without padding: five times
    cheaper than with the decode's 10 s, and as often right. ``ranked``: every detected
    chunk's languages, likeliest first, which say the languages each session's chunks
    were sure of (:func:`_runs`)."""
    order = [(i, k) for i in flagged if len(items[i].plan.ranges) > 1
             for k in range(len(items[i].plan.ranges))]
    if not order:
        return {}
    rows = encoder.encode_at_windows(
        [part(items[i], k, k + 1, None).features for i, k in order],
        opts.model_copy(update={"window_padding_s": 0.0}))
    found: defaultdict[int, list[tuple[str, float] | None]] = defaultdict(list)
    for (i, k), row in zip(order, rows, strict=True):
        among = {lang: p for lang, p in _ranked(encoder, row) if lang in flagged[i]}
        total = sum(among.values()) or 1.0
        language = max(among, key=among.__getitem__)
        if language != usual[i] and among[language] / total < opts.language_threshold:
            language = usual[i]
        r = items[i].plan.ranges[k]
        long_enough = (r["end"] - r["start"]) / SAMPLE_RATE >= _SHORT_RANGE_S
        found[i].append((language, among.get(language, 0.0) / total) if long_enough else None)
    spoken: defaultdict[str, set[str]] = defaultdict(set)
    for i, ((language, prob), *_) in ranked.items():
        if prob >= opts.language_threshold:
            spoken[items[i].session_id].add(language)
    return {i: _runs(ranges, opts.language_threshold, spoken[items[i].session_id])
            for i, ranges in found.items() if any(ranges)}


def _runs(ranges: list[tuple[str, float] | None], threshold: float,
          spoken: Collection[str]) -> list[tuple[int, int, str, float]]:
    """Ranges of one language in a row, from each range's language (None: the one before
    it). A range of a language other than that of the ranges on both sides of it takes
    theirs where it is unsure (below ``threshold``), or where its language is not one
    that a chunk of its session was sure of (``spoken``): one sentence alone is the
    likeliest to be wrong (a French sentence of base's came out Latin at 0.97 of the two,
    in a session no chunk of which was Latin, and was decoded as Latin gibberish)."""
    ranges = list(ranges)
    for k in range(1, len(ranges) - 1):
        before, here, after = ranges[k - 1], ranges[k], ranges[k + 1]
        if (before and here and after and before[0] == after[0] != here[0]
                and (here[1] < threshold or here[0] not in spoken)):
            ranges[k] = before
    first = next(r for r in ranges if r is not None)
    runs: list[tuple[int, int, str, float]] = []
    for k, found in enumerate(ranges):
        language, prob = found or (runs[-1][2:] if runs else first)
        if runs and runs[-1][2] == language:
            start, _, _, best = runs[-1]
            runs[-1] = (start, k + 1, language, max(best, prob))
        else:
            runs.append((k, k + 1, language, prob))
    return runs


def part(chunk: Chunk, first: int, last: int, language: str | None, fps: int = 100
         ) -> Chunk:
    """The chunk of ``chunk``'s speech ranges ``first`` to ``last`` (exclusive), in
    ``language``: its own place on the collapsed timeline, its slice of the features, the
    chunk's index and session."""
    plan = chunk.plan
    seconds = [(r["end"] - r["start"]) / SAMPLE_RATE for r in plan.ranges]
    start_s = sum(seconds[:first])
    end_s = plan.duration_s if last == len(seconds) else sum(seconds[:last])
    sub = dataclasses.replace(plan, offset_s=plan.offset_s + start_s,
                              duration_s=end_s - start_s, ranges=plan.ranges[first:last],
                              voices=())
    return dataclasses.replace(chunk, plan=sub, language=language,
                               features=chunk.features[:, round(start_s * fps):
                                                       round(end_s * fps)])


# --------------------------------------------------------------------------- capabilities


@dataclass(frozen=True)
class ModelLanguages:
    """What a model can be asked for: its languages, and whether it can translate (an
    English-only model cannot)."""

    languages: frozenset[str]
    multilingual: bool


def model_languages(model: str) -> ModelLanguages | None:
    """What ``model`` knows, without loading it: for a local CTranslate2 folder (or an
    offline model's name, :mod:`scribe.pipeline.bundled`), from its vocabulary and config;
    for another name, what the name says (``*.en``: English only); None when neither
    says."""
    folder = local_model_path(os.path.expanduser(model))
    if folder is not None:
        return _folder_languages(os.path.abspath(folder))
    name = model.rsplit("/", 1)[-1]
    if name.endswith(".en"):
        return ModelLanguages(frozenset({"en"}), multilingual=False)
    return None


@functools.lru_cache(maxsize=16)
def _folder_languages(folder: str) -> ModelLanguages | None:
    vocabulary = os.path.join(folder, "vocabulary.txt")
    if not os.path.isfile(vocabulary):
        return None
    with open(vocabulary, encoding="utf-8") as f:
        tokens = f.read().splitlines()
    if len(tokens) < _MULTILINGUAL_VOCABULARY:
        return ModelLanguages(frozenset({"en"}), multilingual=False)
    lang_ids = _config(folder).get("lang_ids") or []
    codes = {tokens[i][2:-2] for i in lang_ids if 0 <= i < len(tokens)}
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return ModelLanguages(frozenset(codes or _LANGUAGE_CODES), multilingual=True)


def _config(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    return config if isinstance(config, dict) else {}


def check_request(model: str, *, language: str | None, task: str) -> None:
    """Raise :class:`InvalidParameterError` naming the parameter when ``model`` (a folder
    or a name) cannot do ``task`` in ``language``: translation or a language other than
    English on an English-only model, or a language the model does not know. A model
    nothing is known about yet (a name still to download) is not refused here."""
    known = model_languages(model) if model else None
    if known is None:
        return
    if task == "translate" and not known.multilingual:
        raise InvalidParameterError(
            "task", f"translate needs a multilingual model; {model} is English-only "
            "(use e.g. base, small or large-v3)")
    if language is not None and language not in known.languages:
        what = "is English-only" if not known.multilingual else "does not know it"
        raise InvalidParameterError("language", f"{language!r}: {model} {what}")


def check_sessions(options: TranscribeOptions, sessions: Sequence[tuple[str, str | None]]
                   ) -> None:
    """:func:`check_request` for each ``(session_id, language)`` a manifest gives; the
    error names the session (a manifest's language wins over the job's, as it is the
    session's own)."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    for session_id, language in sessions:
        if language is None:
            continue
        if language not in _LANGUAGE_CODES:
            raise InvalidParameterError(
                "language", f"unknown language code {language!r} in the manifest's row of "
                f"session {session_id!r}")
        try:
            check_request(options.model or "", language=language, task=options.task)
        except InvalidParameterError as exc:
            raise InvalidParameterError(
                "language", f"{exc} (the manifest's row of session {session_id!r})") from exc
