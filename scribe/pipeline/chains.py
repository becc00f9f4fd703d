"""Prompt chains: each chunk of a chain decoded with the text of the chain before it, as
sequential decoding conditions on the previous window's text, while chains of any
sessions share the model calls.

A chain is fixed by the chunks' indices alone (:func:`chained`), so the batch job, which
decodes chains whole (:func:`transcribe_chains`), and the online service, which sends
each chunk with its chain's text once the chunk before it is done (:func:`said_after`),
prompt every chunk with the same text whatever else shares its model calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from scribe.config import TranscribeOptions
from scribe.pipeline.chunking import Chunk, ChunkOutput, ChunkPlan


class Prompted(Protocol):
    """What the chains use of the engine: one batch, each chunk with its own prompt."""

    def _transcribe(self, items: Sequence[Chunk], opts: TranscribeOptions,
                    prompts: Sequence[str | None],
                    known: Sequence[Any] | None = None,
                    decoded: Sequence[dict[str, Any] | None] | None = None
                    ) -> list[ChunkOutput]: ...


def transcribe_chains(engine: Prompted, items: Sequence[Chunk], opts: TranscribeOptions,
                      per_call: int, known: Sequence[Any | None]) -> list[ChunkOutput]:
    """A session's chunks form chains of ``prompt_chain``: chunk indices 0-3, 4-7 and
    so on (for 4), whichever call they come in. Each chunk of a chain is prompted with
    the chain's text before it, as sequential decoding conditions on the previous
    window's text. The chains of the call are decoded side by side, the first chunk of
    every chain, then the second, in model calls of ``per_call`` chunks: a call of
    B x prompt_chain chunks of one session still decodes B at a time. A chain given
    whole gives the same text whatever else shares the call (the job's blocks keep
    chains whole); a chain's part starts without a prompt.

    Each chunk keeps its own language (:mod:`scribe.pipeline.languages`, decided before
    the chains): a session may change language within a chain. ``known`` says where each
    chunk's encoding is (a :data:`scribe.pipeline.repair.EncodedRow`, or None)."""
    chains = _chains(items, opts.prompt_chain)
    outputs: list[ChunkOutput | None] = [None] * len(items)
    said = [""] * len(chains)
    for k in range(max(len(chain) for chain in chains)):
        wave = [(n, chain[k]) for n, chain in enumerate(chains) if len(chain) > k]
        for first in range(0, len(wave), per_call):
            part = wave[first:first + per_call]
            done = engine._transcribe([items[i] for _, i in part], opts,
                                      [said[n] or None for n, _ in part],
                                      [known[i] for _, i in part])
            for (n, i), out in zip(part, done, strict=True):
                outputs[i] = out
                said[n] = said_after(said[n], out)
    return [out for out in outputs if out is not None]


def said_after(said: str, output: ChunkOutput) -> str:
    """A chain's text once ``output``'s chunk is added to ``said`` (its text before): what
    prompts the chain's next chunk."""
    return " ".join([said, *(seg["text"].strip() for seg in output.segments)]).strip()


def first_parts(prompts: Sequence[str | None], parents: Sequence[int]) -> list[str | None]:
    """The prompts of chunks split by language (``parents[k]``: which of the chunks that
    ``prompts`` are for part ``k`` is of, parts in order): a chunk's prompt goes to its
    first part; a later part, in another language, starts its own chain, as in
    :func:`transcribe_chains`."""
    return [prompts[parent] if k == 0 or parents[k - 1] != parent else None
            for k, parent in enumerate(parents)]


def chained(before: ChunkPlan, after: ChunkPlan, length: int) -> bool:
    """Whether ``after`` is the chunk after ``before`` in one chain of ``length`` (both of
    one session): the next index on the same channel, in the same ``index // length``."""
    return (after.channel == before.channel and after.index == before.index + 1
            and after.index // length == before.index // length)


def _chains(items: Sequence[Chunk], length: int) -> list[list[int]]:
    """Indices of ``items`` in chains: consecutive chunks of one session (and channel)
    whose indices share ``index // length``, in whatever order they were given."""
    chains: list[list[int]] = []
    order = sorted(range(len(items)), key=lambda i: (
        items[i].session_id, items[i].plan.channel or 0, items[i].plan.index))
    for i in order:
        item = items[i]
        if chains and _follows(items[chains[-1][-1]], item, length):
            chains[-1].append(i)
        else:
            chains.append([i])
    return chains


def _follows(before: Chunk, after: Chunk, length: int) -> bool:
    return after.session_id == before.session_id and chained(before.plan, after.plan, length)
