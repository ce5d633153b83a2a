"""The GE2E speaker encoder (resemblyzer's weights, exported to ONNX) on onnxruntime.

The network takes partial utterances of 160 mel frames (1.6 s, see
``detectors.speaker.frontend``) and gives one 256-dimensional embedding per
partial: L2-normalised, every component >= 0, so the cosine similarity of two
embeddings (their dot product) lies in [0, 1]. An utterance's embedding is the
L2-normalised mean of its partials' embeddings, as resemblyzer's
``embed_utterance``. The model was exported by ``tools/export_speaker_encoder.py``
(``FLOAT_ENCODER_MODEL``, equal to resemblyzer's torch model); the shipped default
(``ENCODER_MODEL``) is that file with its two upper LSTM layers quantised to int8 by
``tools/quantize_speaker_encoder.py``: a third less CPU per window in a batch, 45 %
less alone, its embeddings within cosine 0.98 of the float ones (the tests check both).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detectors.files import model_provenance
from detectors.onnx import onnx_session
from detectors.speaker.frontend import (
    MEL_BANDS,
    MIN_COVERAGE,
    PARTIAL_FRAMES,
    PARTIAL_RATE,
    partial_mels,
    preprocess,
)

_MODELS = Path(str(resources.files("detectors") / "models"))
FLOAT_ENCODER_MODEL = _MODELS / "ge2e_speaker_encoder.onnx"
ENCODER_MODEL = _MODELS / "ge2e_speaker_encoder_int8.onnx"
ENCODER_MODELS = {"ge2e-int8": ENCODER_MODEL, "ge2e": FLOAT_ENCODER_MODEL}
"""The speaker detector's ``encoder`` setting: the file it names."""
EMBEDDING_SIZE = 256
MAX_BATCH = 64  # partials per onnxruntime call, bounding memory for long utterances

Embeddings = npt.NDArray[np.float32]


class SpeakerEncoder:
    """Speaker embeddings of 16 kHz audio, on one CPU thread."""

    def __init__(self, model_path: Path | None = None) -> None:
        """Load ``model_path`` (an ONNX export of the GE2E encoder; the shipped one if None)."""
        self.model_path = model_path or ENCODER_MODEL
        self._session = onnx_session(self.model_path)

    def embed_partials(self, mels: npt.ArrayLike) -> Embeddings:
        """Embeddings [n, 256] of partial utterances ``mels`` [n, 160, 40] (linear mel power).

        With the float model the result does not depend on how partials are batched;
        the int8 model quantises its upper layers' input with one scale per call, so an
        embedding moves slightly with its batch (cosine 0.99 or closer). ``ValueError``
        for a wrong shape, an empty batch, non-finite values, or a partial the
        network maps to no embedding (all components zero, e.g. all-zero input).
        """
        batch = np.asarray(mels, dtype=np.float32)
        if batch.ndim != 3 or batch.shape[1:] != (PARTIAL_FRAMES, MEL_BANDS):
            expected = f"[n, {PARTIAL_FRAMES}, {MEL_BANDS}]"
            raise ValueError(f"partials must have shape {expected}, got {list(batch.shape)}")
        if len(batch) == 0:
            raise ValueError("no partials to embed")
        if not np.all(np.isfinite(batch)):
            raise ValueError("partials hold NaN or infinite values")
        parts = [
            self._session.run(None, {"mels": batch[i : i + MAX_BATCH]})[0]
            for i in range(0, len(batch), MAX_BATCH)
        ]
        embeddings: Embeddings = np.concatenate(parts).astype(np.float32, copy=False)
        if not np.all(np.isfinite(embeddings)):
            raise ValueError("the encoder gave no embedding for a partial (silent input?)")
        return embeddings

    def embed_utterance(
        self,
        wav_16k: npt.ArrayLike,
        *,
        rate: float = PARTIAL_RATE,
        min_coverage: float = MIN_COVERAGE,
        preprocessed: bool = False,
    ) -> Embeddings:
        """Embedding [256] of one speaker's utterance: 16 kHz mono float samples in [-1, 1].

        Unless ``preprocessed``, the audio is first raised to -30 dBFS and its
        long silences cut (``frontend.preprocess``), as resemblyzer's
        ``preprocess_wav`` does. ``ValueError`` if the audio is silent, or if
        less than ``min_coverage`` x 1.6 s (1.2 s by default) remains.
        """
        audio = np.asarray(wav_16k, dtype=np.float32) if preprocessed else preprocess(wav_16k)
        partials = self.embed_partials(partial_mels(audio, rate, min_coverage))
        mean = partials.astype(np.float64).mean(axis=0)
        embedding: Embeddings = (mean / np.linalg.norm(mean)).astype(np.float32)
        return embedding


def encoder_provenance(model_path: Path | None = None) -> str:
    """What embedded the voices, for a result's ``provenance.models``."""
    return model_provenance(model_path or ENCODER_MODEL)
