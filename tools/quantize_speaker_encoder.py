"""Quantise the GE2E speaker encoder's two upper LSTM layers to int8: a third less CPU.

``detectors/models/ge2e_speaker_encoder.onnx`` (``tools/export_speaker_encoder.py``,
resemblyzer's weights) spends nearly all of its time in its three LSTM layers, about
6 ms of one core per 1.6 s window at batch 8. onnxruntime's dynamic quantisation turns
an LSTM into ``DynamicQuantizeLSTM``: int8 weights (here one scale per gate row), the
input quantised per call. Applied to the two upper layers, whose inputs are the hidden
states of the layer below (bounded in [-1, 1]), the window costs about 3.8 ms and its
embedding stays within cosine 0.99 of the float one. The first layer stays float: its
input is linear mel power, whose range (silence to a shout) one int8 scale per call
cannot hold (quantised too, the embeddings fall to cosine 0.4 of the float ones).

This script writes ``detectors/models/ge2e_speaker_encoder_int8.onnx`` and refuses to
unless, over every 1.6 s partial of the committed speaker and diarization clips (speech
of TTS, read and recorded voices, close and in simulated rooms), each embedding is within
``MIN_COSINE`` of the float model's and the mean within ``MEAN_COSINE``. The weights are
rounded deterministically (per-row minimum and maximum), so a rerun writes the same file.

A quantised layer's input gets one scale per call, over the whole batch, so a partial's
embedding moves a little with the partials batched beside it (up to 0.02 per component,
cosine 0.99 or closer on the parity clips). Running one partial per call would avoid
that but cost more than the float model batched (7 against 6 ms); file analysis batches
(4 ms a partial), live analysis embeds one window at a time (7 ms, the float one 12.5).

Needs ``onnx`` (never at run time; onnxruntime's quantiser imports it). Run it once,
with ``onnx`` in a THROWAWAY folder beside the project's virtualenv::

    .venv/bin/pip install --no-deps --target /tmp/ge2e-tools "onnx==1.23.2" ml_dtypes
    PYTHONPATH=/tmp/ge2e-tools:. .venv/bin/python tools/quantize_speaker_encoder.py
    rm -r /tmp/ge2e-tools

``tests/test_speaker_encoder.py`` checks the same agreement with onnxruntime alone.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path

import numpy as np
import onnx
import soundfile as sf
import soxr
from onnxruntime.quantization import QuantType, quantize_dynamic

from detectors.speaker.encoder import ENCODER_MODEL, FLOAT_ENCODER_MODEL, SpeakerEncoder
from detectors.speaker.frontend import SAMPLE_RATE, partial_mels, preprocess

ROOT = Path(__file__).resolve().parent.parent
PARITY_CLIPS = [
    *sorted((ROOT / "tests" / "data" / "speaker").glob("*.flac")),
    *sorted((ROOT / "tests" / "data" / "diarization").glob("*.flac")),
]
MIN_COSINE = 0.98
MEAN_COSINE = 0.995


def parity_partials() -> np.ndarray:
    """Every partial of the parity clips: mono, 16 kHz, voice-trimmed as the encoder does."""
    partials = []
    for path in PARITY_CLIPS:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        if rate != SAMPLE_RATE:  # the 8 kHz telephone call
            mono = soxr.resample(mono, rate, SAMPLE_RATE)
        partials.append(partial_mels(preprocess(mono)))
    return np.concatenate(partials)


def quantise(source: Path, target: Path) -> None:
    """``source`` with its second and third LSTM layers dynamically quantised to int8."""
    layers = [n.name for n in onnx.load(str(source)).graph.node if n.op_type == "LSTM"]
    if len(layers) != 3:
        raise SystemExit(f"{source.name}: expected GE2E's three LSTM layers, found {layers}")
    quantize_dynamic(
        source,
        target,
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_quantize=layers[1:],
    )


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ENCODER_MODEL)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        candidate = Path(tmp) / args.out.name
        quantise(FLOAT_ENCODER_MODEL, candidate)
        partials = parity_partials()
        reference = SpeakerEncoder(FLOAT_ENCODER_MODEL).embed_partials(partials)
        quantised = SpeakerEncoder(candidate).embed_partials(partials)
        agreement = cosines(reference, quantised)
        print(f"{len(partials)} partials of {len(PARITY_CLIPS)} clips: cosine to the float "
              f"model min {agreement.min():.5f}, mean {agreement.mean():.5f}")  # fmt: skip
        if agreement.min() < MIN_COSINE or agreement.mean() < MEAN_COSINE:
            raise SystemExit(f"refused: below {MIN_COSINE} (min) or {MEAN_COSINE} (mean)")
        data = candidate.read_bytes()
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data) / 1e6:.1f} MB, sha256 {hashlib.sha256(data).hexdigest()})")


if __name__ == "__main__":
    main()
