"""Copy a few licence-clean real recordings into tests/data/heritage_real as test fixtures.

Reads the real development set (``tools/gather_real_audio.py``'s output: a folder per
category and ``manifest.csv``), takes the clips named in ``FIXTURES`` (public domain,
CC0, CC-BY or CC-BY-SA only), keeps their first ``--seconds`` (16 kHz mono FLAC) and
writes them with a manifest of their provenance and licence. The shipped model is
trained without these clips (``tools/train_heritage_model.py`` leaves out every clip
this manifest names), so the tests score recordings it never heard::

    .venv/bin/python tools/make_real_fixtures.py /work/data/heritage_real
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import soundfile as sf

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "heritage_real"

FIXTURES = (
    "oblivion_preview_bach_aria_goldberg",  # classical_music, CC0 (Kimiko Ishizaka)
    "Pulsefy_Diploma_Proj_No_Pagliaccio_non_son",  # opera, public domain (Caruso, 1907)
    "echo_trainer_fdr_infamy",  # historical_speech, public domain (F. D. Roosevelt, 1941)
    "Real_Time_Voice_Clon_8230_00000",  # spoken_word, CC-BY-4.0 (LibriSpeech)
    "wikimedia_common_aud_Nadala_Vall_s_Ferm_n_Pardo_",  # folk_music, CC-BY-SA-4.0
    "MAX_Audio_Classifier_rain",  # other: rain, CC-BY (InspectorJ, freesound 401275)
    "MAX_Audio_Classifier_crowd_cheering",  # other: crowd, CC0
    "MAX_Audio_Classifier_arcade_music",  # other: chiptune, CC-BY (joshuaempyre, 251461)
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real", type=Path, help="the real development set (with manifest.csv)")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with (args.real / "manifest.csv").open(encoding="utf-8", newline="") as f:
        rows = {row["clip_id"]: row for row in csv.DictReader(f)}
    OUT.mkdir(parents=True, exist_ok=True)
    kept = []
    for clip in FIXTURES:
        row = rows[clip]
        audio, rate = sf.read(args.real / row["label"] / f"{clip}.flac", dtype="float32")
        audio = audio[: round(args.seconds * rate)]
        sf.write(OUT / f"{clip}.flac", audio, rate, subtype="PCM_16")
        kept.append({**row, "duration_s": f"{len(audio) / rate:.1f}"})
        print(f"{row['label']:<18} {clip} ({row['licence']})")
    with (OUT / "manifest.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)


if __name__ == "__main__":
    main()
