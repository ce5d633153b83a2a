"""File-mode heritage with and without ``file_skip_steady``: category, scores, classifications.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/heritage_skip.py [LONG_FILE ...]``. Compares,
for the committed heritage fixtures (synthetic and real), their loops, a concatenation
of three categories and any files given, the ``heritage_classification`` section computed
with every excerpt classified and with steady stretches skipped: the category, the largest
score difference, the timeline, and how many excerpts the classifier heard.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

from detectors.heritage.classifier import HeritageClassifier
from detectors.heritage.detector import HeritageConfig
from detectors.heritage.excerpt import Excerpt, ExcerptFeaturizer
from detectors.heritage.training import read_mono_16k

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
Audio = npt.NDArray[np.float32]


class Counted:
    """Counts the excerpts the featurizer is asked for."""

    calls = 0
    _featurize = ExcerptFeaturizer.__call__

    @classmethod
    def install(cls) -> None:
        def counted(self: ExcerptFeaturizer, samples: npt.ArrayLike) -> Excerpt:
            cls.calls += 1
            return cls._featurize(self, samples)

        ExcerptFeaturizer.__call__ = counted  # type: ignore[method-assign]


def section(audio: Audio, skip: bool) -> tuple[dict[str, Any], int]:
    Counted.calls = 0
    result = HeritageClassifier(HeritageConfig(file_skip_steady=skip)).classify(audio, 16_000)
    return result, Counted.calls


def items(extra: list[Path]) -> list[tuple[str, Audio]]:
    found = sorted((DATA / "heritage").glob("*.flac")) + sorted(
        (DATA / "heritage_real").glob("*.flac")
    )
    out = [(p.stem[:30], read_mono_16k(p)) for p in found]
    fixtures = {p.stem: read_mono_16k(p) for p in sorted((DATA / "heritage").glob("*.flac"))}
    out += [(f"{name} x6", np.tile(audio, 6)) for name, audio in fixtures.items()]
    three = ("spoken_word", "opera", "religious_chant")
    out.append(("speech+opera+chant x3", np.concatenate([np.tile(fixtures[k], 3) for k in three])))
    out += [(p.name[:30], read_mono_16k(p)) for p in extra]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="*", help="longer recordings to add")
    args = parser.parse_args()
    Counted.install()
    totals, same, rows = [0, 0], 0, items(args.files)
    for name, audio in rows:
        every, n_every = section(audio, skip=False)
        skipped, n_skipped = section(audio, skip=True)
        totals[0] += n_every
        totals[1] += n_skipped
        moved = max(abs(every["scores"][k] - skipped["scores"][k]) for k in every["scores"])
        same += every["predicted_category"] == skipped["predicted_category"]
        print(f"{name:32s} {len(audio) / 16_000:7.1f} s  {every['predicted_category']:17s} "
              f"{skipped['predicted_category']:17s} max |score change| {moved:.3f}  "
              f"excerpts {n_every:3d} -> {n_skipped:3d}")  # fmt: skip
        for label, result in (("every", every), ("skip", skipped)):
            if len(result["timeline"]) > 1:
                spans = [(t["category"], t["start"], t["end"]) for t in result["timeline"]]
                print(f"    {label:5s} {spans}")
    print(f"same category {same}/{len(rows)}; excerpts {totals[0]} -> {totals[1]}")


if __name__ == "__main__":
    main()
