"""Storage on local folders: reading, paths, atomic writes, stale temp files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from scribe.errors import StorageError
from scribe.io import storage

pytestmark = pytest.mark.unit


# --------------------------------------------------------------------------- reading


def test_open_input_is_seekable(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"RIFF0123456789")
    with storage.open_input(str(path)) as f:
        assert f.seekable()
        assert f.size() == 14
        f.seek(4)
        assert f.read(3) == b"012"
        assert f.read_at(2, 12) == b"89"


def test_open_input_missing(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="x.wav"):
        storage.open_input(str(tmp_path / "x.wav"))


def test_read_text_and_exists(tmp_path: Path) -> None:
    target = str(tmp_path / "t.txt")
    assert storage.read_text(target) is None
    assert not storage.exists(target)
    Path(target).write_text("héllo", encoding="utf-8")
    assert storage.read_text(target) == "héllo"
    assert storage.exists(target)
    assert storage.exists(str(tmp_path))


@pytest.mark.parametrize(
    ("base", "parts", "expected"),
    [
        ("s3://bucket/out", ("a", "b.json"), "s3://bucket/out/a/b.json"),
        ("s3://bucket/out/", ("/a/", "/b.json"), "s3://bucket/out/a/b.json"),
        ("s3://bucket", ("x",), "s3://bucket/x"),
        ("s3://", ("bucket", "x"), "s3://bucket/x"),
        ("/data/out//", ("2024//alice", "t.srt"), "/data/out/2024/alice/t.srt"),
        ("/", ("tmp",), "/tmp"),
        ("file:///data", ("x",), "file:///data/x"),
        ("relative/dir", ("x",), "relative/dir/x"),
        ("gs://b/p", (), "gs://b/p"),
    ],
)
def test_join(base: str, parts: tuple[str, ...], expected: str) -> None:
    assert storage.join(base, *parts) == expected


def test_resolve_makes_local_paths_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fs, path = storage.resolve("sub/x.wav")
    assert isinstance(fs, pafs.LocalFileSystem)
    assert path == str(tmp_path / "sub/x.wav")


def test_resolve_s3_reads_endpoint_and_region_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    fs, path = storage.resolve("s3://some-bucket/in/a.wav")
    assert path == "some-bucket/in/a.wav"
    options = fs.__reduce__()[1][0]  # the options it was built with (what pickling ships)
    assert options["endpoint_override"] == "http://127.0.0.1:9"
    assert options["scheme"] == "http"
    assert options["region"] == "eu-west-3"
    assert storage.resolve("s3://some-bucket/other")[0] is fs  # cached per bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:10")
    fs_s3 = storage.resolve("s3://some-bucket/in/a.wav")[0]
    assert fs_s3.__reduce__()[1][0]["endpoint_override"] == "http://127.0.0.1:10"


# --------------------------------------------------------------------------- writing


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_write_atomic_creates_parents_and_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "out" / "2024" / "alice.json"
    storage.write_atomic(str(target), "first")
    storage.write_atomic(str(target), b"second \xe2\x9c\x93")
    assert target.read_text(encoding="utf-8") == "second ✓"
    assert _files(tmp_path) == ["out/2024/alice.json"]


def test_write_atomic_respects_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        storage.write_atomic(str(tmp_path / "x.txt"), "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o644


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "t.srt"

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StorageError, match="disk full"):
        storage.write_atomic(str(target), "x" * 100_000)
    assert _files(tmp_path) == []


def test_failed_overwrite_keeps_the_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "t.srt"
    storage.write_atomic(str(target), "old")

    def broken_replace(src: str, dst: str) -> None:
        raise KeyboardInterrupt  # even an interrupt must not expose a partial file

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        storage.write_atomic(str(target), "new")
    assert target.read_text() == "old"
    assert _files(tmp_path) == ["t.srt"]


def test_clean_stale_temps_after_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    storage.write_atomic(str(out / "done.json"), "{}")
    (out / ".keep").write_bytes(b"")

    def crash(src: str, dst: str) -> None:
        raise SystemExit("killed")

    # A hard kill skips all cleanup: no unlink, and the rename never happens.
    monkeypatch.setattr(storage, "_remove_quietly", lambda path: None)
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(SystemExit):
        storage.write_atomic(str(out / "sub" / "half.json"), "{...")
    monkeypatch.undo()

    leftovers = [f for f in _files(out) if storage.TEMP_MARKER in f]
    assert len(leftovers) == 1
    assert Path(leftovers[0]).name.startswith(".half.json.tmp-")
    assert not (out / "sub" / "half.json").exists()
    assert storage.clean_stale_temps(str(out)) == 1
    assert _files(out) == [".keep", "done.json"]
    assert storage.clean_stale_temps(str(out)) == 0


def test_clean_stale_temps_on_missing_output(tmp_path: Path) -> None:
    assert storage.clean_stale_temps(str(tmp_path / "not-yet")) == 0


def test_iter_files_walks_a_local_tree_one_folder_at_a_time(tmp_path: Path) -> None:
    for name in ("a.json", "x/b.json", "x/y/.c.tmp", "_done/d.ok"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "empty").mkdir()
    walked = storage.iter_files(str(tmp_path))
    assert next(walked) in {"a.json", "x/b.json", "x/y/.c.tmp", "_done/d.ok"}, "lazy"
    assert sorted(storage.iter_files(str(tmp_path))) == [
        "_done/d.ok", "a.json", "x/b.json", "x/y/.c.tmp"]
    assert list(storage.iter_files(str(tmp_path / "absent"))) == []


def test_write_parquet_atomic(tmp_path: Path) -> None:
    table = pa.table({"session_id": ["a", "b"], "start": [0.0, 1.5]})
    target = tmp_path / "segments" / "part-0.parquet"
    storage.write_parquet_atomic(str(target), table)
    assert pq.read_table(target).equals(table)
    assert _files(tmp_path) == ["segments/part-0.parquet"]
