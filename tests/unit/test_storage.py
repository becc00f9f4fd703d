"""Storage on local folders: listing, manifests, atomic writes, small helpers."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from scribe.errors import InvalidParameterError, StorageError
from scribe.io import storage
from scribe.io.sessions import SessionRef, list_sessions, safe_session_id

pytestmark = pytest.mark.unit


def _touch(root: Path, relative: str, data: bytes = b"audio") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """An input folder with nested audio, hidden/underscore entries and non-audio files."""
    root = tmp_path / "in"
    for relative in (
        "a.wav", "b.MP3", "2024/alice.mp3", "2024/sub/bob.flac", "dup.mp3", "dup.wav",
        "notes.txt", "cover.jpg", ".hidden.wav", ".cache/x.wav", "_tmp/y.wav",
        "2024/_draft.wav",
    ):  # fmt: skip
        _touch(root, relative)
    _touch(root, "2024/alice.mp3", b"longer audio")
    return root


# --------------------------------------------------------------------------- listing


def test_lists_audio_recursively_sorted_with_ids(tree: Path) -> None:
    sessions = list_sessions(str(tree))
    assert [s.session_id for s in sessions] == [
        "2024/alice", "2024/sub/bob", "a", "b", "dup.mp3", "dup.wav",
    ]  # fmt: skip
    assert sessions[0].uri == str(tree / "2024/alice.mp3")
    assert sessions[0].size == len(b"longer audio")
    assert all(s.language is None for s in sessions)


def test_listing_accepts_trailing_slash_and_file_uris(tree: Path) -> None:
    plain = list_sessions(str(tree) + "/")
    as_uri = list_sessions(tree.as_uri())
    assert [s.session_id for s in plain] == [s.session_id for s in as_uri]
    assert as_uri[2].uri == (tree / "a.wav").as_uri()


def test_relative_input_gives_absolute_uris(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.parent)
    sessions = list_sessions("in")
    assert sessions[2].uri == str(tree / "a.wav")


def test_single_audio_file_is_one_session(tree: Path) -> None:
    (session,) = list_sessions(str(tree / "2024/sub/bob.flac"))
    assert session == SessionRef("bob", str(tree / "2024/sub/bob.flac"), len(b"audio"))


def test_hidden_input_folder_itself_is_fine(tmp_path: Path) -> None:
    _touch(tmp_path / "_incoming", "x.ogg")
    assert [s.session_id for s in list_sessions(str(tmp_path / "_incoming"))] == ["x"]


def test_missing_input_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="does not exist"):
        list_sessions(str(tmp_path / "nope"))


def test_prefix_without_audio_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path, "readme.txt")
    _touch(tmp_path, ".secret.wav")
    with pytest.raises(InvalidParameterError, match="no audio files"):
        list_sessions(str(tmp_path))


def test_other_file_is_an_error(tree: Path) -> None:
    with pytest.raises(InvalidParameterError, match="neither"):
        list_sessions(str(tree / "notes.txt"))


# --------------------------------------------------------------------------- manifests


def test_csv_manifest_relative_and_absolute_uris(tree: Path, tmp_path: Path) -> None:
    elsewhere = _touch(tmp_path / "other", "talk.m4a")
    manifest = tree / "manifest.csv"
    manifest.write_text(
        "uri,session_id,language\n"
        "2024/alice.mp3,,en\n"
        f"{elsewhere},,\n"
        f"{tree / '2024/sub/bob.flac'},007,de\n"
        "./a.wav,,\n",
        encoding="utf-8",
    )
    sessions = list_sessions(str(manifest))
    assert sessions == [
        SessionRef("2024/alice", str(tree / "2024/alice.mp3"), language="en"),
        SessionRef("talk", str(elsewhere)),
        SessionRef("007", str(tree / "2024/sub/bob.flac"), language="de"),
        SessionRef("a", str(tree / "a.wav")),
    ]


def test_csv_manifest_with_only_uri(tree: Path) -> None:
    manifest = tree / "list.CSV"
    manifest.write_text("uri\ndup.mp3\ndup.wav\n", encoding="utf-8")
    assert [s.session_id for s in list_sessions(str(manifest))] == ["dup.mp3", "dup.wav"]


def test_jsonl_manifest(tree: Path) -> None:
    manifest = tree / "sessions.jsonl"
    rows = [
        {"uri": "a.wav", "session_id": 12, "language": "fr"},
        {"uri": "s3://bucket/calls/c1.opus"},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert list_sessions(str(manifest)) == [
        SessionRef("12", str(tree / "a.wav"), language="fr"),
        SessionRef("c1", "s3://bucket/calls/c1.opus"),
    ]


def test_json_array_manifest(tree: Path) -> None:
    manifest = tree / "sessions.json"
    manifest.write_text(json.dumps([{"uri": "b.MP3"}, {"uri": "2024/alice.mp3"}]))
    assert [s.session_id for s in list_sessions(str(manifest))] == ["b", "2024/alice"]


def test_parquet_manifest(tree: Path) -> None:
    manifest = tree / "sessions.parquet"
    table = pa.table({"uri": ["a.wav", str(tree / "b.MP3")], "language": [None, "es"]})
    pq.write_table(table, manifest)
    assert list_sessions(str(manifest)) == [
        SessionRef("a", str(tree / "a.wav")),
        SessionRef("b", str(tree / "b.MP3"), language="es"),
    ]


def test_manifest_as_file_uri(tree: Path) -> None:
    manifest = tree / "m.csv"
    manifest.write_text("uri\n2024/alice.mp3\n")
    assert list_sessions(manifest.as_uri()) == [
        SessionRef("2024/alice", (tree / "2024/alice.mp3").as_uri())
    ]


@pytest.mark.parametrize(("body", "message"), [
    ("path,session_id\na.wav,x\n", "no 'uri' column"),
    ("uri,language\na.wav,en\n,de\n", "row 2"),
    ("uri,session_id\na.wav,same\nb.MP3,same\n", "'same'"),
    ("uri,session_id\na.wav,../../etc/passwd\n", "session_id"),
], ids=["no-uri-column", "empty-uri", "duplicate-ids", "id-escapes-output"])
def test_bad_manifests_are_refused_with_the_reason(tree: Path, body: str, message: str) -> None:
    manifest = tree / "bad.csv"
    manifest.write_text(body)
    with pytest.raises(InvalidParameterError, match=message):
        list_sessions(str(manifest))


def test_manifest_relative_uri_above_its_folder(tree: Path, tmp_path: Path) -> None:
    _touch(tmp_path, "up.wav")
    manifest = tree / "m.jsonl"
    manifest.write_text('{"uri": "../up.wav"}\n')
    assert list_sessions(str(manifest)) == [SessionRef("up", str(tmp_path / "up.wav"))]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("a/b", "a/b"), ("/a//./b/", "a/b"), ("a\\b", "a/b"), ("x.y", "x.y")],
)
def test_safe_session_id(raw: str, expected: str) -> None:
    assert safe_session_id(raw) == expected


@pytest.mark.parametrize("raw", ["", "/", ".", "..", "a/../b", "..\\x"])
def test_unsafe_session_ids(raw: str) -> None:
    with pytest.raises(InvalidParameterError):
        safe_session_id(raw)


def test_session_ref_round_trip() -> None:
    ref = SessionRef("2024/alice", "s3://b/2024/alice.mp3", 123, "en")
    assert SessionRef.from_dict(ref.to_dict()) == ref
    assert SessionRef.from_dict({"session_id": "x", "uri": "/x.wav", "extra": 1}) == SessionRef(
        "x", "/x.wav"
    )
    with pytest.raises(InvalidParameterError, match="uri"):
        SessionRef.from_dict({"session_id": "x"})


# --------------------------------------------------------------------------- reading


def test_open_input_is_seekable(tmp_path: Path) -> None:
    path = _touch(tmp_path, "x.wav", b"RIFF0123456789")
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
    _touch(out, ".keep", b"")

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


def test_temps_are_not_listed_as_sessions(tmp_path: Path) -> None:
    _touch(tmp_path, "a.wav")
    _touch(tmp_path, f".b.wav{storage.TEMP_MARKER}abc")
    assert [s.session_id for s in list_sessions(str(tmp_path))] == ["a"]


def test_write_parquet_atomic(tmp_path: Path) -> None:
    table = pa.table({"session_id": ["a", "b"], "start": [0.0, 1.5]})
    target = tmp_path / "segments" / "part-0.parquet"
    storage.write_parquet_atomic(str(target), table)
    assert pq.read_table(target).equals(table)
    assert _files(tmp_path) == ["segments/part-0.parquet"]


def test_manifest_speaker_columns_are_checked(tree: Path) -> None:
    manifest = tree / "speakers.csv"
    manifest.write_text("uri,speakers,num_speakers\na.wav,voices,2\nb.MP3,,\n")
    assert list_sessions(str(manifest)) == [
        SessionRef("a", str(tree / "a.wav"), speakers="voices", num_speakers=2),
        SessionRef("b", str(tree / "b.MP3")),
    ]
    manifest.write_text("uri,num_speakers\na.wav,99\n")
    with pytest.raises(InvalidParameterError, match="row 1: num_speakers"):
        list_sessions(str(manifest))
