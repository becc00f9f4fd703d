"""Language per chunk: the policy of scribe.pipeline.languages on programmed detections,
and which languages and tasks a model folder allows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scribe.config import SAMPLE_RATE, TranscribeOptions
from scribe.errors import InvalidParameterError
from scribe.pipeline import languages
from scribe.pipeline.chunking import Chunk, ChunkPlan

pytestmark = pytest.mark.unit
OPTIONS = TranscribeOptions(model="x", device="cpu")
RANGE_S = 4.0


class Programmed:
    """An encoder whose 'encoding' of a chunk is the language each of its ranges was given
    (the features' first row holds a range's code number per frame): a chunk is detected as
    its majority with the share of its frames, a range alone as itself (0.95)."""

    codes = ["en", "de", "fr", "es"]

    def __init__(self) -> None:
        self.encoded: list[int] = []

    def encode_at_windows(self, features: Sequence[Any], opts: TranscribeOptions
                          ) -> list[tuple[Any, int]]:
        self.encoded.append(len(features))
        return [(list(features), n) for n in range(len(features))]

    def detect_language(self, encoded: Any) -> list[list[tuple[str, float]]]:
        out = []
        for feats in encoded:
            counts = np.bincount(feats[0].astype(int), minlength=len(self.codes))
            shares = counts / counts.sum()
            sure = 0.95 if (shares == 1).any() else 1.0
            ranked = sorted(((c, float(s) * sure) for c, s in zip(self.codes, shares,
                                                                   strict=True)),
                            key=lambda pair: -pair[1])
            out.append(ranked)
        return out


def chunk(index: int, spoken: str, session_id: str = "s", language: str | None = None) -> Chunk:
    """A chunk of ``len(spoken)`` 4 s ranges, each in the language of its letter."""
    frames = int(RANGE_S * 100)
    codes = [Programmed.codes.index({"e": "en", "d": "de", "f": "fr", "s": "es"}[c])
             for c in spoken]
    features = np.repeat(np.array(codes, np.float32), frames)[None, :].repeat(2, axis=0)
    start = index * len(spoken) * int(RANGE_S * SAMPLE_RATE)
    ranges = [{"start": start + k * int(RANGE_S * SAMPLE_RATE),
               "end": start + (k + 1) * int(RANGE_S * SAMPLE_RATE)} for k in range(len(spoken))]
    plan = ChunkPlan(index=index, offset_s=index * len(spoken) * RANGE_S,
                     duration_s=len(spoken) * RANGE_S, ranges=ranges)
    return Chunk(plan=plan, features=features, session_id=session_id, language=language)


def test_each_sure_chunk_is_decoded_in_its_own_language() -> None:
    found = languages.detect(Programmed(), [chunk(0, "eeee"), chunk(1, "dddd")], OPTIONS)
    assert [c.language for c in found.chunks] == ["en", "de"]
    assert found.parents == [0, 1]


def test_a_switch_near_a_chunks_end_is_cut_at_its_range() -> None:
    """The first chunk is 6/7 English (sure), its neighbour German: its ranges are
    detected alone and its last range decoded as German."""
    encoder = Programmed()
    found = languages.detect(encoder, [chunk(0, "eeeeeed"), chunk(1, "ddddddd")],
                             OPTIONS.model_copy(update={"language_threshold": 0.8}))
    assert [(c.language, c.plan.duration_s, len(c.features[0])) for c in found.chunks] == [
        ("en", 24.0, 2400), ("de", 4.0, 400), ("de", 28.0, 2800)]
    assert found.parents == [0, 0, 1]
    assert found.chunks[1].plan.offset_s == 24.0
    assert found.chunks[1].plan.ranges == chunk(0, "eeeeeed").plan.ranges[6:]
    assert encoder.encoded == [2, 14]  # the chunks, then each range of both


def test_a_language_given_wins_and_nothing_is_encoded() -> None:
    encoder = Programmed()
    items = [chunk(0, "dddd", language="fr"), chunk(1, "dddd")]
    found = languages.detect(encoder, items, OPTIONS.model_copy(update={"language": "es"}))
    assert [c.language for c in found.chunks] == ["fr", "es"]
    assert encoder.encoded == []


def test_an_unsure_chunk_of_one_language_takes_its_sessions() -> None:
    """Half German, half French in one range each is unsure (0.5) and cannot be cut into
    ranges long enough; its session's vote decides."""
    short = chunk(2, "df")
    short = Chunk(plan=ChunkPlan(index=2, offset_s=0.0, duration_s=8.0,
                                 ranges=[{"start": 0, "end": 8 * SAMPLE_RATE}]),
                  features=short.features, session_id="s")
    found = languages.detect(Programmed(), [chunk(0, "dddd"), chunk(1, "dddd"), short],
                             OPTIONS)
    assert [c.language for c in found.chunks] == ["de", "de", "de"]


class Unclear(Programmed):
    """Unclear audio (noise, music, a random-weight model): every chunk and range spreads
    its probability over twenty languages, the first a little ahead."""

    def detect_language(self, encoded: Any) -> list[list[tuple[str, float]]]:
        ranked = [("en", 0.06)] + [(f"x{k}", 0.05) for k in range(19)]
        return [ranked for _ in encoded]


def test_unclear_audio_is_not_searched_range_by_range() -> None:
    """Unsure, but not between two languages: each chunk takes its session's language,
    whole, and no range is encoded alone."""
    encoder = Unclear()
    found = languages.detect(encoder, [chunk(0, "eeee"), chunk(1, "dddd")], OPTIONS)
    assert [c.language for c in found.chunks] == ["en", "en"]
    assert found.parents == [0, 1]
    assert encoder.encoded == [2]


def test_other_sessions_neighbours_change_nothing() -> None:
    """6/7 English is sure at 0.8; a German chunk of another session does not make it
    look for German."""
    opts = OPTIONS.model_copy(update={"language_threshold": 0.8})
    alone = languages.detect(Programmed(), [chunk(0, "eeeeeed")], opts)
    shared = languages.detect(Programmed(), [chunk(0, "eeeeeed"), chunk(1, "ddddddd", "t")],
                              opts)
    assert [c.language for c in alone.chunks] == ["en"]
    assert [c.language for c in shared.chunks] == ["en", "de"]


def test_one_odd_range_between_two_of_a_language_takes_theirs() -> None:
    spoken = {"de", "en"}
    assert languages._runs([("de", 0.99), ("en", 0.6), ("de", 0.95)], 0.9, spoken) == [
        (0, 3, "de", 0.99)]
    assert languages._runs([("de", 0.99), ("en", 0.95), ("de", 0.95)], 0.9, spoken) == [
        (0, 1, "de", 0.99), (1, 2, "en", 0.95), (2, 3, "de", 0.95)]
    assert languages._runs([None, ("fr", 0.9), None], 0.9, spoken) == [(0, 3, "fr", 0.9)]


def test_a_sure_odd_range_keeps_its_language_only_if_a_chunk_of_its_session_was_sure_of_it(
        ) -> None:
    ranges = [("fr", 0.6), ("fr", 0.6), ("la", 0.97), ("fr", 0.4)]
    assert languages._runs(ranges, 0.9, {"fr"}) == [(0, 4, "fr", 0.6)]
    assert languages._runs(ranges, 0.9, {"fr", "la"}) == [
        (0, 2, "fr", 0.6), (2, 3, "la", 0.97), (3, 4, "fr", 0.4)]
    assert languages._runs([("fr", 0.6), ("la", 0.97), ("la", 0.95), ("fr", 0.6)], 0.9,
                           {"fr"})[1] == (1, 3, "la", 0.97), "two sentences in a row stay"


def test_what_a_model_folder_allows(real_model: str, base_model: str) -> None:
    english = languages.model_languages(real_model)
    assert english is not None and not english.multilingual
    assert english.languages == {"en"}
    multi = languages.model_languages(base_model)
    assert multi is not None and multi.multilingual
    assert {"en", "de", "es", "fr", "it"} <= multi.languages and len(multi.languages) == 99
    assert "yue" not in multi.languages  # large-v3's 100th
    assert languages.model_languages("tiny.en") == english
    assert languages.model_languages("large-v3") is None


@pytest.mark.parametrize(("language", "task", "param"), [
    (None, "translate", "task"), ("de", "transcribe", "language")])
def test_an_english_only_model_refuses_naming_the_parameter(
        real_model: str, language: str | None, task: str, param: str) -> None:
    with pytest.raises(InvalidParameterError, match=f"^{param}: .*English-only") as info:
        languages.check_request(real_model, language=language, task=task)
    assert info.value.param == param


def test_a_language_the_model_does_not_know_is_refused(base_model: str) -> None:
    with pytest.raises(InvalidParameterError, match="'yue'.*does not know"):
        languages.check_request(base_model, language="yue", task="transcribe")
    languages.check_request(base_model, language="de", task="translate")
    languages.check_request(str(Path(base_model)), language=None, task="transcribe")


def test_a_manifests_bad_language_names_the_session(real_model: str, base_model: str) -> None:
    base = TranscribeOptions(model=base_model)
    languages.check_sessions(base, [("a", "de"), ("b", None)])
    with pytest.raises(InvalidParameterError, match="'xx'.*session 'b'"):
        languages.check_sessions(base, [("a", "de"), ("b", "xx")])
    with pytest.raises(InvalidParameterError, match="English-only.*session 'a'"):
        languages.check_sessions(TranscribeOptions(model=real_model), [("a", "de")])


@pytest.mark.parametrize(("flags", "param"), [
    (["--task", "translate"], "task"), (["--language", "de"], "language")])
def test_the_job_exits_2_before_reading_audio(real_model: str, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture,
                                              flags: list[str], param: str) -> None:
    """An English-only model asked to translate or to hear German: exit 2 naming the
    parameter, with the input never listed (it does not exist)."""
    from ray_jobs.transcribe import main

    code = main(["--input", str(tmp_path / "absent"), "--output", str(tmp_path / "out"),
                 "--model", real_model, *flags])
    assert code == 2
    assert f"invalid_parameter: {param}: " in caplog.text
    assert not (tmp_path / "out").exists()


def test_seconds_per_language_for_the_metrics() -> None:
    from scribe.telemetry import language_seconds

    segments = [{"start": 0.0, "end": 2.0, "language": "en"},
                {"start": 2.0, "end": 2.5, "language": "de"},
                {"start": 3.0, "end": 4.0, "language": "en"}, {"start": 4.0, "end": 5.0}]
    assert language_seconds(segments) == {"en": 3.0, "de": 0.5, "unknown": 1.0}


def test_every_whisper_language_has_openais_name_for_verbose_json() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    from serve_app.languages import LANGUAGE_NAMES, language_name

    assert set(LANGUAGE_NAMES) == set(_LANGUAGE_CODES)
    assert [language_name(c) for c in ("en", "de", "ht", "yue")] == [
        "english", "german", "haitian creole", "cantonese"]
    assert language_name(None) == "" and language_name("xx") == "xx"
