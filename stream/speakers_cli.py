"""``heritage-audio speakers``: enroll, list and remove named voices (e.g. a museum's guides).

Profiles live in the voice-profile store of the pipeline config's speaker
detector (``profiles_path``), by default ``speakers/profiles.json`` under
HERITAGE_DATA_DIR; live and file analysis name a speaker who matches one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from config.pipeline import PipelineConfig, load_pipeline_config, with_speaker_settings
from config.settings import Settings
from detectors.speaker.detector import SpeakerConfig, profile_store
from detectors.speaker.profiles import ProfileStore, VoiceProfile, check_name

EXIT_FAILURE = 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``speakers`` subcommand and its actions."""
    parser = subparsers.add_parser(
        "speakers",
        help="enroll, list and remove named voices that analysis labels by name",
        description=(
            "Manage enrolled voices. A speaker whose voice matches a profile (within the speaker "
            "detector's enrolled_distance) is labelled with its name instead of Speaker_N."
        ),
    )
    parser.add_argument("--config", type=Path, metavar="TOML", help="pipeline config")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    enroll = actions.add_parser(
        "enroll",
        help="make (or replace) a profile from recordings of one voice",
        description="Enroll NAME from one or more recordings holding only that voice "
        "(at least 3 s of speech in all; 30 s or more across several recordings is better).",
    )
    enroll.add_argument("name", metavar="NAME")
    enroll.add_argument("files", nargs="+", type=Path, metavar="FILE")
    actions.add_parser("list", help="list enrolled voices")
    remove = actions.add_parser("remove", help="remove an enrolled voice")
    remove.add_argument("name", metavar="NAME")


def _store(args: argparse.Namespace, settings: Settings) -> tuple[ProfileStore, SpeakerConfig]:
    config = load_pipeline_config(args.config or settings.HERITAGE_CONFIG)
    speaker = next((d for d in config.detectors if isinstance(d, SpeakerConfig)), SpeakerConfig())
    return profile_store(speaker, settings.HERITAGE_DATA_DIR), speaker


def cmd_speakers(args: argparse.Namespace, settings: Settings) -> int:
    """Run one ``speakers`` action; exit code 1 with a one-line reason on failure."""
    store, config = _store(args, settings)
    try:
        if args.action == "enroll":
            name = check_name(args.name)
            from stream.speaker_report import enrollment_embedding  # the analysis stack

            embedding, seconds = enrollment_embedding(args.files, config)
            store.save(VoiceProfile(name, embedding, seconds, tuple(p.name for p in args.files)))
            print(f"enrolled {name!r} from {seconds:.1f} s of speech into {store.path}")
        elif args.action == "list":
            profiles = store.load()
            if not profiles:
                print(f"no enrolled voices in {store.path}")
            for name, p in sorted(profiles.items()):
                print(f"{name}\t{p.seconds:.1f} s\t{p.enrolled}\t{', '.join(p.sources)}")
        elif not store.remove(args.name):
            print(f"heritage-audio: error: no enrolled voice named {args.name!r}", file=sys.stderr)
            return EXIT_FAILURE
        else:
            print(f"removed {args.name!r}")
    except (ValueError, OSError) as exc:
        print(f"heritage-audio: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def with_count_bounds(
    config: PipelineConfig, fewest: int | None, most: int | None
) -> PipelineConfig:
    """``config`` whose speaker detector (a default one if it has none) counts at least
    ``fewest`` and at most ``most`` speakers in a file (``analyze --min/--max-speakers``);
    a ValidationError if ``fewest`` exceeds ``most``."""
    bounds = {"min_speakers": fewest, "max_speakers": most}
    return with_speaker_settings(config, **{k: v for k, v in bounds.items() if v is not None})


def speaker_count(text: str) -> int:
    """argparse type of ``analyze --speakers``: a number of speakers from 1 to 64."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError(f"must be 1 to 64, got {n}")
    return n
