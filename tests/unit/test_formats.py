"""Transcript writers: exact SRT/VTT/TXT output, timestamp edge cases, JSON records."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from scribe.io.formats import format_timestamp, full_text, to_json, to_srt, to_txt, to_vtt

pytestmark = pytest.mark.unit

SEGMENTS = [
    {"start": 0.0, "end": 2.5, "text": " Hello there."},
    {"start": 2.5, "end": 5.123, "text": "   "},
    {
        "start": 5.2,
        "end": 7.0,
        "text": " General\n\nKenobi! ",
        "words": [{"start": 5.2, "end": 5.9, "word": " General", "probability": 0.9}],
    },
]


@dataclass(frozen=True)
class _Segment:
    start: float
    end: float
    text: str


def test_srt_numbers_cues_and_skips_empty_text() -> None:
    assert to_srt(SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n"
        "\n"
        "2\n00:00:05,200 --> 00:00:07,000\nGeneral Kenobi!\n"
    )


def test_vtt_has_header_and_dot_millis() -> None:
    assert to_vtt(SEGMENTS) == (
        "WEBVTT\n"
        "\n"
        "00:00:00.000 --> 00:00:02.500\nHello there.\n"
        "\n"
        "00:00:05.200 --> 00:00:07.000\nGeneral Kenobi!\n"
    )


def test_txt_and_full_text() -> None:
    assert to_txt(SEGMENTS) == "Hello there.\nGeneral Kenobi!\n"
    assert full_text(SEGMENTS) == "Hello there. General Kenobi!"


def test_empty_transcript() -> None:
    assert to_srt([]) == ""
    assert to_vtt([]) == "WEBVTT\n"
    assert to_txt([]) == ""
    assert full_text([]) == ""


def test_segment_objects_work_like_dicts() -> None:
    objects = [_Segment(1.0, 2.0, " one"), _Segment(2.0, 3.25, "two ")]
    assert to_srt(objects) == (
        "1\n00:00:01,000 --> 00:00:02,000\none\n\n2\n00:00:02,000 --> 00:00:03,250\ntwo\n"
    )
    assert full_text(objects) == "one two"


@pytest.mark.parametrize(
    ("seconds", "always_hours", "decimal", "expected"),
    [
        (0.0, False, ".", "00:00.000"),
        (0.0, True, ",", "00:00:00,000"),
        (61.5, False, ".", "01:01.500"),
        (3599.9999, False, ".", "01:00:00.000"),  # rounds up across the hour
        (100 * 3600 + 1.5, True, ",", "100:00:01,500"),
        (1000 * 3600.0, False, ".", "1000:00:00.000"),
        (-3.0, True, ".", "00:00:00.000"),
        (float("nan"), True, ".", "00:00:00.000"),
    ],
)
def test_format_timestamp(seconds: float, always_hours: bool, decimal: str, expected: str) -> None:
    assert format_timestamp(seconds, always_hours=always_hours, decimal=decimal) == expected


def test_hours_beyond_99_in_srt() -> None:
    start = 123 * 3600 + 4 * 60 + 5.006
    srt = to_srt([{"start": start, "end": start + 1, "text": "late"}])
    assert srt == "1\n123:04:05,006 --> 123:04:06,006\nlate\n"


def test_negative_and_reversed_times_are_clamped() -> None:
    segments: list[dict[str, Any]] = [
        {"start": -1.0, "end": -0.5, "text": "before zero"},
        {"start": 3.0, "end": 2.0, "text": "reversed"},
        {"start": None, "end": 1.0, "text": "no start"},
    ]
    assert to_vtt(segments) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:00.000\nbefore zero\n\n"
        "00:00:03.000 --> 00:00:03.000\nreversed\n\n"
        "00:00:00.000 --> 00:00:01.000\nno start\n"
    )


def test_json_is_indented_utf8_and_strict() -> None:
    record = {
        "session_id": "2024/zoë",
        "text": "Grüße",
        "avg_logprob": float("-inf"),
        "segments": [{"start": 0.0, "end": float("nan")}],
    }
    text = to_json(record)
    assert text.endswith("\n")
    assert "Grüße" in text and "zoë" in text
    assert text.startswith('{\n  "session_id"')
    # json.loads accepts NaN; a strict parser must read the file too.
    parsed = json.loads(text, parse_constant=pytest.fail)
    assert parsed["avg_logprob"] is None
    assert parsed["segments"][0]["end"] is None


def test_json_accepts_numpy_values() -> None:
    np = pytest.importorskip("numpy")
    record = {"duration": np.float32(1.5), "tokens": np.array([1, 2], dtype=np.int32)}
    assert json.loads(to_json(record)) == {"duration": 1.5, "tokens": [1, 2]}


SPOKEN = [{"start": 0.0, "end": 1.5, "text": " Hello.", "speaker": "therapist"},
          {"start": 1.6, "end": 2.0, "text": "Hi.", "speaker": "B<>"},
          {"start": 2.0, "end": 2.5, "text": "Unlabelled.", "speaker": None}]


def test_speakers_show_as_voice_tags_and_prefixes() -> None:
    vtt = to_vtt(SPOKEN)
    assert "<v therapist>Hello.\n" in vtt and "<v B>Hi.\n" in vtt
    assert "\nUnlabelled.\n" in vtt
    assert to_txt(SPOKEN) == "therapist: Hello.\nB<>: Hi.\nUnlabelled.\n"
    assert "1\n00:00:00,000 --> 00:00:01,500\ntherapist: Hello.\n" in to_srt(SPOKEN)


def test_segment_parquet_has_a_speaker_column() -> None:
    from scribe.io.outputs import segment_table

    record = {"session_id": "s", "language": "en", "segments": [
        {**seg, "id": i, "avg_logprob": -0.1, "no_speech_prob": 0.0}
        for i, seg in enumerate(SPOKEN)]}
    assert segment_table(record).column("speaker").to_pylist() == ["therapist", "B<>", None]


def test_vtt_marks_each_cue_s_language_only_where_they_differ() -> None:
    both = [{"start": 0.0, "end": 1.0, "text": "Hello", "language": "en"},
            {"start": 1.0, "end": 2.0, "text": "Hallo", "language": "de", "speaker": "A"}]
    vtt = to_vtt(both)
    assert "<lang en>Hello</lang>\n" in vtt and "<v A><lang de>Hallo</lang>\n" in vtt
    assert "<lang" not in to_vtt([{**both[0]}, {**both[1], "language": "en"}])
    assert "<lang" not in to_srt(both)


def test_segments_say_the_temperature_they_were_decoded_at() -> None:
    from scribe.io.outputs import segment_table
    from serve_app.protocol import TranscriptionRequest
    from serve_app.responses import verbose

    scores = {"avg_logprob": -0.1, "no_speech_prob": 0.0, "compression_ratio": 1.0}
    fell_back = {"id": 0, "start": 0.0, "end": 1.0, "text": "Hi.", "temperature": 0.6, **scores}
    older = {"id": 1, "start": 1.0, "end": 2.0, "text": "Ho.", **scores}  # before temperatures
    record = {"session_id": "s", "language": "en", "duration_s": 2.0, "text": "Hi. Ho.",
              "segments": [fell_back, older]}
    assert segment_table(record).column("temperature").to_pylist() == [0.6, None]
    request = TranscriptionRequest(model="whisper-1", response_format="verbose_json",
                                   temperature=0.2)
    assert [s.temperature for s in verbose(record, request).segments] == [0.6, 0.2]
