"""The shell blocks of README.md and docs/*.md, as the docs tier runs them.

Conventions (docs/testing.md#documentation-as-tests):

- Every fenced block tagged ``bash``, ``sh``, ``shell`` or ``console`` is run as written; in
  a ``console`` block only the lines after a ``$ `` prompt are commands.
- A block that cannot run on a test machine has ``<!-- docs-test: skip (the reason) -->``
  on the line right above its fence (blank lines between are allowed).
- ``<!-- docs-test: expect (some text) -->`` there: the block's output must hold that text.
- ``s3://bucket/...`` names a bucket: the tier serves ``bucket`` on loopback, with the
  example sessions under ``sessions/``. ``HEAD`` is the head node's address: the tier
  starts a head of its own for blocks that use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console"})
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")
MARKER_BODY = re.compile(r"^(?P<kind>skip|expect) \((?P<text>.+)\)$")
HEAD = re.compile(r"\bHEAD\b")


class MarkerError(ValueError):
    """A ``docs-test`` comment the tier cannot read, with its file and line."""


@dataclass(frozen=True)
class Block:
    """One shell block: where it is, its language, its commands, and why it is skipped."""

    path: str
    line: int
    language: str
    text: str
    skip: str | None
    expect: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def uses_head(self) -> bool:
        return bool(HEAD.search(self.text))


def documents(root: Path) -> list[Path]:
    """README.md, then docs/*.md in name order: the order a reader meets them."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def blocks(root: Path) -> list[Block]:
    """Every shell block of every document under ``root``."""
    found: list[Block] = []
    for path in documents(root):
        found += parse(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
    return found


def parse(markdown: str, name: str) -> list[Block]:
    """The shell blocks of one Markdown text; raises :class:`MarkerError` for a marker that
    is malformed or not right above a shell block."""
    lines = markdown.split("\n")
    found: list[Block] = []
    markers: list[tuple[int, str, str]] = []  # (line, kind, text)
    index = 0
    while index < len(lines):
        line = lines[index]
        comment = MARKER.match(line.strip())
        fence = FENCE.match(line)
        if comment:
            markers.append((index + 1, *_marker(comment["body"], f"{name}:{index + 1}")))
        elif fence:
            body, index = _fenced(lines, index, fence["fence"])
            language = fence["info"].lower()
            if language in SHELL_LANGUAGES:
                skips = [text for _, kind, text in markers if kind == "skip"]
                expects = tuple(text for _, kind, text in markers if kind == "expect")
                found.append(Block(name, body[0], language, _commands(body[1], language),
                                   skips[0] if skips else None, expects))
            elif markers:
                raise MarkerError(f"{name}:{markers[0][0]}: a docs-test marker above a "
                                  f"{language or 'plain'} block, which is never run")
            markers = []
        elif line.strip() and markers:
            raise MarkerError(f"{name}:{markers[0][0]}: a docs-test marker not right above "
                              "a block")
        index += 1
    if markers:
        raise MarkerError(f"{name}:{markers[0][0]}: a docs-test marker with no block below")
    return found


def _marker(body: str, where: str) -> tuple[str, str]:
    marker = MARKER_BODY.match(body)
    if not marker:
        raise MarkerError(f"{where}: write <!-- docs-test: skip (the reason) --> or "
                          f"<!-- docs-test: expect (text) -->, not {body!r}")
    return marker["kind"], marker["text"]


def _fenced(lines: list[str], start: int, fence: str) -> tuple[tuple[int, str], int]:
    """((the fence's 1-based line, the text inside), the index of the closing fence)."""
    for end in range(start + 1, len(lines)):
        if lines[end].strip().startswith(fence[0] * len(fence)) and \
                not lines[end].strip().strip(fence[0]):
            return (start + 1, "\n".join(lines[start + 1:end])), end
    return (start + 1, "\n".join(lines[start + 1:])), len(lines)


def _commands(text: str, language: str) -> str:
    if language != "console":
        return text
    return "\n".join(line[2:] for line in text.split("\n") if line.startswith("$ "))
