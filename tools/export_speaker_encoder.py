"""Export resemblyzer's GE2E speaker encoder to ONNX and write the parity references.

Writes ``detectors/models/ge2e_speaker_encoder.onnx`` (fp32, opset 17, dynamic
batch: input ``mels`` float32 [batch, 160, 40] -- 160 frames of 10 ms, 40 mel
bands of *linear power* mel spectrogram, not log -- output ``embedding``
float32 [batch, 256], L2-normalised, every component >= 0), checks it against
torch with onnxruntime, and writes ``tests/data/speaker/reference.npz`` from the
clips of ``tools/make_speaker_fixtures.py``: for each clip, resemblyzer's
``preprocess_wav`` length, its ``wav_to_mel_spectrogram`` of the preprocessed
audio, and ``VoiceEncoder.embed_utterance`` (utterance and partial embeddings);
plus how ``compute_partial_slices`` cuts a range of lengths into partials.

Torch is needed here only, never at run time. Run this in a THROWAWAY virtualenv,
never the project's (torch 2.13.0 CPU lies on disk; plain ``torch`` would
download a multi-GB CUDA build; resemblyzer's declared dependencies replace
webrtcvad-wheels and break its import, hence ``--no-deps``)::

    python3 -m venv /tmp/export-venv
    /tmp/export-venv/bin/pip install torch==2.13.0
    /tmp/export-venv/bin/pip install --no-deps resemblyzer==0.1.4
    /tmp/export-venv/bin/pip install librosa==0.8.1 numpy==1.23.5 "numba<0.59" \
        "setuptools<70" scipy webrtcvad-wheels soundfile onnx onnxruntime
    /tmp/export-venv/bin/python tools/export_speaker_encoder.py
    rm -r /tmp/export-venv

librosa 0.8.1 (hence numpy < 1.24, numba < 0.59 and setuptools with
``pkg_resources``) is the librosa the encoder was trained with: its STFT pads
the signal by *reflection* at both ends. librosa >= 0.9 pads with zeros, which
changes the first frame of every utterance and so the embeddings slightly.

The model the analysis runs by default is derived from this file afterwards, by
``tools/quantize_speaker_encoder.py`` (its two upper LSTM layers in int8).
"""

from __future__ import annotations

import argparse
import hashlib
from importlib.metadata import version
from pathlib import Path

import librosa
import numpy as np
import onnxruntime as ort
import resemblyzer
import soundfile as sf
import torch
from resemblyzer import VoiceEncoder, preprocess_wav, wav_to_mel_spectrogram

REPO = Path(__file__).resolve().parents[1]
ONNX_PATH = REPO / "detectors" / "models" / "ge2e_speaker_encoder.onnx"
CLIP_DIR = REPO / "tests" / "data" / "speaker"
PARTIAL_FRAMES = 160  # 10 ms mel frames per partial utterance (1.6 s)
MEL_BANDS = 40
OPSET = 17
MAX_MODEL_DIFF = 1e-5  # largest |onnxruntime - torch| accepted on one embedding component


class Encoder(torch.nn.Module):
    """The network of ``VoiceEncoder.forward``: LSTM, last layer's final state, linear, ReLU, L2."""

    def __init__(self, voice_encoder: VoiceEncoder) -> None:
        super().__init__()
        self.lstm = voice_encoder.lstm
        self.linear = voice_encoder.linear

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / torch.norm(raw, dim=1, keepdim=True)


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export(voice_encoder: VoiceEncoder, out: Path) -> None:
    """Export the encoder to ``out`` and check it against torch on random and real partials."""
    model = Encoder(voice_encoder).eval()
    example = torch.rand(2, PARTIAL_FRAMES, MEL_BANDS)
    torch.onnx.export(
        model,
        (example,),
        str(out),
        input_names=["mels"],
        output_names=["embedding"],
        dynamic_axes={"mels": {0: "batch"}, "embedding": {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch in (1, 8):
        # Mel power of speech at -30 dBFS spans about 0 to 10.
        mels = (rng.random((batch, PARTIAL_FRAMES, MEL_BANDS)) ** 4 * 10).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(mels)).numpy()
        (got,) = session.run(None, {"mels": mels})
        diff = float(np.max(np.abs(got - expected)))
        print(f"onnxruntime vs torch, batch {batch}: max abs diff {diff:.2e}")
        if diff > MAX_MODEL_DIFF:
            raise SystemExit(f"the ONNX export differs from torch by {diff:.2e}")


def references(voice_encoder: VoiceEncoder, clip_dir: Path) -> dict[str, np.ndarray]:
    """Resemblyzer's own preprocessing, mel spectrogram and embeddings of every clip."""
    arrays: dict[str, np.ndarray] = {}
    for path in sorted(clip_dir.glob("*.flac")):
        audio, rate = sf.read(path, dtype="float32")
        if rate != resemblyzer.sampling_rate:
            raise SystemExit(f"{path} is at {rate} Hz, not {resemblyzer.sampling_rate}")
        wav = preprocess_wav(audio)
        embedding, partials, _ = voice_encoder.embed_utterance(wav, return_partials=True)
        name = path.stem
        arrays[f"{name}.n_samples"] = np.array(len(wav))
        arrays[f"{name}.mel"] = wav_to_mel_spectrogram(wav)
        arrays[f"{name}.embedding"] = embedding.astype(np.float32)
        arrays[f"{name}.partials"] = partials.astype(np.float32)
        print(f"{path.name}: {len(audio)} -> {len(wav)} samples, {len(partials)} partials")
    # Partial-utterance slicing (rate 1.3, min coverage 0.75) over lengths 0.1 s to 8 s:
    # the starts are 0, 77, 154, ... frames, so their count tells them all.
    lengths = np.arange(1_600, 128_000, 373)
    arrays["slicing.n_samples"] = lengths
    arrays["slicing.count"] = np.array(
        [len(VoiceEncoder.compute_partial_slices(int(n), 1.3, 0.75)[1]) for n in lengths]
    )
    arrays["versions"] = np.array(
        f"resemblyzer {version('resemblyzer')}, torch {torch.__version__}, "
        f"librosa {librosa.__version__}, numpy {np.__version__}"
    )
    return arrays


def main() -> None:
    """Command line: export the model, then write the references."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, default=ONNX_PATH, help="ONNX file to write")
    parser.add_argument("--clips", type=Path, default=CLIP_DIR, help="folder of 16 kHz clips")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    voice_encoder = VoiceEncoder(device="cpu", verbose=False)
    weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
    print(f"resemblyzer {version('resemblyzer')}: {weights.name} sha256 {sha256(weights)}")
    export(voice_encoder, args.onnx)
    print(f"{args.onnx}: {args.onnx.stat().st_size} bytes, sha256 {sha256(args.onnx)}")
    reference = args.clips / "reference.npz"
    np.savez_compressed(reference, **references(voice_encoder, args.clips))
    print(f"{reference}: {reference.stat().st_size} bytes")


if __name__ == "__main__":
    main()
