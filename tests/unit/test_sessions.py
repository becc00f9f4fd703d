"""Listing sessions on local folders: prefixes, single files, manifests, session ids."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scribe.errors import InvalidParameterError
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


def test_temps_are_not_listed_as_sessions(tmp_path: Path) -> None:
    _touch(tmp_path, "a.wav")
    _touch(tmp_path, f".b.wav{storage.TEMP_MARKER}abc")
    assert [s.session_id for s in list_sessions(str(tmp_path))] == ["a"]


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


def test_longest_recordings_go_first_whatever_their_format() -> None:
    """The job starts the longest sessions first, judged by size per file type: the
    quality benchmark's 5 s WAV (320 KB) is shorter than its minute of MP3 (240 KB)."""
    from ray_jobs.transcribe import _longest_first

    refs = [SessionRef("clip", "/in/clip.wav", 320_044),
            SessionRef("talk", "/in/talk.MP3", 240_045),
            SessionRef("unknown", "/in/unknown.flac"),
            SessionRef("session", "s3://b/session.mp3", 11_565_601),
            SessionRef("speech", "/in/speech.flac", 1_152_693)]
    assert [r.session_id for r in _longest_first(refs)] == [
        "session", "talk", "speech", "clip", "unknown"]
    assert SessionRef("s", "/in/a.mp3", 1_920_000).estimated_duration_s == 120


def test_packed_sessions_read_back_every_field_by_index_slice_and_in_order() -> None:
    import dataclasses

    from scribe.io import sessions as sessions_module
    from scribe.io.sessions import PackedSessions

    assert list(sessions_module._REF_TYPES) == [f.name for f in dataclasses.fields(SessionRef)]
    refs = [SessionRef(f"s{i}", f"s3://b/in/s{i}.flac", size=i or None,
                       language="de" if i % 3 else None, speakers="auto" if i % 2 else None,
                       num_speakers=2 if i % 5 == 0 else None, min_speakers=1 if i % 7 else None,
                       max_speakers=4 if i % 7 else None)
            for i in range(sessions_module._ROWS_PER_BATCH + 5)]
    packed = PackedSessions(iter(refs))
    assert len(packed) == len(refs) and list(packed) == refs
    assert packed[0] == refs[0] and packed[-1] == refs[-1] and packed[7] == refs[7]
    assert packed[4090:4100] == refs[4090:4100] and packed[::1000] == refs[::1000]
    assert packed[len(refs):] == [] and not PackedSessions([])
    with pytest.raises(IndexError):
        packed[len(refs)]


def test_packed_sessions_hold_a_bucket_in_a_quarter_of_the_refs_memory() -> None:
    import gc
    import tracemalloc

    import pyarrow as pa

    from scribe.io.sessions import PackedSessions

    def refs() -> list[SessionRef]:
        return [SessionRef(f"s{i:06d}", f"/bucket/in/s{i:06d}.wav", 1000 + i)
                for i in range(100_000)]

    tracemalloc.start()
    try:
        held = refs()
        as_refs = tracemalloc.get_traced_memory()[0]
        before = pa.total_allocated_bytes()
        packed = PackedSessions(held)
        del held
        gc.collect()
        kept_objects = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    columns = pa.total_allocated_bytes() - before
    assert kept_objects < as_refs / 4, "the refs must not be kept"
    assert 0 < columns < as_refs / 4, "Arrow columns hold them"
    assert packed[99_999].session_id == "s099999"
