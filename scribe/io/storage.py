"""Every byte in and out goes through pyarrow filesystems: local folders, ``file://``,
``s3://`` and ``gs://`` share one code path, so a job that works on a laptop folder works
on a bucket.

Outputs are written atomically: a reader never sees half a transcript under its final
name. What an input holds (a prefix's audio files, a manifest's rows) is
:mod:`scribe.io.sessions`.
"""

from __future__ import annotations

import logging
import os
import posixpath
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from scribe.errors import InvalidParameterError, StorageError

logger = logging.getLogger(__name__)

TEMP_MARKER = ".tmp-"
"""Local temp files are named ``.<final name>.tmp-<random>``; see :func:`clean_stale_temps`."""

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
        return _cached(("local",), pafs.LocalFileSystem), local_path(uri)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    # A query string carries per-URI options (region=..., endpoint_override=...): honour
    # them through pyarrow's own parser rather than sharing a cached filesystem.
    if scheme == "s3" and not parts.query:
        bucket = parts.netloc
        fs = _cached(("s3", bucket, *_s3_env()), lambda: _make_s3(bucket))
        return fs, path_of(uri)
    if scheme in ("gs", "gcs") and not parts.query:
        fs = _cached((scheme, parts.netloc), lambda: _from_uri(uri)[0])
        return fs, path_of(uri)
    return _from_uri(uri)


def local_path(uri: str) -> str:
    """A local path made absolute, ``~`` expanded."""
    return os.path.abspath(os.path.expanduser(uri))


def path_of(uri: str) -> str:
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


def scheme_prefix(uri: str) -> str:
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


# --------------------------------------------------------------------------- reading


def file_info(fs: pafs.FileSystem, path: str, uri: str) -> pafs.FileInfo:
    """``path``'s info on ``fs`` (``uri`` names it in errors)."""
    try:
        return fs.get_file_info(path)
    except OSError as exc:
        raise StorageError(f"cannot stat {uri}: {exc}") from exc


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
    return bool(file_info(fs, path, uri).type != pafs.FileType.NotFound)


def remove(uri: str) -> None:
    """Delete the file at ``uri``; nothing when none is there."""
    fs, path = resolve(uri)
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        return
    except (OSError, pa.ArrowException) as exc:
        if file_info(fs, path, uri).type == pafs.FileType.NotFound:
            return
        raise StorageError(f"cannot delete {uri}: {exc}") from exc


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


def iter_files(uri: str) -> Iterator[str]:
    """The files under ``uri``, recursively, as paths relative to it (none where it does
    not exist). Locally a walk that reads each folder as it goes, rather than pyarrow's
    listing of all 600,000 files of a 100,000-session output prefix at once (a rerun over
    such a bucket peaked at 400 MB this way, 415 MB that way). Object stores answer one
    listing (pyarrow's)."""
    fs, base = resolve(uri)
    base = base.rstrip("/") or base
    if _is_local(fs):
        yield from _walk(base, "")
        return
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise StorageError(f"cannot list {uri}: {exc}") from exc
    for info in infos:
        if info.type == pafs.FileType.File:
            yield str(info.path)[len(base):].lstrip("/")


def _walk(folder: str, prefix: str) -> Iterator[str]:
    try:
        entries = os.scandir(folder)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"cannot list {folder}: {exc}") from exc
    with entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(entry.path, f"{prefix}{entry.name}/")
            elif entry.is_file(follow_symlinks=False):
                yield prefix + entry.name


def clean_stale_temps(output_uri: str) -> int:
    """Delete temp files left under ``output_uri`` by interrupted local writes.

    Call it before writers start: it cannot tell a stale temp from one being written.
    Object stores never hold temps, so there it returns 0. Returns the number deleted.
    """
    fs, path = resolve(output_uri)
    if not _is_local(fs):
        return 0
    stale = [name for name in iter_files(output_uri)
             if posixpath.basename(name).startswith(".") and TEMP_MARKER in name]
    for name in stale:
        _remove_quietly(os.path.join(path, name))
    if stale:
        logger.warning("removed %d stale temp files under %s", len(stale), output_uri)
    return len(stale)
