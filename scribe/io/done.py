"""Which sessions an earlier run finished, learned without reading their transcripts.

Each ok session gets an empty marker, ``_done/<session id>.ok``, written atomically right
after its JSON record (the record stays the commit: a marker is only ever written once
the record is). A rerun lists ``_done/`` in one pass. A session that has a record but no
marker (an output written before markers existed, or a run stopped between the two
writes) still counts: its record is read, and its marker written, once. To have one
session done again, delete its record and its marker (or run with ``overwrite``).
"""

from __future__ import annotations

from scribe.io import storage

DONE_DIR = "_done"
SUFFIX = ".ok"


def marker_uri(output: str, session_id: str) -> str:
    """Where the marker of ``session_id`` goes under ``output``."""
    return storage.join(output, DONE_DIR, session_id + SUFFIX)


def mark_done(output: str, session_id: str) -> None:
    """Record that ``session_id`` is done; call after its ok record is written."""
    storage.write_atomic(marker_uri(output, session_id), b"")


def unmark(output: str, session_id: str) -> None:
    """Remove the marker of ``session_id`` (its record is about to say it failed)."""
    storage.remove(marker_uri(output, session_id))


def marked_sessions(output: str) -> set[str]:
    """Ids with a marker under ``output``, in one listing."""
    return {name[: -len(SUFFIX)] for name in storage.iter_files(storage.join(output, DONE_DIR))
            if name.endswith(SUFFIX)}
