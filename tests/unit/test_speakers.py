"""Speaker labels in the engine: weights, encoder, channels, clustering, assignment."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scribe.config import TranscribeOptions
from scribe.errors import InvalidParameterError, ModelLoadError
from scribe.pipeline.audio import decode
from scribe.pipeline.preprocess import preprocess
from scribe.pipeline.speakers import assign, channels, cluster, weights
from scribe.pipeline.speakers.diarize import SpeakerRequest, voice_turns
from scribe.pipeline.speakers.encoder import LstmEncoder, level, load_encoder
from scribe.pipeline.speakers.voices import embed_speech
from scribe.pipeline.transcript import ok_record
from scribe.pipeline.whisper import WhisperEngine
from tests import conversations
from tests.media import EXAMPLES

pytestmark = pytest.mark.unit

STEREO = str(EXAMPLES / "stereo_diarization.wav")


@pytest.fixture(scope="module")
def encoder(speaker_weights: str) -> LstmEncoder:
    loaded = load_encoder("resemblyzer", speaker_weights)
    assert isinstance(loaded, LstmEncoder)
    return loaded


def test_weights_load_as_the_published_lstm(speaker_weights: str) -> None:
    state = weights.load_state_dict(speaker_weights)
    assert state["lstm.weight_ih_l0"].shape == (1024, 40)
    assert state["lstm.weight_hh_l2"].shape == (1024, 256)
    assert state["linear.weight"].shape == (256, 256)
    assert all(v.dtype == np.float32 for v in state.values())


def test_a_checkpoint_naming_other_code_is_refused(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            # os.system: pickled by its own module's name whatever patches builtins (Ray's
            # tqdm replaces print, so print would pickle as one of Ray's functions)
            return (os.system, ("echo pwned",))

    data = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {}):
        pickle.dump(header, data, protocol=2)
    pickle.dump({"model_state": Exploit()}, data, protocol=2)
    path = tmp_path / "evil.pt"
    path.write_bytes(data.getvalue() + pickle.dumps([]) + struct.pack("<q", 0))
    with pytest.raises(ModelLoadError, match=r"refusing to load \w+\.system"):
        weights.load_state_dict(path)


def test_unknown_encoder_names_the_option() -> None:
    with pytest.raises(InvalidParameterError, match="speaker_encoder"):
        load_encoder("no-such-encoder")


def test_voices_score_higher_within_than_across(encoder: LstmEncoder) -> None:
    a, b = conversations.espeak_voices(conversations.VOICE_PAIRS[0])
    ea, eb = (encoder.embed([level(x) for x in voice[:4]]) for voice in (a, b))
    pairs = np.triu_indices(4, 1)
    within = np.concatenate([(ea @ ea.T)[pairs], (eb @ eb.T)[pairs]])
    across = (ea @ eb.T).ravel()
    assert within.min() > across.max(), (within, across)
    assert within.mean() > across.mean() + 0.15, (within.mean(), across.mean())
    assert np.allclose(np.linalg.norm(ea, axis=1), 1.0, atol=1e-5)


def test_stereo_example_is_one_speaker_per_channel() -> None:
    decoded = decode(STEREO, keep_channels=True)
    assert decoded.channels is not None
    left, right = decoded.channels
    assert channels.one_speaker_per_channel(left, right)
    assert not channels.one_speaker_per_channel(left, left * np.float32(0.7))
    # keeping the channels does not change the mono signal the model hears
    assert np.allclose(decoded.samples, decode(STEREO).samples, atol=1e-6)


def test_cluster_finds_one_or_two_voices(encoder: LstmEncoder) -> None:
    a, b = conversations.espeak_voices(conversations.VOICE_PAIRS[1])
    one = encoder.embed(list(a))
    two = encoder.embed([x for pair in zip(a, b, strict=True) for x in pair])
    assert set(cluster.cluster(one).tolist()) == {0}
    assert cluster.cluster(two).tolist() == [0, 1] * len(a)
    assert len(cluster.cluster(np.zeros((0, 256), np.float32))) == 0


def test_known_speakers_name_the_clusters() -> None:
    centroids = np.eye(3, dtype=np.float32)[:2]
    refs = {"client": np.eye(3, dtype=np.float32)[1], "therapist": np.eye(3, dtype=np.float32)[0]}
    assert cluster.name_speakers(centroids, refs) == ["therapist", "client"]


def test_segment_spanning_a_change_is_split_at_the_word() -> None:
    words = [{"start": 0.0, "end": 0.5, "word": " Hello", "probability": 1.0},
             {"start": 0.6, "end": 1.0, "word": " there.", "probability": 1.0},
             {"start": 1.4, "end": 1.8, "word": " Hi!", "probability": 1.0}]
    segments = [{"id": 0, "start": 0.0, "end": 1.8, "text": "Hello there. Hi!", "words": words}]
    turns = [assign.Turn(0.0, 1.2, "A"), assign.Turn(1.2, 2.0, "B")]
    out = assign.label_segments(segments, turns)
    assert [(s["id"], s["speaker"], s["text"], s["start"], s["end"]) for s in out] == [
        (0, "A", "Hello there.", 0.0, 1.0), (1, "B", "Hi!", 1.4, 1.8)]
    assert [w["speaker"] for s in out for w in s["words"]] == ["A", "A", "B"]


def test_silence_gets_no_speaker() -> None:
    out = assign.label_segments([{"id": 0, "start": 0.0, "end": 1.0, "text": ""}], [])
    assert out[0]["speaker"] is None
    assert voice_turns([], SpeakerRequest()) == []


def test_voice_path_labels_a_conversation(encoder: LstmEncoder) -> None:
    conv = conversations.conversation(conversations.espeak_voices(conversations.VOICE_PAIRS[0]),
                                      turns=8, seed=3, overlap_share=0.0)
    ranges = [[{"start": int(s * 16000), "end": int(e * 16000)}] for s, e, _ in conv.turns]
    found = embed_speech(conv.samples, ranges, encoder)
    turns = voice_turns([w for chunk in found for w in chunk], SpeakerRequest())
    for start, end, who in conv.turns:  # A spoke first, so the labels match by name
        assert assign.speaker_at(start + 0.3, end - 0.3, turns) == who


def test_channel_path_puts_each_segment_on_its_speaker(real_model: str) -> None:
    options = TranscribeOptions(model=real_model, device="cpu", compute_type="int8",
                                language="en", speakers="auto", word_timestamps=True)
    engine = WhisperEngine(options, cpu_threads=1)
    prepared = preprocess(STEREO, options, engine.n_mels)
    assert {c.plan.channel for c in prepared.chunks} == {0, 1}
    outputs = engine.transcribe(prepared.chunks, options)
    record = ok_record({"session_id": "s", "duration_s": prepared.duration_s},
                       outputs, SpeakerRequest())
    said = {s["speaker"]: s["text"] for s in record["segments"]}
    assert said.keys() == {"left", "right"}
    assert "horizon" in said["right"] and "wizard" in said["left"]
    assert all(w["speaker"] == s["speaker"] for s in record["segments"] for w in s["words"])


def named_session(pair: tuple[str, str], encoder: Any, options: TranscribeOptions,
                  tmp_path: Path) -> tuple[conversations.Conversation, list[Any],
                                           dict[str, Any]]:
    """A six-turn conversation of ``pair``'s voices, its windows embedded by ``encoder``,
    and a reference clip of each voice embedded as ``known_speaker_names[]`` are online:
    'client' speaks as A, 'therapist' as B."""
    from scribe.pipeline.speakers.voices import reference_embedding
    from tests.media import write_audio

    conv = conversations.conversation(conversations.espeak_voices(pair), turns=6, seed=4,
                                      overlap_share=0.0)
    ranges = [[{"start": int(s * 16000), "end": int(e * 16000)}] for s, e, _ in conv.turns]
    windows = [w for chunk in embed_speech(conv.samples, ranges, encoder) for w in chunk]
    known = {}
    for name, voice in zip(("client", "therapist"), pair, strict=True):
        clip = write_audio(tmp_path / f"{name}.wav", conversations.espeak(
            voice, "Thank you, I will think about what we discussed today."))
        known[name] = reference_embedding(str(clip), options)
    return conv, windows, known


def assert_named(conv: conversations.Conversation, turns: Any) -> None:
    """Every turn of ``conv`` carries the name of its voice."""
    for start, end, who in conv.turns:
        expected = "client" if who == "A" else "therapist"
        assert assign.speaker_at(start + 0.3, end - 0.3, turns) == expected


def test_reference_clips_name_the_voices(encoder: LstmEncoder, speaker_weights: str,
                                         tmp_path: Path) -> None:
    options = TranscribeOptions(speaker_encoder="resemblyzer", speaker_encoder_path=speaker_weights)
    conv, windows, known = named_session(conversations.VOICE_PAIRS[2], encoder, options,
                                         tmp_path)
    assert_named(conv, voice_turns(windows, SpeakerRequest(known=known)))


def test_a_sliver_is_no_speaker_and_the_bounds_win() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 256))
    vectors = np.array([centres[k] + 0.3 * rng.normal(size=256)
                        for k in [0] * 50 + [1] * 50 + [2] * 2], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert np.bincount(cluster.cluster(vectors)).tolist() == [50, 52]
    # told three, it finds three; the sliver still seeds none of them on its own
    assert len(np.bincount(cluster.cluster(vectors, num_speakers=3))) == 3
    assert len(np.bincount(cluster.cluster(vectors, min_speakers=3))) == 3
    assert set(cluster.cluster(vectors, max_speakers=1).tolist()) == {0}
    assert np.bincount(cluster.cluster(vectors, max_speakers=2)).tolist() == [50, 52]
