"""pyAudioAnalysis's speaker_diarization on one file, for bench/eval_diarization.py.

Runs in its own virtualenv (pyAudioAnalysis and its undeclared dependencies:
hmmlearn, eyed3, pydub, matplotlib, plotly, imbalanced-learn, tqdm), so that
none of them enters the project's. Prints one JSON line per file: the segments
``[start, end, label]`` (s) and the CPU seconds the diarization took. Several
files in one process pay the imports once (as ``analyze FILE...`` does):

    python bench/peer_pyaudioanalysis.py FILE N_SPEAKERS [FILE N_SPEAKERS ...]  # 0: estimate
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf
from pyAudioAnalysis import audioSegmentation

MID_STEP = 0.2  # s: the library's default mid-term step, one label per step


def main() -> None:
    pairs = sys.argv[1:]
    for path, n_speakers in zip(pairs[::2], pairs[1::2], strict=True):
        diarize(Path(path), int(n_speakers))


def diarize(path: Path, n_speakers: int) -> None:
    audio, rate = sf.read(path, dtype="int16")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "in.wav"
        sf.write(wav, audio, rate, subtype="PCM_16")  # it reads WAV through scipy
        started = time.process_time()
        labels = audioSegmentation.speaker_diarization(
            str(wav), n_speakers, mid_step=MID_STEP, plot_res=False
        )[0]
        cpu = time.process_time() - started
    segments: list[list[float]] = []
    for i, label in enumerate(labels):
        start, end = i * MID_STEP, (i + 1) * MID_STEP
        if segments and segments[-1][2] == int(label) and abs(segments[-1][1] - start) < 1e-6:
            segments[-1][1] = end
        else:
            segments.append([start, end, int(label)])
    print(json.dumps({"segments": segments, "cpu_s": cpu}))


if __name__ == "__main__":
    main()
