"""Write YAMNet's own front end's output, from TensorFlow, for the numpy front end's test.

YAMNet's ``features.py`` (tensorflow/models, research/audioset/yamnet) computes its input
with ``tf.signal``: the magnitude of ``tf.signal.stft`` (400-sample periodic Hann window,
hop 160, 512-point FFT, no padding), ``tf.signal.linear_to_mel_weight_matrix`` (64 bands,
125-7500 Hz), ``log(mel + 0.001)``, then 96-frame patches every 48 frames. This runs those
same ``tf.signal`` calls (YAMNet's parameters, ``params.py``) on the committed 16 kHz
clips and stores, in ``tests/data/heritage/yamnet_frontend_reference.npz``, TensorFlow's
mel weight matrix and the first patch of log-mel frames of each clip, which
``tests/test_yamnet.py`` compares with :mod:`detectors.heritage.yamnet`.

TensorFlow is needed here only. Run it once in a THROWAWAY virtualenv::

    python3 -m venv /tmp/tfv && /tmp/tfv/bin/pip install "tensorflow-cpu~=2.19.0" soundfile
    /tmp/tfv/bin/python tools/yamnet_frontend_reference.py
    rm -r /tmp/tfv
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import soundfile as sf
import tensorflow as tf

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "heritage" / "yamnet_frontend_reference.npz"
SAMPLE_RATE = 16_000
WINDOW_S, HOP_S = 0.025, 0.010  # params.stft_window_seconds, params.stft_hop_seconds
MEL_BANDS, MEL_MIN_HZ, MEL_MAX_HZ, LOG_OFFSET = 64, 125.0, 7500.0, 0.001
PATCH_FRAMES = 96  # params.patch_window_seconds 0.96 at 100 frames a second


def main() -> None:
    window = round(SAMPLE_RATE * WINDOW_S)
    hop = round(SAMPLE_RATE * HOP_S)
    fft_length = 2 ** int(np.ceil(np.log(window) / np.log(2.0)))
    weights = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=MEL_BANDS,
        num_spectrogram_bins=fft_length // 2 + 1,
        sample_rate=SAMPLE_RATE,
        lower_edge_hertz=MEL_MIN_HZ,
        upper_edge_hertz=MEL_MAX_HZ,
    )
    arrays = {"mel_matrix": weights.numpy()}
    clips = sorted([*ROOT.glob("tests/data/heritage/*.flac")])
    clips += sorted(ROOT.glob("tests/data/heritage_real/*.flac"))
    for clip in clips:
        audio, rate = sf.read(clip, dtype="float32")
        if rate != SAMPLE_RATE or audio.ndim != 1:
            raise SystemExit(f"{clip}: expected 16 kHz mono")
        magnitude = tf.abs(
            tf.signal.stft(audio, frame_length=window, frame_step=hop, fft_length=fft_length)
        )
        logmel = tf.math.log(tf.matmul(magnitude, weights) + LOG_OFFSET).numpy()
        arrays[clip.stem] = logmel[:PATCH_FRAMES].astype(np.float32)
    np.savez_compressed(OUT, **arrays)  # type: ignore[arg-type]
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB), TensorFlow {tf.__version__}")


if __name__ == "__main__":
    main()
