"""Far-field conversations of real voices in simulated rooms, with RTTM truth.

The voices are real read speech: LibriSpeech utterances held in a public
repository, listed with commit and licence in ``tools/real_audio/voices.csv``
(CC BY 4.0). Each speaker belongs to one split only: ``dev`` conversations (tune
here), ``test`` ones (report only) and ``babble`` voices (background crowd only)
share no voice.

Each conversation has 2 to 4 speakers taking turns of 1.5 to 6 s cut from their
utterances at quiet points, 25 to 40 s long, with 10 to 40 % of its speech
overlapped (turns started before the previous one ends, and short interjections).
The room is a shoebox simulated by pyroomacoustics' image-source method
(RT60 0.3 to 1.0 s), one microphone, each speaker 1 to 5 m from it. The noise is
babble (6 to 10 voices of the babble split, each placed 3 to 8 m away in the same
room) plus ventilation (low-passed brown noise with a fan's tonal hum and slow
swell), at 0 to 20 dB SNR against the active speech; the speech is then brought
to -29 to -44 dBFS RMS, as in the distant-microphone meetings of issue 13.

Truth comes from the dry utterances: 10 ms frames within 35 dB of the turn's
loudest frame and 10 dB above the noise floor of the utterance it was cut from,
gaps under 0.3 s merged.

    # 1. fetch the repository (the search tool's fetch, or a git clone) to MIRRORS
    # 2. build (raw audio stays outside the repository)
    .venv/bin/python tools/make_room_conversations.py --mirrors /work/.mirror \\
        --out /work/data/diar/rooms --count 30
    # the committed fixtures (tests/data/diarization/room_*.flac), from test voices
    .venv/bin/python tools/make_room_conversations.py --mirrors /work/.mirror --fixtures
    # long two-person recordings (20 dev, 20 test; see ``interviews``)
    .venv/bin/python tools/make_room_conversations.py --mirrors /work/.mirror \
        --out /work/data/diar/interviews --interviews
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr
from mirrors import git_dir, git_show
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

SR = 16_000
HOP = SR // 100  # truth frames of 10 ms
MERGE_GAP_S = 0.3
REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "tools" / "real_audio" / "voices.csv"
FIXTURES = REPO / "tests" / "data" / "diarization"

Audio = npt.NDArray[np.float64]
Truth = list[tuple[str, float, float]]


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    audio: Audio  # dry, at SR
    floor_db: float  # the noise floor of the utterance it was cut from (10 ms frames)


def load_voices(mirrors: Path, cache: Path) -> dict[str, dict[str, list[Audio]]]:
    """split -> speaker -> their utterances (mono, SR, unit-ish level), cached as FLAC."""
    voices: dict[str, dict[str, list[Audio]]] = defaultdict(lambda: defaultdict(list))
    with MANIFEST.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    cache.mkdir(parents=True, exist_ok=True)
    for row in rows:
        cached = cache / f"{row['clip_id']}.flac"
        if not cached.exists():
            data = git_show(git_dir(mirrors, row["repo"]), row["commit"], row["path"])
            audio, rate = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
            mono = audio.mean(axis=1)
            if rate != SR:
                mono = soxr.resample(mono, rate, SR)
            sf.write(cached, mono, SR, subtype="PCM_16")
        audio, _ = sf.read(cached, dtype="float64")
        voices[row["split"]][row["speaker"]].append(audio / (np.sqrt(np.mean(audio**2)) + 1e-9))
    return voices


def frame_db(audio: Audio) -> Audio:
    frames = np.pad(audio, (0, -len(audio) % HOP)).reshape(-1, HOP)
    db: Audio = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    return db


def speech_regions(audio: Audio, offset: float, floor_db: float) -> list[tuple[float, float]]:
    """Truth regions of one dry turn placed at ``offset`` seconds, whose utterance's noise
    floor is ``floor_db``."""
    db = frame_db(audio)
    voiced = (db >= db.max() - 35) & (db >= floor_db + 10)
    regions: list[list[float]] = []
    for i in np.flatnonzero(voiced):
        t0, t1 = offset + i * HOP / SR, offset + (i + 1) * HOP / SR
        if regions and t0 - regions[-1][1] < MERGE_GAP_S:
            regions[-1][1] = t1
        else:
            regions.append([t0, t1])
    return [(a, b) for a, b in regions if b - a >= 0.1]


def cut_turns(rng: np.random.Generator, utterances: list[Audio]) -> list[tuple[Audio, float]]:
    """A speaker's utterances cut into turns of 1.5 to 6 s at the quietest 10 ms frame
    near each target length, in a random order; each with its utterance's noise floor
    (the 2nd percentile of its 10 ms frame levels, in dB)."""
    turns: list[tuple[Audio, float]] = []
    for utterance in utterances:
        db = frame_db(utterance)
        floor = float(np.percentile(db, 2))
        i = 0
        while (len(db) - i) * HOP / SR > 1.5:
            target = i + int(rng.uniform(1.5, 6.0) * 100)
            if target >= len(db) - 100:
                j = len(db)
            else:
                lo, hi = max(i + 120, target - 40), min(len(db), target + 40)
                j = lo + int(np.argmin(db[lo:hi])) if hi > lo else target
            turns.append((utterance[i * HOP : j * HOP], floor))
            i = j
    order = rng.permutation(len(turns))
    return [turns[k] for k in order]


def schedule(
    rng: np.random.Generator,
    material: dict[str, list[tuple[Audio, float]]],
    duration: float,
    overlap_p: float,
) -> list[Turn]:
    """Turns of the speakers until ``duration``: each next speaker differs from the last;
    with probability ``overlap_p`` it starts before the previous turn ends (by up to 60 %
    of the shorter turn), else after a pause of 0.1 to 1.0 s. Speakers whose material
    runs out drop out; every speaker has at least one turn."""
    queues = {s: list(turns) for s, turns in material.items()}
    names = list(queues)
    order = [str(s) for s in rng.permutation(names)]
    turns: list[Turn] = []
    t = float(rng.uniform(0.3, 1.0))
    previous_end = t
    while True:
        candidates = [s for s in names if queues[s] and (not turns or s != turns[-1].speaker)]
        if order:
            speaker = order.pop(0)
        elif candidates and previous_end < duration:
            speaker = str(rng.choice(candidates))
        else:
            break
        audio, floor = queues[speaker].pop(0)
        length = len(audio) / SR
        if turns and rng.random() < overlap_p:
            last = turns[-1]
            shorter = min(length, len(last.audio) / SR)
            start = max(last.start + 0.3, previous_end - rng.uniform(0.4, 0.6 * shorter + 0.4))
        else:
            start = previous_end + rng.uniform(0.1, 1.0)
        turns.append(Turn(speaker, start, audio, floor))
        previous_end = max(previous_end, start + length)
    return turns


def overlap_share(truth: Truth, duration: float) -> float:
    """Overlapped speech time / speech time."""
    count = np.zeros(int(duration * 100) + 1, dtype=np.int32)
    for _, a, b in truth:
        count[int(a * 100) : int(b * 100)] += 1
    speech = np.count_nonzero(count)
    return float(np.count_nonzero(count >= 2) / speech) if speech else 0.0


def shoebox(rng: np.random.Generator) -> tuple[object, npt.NDArray[np.float64], float]:
    """A pyroomacoustics room (no sources yet), its microphone position and RT60."""
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(6, 14), rng.uniform(5, 10), rng.uniform(3, 5)])
    rt60 = float(rng.uniform(0.3, 1.0))
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(
        dims, fs=SR, materials=pra.Material(absorption), max_order=min(max_order, 24),
        air_absorption=False,
    )  # fmt: skip
    mic = np.array([rng.uniform(1, dims[0] - 1), rng.uniform(1, dims[1] - 1), rng.uniform(1, 2.5)])
    room.add_microphone(mic)
    return room, mic, rt60


def place(rng: np.random.Generator, dims: Audio, mic: Audio, lo: float, hi: float) -> Audio:
    """A source position ``lo`` to ``hi`` m (horizontally) from ``mic``, inside the room."""
    for _ in range(1000):
        r, a = rng.uniform(lo, hi), rng.uniform(0, 2 * np.pi)
        p = np.array([mic[0] + r * np.cos(a), mic[1] + r * np.sin(a), rng.uniform(1.2, 1.8)])
        if np.all(p[:2] > 0.3) and np.all(p[:2] < dims[:2] - 0.3):
            return p
    return np.array([dims[0] / 2, dims[1] / 2, 1.5])


def ventilation(rng: np.random.Generator, n: int) -> Audio:
    """HVAC-like noise: brown noise low-passed at 300-800 Hz, a fan's hum with harmonics,
    and a slow swell; unit RMS."""
    brown = np.cumsum(rng.normal(0, 1, n))
    brown -= lfilter([1.0], [1.0, -0.999], brown) * 0.001  # keep it from drifting
    sos = butter(4, [40, rng.uniform(300, 800)], btype="band", fs=SR, output="sos")
    x = sosfilt(sos, brown)
    x /= np.sqrt(np.mean(x**2))
    t = np.arange(n) / SR
    f0 = rng.uniform(45, 120)
    hum = sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) for k in (1, 2, 3))
    swell = 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t)
    out: Audio = (x + hum) * swell
    return out / np.sqrt(np.mean(out**2))


def render(
    rng: np.random.Generator, turns: list[Turn], babble: list[Audio], snr_db: float, level_db: float
) -> tuple[Audio, Truth, dict[str, float]]:
    """The turns in one simulated room with noise; the mixture, truth and room facts."""
    room, mic, rt60 = shoebox(rng)
    dims = np.asarray(room.shoebox_dim, dtype=np.float64)  # type: ignore[attr-defined]
    speakers = sorted({t.speaker for t in turns})
    positions = {s: place(rng, dims, mic, 1.0, 5.0) for s in speakers}
    crowd = [place(rng, dims, mic, 3.0, 8.0) for _ in babble]
    for p in [*positions.values(), *crowd]:
        room.add_source(p)  # type: ignore[attr-defined]
    room.compute_rir()  # type: ignore[attr-defined]
    rirs = [np.asarray(r, dtype=np.float64) for r in room.rir[0]]  # type: ignore[attr-defined]
    rir_of = dict(zip(speakers, rirs[: len(speakers)], strict=True))
    duration = max(t.start + len(t.audio) / SR for t in turns) + 1.0
    n = int(duration * SR)
    speech = np.zeros(n + 2 * SR)
    truth: Truth = []
    for turn in turns:
        wet = fftconvolve(turn.audio, rir_of[turn.speaker])
        i = int(turn.start * SR)
        end = min(len(speech), i + len(wet))
        speech[i:end] += wet[: end - i]
        regions = speech_regions(turn.audio, turn.start, turn.floor_db)
        truth += [(turn.speaker, a, b) for a, b in regions]
    speech = speech[:n]
    active = np.zeros(n, dtype=bool)
    for _, a, b in truth:
        active[int(a * SR) : int(b * SR)] = True
    speech_rms = np.sqrt(np.mean(speech[active] ** 2))
    crowd_audio = np.zeros(n)
    for voice, rir in zip(babble, rirs[len(speakers) :], strict=True):
        wet = fftconvolve(np.tile(voice, int(np.ceil(n / len(voice))) + 1)[:n], rir)[:n]
        crowd_audio += np.roll(wet, int(rng.integers(0, n)))
    crowd_audio /= np.sqrt(np.mean(crowd_audio**2)) + 1e-12
    hvac = ventilation(rng, n)
    mix_share = rng.uniform(0.2, 0.8)
    noise = np.sqrt(mix_share) * crowd_audio + np.sqrt(1 - mix_share) * hvac
    noise *= speech_rms / np.sqrt(np.mean(noise**2)) * 10 ** (-snr_db / 20)
    out = speech + noise
    out *= 10 ** (level_db / 20) / np.sqrt(np.mean(out[active] ** 2))
    peak = np.max(np.abs(out))
    if peak > 0.99:
        out *= 0.99 / peak
    distances = [float(np.linalg.norm((positions[s] - mic)[:2])) for s in speakers]
    facts = {
        "rt60_s": round(rt60, 2), "snr_db": round(snr_db, 1), "speech_dbfs": round(level_db, 1),
        "mic_distance_m": round(float(np.mean(distances)), 2), "babble_share": round(mix_share, 2),
    }  # fmt: skip
    return out, sorted(truth, key=lambda r: r[1]), facts


def write_rttm(path: Path, uri: str, truth: Truth) -> None:
    lines = [f"SPEAKER {uri} 1 {a:.3f} {b - a:.3f} <NA> <NA> {s} <NA> <NA>\n" for s, a, b in truth]
    path.write_text("".join(lines), encoding="ascii")


def conversation(
    rng: np.random.Generator, pool: dict[str, list[Audio]], babble_pool: list[Audio], *,
    n_speakers: int, duration: float, overlap: tuple[float, float],
    snr: tuple[float, float] = (0.0, 20.0), level: tuple[float, float] = (-44.0, -29.0),
) -> tuple[Audio, Truth, dict[str, float]]:  # fmt: skip
    """One conversation whose overlapped share of speech lies within ``overlap``."""
    names = sorted(pool)
    rich = [s for s in names if len(pool[s]) > 1]
    for _ in range(200):
        chosen = [str(s) for s in rng.choice(names, size=n_speakers, replace=False)]
        if n_speakers > 1 and rich and not any(s in rich for s in chosen):
            chosen[0] = str(rng.choice([s for s in rich if s not in chosen]))
        material = {s: cut_turns(rng, pool[s]) for s in chosen}
        turns = schedule(rng, material, duration, float(rng.uniform(0.2, 0.9)))
        end = max(t.start + len(t.audio) / SR for t in turns)
        truth = [
            (t.speaker, a, b)
            for t in turns
            for a, b in speech_regions(t.audio, t.start, t.floor_db)
        ]
        share = overlap_share(truth, end + 1)
        if overlap[0] <= share <= overlap[1] and end >= duration * 0.6:
            break
    kept = [t for t in turns if t.start < duration + 3]
    babble = [babble_pool[int(k)] for k in rng.choice(len(babble_pool), int(rng.integers(6, 11)))]
    audio, truth, facts = render(
        rng, kept, babble, float(rng.uniform(*snr)), float(rng.uniform(*level))
    )
    facts["overlap_share"] = round(overlap_share(truth, len(audio) / SR + 1), 3)
    return audio, truth, facts


def babble_voices(voices: dict[str, dict[str, list[Audio]]]) -> list[Audio]:
    return [u for utterances in voices["babble"].values() for u in utterances]


def build(voices: dict[str, dict[str, list[Audio]]], out: Path, count: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    crowd = babble_voices(voices)
    facts_all: dict[str, dict[str, float]] = {}
    for split in ("dev", "test"):
        for seed in range(count):
            rng = np.random.default_rng([seed, 0 if split == "dev" else 1, 13])
            n = 2 + seed % 3
            duration = float(rng.uniform(25, 40))
            audio, truth, facts = conversation(
                rng, voices[split], crowd, n_speakers=n, duration=duration, overlap=(0.1, 0.4)
            )
            stem = out / f"{split}_{seed:03d}"
            sf.write(stem.with_suffix(".flac"), audio, SR, subtype="PCM_16")
            write_rttm(stem.with_suffix(".rttm"), stem.name, truth)
            facts_all[stem.name] = facts
            print(f"{stem.name}: {n} speakers, {len(audio) / SR:.1f} s, {facts}", flush=True)
    (out / "rooms.json").write_text(json.dumps(facts_all, indent=1))


def interviews(voices: dict[str, dict[str, list[Audio]]], out: Path) -> None:
    """Long two-person recordings (about 2.5 minutes) of each pair of a split's speakers
    with ten utterances, every utterance of both used once; in every second file a third
    voice of the split says one to three turns. Quieter rooms than the conversations:
    SNR 15 to 30 dB, three babble voices, speech at -32 to -20 dBFS. These are the
    lengths at which one voice's windows drift into sub-clusters (docs/BENCHMARKS.md)."""
    out.mkdir(parents=True, exist_ok=True)
    crowd = babble_voices(voices)
    facts_all: dict[str, dict[str, object]] = {}
    for split in ("dev", "test"):
        pool = voices[split]
        rich = sorted(s for s in pool if len(pool[s]) > 1)
        poor = sorted(s for s in pool if len(pool[s]) == 1)
        for i, (a, b) in enumerate(itertools.combinations(rich, 2)):
            for third in (False, True):
                seed = 2 * i + third
                rng = np.random.default_rng([seed, 0 if split == "dev" else 1, 99])
                material = {s: cut_turns(rng, pool[s]) for s in (a, b)}
                if third:
                    brief = str(rng.choice(poor))
                    material[brief] = cut_turns(rng, pool[brief])[: int(rng.integers(1, 4))]
                turns = schedule(rng, material, 10_000.0, float(rng.uniform(0.05, 0.2)))
                babble = [crowd[int(k)] for k in rng.choice(len(crowd), 3)]
                audio, truth, facts = render(
                    rng, turns, babble, float(rng.uniform(15, 30)), float(rng.uniform(-32, -20))
                )
                stem = out / f"{split}_{seed:03d}"
                sf.write(stem.with_suffix(".flac"), audio, SR, subtype="PCM_16")
                write_rttm(stem.with_suffix(".rttm"), stem.name, truth)
                talk: dict[str, float] = defaultdict(float)
                for speaker, start, end in truth:
                    talk[speaker] += end - start
                facts_all[stem.name] = {**facts, "talk_s": {k: round(v) for k, v in talk.items()}}
                print(f"{stem.name}: {len(audio) / SR:.0f} s, {facts_all[stem.name]}", flush=True)
    (out / "interviews.json").write_text(json.dumps(facts_all, indent=1))


FIXTURE_SPECS = {  # name: speakers, duration (s), overlap share range, seed
    "room_1spk": (1, 12.0, (0.0, 0.0), 1),
    "room_2spk_overlap": (2, 20.0, (0.27, 0.33), 2),
    "room_3spk": (3, 24.0, (0.05, 0.15), 3),
    "room_4spk": (4, 30.0, (0.05, 0.15), 4),
}


def fixtures(voices: dict[str, dict[str, list[Audio]]]) -> None:
    """The committed test fixtures: test voices, moderate rooms (RT60 and distance as
    drawn), SNR 10-20 dB, speech at -30 to -40 dBFS."""
    crowd = babble_voices(voices)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, (n, duration, overlap, seed) in FIXTURE_SPECS.items():
        rng = np.random.default_rng([seed, 20261205])
        audio, truth, facts = conversation(
            rng, voices["test"], crowd, n_speakers=n, duration=duration, overlap=overlap,
            snr=(10.0, 20.0), level=(-40.0, -30.0),
        )  # fmt: skip
        stem = FIXTURES / name
        sf.write(stem.with_suffix(".flac"), audio, SR, subtype="PCM_16")
        write_rttm(stem.with_suffix(".rttm"), name, truth)
        print(f"{stem}.flac: {len(audio) / SR:.1f} s, {facts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--out", type=Path, default=Path("/work/data/diar/rooms"))
    parser.add_argument("--cache", type=Path, default=Path("/work/data/diar/voices"))
    parser.add_argument("--count", type=int, default=30, help="conversations per split")
    parser.add_argument("--fixtures", action="store_true", help="write the test fixtures only")
    parser.add_argument(
        "--interviews", action="store_true", help="write the long two-person recordings instead"
    )
    args = parser.parse_args()
    voices = load_voices(args.mirrors, args.cache)
    if args.fixtures:
        fixtures(voices)
    elif args.interviews:
        interviews(voices, args.out)
    else:
        build(voices, args.out, args.count)


if __name__ == "__main__":
    main()
