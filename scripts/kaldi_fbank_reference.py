"""Write tests/data/kaldi_fbank_reference.npz: torchaudio's Kaldi fbank on one real second.

    pip install 'torch>=2.1' && python scripts/kaldi_fbank_reference.py

The reference is ``torchaudio.compliance.kaldi.fbank`` with 3D-Speaker's settings (80 bins,
16 kHz, dither 0) on 1 s of examples/sessions/jfk.flac (16-bit samples stored beside it, so
the test does not depend on the decoder). Where torchaudio is not installed (it pins one
torch release and brings gigabytes), its ``compliance/kaldi.py`` is taken from the
torchaudio 2.9.1 wheel (2 MB, ``pip download --no-deps``) and run on the torch at hand:
its fbank uses torch alone (only its mfcc calls into the rest of torchaudio).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "tests/data/kaldi_fbank_reference.npz"
TORCHAUDIO = "torchaudio==2.9.1"
START_S, SECONDS = 2.0, 1.0


def kaldi_module() -> Any:
    """torchaudio's kaldi compliance module, installed or from the wheel."""
    try:
        import torchaudio.compliance.kaldi as kaldi

        return kaldi
    except ImportError:
        pass
    tmp = tempfile.mkdtemp()
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "--dest", tmp, TORCHAUDIO], check=True)
    wheel = next(Path(tmp).glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read("torchaudio/compliance/kaldi.py")
    path = Path(tmp) / "kaldi.py"
    path.write_bytes(source)
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    spec = importlib.util.spec_from_file_location("kaldi", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    import torch

    sys.path.insert(0, str(ROOT))
    from scribe.pipeline.audio import decode

    samples = decode(str(ROOT / "examples/sessions/jfk.flac")).samples
    pcm = np.round(samples[int(START_S * 16000):int((START_S + SECONDS) * 16000)] * 32767)
    pcm = pcm.astype(np.int16)
    waveform = torch.from_numpy(pcm.astype(np.float32) / 32767)[None]
    features = kaldi_module().fbank(waveform, num_mel_bins=80, sample_frequency=16000,
                                    dither=0.0)
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(TARGET, pcm=pcm, fbank=features.numpy().astype(np.float32))
    sys.stdout.write(f"{TARGET}: {tuple(features.shape)} frames x bins, "
                     f"torch {torch.__version__}\n")


if __name__ == "__main__":
    main()
