"""Heritage classification quality on real and synthetic recordings, and its cost.

1. Real recordings (``--real``: the development set of ``tools/gather_real_audio.py``),
   leave one source (repository) out: every clip scored by a model fitted, with this
   project's recipe, on the synthetic corpus and the other sources only; confidences
   calibrated by a temperature fitted on the other half of the sources. The synthetic
   corpus is ``--synthetic``'s train and val splits, or, without it, the synthetic rows of
   the shipped training vectors (``detectors/models/heritage_base.npz``: the same
   renderings' vectors, kept in float16), so no corpus needs rendering.
2. With ``--synthetic``: its test split (soundfont, voices and pieces never learned),
   scored by the shipped model.
3. Cost, on one thread, process CPU time per audio-second: the live detector at its
   default hop (8 s) and file analysis at its file hop (12 s), over clips of the test split
   (else of the real set) played one after another as one long recording.

Per-class precision / recall / F1, macro-F1 over the six heritage classes, the confusion
matrix, and how often non-heritage sound gets a heritage class at confidence >= 0.5::

    OMP_NUM_THREADS=1 .venv/bin/python bench/eval_heritage.py \\
        --real /work/data/heritage_real --cache /work/data/heritage-cache \\
        [--synthetic /work/data/heritage-corpus] [--scored OLD_MANIFEST.csv]

``--scored`` judges a model fitted on a grown set on the clips an earlier one was judged on
(every clip is still learnt from), so that the new data's effect is read apart from the
new clips' own difficulty.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the benchmark measures one thread

import numpy as np

from detectors.heritage import HeritageConfig, HeritageDetector, load_model
from detectors.heritage.crossval import (
    Corpus,
    file_report,
    model_files,
    real_leave_one_source_out,
)
from detectors.heritage.features import SAMPLE_RATE
from detectors.heritage.model import DEFAULT_MODEL
from detectors.heritage.training import (
    Example,
    Vectorizer,
    dataset_examples,
    format_report,
    read_mono_16k,
)
from stream.windowing import Window

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from train_heritage_model import archival_copies

BASE_FEATURES = DEFAULT_MODEL.with_name("heritage_base.npz")


def cost_per_audio_second(audio: list[np.ndarray], config: HeritageConfig) -> float:
    """CPU seconds per audio second of the detector (excerpt vectors + classification)."""
    detector = HeritageDetector(config, 0, SAMPLE_RATE)
    block = detector.window_samples()[1]
    detector.process(Window(0, 0, audio[0][: 3 * SAMPLE_RATE], SAMPLE_RATE))  # warm up
    cpu, seconds = 0.0, 0.0
    for x in audio:
        detector.reset()
        started = time.process_time()
        for start in range(0, len(x), block):
            detector.process(Window(0, start, x[start : start + block], SAMPLE_RATE))
        detector.finish(len(x) / SAMPLE_RATE)
        cpu += time.process_time() - started
        seconds += len(x) / SAMPLE_RATE
    return cpu / seconds


def real_recordings(
    root: Path,
    synthetic: Path | None,
    vectorizer: Vectorizer,
    cache: Path | None,
    scored: Path | None = None,
) -> tuple[dict[str, Any], list[Example]]:
    """Leave-one-source-out report on the real set at ``root`` (printed), and its clips.

    With ``scored`` (a manifest), every clip is learnt from but only that manifest's clips
    are scored: a model fitted on more data, judged on the same clips as an earlier one."""
    base = (
        Corpus.of(dataset_examples([synthetic / "train", synthetic / "val"]), vectorizer)
        if synthetic
        else Corpus.saved_synthetic(BASE_FEATURES)
    )
    examples = dataset_examples([root])
    copies = archival_copies(examples, (cache or root.parent) / "archival")
    real = Corpus.of(examples + copies, vectorizer)
    unscored: list[Example] = list(copies)
    if scored is not None:
        with scored.open(encoding="utf-8", newline="") as f:
            listed = {row["clip_id"] for row in csv.DictReader(f)}
        unscored += [e for e in examples if e.path.stem not in listed]
    report, _ = real_leave_one_source_out(real, base, unscored)
    sources = len({e.source for e in real.examples})
    print(f"\n== real recordings: {report['n']} clips scored, {len(examples)} from {sources} "
          "sources learnt from, leave one source out")  # fmt: skip
    print(format_report(report))
    print(f"calibration: |mean confidence - accuracy| = {report['calibration_gap']:.3f}")
    print(f"synthetic base: {len(base.examples)} files, {len(base.y)} excerpts "
          f"({'rendered corpus' if synthetic else BASE_FEATURES.name})")  # fmt: skip
    return report, examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=Path, help="make_heritage_corpus output")
    parser.add_argument("--real", type=Path, help="real development set (manifest.csv)")
    parser.add_argument("--cache", type=Path, help="excerpt vector cache folder")
    parser.add_argument("--scored", type=Path, help="score only this manifest's clips")
    parser.add_argument("--cost-minutes", type=float, default=10.0, help="audio timed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    model = load_model()
    print(f"heritage classification, {datetime.now(UTC):%Y-%m-%d}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")  # fmt: skip
    print(f"shipped model {model.version} {model.provenance}, temperature {model.temperature}")
    vectorizer = Vectorizer(cache=args.cache)
    figures: dict[str, object] = {}
    if not (args.real or args.synthetic):
        parser.error("give --real, --synthetic or both")
    started = time.process_time()
    if args.real:
        report, clips = real_recordings(
            args.real, args.synthetic, vectorizer, args.cache, args.scored
        )
        figures["real_leave_one_source_out"] = report
    if args.synthetic:
        test = Corpus.of(dataset_examples([args.synthetic / "test"]), vectorizer)
        report = file_report(test.examples, model_files(model, test))
        print("\n== synthetic test split (unseen soundfont, voices, pieces), shipped model")
        print(format_report(report))
        figures["synthetic_test"] = report
        clips = test.examples
    print(f"\nevaluation CPU time (vectors, folds): {time.process_time() - started:.0f} s")
    audio, total = [], 0.0
    for example in clips[:: max(1, len(clips) // 100)]:
        audio.append(read_mono_16k(example.path))
        total += len(audio[-1]) / SAMPLE_RATE
        if total >= args.cost_minutes * 60:
            break
    played = len(audio)
    audio = [np.concatenate(audio)]  # one long recording, as a capture or an archive file
    live = cost_per_audio_second(audio, HeritageConfig())
    files = cost_per_audio_second(audio, HeritageConfig(emit="every", hop_s=12.0))
    print(f"\ncost on one thread over {total:.0f} s of audio ({played} clips), "
          "CPU-s per audio-s:")  # fmt: skip
    print(f"   live detector, hop {HeritageConfig().hop_s:g} s      {live:.4f}  (target <= 0.008)")
    print(f"   file analysis, hop 12 s     {files:.4f}  (target <= 0.004)")
    figures["cost"] = {"live_default_hop": live, "file_hop_12s": files}
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
