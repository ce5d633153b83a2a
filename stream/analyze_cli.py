"""``heritage-audio analyze``: one file or a batch, on one core or several.

A batch runs one process per job, each on one thread (BLAS, OpenMP and the ONNX
sessions), and shows one progress bar over the whole batch on a terminal. A file
that fails does not stop the batch: every failure is reported at the end with its
reason, and the exit code is 1. With ``--out-dir`` each document is written as
``DIR/<file name>.json`` as soon as it is ready (atomically), so ``--skip-existing``
resumes an interrupted batch where it stopped.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.threads import single_thread_environment

if TYPE_CHECKING:
    from concurrent.futures import Future

    from config.pipeline import PipelineConfig
    from config.settings import Settings

EXIT_FAILURE = 1


def speaker_count(text: str) -> int:
    """argparse type of ``--speakers``: a number of speakers from 1 to 64."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError(f"must be 1 to 64, got {n}")
    return n


def job_count(text: str) -> int:
    """argparse type of ``--jobs``: 1 to 256 processes."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= n <= 256:
        raise argparse.ArgumentTypeError(f"must be 1 to 256, got {n}")
    return n


def add_arguments(analyze: argparse.ArgumentParser) -> None:
    """The options of ``analyze``."""
    analyze.add_argument("files", nargs="+", type=Path, metavar="FILE")
    analyze.add_argument(
        "--json",
        dest="json_out",
        metavar="PATH",
        help='write the result document(s) to PATH ("-" for stdout, the default without '
        "--out-dir); several files give a list",
    )
    analyze.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="write each file's document to DIR/<file name>.json as soon as it is ready",
    )
    analyze.add_argument(
        "--skip-existing",
        action="store_true",
        help="with --out-dir: skip files whose document is already there (resume a batch)",
    )
    analyze.add_argument(
        "--jobs",
        "-j",
        type=job_count,
        default=1,
        metavar="N",
        help="files analysed at once, one process and one thread each (default 1)",
    )
    analyze.add_argument(
        "--profile",
        action="store_true",
        help="print the CPU seconds of each stage of each file to stderr",
    )
    analyze.add_argument("--config", type=Path, metavar="TOML", help="pipeline config")
    analyze.add_argument(
        "--rttm", type=Path, metavar="PATH", help="also write the speaker timeline as RTTM"
    )
    analyze.add_argument(
        "--speakers", type=speaker_count, metavar="N",
        help="number of speakers, if known (else estimated)",
    )  # fmt: skip
    analyze.add_argument(
        "--min-speakers", type=speaker_count, metavar="N",
        help="when estimating: at least N speakers",
    )  # fmt: skip
    analyze.add_argument(
        "--max-speakers", type=speaker_count, metavar="N",
        help="when estimating: at most N speakers",
    )  # fmt: skip
    analyze.add_argument(
        "--accurate-speakers", action="store_true",
        help="separate real voices better, at about 0.01 CPU-s more per second of speech: "
        "CAM++ embeddings joined to GE2E's (for archives of real conversations, lectures "
        "and far-field recordings)",
    )  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """One file's result: its document, or the one-line reason it failed."""

    path: Path
    document: dict[str, Any] | None
    error: str | None


def analyze_one(
    path: Path,
    config: PipelineConfig,
    n_speakers: int | None,
    progress: Callable[[float], None] | None = None,
) -> Outcome:
    """Analyse one file; never raises for bad input (the reason is in the outcome)."""
    from threadpoolctl import threadpool_limits

    from stream.analyze import analyze_file
    from stream.sources import SourceError

    try:
        with threadpool_limits(1):
            document = analyze_file(path, config, progress, n_speakers=n_speakers)
            return Outcome(path, document, None)
    except SourceError as exc:
        return Outcome(path, None, str(exc))
    except Exception as exc:  # one bad file must not stop a batch
        return Outcome(path, None, f"{path}: internal error: {type(exc).__name__}: {exc}")


class BatchProgress:
    """One line on stderr over the batch (on a terminal only)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.enabled = sys.stderr.isatty()

    def show(self, current: float = 0.0, name: str = "") -> None:
        if not self.enabled:
            return
        fraction = (self.done + current) / self.total if self.total else 1.0
        filled = int(fraction * 30)
        bar = "#" * filled + "-" * (30 - filled)
        failed = f", {self.failed} failed" if self.failed else ""
        sys.stderr.write(f"\r[{bar}] {fraction:4.0%} {self.done}/{self.total} files{failed} {name}")
        sys.stderr.write("\033[K")
        sys.stderr.flush()

    def follow(self, name: str) -> Callable[[float], None]:
        """A progress callback for one file of the batch."""

        def show(fraction: float) -> None:
            self.show(fraction, name)

        return show

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def output_path(out_dir: Path, path: Path) -> Path:
    """Where ``--out-dir`` puts the document of ``path``."""
    return out_dir / f"{path.name}.json"


def _write_atomically(target: Path, text: str) -> None:
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)


def _check_arguments(args: argparse.Namespace) -> None:
    from config.errors import ConfigError

    if args.skip_existing and args.out_dir is None:
        raise ConfigError("--skip-existing needs --out-dir (the documents it looks for)")
    if args.out_dir is not None:
        names = [p.name for p in args.files]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(
                f"--out-dir: several files are named {', '.join(twice)}; analyse them apart"
            )
        args.out_dir.mkdir(parents=True, exist_ok=True)


def _run_batch(
    paths: list[Path], config: PipelineConfig, args: argparse.Namespace, bar: BatchProgress
) -> Iterator[Outcome]:
    """Outcomes as files finish: in this process for one job, else in a process pool."""
    if args.jobs == 1 or len(paths) == 1:
        for path in paths:
            bar.show(0.0, path.name)
            yield analyze_one(path, config, args.speakers, bar.follow(path.name))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait  # 0.03-0.06 s

    single_thread_environment()  # the workers inherit it
    # Workers fork from this process, which has imported the analysis stack (one thread set
    # before numpy loaded) and runs no thread yet: no worker pays the imports again, and
    # none waits for a fork server to import them first (0.5-0.7 s before any file
    # started). The executor forks every worker before it starts its own thread.
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(paths)), mp_context=context) as pool:
        pending: set[Future[Outcome]] = {
            pool.submit(analyze_one, p, config, args.speakers) for p in paths
        }
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()


def cmd_analyze(args: argparse.Namespace, settings: Settings) -> int:
    """Analyse the files of the command line; the exit code (1 if any failed)."""
    import logging

    from config.pipeline import load_pipeline_config

    startup_cpu = time.process_time()
    from config.pipeline import ACCURATE_SPEAKERS, with_speaker_settings
    from stream.speakers_cli import with_count_bounds

    config = load_pipeline_config(args.config or settings.HERITAGE_CONFIG)
    config = with_count_bounds(config, args.min_speakers, args.max_speakers)
    if args.accurate_speakers:
        config = with_speaker_settings(config, **ACCURATE_SPEAKERS)
    if settings.LOG_LEVEL != "DEBUG":
        # A batch command: its problems are its exit code and lines on stderr.
        logging.getLogger().setLevel(logging.CRITICAL)
    _check_arguments(args)
    paths = list(args.files)
    skipped = 0
    if args.skip_existing:
        todo = [p for p in paths if not output_path(args.out_dir, p).exists()]
        skipped = len(paths) - len(todo)
        paths = todo
    # The modules, configuration and settings loaded so far live as long as the process:
    # the cyclic collector need not walk them again (a full collection walks 65k such
    # objects, 0.04 CPU-s, and the interpreter runs one or more at exit).
    gc.freeze()
    bar = BatchProgress(len(paths))
    outcomes: dict[Path, Outcome] = {}
    for outcome in _run_batch(paths, config, args, bar):
        outcomes[outcome.path] = outcome
        bar.done += 1
        if outcome.document is None:
            bar.failed += 1
        elif args.out_dir is not None:
            text = json.dumps(outcome.document, indent=2, ensure_ascii=False) + "\n"
            _write_atomically(output_path(args.out_dir, outcome.path), text)
        if args.profile and outcome.document is not None:
            _print_profile(outcome, startup_cpu if len(outcomes) == 1 and args.jobs == 1 else None)
        bar.show()
    bar.finish()
    done = [outcomes[p] for p in paths if outcomes[p].document is not None]
    _write_outputs(args, done)
    return _report(args, [outcomes[p] for p in paths], skipped)


def _write_outputs(args: argparse.Namespace, done: list[Outcome]) -> None:
    json_out = args.json_out if args.json_out or args.out_dir else "-"
    if json_out and (done or len(args.files) > 1):
        documents = [o.document for o in done]
        payload: Any = documents[0] if len(args.files) == 1 else documents
        text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
        if json_out == "-":
            sys.stdout.write(text)
        else:
            Path(json_out).write_text(text, encoding="utf-8")
    if args.rttm:
        from stream.speaker_report import write_rttm

        write_rttm(args.rttm, [(o.path, o.document) for o in done if o.document is not None])


def _report(args: argparse.Namespace, outcomes: list[Outcome], skipped: int) -> int:
    """Failures at the end, one line each; the exit code."""
    failed = [o for o in outcomes if o.error is not None]
    for outcome in failed:
        print(f"heritage-audio: error: {outcome.error}", file=sys.stderr)
    if len(args.files) > 1 and (failed or skipped):
        print(
            f"heritage-audio: {len(outcomes) - len(failed)} analysed, {len(failed)} failed, "
            f"{skipped} skipped (already done)",
            file=sys.stderr,
        )
    return EXIT_FAILURE if failed else 0


def _print_profile(outcome: Outcome, startup_cpu: float | None) -> None:
    """The CPU seconds of each stage of one file, largest first."""
    if outcome.document is None:
        return
    timings = outcome.document["provenance"]["timings"]
    duration = outcome.document["audio_info"]["duration"]
    lines = [f"profile of {outcome.path} ({duration:.1f} s of audio):"]
    if startup_cpu is not None:
        lines.append(f"  {'start-up (imports)':<22} {startup_cpu:8.3f} CPU-s")
    for stage, seconds in sorted(timings["cpu_s"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  {stage:<22} {seconds:8.3f} CPU-s")
    networks = timings.get("network_cpu_s", {})
    if networks:
        lines.append("  of which the networks' own runs:")
        for model, seconds in sorted(networks.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {model:<32} {seconds:8.3f} CPU-s")
    total = timings["total_cpu_s"]
    speed = f", {duration / total:.0f}x real time" if total > 0 else ""
    lines.append(f"  {'analysis total':<22} {total:8.3f} CPU-s{speed}; wall {timings['wall_s']} s")
    print("\n".join(lines), file=sys.stderr)
