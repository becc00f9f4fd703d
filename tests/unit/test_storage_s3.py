"""Storage against a real S3-compatible server (moto) on loopback, through pyarrow's S3."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scribe.errors import InvalidParameterError, StorageError
from scribe.io import storage
from scribe.io.sessions import SessionRef, list_sessions
from tests.s3 import S3Server

pytestmark = [pytest.mark.unit, pytest.mark.s3]


@pytest.fixture
def s3(s3_server: S3Server) -> Any:
    return s3_server.client()


def _put(s3: Any, bucket: str, key: str, body: bytes = b"audio") -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def _keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_list_sessions_on_a_prefix(s3: Any, s3_bucket: str) -> None:
    for key in (
        "in/a.wav", "in/2024/alice.MP3", "in/2024/alice.flac", "in/notes.txt",
        "in/.hidden.wav", "in/_staging/x.wav", "other/z.wav",
    ):  # fmt: skip
        _put(s3, s3_bucket, key)
    _put(s3, s3_bucket, "in/big.opus", b"x" * 1000)
    sessions = list_sessions(f"s3://{s3_bucket}/in/")
    assert sessions == [
        SessionRef("2024/alice.MP3", f"s3://{s3_bucket}/in/2024/alice.MP3", 5),
        SessionRef("2024/alice.flac", f"s3://{s3_bucket}/in/2024/alice.flac", 5),
        SessionRef("a", f"s3://{s3_bucket}/in/a.wav", 5),
        SessionRef("big", f"s3://{s3_bucket}/in/big.opus", 1000),
    ]
    assert [s.session_id for s in list_sessions(f"s3://{s3_bucket}/in")] == [
        s.session_id for s in sessions
    ]


def test_missing_and_empty_prefixes(s3: Any, s3_bucket: str) -> None:
    with pytest.raises(InvalidParameterError, match="does not exist"):
        list_sessions(f"s3://{s3_bucket}/nothing-here/")
    _put(s3, s3_bucket, "docs/readme.txt")
    with pytest.raises(InvalidParameterError, match="no audio files"):
        list_sessions(f"s3://{s3_bucket}/docs/")


def test_open_input_reads_ranges(s3: Any, s3_bucket: str) -> None:
    body = bytes(range(256)) * 64
    _put(s3, s3_bucket, "in/x.wav", body)
    with storage.open_input(f"s3://{s3_bucket}/in/x.wav") as f:
        assert f.seekable()
        assert f.size() == len(body)
        f.seek(1000)
        assert f.read(16) == body[1000:1016]
        assert f.read_at(4, len(body) - 4) == body[-4:]
    with pytest.raises(StorageError, match="missing.wav"):
        storage.open_input(f"s3://{s3_bucket}/in/missing.wav")


def test_write_atomic_and_read_text(s3: Any, s3_bucket: str) -> None:
    uri = storage.join(f"s3://{s3_bucket}", "out", "2024/alice", "transcript.json")
    assert storage.read_text(uri) is None
    assert not storage.exists(uri)
    storage.write_atomic(uri, json.dumps({"text": "grüß dich"}))
    assert storage.exists(uri)
    assert json.loads(storage.read_text(uri) or "") == {"text": "grüß dich"}
    storage.write_atomic(uri, b"{}")
    assert storage.read_text(uri) == "{}"
    # No directory marker objects: only the transcript itself.
    assert _keys(s3, s3_bucket) == ["out/2024/alice/transcript.json"]
    assert storage.clean_stale_temps(f"s3://{s3_bucket}/out") == 0


def test_large_write_goes_through_multipart(s3: Any, s3_bucket: str) -> None:
    # Past Arrow's part size (10 MiB) the upload is multipart; the object must still
    # appear whole.
    payload = bytes(range(256)) * (12 * 4096)
    uri = f"s3://{s3_bucket}/out/big.bin"
    storage.write_atomic(uri, payload)
    assert s3.get_object(Bucket=s3_bucket, Key="out/big.bin")["Body"].read() == payload
    assert s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_write_parquet_atomic(s3: Any, s3_bucket: str) -> None:
    table = pa.table({"session_id": ["a"], "text": ["hello"], "start": [0.25]})
    uri = f"s3://{s3_bucket}/out/segments/part-0.parquet"
    storage.write_parquet_atomic(uri, table)
    body = s3.get_object(Bucket=s3_bucket, Key="out/segments/part-0.parquet")["Body"].read()
    assert pq.read_table(io.BytesIO(body)).equals(table)


def test_manifest_on_s3(s3: Any, s3_bucket: str) -> None:
    _put(s3, s3_bucket, "in/calls/c1.wav")
    _put(s3, s3_bucket, "in/calls/c2.wav")
    manifest = "uri,session_id,language\ncalls/c1.wav,,en\n" + (
        f"s3://{s3_bucket}/in/calls/c2.wav,second,\n/local/file.mp3,,\n"
    )
    _put(s3, s3_bucket, "in/manifest.csv", manifest.encode())
    assert list_sessions(f"s3://{s3_bucket}/in/manifest.csv") == [
        SessionRef("calls/c1", f"s3://{s3_bucket}/in/calls/c1.wav", language="en"),
        SessionRef("second", f"s3://{s3_bucket}/in/calls/c2.wav"),
        SessionRef("file", "/local/file.mp3"),
    ]


def test_parquet_manifest_on_s3(s3: Any, s3_bucket: str) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"uri": ["a.flac", "../up.wav"]}), sink)
    _put(s3, s3_bucket, "m/list.parquet", sink.getvalue().to_pybytes())
    assert list_sessions(f"s3://{s3_bucket}/m/list.parquet") == [
        SessionRef("a", f"s3://{s3_bucket}/m/a.flac"),
        SessionRef("up", f"s3://{s3_bucket}/up.wav"),
    ]
