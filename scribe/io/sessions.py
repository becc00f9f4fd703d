"""What to transcribe: the sessions under an input, a prefix listing or a manifest.

A prefix's audio files are sessions, with ids from their relative paths; a manifest (CSV,
JSONL, JSON or Parquet with a ``uri`` column) lists them, with optional ids and languages.
Every read goes through :mod:`scribe.io.storage`, so local folders, ``s3://`` and ``gs://``
are listed the same way.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, overload

import pyarrow as pa
import pyarrow.fs as pafs

from scribe.config import SPEAKER_COUNTS, TranscribeOptions, build, speaker_counts
from scribe.errors import InvalidParameterError, StorageError
from scribe.io import storage

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    {
        "wav", "flac", "mp3", "m4a", "aac", "ogg", "oga", "opus", "webm",
        "mp4", "mkv", "mov", "wma", "aiff", "aif", "amr", "3gp",
    }
)
"""Extensions (lowercase, no dot) a prefix listing treats as audio; matched case-insensitively."""

MANIFEST_EXTENSIONS: frozenset[str] = frozenset({"csv", "jsonl", "json", "parquet"})
"""An input file with one of these extensions is a manifest, not a recording."""

# Roughly how many bytes a second of audio takes, by file type: uncompressed PCM (16-bit
# 44.1 kHz stereo), FLAC about half of it, video containers a 2 Mb/s video track, and any
# other type a compressed audio codec at 128 kb/s. Only the order of sessions comes from it:
# by bytes alone a 5 s WAV (320 KB) went before a minute of MP3 (240 KB).
_BYTES_PER_SECOND: dict[str, int] = {
    "wav": 176_400, "aiff": 176_400, "aif": 176_400, "flac": 88_200,
    "mp4": 250_000, "mkv": 250_000, "mov": 250_000, "webm": 250_000,
}
_COMPRESSED_BYTES_PER_SECOND = 16_000
_ROWS_PER_BATCH = 4096  # manifest rows turned into dicts at a time


def _extension(name: str) -> str:
    base = posixpath.basename(name)
    return base.rsplit(".", 1)[1].lower() if "." in base.lstrip(".") else ""


def _strip_extension(path: str) -> str:
    return path[: -len(_extension(path)) - 1] if _extension(path) else path


def _is_hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def safe_session_id(raw: str) -> str:
    """``raw`` as a relative output path: slashes normalised, no ``..``, not empty.

    Raises :class:`InvalidParameterError` for an id that would escape the output folder.
    """
    parts = [p for p in raw.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidParameterError("session_id", f"{raw!r} is not usable as an output path")
    return "/".join(parts)


def _unique_ids(paths: list[str]) -> list[str]:
    """Ids for relative paths: the path without its extension, unless that collides.

    ``a.mp3`` and ``a.wav`` would both be ``a``; both keep their extension instead.
    """
    ids = [_strip_extension(p) for p in paths]
    while True:
        counts = Counter(ids)
        clashing = [i for i, sid in enumerate(ids) if counts[sid] > 1 and sid != paths[i]]
        if not clashing:
            return ids
        for i in clashing:
            ids[i] = paths[i]


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True, slots=True)
class SessionRef:
    """One recording to transcribe: a stable id (used for output paths) and where it is."""

    session_id: str
    uri: str
    size: int | None = None
    language: str | None = None
    speakers: str | None = None
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

    @property
    def estimated_duration_s(self) -> float:
        """How long the recording roughly is, from its size and file type, without opening
        it (0 when the size is unknown): enough to put long sessions before short ones."""
        rate = _BYTES_PER_SECOND.get(_extension(self.uri), _COMPRESSED_BYTES_PER_SECOND)
        return (self.size or 0) / rate

    def to_dict(self) -> dict[str, Any]:
        """A plain dict: one row of the batch job's input dataset."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionRef:
        """The inverse of :meth:`to_dict`; extra keys are ignored."""
        try:
            session_id, uri = str(data["session_id"]), str(data["uri"])
        except KeyError as exc:
            raise InvalidParameterError("session", f"missing field {exc.args[0]!r}") from exc
        size = data.get("size")
        return cls(
            session_id=session_id,
            uri=uri,
            size=None if size is None else int(size),
            language=data.get("language") or None,
            speakers=data.get("speakers") or None,
            **{k: int(data[k]) if data.get(k) else None for k in SPEAKER_COUNTS},
        )

    def options_for(self, options: TranscribeOptions) -> TranscribeOptions:
        """The job's ``options`` with this session's own: its ``speakers``, and its speaker
        count or bounds, which replace the job's three when it gives any
        (:func:`scribe.config.speaker_counts`)."""
        update: dict[str, Any] = {"speakers": self.speakers or options.speakers}
        update.update(speaker_counts({k: getattr(self, k) for k in SPEAKER_COUNTS}))
        return build(TranscribeOptions, options.model_dump(), update)


# SessionRef's fields, as PackedSessions holds them
_REF_TYPES: dict[str, pa.DataType] = {
    "session_id": pa.string(), "uri": pa.string(), "size": pa.int64(),
    "language": pa.string(), "speakers": pa.string(),
    **{k: pa.int32() for k in SPEAKER_COUNTS},
}


class PackedSessions(Sequence[SessionRef]):
    """Sessions held as Arrow columns, each :class:`SessionRef` made when it is read: what
    a driver keeps of a bucket for hours. Measured with the scale benchmark's stand-ins:
    holding the 100,000 refs of a listing raised the job's peak by 45 MB; these columns
    take a few MB. Reads in order are batched (:meth:`__iter__`)."""

    def __init__(self, sessions: Iterable[SessionRef]) -> None:
        refs = sessions if isinstance(sessions, Sequence) else list(sessions)
        self._table = pa.table({name: pa.array([getattr(r, name) for r in refs], kind)
                                for name, kind in _REF_TYPES.items()})

    def __len__(self) -> int:
        return int(self._table.num_rows)

    @overload
    def __getitem__(self, index: int) -> SessionRef: ...

    @overload
    def __getitem__(self, index: slice) -> list[SessionRef]: ...

    def __getitem__(self, index: int | slice) -> SessionRef | list[SessionRef]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return _refs(self._table.slice(start, max(0, stop - start)))
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return _refs(self._table.slice(index % len(self), 1))[0]

    def __iter__(self) -> Iterator[SessionRef]:
        for batch in self._table.to_batches(max_chunksize=_ROWS_PER_BATCH):
            yield from _refs(batch)


def _refs(table: pa.Table | pa.RecordBatch) -> list[SessionRef]:
    return [SessionRef(**row) for row in table.to_pylist()]


def list_sessions(input_uri: str) -> list[SessionRef]:
    """Every session under ``input_uri``: a folder/prefix, one audio file, or a manifest.

    A prefix is listed recursively; audio files (see :data:`AUDIO_EXTENSIONS`) are kept,
    names starting with ``.`` or ``_`` skipped, and ids are relative paths without the
    extension (``2024/alice.mp3`` -> ``2024/alice``). A ``.csv``/``.jsonl``/``.json``/
    ``.parquet`` file is a manifest: see :func:`read_manifest`.
    """
    fs, path = storage.resolve(input_uri)
    info = storage.file_info(fs, path, input_uri)
    if info.type == pafs.FileType.NotFound:
        raise InvalidParameterError("input", f"{input_uri} does not exist")
    if info.type == pafs.FileType.File:
        return _list_file(input_uri, info)
    sessions = _list_prefix(fs, path.rstrip("/") or path, storage.scheme_prefix(input_uri))
    if not sessions:
        raise InvalidParameterError(
            "input",
            f"no audio files under {input_uri} "
            f"(looked for {', '.join(sorted(AUDIO_EXTENSIONS))})",
        )
    logger.info("found %d sessions under %s", len(sessions), input_uri)
    return sessions


def _list_file(uri: str, info: pafs.FileInfo) -> list[SessionRef]:
    ext = _extension(uri)
    if ext in MANIFEST_EXTENSIONS:
        return read_manifest(uri)
    if ext in AUDIO_EXTENSIONS:
        path = str(info.path)
        sid = safe_session_id(_strip_extension(posixpath.basename(path)))
        return [SessionRef(sid, storage.scheme_prefix(uri) + path, info.size)]
    raise InvalidParameterError(
        "input", f"{uri} is neither a folder, an audio file nor a manifest (.csv, .jsonl, "
        ".json, .parquet)"
    )


def _list_prefix(fs: pafs.FileSystem, base: str, prefix: str) -> list[SessionRef]:
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    except OSError as exc:
        raise StorageError(f"cannot list {prefix}{base}: {exc}") from exc
    files = sorted(
        (info for info in infos if _is_audio_file(info, base)), key=lambda i: str(i.path)
    )
    relatives = [_relative(str(info.path), base) for info in files]
    ids = _unique_ids(relatives)
    return [
        SessionRef(safe_session_id(sid), prefix + str(info.path), info.size)
        for sid, info in zip(ids, files, strict=True)
    ]


def _relative(path: str, base: str) -> str:
    return path[len(base) :].lstrip("/")


def _is_audio_file(info: pafs.FileInfo, base: str) -> bool:
    if info.type != pafs.FileType.File:
        return False
    relative = _relative(str(info.path), base)
    return not _is_hidden(relative) and _extension(relative) in AUDIO_EXTENSIONS


# --------------------------------------------------------------------------- manifests


def read_manifest(manifest_uri: str) -> list[SessionRef]:
    """Sessions listed in a CSV, JSONL, JSON (array or lines) or Parquet manifest.

    ``uri`` is required; ``session_id``, ``language``, ``speakers``, ``num_speakers``,
    ``min_speakers`` and ``max_speakers`` are optional (all but the id override the job's
    options for that session, the last three together: :meth:`SessionRef.options_for`).
    A relative ``uri``
    resolves against the manifest's folder. A missing ``session_id`` is the uri's path
    relative to that folder without its extension (its file name for uris elsewhere).
    """
    table = _manifest_table(manifest_uri)
    folder = manifest_uri.rsplit("/", 1)[0] if "/" in manifest_uri else "."
    if "://" not in folder:
        folder = storage.local_path(folder)
    uris = [_manifest_uri(uri, n, folder)
            for n, uri in enumerate(table.column("uri").to_pylist(), start=1)]
    defaults = _unique_ids([_default_path(u, folder) for u in uris])
    sessions = [
        SessionRef(
            session_id=safe_session_id(_text(row.get("session_id")) or default),
            uri=uri,
            language=_text(row.get("language")),
            **_speaker_fields(row, number),
        )
        for number, (row, uri, default) in enumerate(
            zip(_rows(table), uris, defaults, strict=True), start=1)
    ]
    _check_unique(sessions, manifest_uri)
    return sessions


def _rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    """The manifest's rows as dicts, a batch at a time, not all at once: listing a
    100,000-line manifest peaked 79 MB above the interpreter this way, 95 MB that way."""
    for batch in table.to_batches(max_chunksize=_ROWS_PER_BATCH):
        yield from batch.to_pylist()


def _manifest_table(uri: str) -> pa.Table:
    table = _read_table(uri)
    if "uri" not in table.column_names:
        raise InvalidParameterError(
            "input", f"manifest {uri} has no 'uri' column (columns: {table.column_names})"
        )
    if table.num_rows == 0:
        raise InvalidParameterError("input", f"manifest {uri} lists no sessions")
    return table


def _read_table(uri: str) -> pa.Table:
    ext = _extension(uri)
    try:
        with storage.open_input(uri) as f:
            if ext == "parquet":
                import pyarrow.parquet as pq

                return pq.read_table(f)
            data = f.read()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidParameterError("input", f"cannot read manifest {uri}: {exc}") from exc
    return _parse_text_manifest(uri, ext, data)


def _parse_text_manifest(uri: str, ext: str, data: bytes) -> pa.Table:
    try:
        if ext == "csv":
            import pyarrow.csv as pcsv

            # Ids like "007" must stay text, so nothing the manifest names is inferred.
            strings = {c: pa.string() for c in ("uri", "session_id", "language", "speakers")}
            options = pcsv.ConvertOptions(column_types=strings)
            return pcsv.read_csv(pa.BufferReader(data), convert_options=options)
        if data.lstrip()[:1] == b"[":  # a JSON array rather than JSON lines
            return pa.Table.from_pylist(json.loads(data))
        import pyarrow.json as pjson

        return pjson.read_json(pa.BufferReader(data))
    except (pa.ArrowInvalid, ValueError, TypeError) as exc:
        raise InvalidParameterError("input", f"cannot parse manifest {uri}: {exc}") from exc


def _speaker_fields(row: Mapping[str, Any], number: int) -> dict[str, Any]:
    """A row's ``speakers`` and speaker count or bounds, checked as the job's options are
    (a row's bounds together with its own count: min <= num <= max)."""
    from pydantic import ValidationError

    fields = {name: _text(row.get(name)) for name in ("speakers", *SPEAKER_COUNTS)}
    given = {k: v for k, v in fields.items() if v is not None}
    try:
        checked = TranscribeOptions.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidParameterError(
            "input", f"manifest row {number}: {first['loc'][0]}: {first['msg']}") from exc
    return {k: getattr(checked, k) if k in given else None for k in fields}


def _text(value: Any) -> str | None:
    """A manifest cell as text; empty cells and nulls are None."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _manifest_uri(value: Any, number: int, folder: str) -> str:
    uri = _text(value)
    if uri is None:
        raise InvalidParameterError("input", f"manifest row {number} has an empty 'uri'")
    if "://" in uri or os.path.isabs(uri):
        return uri
    return _resolve_relative(folder, uri)


def _resolve_relative(folder: str, relative: str) -> str:
    if "://" not in folder:
        return os.path.normpath(os.path.join(folder, relative))
    prefix, path = storage.scheme_prefix(folder), storage.path_of(folder)
    bucket, _, key = path.partition("/")
    joined = posixpath.normpath(posixpath.join("/", key, relative))
    return f"{prefix}{bucket}{joined}"


def _default_path(uri: str, folder: str) -> str:
    base = folder.rstrip("/") + "/"
    if uri.startswith(base):
        return uri[len(base) :]
    return posixpath.basename(uri.rstrip("/")) or uri


def _check_unique(sessions: Iterable[SessionRef], uri: str) -> None:
    counts = Counter(s.session_id for s in sessions)
    duplicates = sorted(sid for sid, n in counts.items() if n > 1)
    if duplicates:
        raise InvalidParameterError(
            "input",
            f"manifest {uri} gives several sessions the id {duplicates[0]!r}; "
            "add a unique 'session_id' column",
        )
