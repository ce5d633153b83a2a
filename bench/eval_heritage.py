"""Heritage classification on the held-out test split, and its cost per audio-second.

The test split of ``tools/make_heritage_corpus.py`` is rendered with a soundfont
(MuseScore_General), TTS and singer voices and pieces that the shipped model never saw
(it is trained on the train and val splits). Prints accuracy, macro-F1 and the
confusion matrix per file and per window, then the CPU time of feature extraction +
classification per second of 16 kHz audio, through the live detector on one thread.

Usage::

    .venv/bin/python tools/make_heritage_corpus.py /tmp/heritage-corpus
    OMP_NUM_THREADS=1 .venv/bin/python bench/eval_heritage.py /tmp/heritage-corpus
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the benchmark measures one thread

from detectors.heritage import HeritageConfig, HeritageDetector, load_model
from detectors.heritage.features import SAMPLE_RATE
from detectors.heritage.training import dataset_examples, evaluate, format_report, read_mono_16k
from stream.windowing import Window


def cost_per_audio_second(files: list[Path], config: HeritageConfig) -> tuple[float, float]:
    """CPU seconds per audio second of the detector (features + classification), and audio s."""
    detector = HeritageDetector(config, 0, SAMPLE_RATE)
    hop = detector.window_samples()[1]
    audio = [read_mono_16k(f) for f in files]
    detector.process(Window(0, 0, audio[0][:hop], SAMPLE_RATE))  # warm caches and imports
    cpu, seconds = 0.0, 0.0
    for x in audio:
        detector.reset()
        blocks = [x[i : i + hop] for i in range(0, len(x) - hop + 1, hop)]
        started = time.process_time()
        for i, block in enumerate(blocks):
            detector.process(Window(0, i * hop, block, SAMPLE_RATE))
        cpu += time.process_time() - started
        seconds += len(blocks) * hop / SAMPLE_RATE
    return cpu / seconds, seconds


def pipeline_cost() -> None:
    """The DESIGN target's pipeline on one 48 kHz channel of the demo scene, with and without
    heritage (``bench/stream_cost.py``'s measurement: best of 3, process CPU time)."""
    from stream_cost import capture_audio, cpu_per_audio_second  # bench/ is on sys.path

    from detectors import LevelConfig, SpeakerConfig, VadConfig

    audio = capture_audio(60)
    base: list[Any] = [VadConfig(), SpeakerConfig(), LevelConfig()]
    without = cpu_per_audio_second(audio, base)
    with_heritage = cpu_per_audio_second(audio, [*base, HeritageConfig()])
    print("\npipeline on one 48 kHz channel (60 s of the demo scene), CPU-s per audio-s:")
    print(f"   resample + vad + speaker + level             {without:.4f}")
    print(f"   resample + vad + speaker + heritage + level  {with_heritage:.4f}  (target <= 0.03)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="output directory of make_heritage_corpus.py")
    parser.add_argument("--model", type=Path, help="model to score (default: the shipped one)")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument("--cost-files", type=int, default=60, help="files timed for the cost")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument(
        "--pipeline", action="store_true", help="also time vad + speaker + heritage + level"
    )
    args = parser.parse_args()
    model = load_model(args.model)
    print(f"heritage classification, {args.split} split of {args.corpus}")
    print(f"date {datetime.now(UTC):%Y-%m-%d}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")  # fmt: skip
    print(f"model {model.path.name} {model.provenance}")
    report = evaluate([args.corpus / args.split], model)
    print(format_report(report))
    examples = dataset_examples([args.corpus / args.split])
    step = max(1, len(examples) // args.cost_files)
    files = [e.path for e in examples[::step]]
    cost, seconds = cost_per_audio_second(files, HeritageConfig(model_path=args.model))
    print(f"\ncost: {cost:.4f} CPU-s per audio-s (features + classification, 4 s window, "
          f"1 s hop, one thread; {seconds:.0f} s of audio from {len(files)} files)")  # fmt: skip
    if args.pipeline:
        pipeline_cost()
    if args.json:
        args.json.write_text(json.dumps({**report, "cost_cpu_s_per_audio_s": cost}, indent=2))


if __name__ == "__main__":
    main()
