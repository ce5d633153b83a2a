"""musicnn's MTT_musicnn music tagger (exported to ONNX) on onnxruntime, without TensorFlow.

The model (``tools/export_musicnn.py``; musicnn 0.1.0, ISC, trained on
MagnaTagATune) takes patches of 187 log-mel frames (about 3 s) and gives 50 tag
probabilities and a 200-dimensional penultimate feature per patch. The front
end is musicnn's ``extractor.batch_data`` in numpy: 16 kHz audio, periodic Hann
window of 512 samples, hop 256 samples (16 ms), frames centred on ``k * 256``
with the signal reflected at both ends (librosa < 0.10's default, which musicnn
was trained with), power spectrum, 96 Slaney mel bands from 0 to 8 kHz with
Slaney area normalisation, then ``log10(10000 * mel + 1)``. One deliberate
departure: musicnn casts the mel power to float16 before the log, so ``10000 *
mel`` overflows to inf wherever the log-mel would exceed 4.82 (common in music
at -20 dBFS) and such patches all get one fixed tag vector; here all is float32.
Patches are whole (the tail is dropped, as musicnn does), except that input
shorter than one patch is repeat-padded to one (musicnn's training did so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.dsp import mono_audio
from detectors.onnx import CardedModel

MUSICNN_MODEL = Path(str(resources.files("detectors") / "models" / "musicnn_mtt.onnx"))
SAMPLE_RATE = 16_000  # Hz
N_FFT = 512  # samples per analysis window (32 ms)
HOP = 256  # samples between frames (16 ms)
N_MELS = 96
PATCH_FRAMES = 187  # frames per patch: 2.992 s
PATCH_SECONDS = PATCH_FRAMES * HOP / SAMPLE_RATE
PENULTIMATE_SIZE = 200
MAX_BATCH = 32  # patches per onnxruntime call, bounding memory
_CHUNK = 4096  # frames per FFT block in ``logmel``, bounding memory (16 MiB of float64)

TAGS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock",
    "fast", "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian",
    "opera", "male", "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet",
    "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal",
    "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice",
    "choral",
)  # fmt: skip
"""musicnn's ``MTT_LABELS``: the taggram's columns, in order."""

Float32 = npt.NDArray[np.float32]
Float64 = npt.NDArray[np.float64]


def _hz_to_mel(hz: Float64) -> Float64:
    """Slaney's mel scale: linear (3 mel per 200 Hz) below 1 kHz, logarithmic above."""
    above = 15.0 + np.log(np.maximum(hz, 1000.0) / 1000.0) / (math.log(6.4) / 27.0)
    mel: Float64 = np.where(hz >= 1000.0, above, 3.0 * hz / 200.0)
    return mel


def _mel_to_hz(mel: Float64) -> Float64:
    """Inverse of ``_hz_to_mel``."""
    above = 1000.0 * np.exp((math.log(6.4) / 27.0) * (mel - 15.0))
    hz: Float64 = np.where(mel >= 15.0, above, 200.0 * mel / 3.0)
    return hz


def mel_filterbank() -> Float64:
    """Triangular filters [96, 257] from 0 to 8 kHz, each of unit area in Hz (librosa's default)."""
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array(SAMPLE_RATE / 2)), N_MELS + 2))
    bins = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)  # Hz of each FFT bin
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - low) / (centre - low)
    falling = (high - bins) / (high - centre)
    weights: Float64 = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (high - low))
    return weights


_MEL_T = np.ascontiguousarray(mel_filterbank().T)  # [257, 96]
_WINDOW = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann


def _logmel_frames(padded: Float32, first: int, count: int) -> Float32:
    """Log-mel frames ``first`` to ``first + count`` [count, 96] of audio padded by 256 samples."""
    start = first * HOP
    windows = np.lib.stride_tricks.sliding_window_view(padded[start:], N_FFT)[::HOP][:count]
    out = np.empty((len(windows), N_MELS), dtype=np.float32)
    for i in range(0, len(windows), _CHUNK):
        spectrum = np.fft.rfft(windows[i : i + _CHUNK] * _WINDOW, axis=1)
        out[i : i + _CHUNK] = (spectrum.real**2 + spectrum.imag**2) @ _MEL_T
    # float32: in musicnn's float16, 10000 * mel overflows to inf above mel = 6.55.
    result: Float32 = np.log10(np.float32(10_000) * out + np.float32(1))
    return result


def patch_starts(n_frames: int, hop_frames: int = PATCH_FRAMES) -> npt.NDArray[np.int64]:
    """First frames of the whole patches, every ``hop_frames`` frames; [0] if there are none."""
    if hop_frames < 1:
        raise ValueError(f"hop_frames must be >= 1, got {hop_frames}")
    return np.arange(0, max(n_frames - PATCH_FRAMES, 0) + 1, hop_frames, dtype=np.int64)


@dataclass(frozen=True)
class MusicnnEmbedding:
    """Per-patch outputs for one clip: ``starts`` [n] in s, ``taggram`` [n, 50], ``penultimate``."""

    starts: Float64  # s: start of each 2.992 s patch in the clip
    taggram: Float32  # [n, 50] tag probabilities in [0, 1], columns as ``TAGS``
    penultimate: Float32  # [n, 200] penultimate-layer features


class MusicnnTagger(CardedModel):
    """musicnn's MTT tagger on one CPU thread; the model loads (and is verified) on first use."""

    TAGS = TAGS
    default_path = MUSICNN_MODEL

    def check_card(self, card: dict[str, Any]) -> None:
        """The card must list musicnn's MTT tags, in order."""
        if tuple(card["tags"]) != TAGS:
            raise ValueError(f"{self.model_path.name}: its card lists other tags")

    @staticmethod
    def logmel(audio_16k: npt.ArrayLike) -> Float32:
        """Log-mel spectrogram [1 + len // 256, 96] of 16 kHz mono audio, log10(10000 mel + 1)."""
        audio = mono_audio(audio_16k)
        padded = np.pad(audio, N_FFT // 2, mode="reflect")
        return _logmel_frames(padded, 0, 1 + len(audio) // HOP)

    @staticmethod
    def patches(logmel: npt.ArrayLike, hop_frames: int = PATCH_FRAMES) -> Float32:
        """Patches [n, 187, 96] every ``hop_frames`` frames; shorter input repeat-padded to one."""
        spectrogram = np.asarray(logmel, dtype=np.float32)
        if spectrogram.ndim != 2 or spectrogram.shape[1] != N_MELS or len(spectrogram) == 0:
            expected = f"[frames > 0, {N_MELS}]"
            raise ValueError(f"logmel must have shape {expected}, got {list(spectrogram.shape)}")
        if len(spectrogram) < PATCH_FRAMES:
            spectrogram = np.resize(spectrogram, (PATCH_FRAMES, N_MELS))  # repeats the frames
        starts = patch_starts(len(spectrogram), hop_frames)
        view = np.lib.stride_tricks.sliding_window_view(spectrogram, PATCH_FRAMES, axis=0)
        batch: Float32 = np.ascontiguousarray(view[starts].transpose(0, 2, 1))
        return batch

    def run(self, patches: npt.ArrayLike) -> tuple[Float32, Float32]:
        """Taggram [n, 50] and penultimate features [n, 200] of ``patches`` [n, 187, 96]."""
        batch = np.asarray(patches, dtype=np.float32)
        if batch.ndim != 3 or batch.shape[1:] != (PATCH_FRAMES, N_MELS) or len(batch) == 0:
            expected = f"[n > 0, {PATCH_FRAMES}, {N_MELS}]"
            raise ValueError(f"patches must have shape {expected}, got {list(batch.shape)}")
        if not np.all(np.isfinite(batch)):
            raise ValueError("patches hold NaN or infinite values")
        session = self._load()
        parts = [
            session.run(["taggram", "penultimate"], {"logmel": batch[i : i + MAX_BATCH]})
            for i in range(0, len(batch), MAX_BATCH)
        ]
        taggram: Float32 = np.concatenate([p[0] for p in parts]).astype(np.float32, copy=False)
        penultimate: Float32 = np.concatenate([p[1] for p in parts]).astype(np.float32, copy=False)
        return taggram, penultimate

    def embed(
        self,
        audio_16k: npt.ArrayLike,
        max_patches: int | None = None,
        hop_frames: int = PATCH_FRAMES,
    ) -> MusicnnEmbedding:
        """Tags and features of 16 kHz audio's patches every ``hop_frames`` (187 = 2.992 s).

        With ``max_patches``, at most that many evenly spaced patches are run (about
        35 ms of CPU each): the first, and for two or more, the last.
        """
        audio = mono_audio(audio_16k)
        n_frames = 1 + len(audio) // HOP
        starts = patch_starts(n_frames, hop_frames)
        if max_patches is not None:
            if max_patches < 1:
                raise ValueError(f"max_patches must be >= 1, got {max_patches}")
            if len(starts) > max_patches:
                keep = np.round(np.linspace(0, len(starts) - 1, max_patches)).astype(np.int64)
                starts = starts[keep]
        padded = np.pad(audio, N_FFT // 2, mode="reflect")
        if n_frames < PATCH_FRAMES:
            batch = self.patches(_logmel_frames(padded, 0, n_frames))
        elif len(starts) * PATCH_FRAMES < n_frames:  # sparse patches: only their frames
            batch = np.stack([_logmel_frames(padded, int(s), PATCH_FRAMES) for s in starts])
        else:
            spectrogram = _logmel_frames(padded, 0, n_frames)
            batch = np.stack([spectrogram[s : s + PATCH_FRAMES] for s in starts])
        taggram, penultimate = self.run(batch)
        return MusicnnEmbedding(
            starts=starts.astype(np.float64) * (HOP / SAMPLE_RATE),
            taggram=taggram,
            penultimate=penultimate,
        )
