"""The CAM++ speaker encoder (3D-Speaker's weights, exported to ONNX) on onnxruntime.

A stronger encoder than GE2E for whole-file clustering: on the real-voice
room-simulated dev conversations it cut confusion by about a third
(docs/BENCHMARKS.md), at about six times GE2E's CPU. It takes a window of 16 kHz
audio, computes its Kaldi log mel filterbank (``detectors.speaker.fbank``, mean
over time removed, so the input level does not matter) and gives one
192-dimensional embedding, L2-normalised here. Cosine similarities of CAM++
embeddings span [-1, 1] and its distances are larger than GE2E's: it has its own
clustering thresholds. The model was exported by ``tools/export_campplus.py``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detectors.files import model_provenance
from detectors.onnx import onnx_session
from detectors.speaker.fbank import N_MELS, normalised_fbank

CAMPPLUS_MODEL = Path(str(resources.files("detectors") / "models" / "campplus_sv_zh_en_16k.onnx"))
CAMPPLUS_SIZE = 192
MIN_FRAMES = 10  # windows shorter than 0.1 s of fbank frames are not embedded
MAX_BATCH = 32

Embeddings = npt.NDArray[np.float32]


class CamppEncoder:
    """CAM++ embeddings of 16 kHz audio windows, on one CPU thread."""

    def __init__(self, model_path: Path | None = None) -> None:
        self.model_path = model_path or CAMPPLUS_MODEL
        self._session = onnx_session(self.model_path)

    def embed_features(self, fbank: npt.ArrayLike) -> Embeddings:
        """Unit embeddings [n, 192] of ``fbank`` [n, frames, 80] (mean-normalised log fbank).

        ``ValueError`` for a wrong shape, too few frames, non-finite values, or a window
        the network maps to a zero vector."""
        batch = np.asarray(fbank, dtype=np.float32)
        if batch.ndim != 3 or batch.shape[2] != N_MELS or len(batch) == 0:
            raise ValueError(f"fbank must have shape [n>0, frames, {N_MELS}], got {batch.shape}")
        if batch.shape[1] < MIN_FRAMES:
            raise ValueError(f"a window needs at least {MIN_FRAMES} fbank frames")
        if not np.all(np.isfinite(batch)):
            raise ValueError("fbank holds NaN or infinite values")
        raw = np.concatenate(
            [
                self._session.run(None, {"fbank": batch[i : i + MAX_BATCH]})[0]
                for i in range(0, len(batch), MAX_BATCH)
            ]
        )
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        if not np.all(np.isfinite(raw)) or np.any(norms == 0):
            raise ValueError("the encoder gave no embedding for a window")
        embeddings: Embeddings = (raw / norms).astype(np.float32)
        return embeddings

    def embed_windows(self, windows: list[npt.NDArray[np.float32]]) -> Embeddings:
        """Unit embeddings [n, 192] of audio ``windows`` (16 kHz mono), batched by length."""
        if not windows:
            return np.zeros((0, CAMPPLUS_SIZE), np.float32)
        feats = [normalised_fbank(w) for w in windows]
        out = np.zeros((len(feats), CAMPPLUS_SIZE), np.float32)
        for length in sorted({len(f) for f in feats}):
            index = [i for i, f in enumerate(feats) if len(f) == length]
            out[index] = self.embed_features(np.stack([feats[i] for i in index]))
        return out


def campplus_provenance(model_path: Path | None = None) -> str:
    """What embedded the voices for clustering, for a result's ``provenance.models``."""
    return model_provenance(model_path or CAMPPLUS_MODEL)
