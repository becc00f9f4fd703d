"""Every byte in and out goes through pyarrow filesystems: local folders, ``file://``,
``s3://`` and ``gs://`` share one code path, so a job that works on a laptop folder works
on a bucket.

Inputs are either a prefix (every audio file below it is a session) or a manifest
(CSV, JSONL, JSON or Parquet with a ``uri`` column). Outputs are written atomically: a
reader never sees half a transcript under its final name.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from scribe.errors import InvalidParameterError, StorageError

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

TEMP_MARKER = ".tmp-"
"""Local temp files are named ``.<final name>.tmp-<random>``; see :func:`clean_stale_temps`."""

_OBJECT_STORES = ("s3", "gs", "gcs")
_filesystems: dict[tuple[Any, ...], pafs.FileSystem] = {}
_filesystems_lock = threading.Lock()


# --------------------------------------------------------------------------- resolving


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``uri`` and the path of ``uri`` inside it.

    Local paths (no scheme) are made absolute. ``s3://`` honours ``AWS_ENDPOINT_URL_S3`` /
    ``AWS_ENDPOINT_URL`` (an S3-compatible server) and ``AWS_REGION`` /
    ``AWS_DEFAULT_REGION``. Filesystems are cached per process and (scheme, bucket).
    """
    if "://" not in uri:
        return _cached(("local",), pafs.LocalFileSystem), _local_path(uri)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    # A query string carries per-URI options (region=..., endpoint_override=...): honour
    # them through pyarrow's own parser rather than sharing a cached filesystem.
    if scheme == "s3" and not parts.query:
        bucket = parts.netloc
        fs = _cached(("s3", bucket, *_s3_env()), lambda: _make_s3(bucket))
        return fs, _path_of(uri)
    if scheme in ("gs", "gcs") and not parts.query:
        fs = _cached((scheme, parts.netloc), lambda: _from_uri(uri)[0])
        return fs, _path_of(uri)
    return _from_uri(uri)


def _local_path(uri: str) -> str:
    return os.path.abspath(os.path.expanduser(uri))


def _path_of(uri: str) -> str:
    """The filesystem path of a ``scheme://bucket/key`` URI: ``bucket/key``."""
    return uri.split("://", 1)[1]


def _cached(key: tuple[Any, ...], make: Callable[[], pafs.FileSystem]) -> pafs.FileSystem:
    # Keyed by pid too: a forked child must not reuse its parent's network clients.
    full_key = (os.getpid(), *key)
    with _filesystems_lock:
        fs = _filesystems.get(full_key)
        if fs is None:
            fs = make()
            _filesystems[full_key] = fs
            logger.debug("created filesystem for %s", key)
        return fs


def _from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, ValueError) as exc:
        raise InvalidParameterError("uri", f"unsupported URI {uri!r}: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"cannot open filesystem for {uri}: {exc}") from exc
    return fs, str(path)


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def _s3_env() -> tuple[str | None, str | None]:
    """(endpoint, region) from the standard AWS environment variables."""
    return (
        _env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        _env("AWS_REGION", "AWS_DEFAULT_REGION"),
    )


def _make_s3(bucket: str) -> pafs.FileSystem:
    # pyarrow's S3FileSystem constructor does not read AWS_ENDPOINT_URL (only from_uri
    # does), so the endpoint is passed explicitly.
    endpoint, region = _s3_env()
    options: dict[str, Any] = {
        # Delayed open lets a small object go up in one PutObject instead of a multipart
        # upload: one request, and the object appears whole or not at all.
        "allow_delayed_open": True,
    }
    if endpoint:
        options["endpoint_override"] = endpoint
        options["scheme"] = urlsplit(endpoint).scheme or "https"
    if region is None and endpoint is None and bucket:
        region = _bucket_region(bucket)
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options)


def _bucket_region(bucket: str) -> str | None:
    # Arrow does not follow S3's cross-region redirects, so ask the bucket where it lives.
    try:
        return str(pafs.resolve_s3_region(bucket))
    except OSError as exc:
        logger.warning("cannot resolve the region of bucket %s: %s", bucket, exc)
        return None


def _scheme_prefix(uri: str) -> str:
    """``s3://`` for ``s3://b/k``; empty for a local path."""
    return uri.split("://", 1)[0] + "://" if "://" in uri else ""


def _is_local(fs: pafs.FileSystem) -> bool:
    return isinstance(fs, pafs.LocalFileSystem)


# --------------------------------------------------------------------------- paths


def join(base_uri: str, *parts: str) -> str:
    """Join path pieces onto a local path or URI with single slashes, whatever the inputs."""
    pieces = [p for part in parts for p in part.split("/") if p]
    if not pieces:
        return base_uri
    head = base_uri.rstrip("/")
    if not head or head.endswith(":"):  # "/" or "s3://": keep the root's own slashes
        return base_uri + "/".join(pieces)
    return head + "/" + "/".join(pieces)


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


@dataclass(frozen=True)
class SessionRef:
    """One recording to transcribe: a stable id (used for output paths) and where it is."""

    session_id: str
    uri: str
    size: int | None = None
    language: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (one row of a Ray dataset)."""
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
        )


def list_sessions(input_uri: str) -> list[SessionRef]:
    """Every session under ``input_uri``: a folder/prefix, one audio file, or a manifest.

    A prefix is listed recursively; audio files (see :data:`AUDIO_EXTENSIONS`) are kept,
    names starting with ``.`` or ``_`` skipped, and ids are relative paths without the
    extension (``2024/alice.mp3`` -> ``2024/alice``). A ``.csv``/``.jsonl``/``.json``/
    ``.parquet`` file is a manifest: see :func:`read_manifest`.
    """
    fs, path = resolve(input_uri)
    info = _file_info(fs, path, input_uri)
    if info.type == pafs.FileType.NotFound:
        raise InvalidParameterError("input", f"{input_uri} does not exist")
    if info.type == pafs.FileType.File:
        return _list_file(input_uri, info)
    sessions = _list_prefix(fs, path.rstrip("/") or path, _scheme_prefix(input_uri))
    if not sessions:
        raise InvalidParameterError(
            "input",
            f"no audio files under {input_uri} "
            f"(looked for {', '.join(sorted(AUDIO_EXTENSIONS))})",
        )
    logger.info("found %d sessions under %s", len(sessions), input_uri)
    return sessions


def _file_info(fs: pafs.FileSystem, path: str, uri: str) -> pafs.FileInfo:
    try:
        return fs.get_file_info(path)
    except OSError as exc:
        raise StorageError(f"cannot stat {uri}: {exc}") from exc


def _list_file(uri: str, info: pafs.FileInfo) -> list[SessionRef]:
    ext = _extension(uri)
    if ext in MANIFEST_EXTENSIONS:
        return read_manifest(uri)
    if ext in AUDIO_EXTENSIONS:
        path = str(info.path)
        sid = safe_session_id(_strip_extension(posixpath.basename(path)))
        return [SessionRef(sid, _scheme_prefix(uri) + path, info.size)]
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

    ``uri`` is required; ``session_id`` and ``language`` are optional. A relative ``uri``
    resolves against the manifest's folder. A missing ``session_id`` is the uri's path
    relative to that folder without its extension (its file name for uris elsewhere).
    """
    rows = _manifest_rows(manifest_uri)
    folder = manifest_uri.rsplit("/", 1)[0] if "/" in manifest_uri else "."
    if "://" not in folder:
        folder = _local_path(folder)
    uris = [_manifest_uri(row, n, folder) for n, row in enumerate(rows, start=1)]
    defaults = _unique_ids([_default_path(u, folder) for u in uris])
    sessions = [
        SessionRef(
            session_id=safe_session_id(_text(row.get("session_id")) or default),
            uri=uri,
            language=_text(row.get("language")),
        )
        for row, uri, default in zip(rows, uris, defaults, strict=True)
    ]
    _check_unique(sessions, manifest_uri)
    return sessions


def _manifest_rows(uri: str) -> list[dict[str, Any]]:
    table = _read_table(uri)
    if "uri" not in table.column_names:
        raise InvalidParameterError(
            "input", f"manifest {uri} has no 'uri' column (columns: {table.column_names})"
        )
    if table.num_rows == 0:
        raise InvalidParameterError("input", f"manifest {uri} lists no sessions")
    return list(table.to_pylist())


def _read_table(uri: str) -> pa.Table:
    ext = _extension(uri)
    try:
        with open_input(uri) as f:
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
            strings = {c: pa.string() for c in ("uri", "session_id", "language")}
            options = pcsv.ConvertOptions(column_types=strings)
            return pcsv.read_csv(pa.BufferReader(data), convert_options=options)
        if data.lstrip()[:1] == b"[":  # a JSON array rather than JSON lines
            return pa.Table.from_pylist(json.loads(data))
        import pyarrow.json as pjson

        return pjson.read_json(pa.BufferReader(data))
    except (pa.ArrowInvalid, ValueError, TypeError) as exc:
        raise InvalidParameterError("input", f"cannot parse manifest {uri}: {exc}") from exc


def _text(value: Any) -> str | None:
    """A manifest cell as text; empty cells and nulls are None."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _manifest_uri(row: Mapping[str, Any], number: int, folder: str) -> str:
    uri = _text(row.get("uri"))
    if uri is None:
        raise InvalidParameterError("input", f"manifest row {number} has an empty 'uri'")
    if "://" in uri or os.path.isabs(uri):
        return uri
    return _resolve_relative(folder, uri)


def _resolve_relative(folder: str, relative: str) -> str:
    if "://" not in folder:
        return os.path.normpath(os.path.join(folder, relative))
    prefix, path = _scheme_prefix(folder), _path_of(folder)
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


# --------------------------------------------------------------------------- reading


def open_input(uri: str) -> pa.NativeFile:
    """A seekable random-access file: the decoder reads ranges without a full download."""
    fs, path = resolve(uri)
    try:
        return fs.open_input_file(path)
    except FileNotFoundError as exc:
        raise StorageError(f"{uri} does not exist") from exc
    except (OSError, pa.ArrowException) as exc:
        raise StorageError(f"cannot open {uri}: {exc}") from exc


def read_text(uri: str) -> str | None:
    """The UTF-8 text stored at ``uri``, or None when nothing is there."""
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as f:
            data: bytes = f.read()
    except FileNotFoundError:
        return None
    except (OSError, pa.ArrowException) as exc:
        raise StorageError(f"cannot read {uri}: {exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StorageError(f"{uri} is not UTF-8 text: {exc}") from exc


def exists(uri: str) -> bool:
    """Whether a file (or folder) is at ``uri``."""
    fs, path = resolve(uri)
    return bool(_file_info(fs, path, uri).type != pafs.FileType.NotFound)


# --------------------------------------------------------------------------- writing


def write_atomic(uri: str, data: bytes | str) -> None:
    """Write ``data`` so that ``uri`` holds either the old content or all of the new.

    Locally: a temp file beside the target, fsync, then ``os.replace``. On object stores an
    upload becomes visible only when it completes; the bytes are all in hand before the
    stream opens, so no exception in the caller's code can complete a partial upload.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fs, path = resolve(uri)
    try:
        if _is_local(fs):
            _write_local(path, payload)
        else:
            _write_object(fs, path, payload)
    except (OSError, pa.ArrowException) as exc:
        raise StorageError(f"cannot write {uri}: {exc}") from exc


def _write_local(path: str, payload: bytes) -> None:
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f".{name}{TEMP_MARKER}{secrets.token_hex(6)}")
    # os.open, not mkstemp: mkstemp's 0600 would leak into the final file's permissions.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        _remove_quietly(temp)
        raise
    _fsync_dir(folder)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(folder: str) -> None:
    # Makes the rename itself durable; some platforms cannot open a directory.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_object(fs: pafs.FileSystem, path: str, payload: bytes) -> None:
    # No `with`: closing a stream (also from its destructor) completes the upload, so the
    # only code between open and close is one write of the complete payload.
    stream = fs.open_output_stream(path)
    stream.write(payload)
    stream.close()


def write_parquet_atomic(uri: str, table: pa.Table) -> None:
    """Write ``table`` as one Parquet file, atomically (see :func:`write_atomic`)."""
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_atomic(uri, sink.getvalue().to_pybytes())


def clean_stale_temps(output_uri: str) -> int:
    """Delete temp files left under ``output_uri`` by interrupted local writes.

    Call it before writers start: it cannot tell a stale temp from one being written.
    Object stores never hold temps, so there it returns 0. Returns the number deleted.
    """
    fs, path = resolve(output_uri)
    if not _is_local(fs):
        return 0
    selector = pafs.FileSelector(path, recursive=True, allow_not_found=True)
    removed = 0
    for info in fs.get_file_info(selector):
        name = posixpath.basename(str(info.path))
        if info.type == pafs.FileType.File and name.startswith(".") and TEMP_MARKER in name:
            _remove_quietly(str(info.path))
            removed += 1
    if removed:
        logger.warning("removed %d stale temp files under %s", removed, output_uri)
    return removed
