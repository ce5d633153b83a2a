"""Train the overlapped-speech model of ``detectors.speaker.overlap`` on dev conversations.

Runs every ``dev_*.flac`` of the given folders (with ``.rttm`` truth) through the
speaker detector as file analysis does, diarizes it (one voice per frame), and
fits a logistic regression (scikit-learn, C 0.1) on the voiced frames: the
target is whether the truth has two or more speakers at the frame's start. Only
dev conversations are read, never test ones::

    OMP_NUM_THREADS=1 .venv/bin/python tools/train_overlap_detector.py /work/data/diar/rooms
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    sys.path.insert(0, str(REPO))
    from sklearn.linear_model import LogisticRegression

    from config.pipeline import PipelineConfig
    from detectors.speaker.detector import SpeakerConfig, SpeakerDetector
    from detectors.speaker.offline import diarize, frame_scores
    from detectors.speaker.overlap import MODEL_PATH, OverlapModel, features
    from sinks.metrics import Metrics
    from stream.pipeline import SourceRunner
    from stream.sources import FileSource, FileSourceConfig
    from stream.speaker_report import speaker_analysis_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="+", help="folders of dev_NNN.flac + .rttm")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args()
    config = SpeakerConfig(profiles_path=Path("/nonexistent/profiles.json"), overlap_threshold=1)
    pipeline = speaker_analysis_config(PipelineConfig(detectors=[config]))
    xs, ys = [], []
    for path in sorted(p for folder in args.data for p in folder.glob("dev_*.flac")):
        runner = SourceRunner(
            FileSource(FileSourceConfig(path=path, realtime=False)), pipeline,
            lambda events: None, Metrics(),
        )  # fmt: skip
        runner.run(threading.Event())
        histories = [
            d.history() for c in runner.chains for d in c.detectors
            if isinstance(d, SpeakerDetector)
        ]  # fmt: skip
        result = diarize(histories, config)
        truth = np.zeros(100_000, np.int8)
        for line in path.with_suffix(".rttm").read_text().splitlines():
            f = line.split()
            start, end = round(float(f[3]) * 100), round((float(f[3]) + float(f[4])) * 100)
            truth[start:end] += 1
        for history in histories:
            scores = frame_scores(history, result.centroids)
            if history.frame_logmel is None or scores is None:
                continue
            voiced = history.frame_voiced
            xs.append(features(history.frame_logmel, scores)[voiced])
            ys.append(truth[np.round(history.frame_start * 100).astype(int)][voiced] >= 2)
        print(f"{path.name}: {int(np.sum(ys[-1]))} of {len(ys[-1])} voiced frames overlapped")
    x, y = np.concatenate(xs), np.concatenate(ys)
    model = LogisticRegression(C=0.1, max_iter=500).fit(x, y)
    OverlapModel(model.coef_[0].astype(np.float32), float(model.intercept_[0])).save(args.out)
    print(f"{args.out}: {len(y)} frames, {y.mean():.1%} overlapped, train accuracy "
          f"{model.score(x, y):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
