"""Multi-speaker conversations with RTTM truth, for diarization evaluation and tests.

Each conversation has 2 to 4 distinct synthetic voices (festival and espeak-ng)
taking turns of 1 to 7 s, separated by pauses of 0.1 to 1.2 s or overlapping by
0.2 to 0.8 s (about one turn in six), each voice convolved with its own room
impulse response (exponentially decaying noise, RT60 0.2 to 0.6 s, so the
voices sit at different places in the same kind of room) and mixed with pink
noise plus a faint hum at 12 to 25 dB SNR. The truth comes from the clean
utterances: 10 ms frames within 40 dB of the utterance's loudest frame, gaps
under 0.3 s merged, as for the VAD fixtures.

Voices are split: the ``dev`` conversations (tune here) and the ``test`` ones
(report only) share no voice. ``--fixture`` writes the committed two-speaker
test fixture instead (``tests/data/diarization/conversation_2spk.*``, test voices), and
``enroll_ked.flac``: other sentences of one of its two voices, for enrollment.

    apt-get install espeak-ng festival festvox-kallpc16k festvox-kdlpc16k \\
        festvox-us-slt-hts festvox-ca-ona-hts festvox-italp16k festvox-itapc16k \\
        festvox-czech-dita festvox-czech-machac festvox-suopuhe-lj festvox-suopuhe-mv
    .venv/bin/python tools/make_conversations.py --out build/conversations
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr
from scipy.signal import fftconvolve, lfilter

SR = 16_000
FRAME = SR // 100
TRUTH_DB = 40.0
MERGE_GAP_S = 0.3
REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "diarization" / "conversation_2spk"
ENROLL = FIXTURE.with_name("enroll_ked")

Audio = npt.NDArray[np.float64]


def espeak(voice: str, speed: int, pitch: int) -> tuple[str, ...]:
    return ("espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch))


def festival(voice: str) -> tuple[str, ...]:
    return ("text2wave", "-eval", f"(voice_{voice})")


VOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "dev": {
        "kal": festival("kal_diphone"),
        "lp": festival("lp_diphone"),
        "dita": festival("czech_dita"),
        "mv": festival("hy_fi_mv_diphone"),
        "ona": festival("upc_ca_ona_hts"),
        "es_m1": espeak("en+m1", 155, 40),
        "es_f2": espeak("en-us+f2", 165, 65),
        "es_m4": espeak("en-gb+m4", 145, 30),
        "es_f4": espeak("en+f4", 150, 55),
    },
    "test": {
        "ked": festival("ked_diphone"),
        "slt": festival("cmu_us_slt_arctic_hts"),
        "pc": festival("pc_diphone"),
        "machac": festival("czech_machac"),
        "lj": festival("suo_fi_lj_diphone"),
        "es_m3": espeak("en-us+m3", 150, 45),
        "es_f1": espeak("en+f1", 160, 60),
        "es_m7": espeak("en-gb-scotland+m7", 150, 35),
        "es_f5": espeak("en-us+f5", 155, 70),
    },
}

SENTENCES = (
    "Welcome to the sound archive of the city.",
    "This recording was made in a small village in nineteen fifty two.",
    "Can you hear the bells in the background?",
    "Yes, they ring every hour from the old church tower.",
    "The singer learned these songs from her grandmother.",
    "We restored the tape last winter, one reel at a time.",
    "Please follow the blue line to the music gallery.",
    "The violin in this case was made by hand two centuries ago.",
    "How long did the restoration take?",
    "Almost three years, because the tape was badly damaged.",
    "Listen closely to the voices of the fishermen.",
    "They sang while they pulled the nets onto the boats.",
    "Our guided tour starts at the main entrance in ten minutes.",
    "Is photography allowed inside the exhibition?",
    "Only without flash, to protect the old instruments.",
    "The choir performed here for the very first time in spring.",
    "Every tape in this room was carefully catalogued.",
    "I remember my father playing the accordion at weddings.",
    "What language are they speaking in this interview?",
    "It is a dialect from the mountains, almost forgotten today.",
    "The collection holds more than ten thousand recordings.",
    "Some of them were recorded on wax cylinders.",
    "Could you tell us where the microphones were placed?",
    "Right in the middle of the square, next to the fountain.",
    "Children from the local school helped with the project.",
    "The festival lasted three days and three nights.",
    "Thank you, that was a wonderful story.",
    "Let us move on to the next room.",
    "This speech was broadcast on the radio after the war.",
    "You can still hear the crackle of the old record.",
    "The organ was built by a family of craftsmen.",
    "Were the melodies ever written down by the musicians?",
    "No, everything was passed on by ear.",
    "That is why these recordings are so precious.",
    "The museum opens its doors at nine every morning.",
    "Old recordings tell us how our grandparents spoke.",
)


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float  # s from the start of the conversation
    audio: Audio  # dry, at SR


def synthesise(command: tuple[str, ...], text: str, cache: Path) -> Audio:
    """Render ``text`` with ``command``; mono float64 at SR, trimmed to the speech."""
    key = hashlib.sha256(("\0".join(command) + "\0" + text).encode()).hexdigest()[:20]
    cached = cache / f"{key}.npy"
    if cached.exists():
        loaded: Audio = np.load(cached)
        return loaded
    with tempfile.TemporaryDirectory() as tmp:
        text_file, wav = Path(tmp) / "t.txt", Path(tmp) / "o.wav"
        text_file.write_text(text + "\n", encoding="utf-8")
        if command[0] == "espeak-ng":
            argv = [*command, "-f", str(text_file), "-w", str(wav)]
        else:
            argv = [*command, "-o", str(wav), str(text_file)]
        subprocess.run(argv, check=True, capture_output=True)
        if not wav.exists():
            raise RuntimeError(f"{' '.join(command)} wrote no audio")
        audio, rate = sf.read(wav, dtype="float64", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != SR:
        mono = soxr.resample(mono, rate, SR)
    level = frame_levels(mono)
    loud = np.flatnonzero(level >= level.max() * 10 ** (-50 / 20))
    mono = mono[loud[0] * FRAME : (loud[-1] + 1) * FRAME]
    mono = mono / np.sqrt(np.mean(mono**2)) * 0.05
    cache.mkdir(parents=True, exist_ok=True)
    np.save(cached, mono)
    return mono


def frame_levels(audio: Audio) -> Audio:
    frames = np.pad(audio, (0, -len(audio) % FRAME)).reshape(-1, FRAME)
    levels: Audio = np.sqrt(np.mean(frames**2, axis=1))
    return levels


def speech_regions(audio: Audio, offset: float) -> list[tuple[float, float]]:
    """Truth regions of one clean utterance placed at ``offset`` seconds."""
    level = frame_levels(audio)
    voiced = level >= level.max() * 10 ** (-TRUTH_DB / 20)
    regions: list[list[float]] = []
    for i in np.flatnonzero(voiced):
        t0, t1 = offset + i * FRAME / SR, offset + (i + 1) * FRAME / SR
        if regions and t0 - regions[-1][1] < MERGE_GAP_S:
            regions[-1][1] = t1
        else:
            regions.append([t0, t1])
    return [(a, b) for a, b in regions if b - a >= 0.1]


def room(rng: np.random.Generator, rt60: float) -> Audio:
    """An impulse response: a direct path, then exponentially decaying noise (RT60 s)."""
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    tail = rng.normal(0, 1, n) * 10 ** (-3 * t / rt60) * 0.3
    tail[: int(0.004 * SR)] = 0.0  # the first reflections come a few ms after the direct sound
    tail[0] = 1.0
    ir: Audio = tail / np.sqrt(np.sum(tail**2))
    return ir


def pink(rng: np.random.Generator, n: int) -> Audio:
    """Pink-ish noise (Paul Kellet's filter), unit RMS."""
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1, -2.494956002, 2.017265875, -0.522189400]
    x: Audio = lfilter(b, a, rng.normal(0, 1, n))
    return x / np.sqrt(np.mean(x**2))


def turns_for(
    rng: np.random.Generator, voices: dict[str, tuple[str, ...]], n_turns: int, cache: Path
) -> list[Turn]:
    names = list(voices)
    turns: list[Turn] = []
    t = float(rng.uniform(0.3, 1.0))
    previous = ""
    for _ in range(n_turns):
        speaker = str(rng.choice([n for n in names if n != previous]))
        audio = np.zeros(0)
        target = rng.uniform(1.0, 7.0)
        while len(audio) / SR < target - 0.8:
            text = str(rng.choice(SENTENCES))
            part = synthesise(voices[speaker], text, cache)
            gap = np.zeros(int(rng.uniform(0.15, 0.4) * SR)) if len(audio) else np.zeros(0)
            audio = np.concatenate([audio, gap, part])
        audio = audio[: int(7.0 * SR)]
        fade = np.linspace(1, 0, int(0.02 * SR))
        audio[-len(fade) :] *= fade
        turns.append(Turn(speaker, t, audio))
        end = t + len(audio) / SR
        t = end - rng.uniform(0.2, 0.8) if rng.random() < 1 / 6 else end + rng.uniform(0.1, 1.2)
        previous = speaker
    return turns


def mix(
    rng: np.random.Generator, turns: list[Turn], snr_db: float
) -> tuple[Audio, list[tuple[str, float, float]]]:
    """Reverberant turns plus noise at ``snr_db``; and the truth (speaker, start, end)."""
    speakers = sorted({t.speaker for t in turns})
    rooms = {s: room(rng, float(rng.uniform(0.2, 0.6))) for s in speakers}
    gains = {s: 10 ** (float(rng.uniform(-4, 4)) / 20) for s in speakers}
    duration = max(t.start + len(t.audio) / SR for t in turns) + 1.0
    speech = np.zeros(int(duration * SR) + SR)
    truth: list[tuple[str, float, float]] = []
    for turn in turns:
        wet = fftconvolve(turn.audio, rooms[turn.speaker])[: len(turn.audio) + SR // 2]
        i = int(turn.start * SR)
        speech[i : i + len(wet)] += wet * gains[turn.speaker]
        truth += [(turn.speaker, a, b) for a, b in speech_regions(turn.audio, turn.start)]
    speech = speech[: int(duration * SR)]
    active = np.zeros(len(speech), dtype=bool)
    for _, a, b in truth:
        active[int(a * SR) : int(b * SR)] = True
    speech_rms = np.sqrt(np.mean(speech[active] ** 2))
    t = np.arange(len(speech)) / SR
    hum = 0.2 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t)
    noise = pink(rng, len(speech)) + hum
    noise *= speech_rms / np.sqrt(np.mean(noise**2)) * 10 ** (-snr_db / 20)
    out = speech + noise
    out *= 10 ** (-24 / 20) / np.sqrt(np.mean(out[active] ** 2))
    peak = np.max(np.abs(out))
    if peak > 0.99:
        out *= 0.99 / peak
    return out, sorted(truth, key=lambda r: r[1])


def write_rttm(path: Path, uri: str, truth: list[tuple[str, float, float]]) -> None:
    lines = [f"SPEAKER {uri} 1 {a:.3f} {b - a:.3f} <NA> <NA> {s} <NA> <NA>\n" for s, a, b in truth]
    path.write_text("".join(lines), encoding="ascii")


def conversation(
    seed: int, split: str, out: Path, cache: Path, *, speakers: int | None = None,
    turns: int | None = None, overlaps: bool = True,
) -> Path:  # fmt: skip
    """Render one conversation to ``out/<split>_<seed>.flac`` with its ``.rttm``."""
    rng = np.random.default_rng([seed, 0 if split == "dev" else 1])
    pool = VOICES[split]
    n = speakers or int(rng.integers(2, 5))
    chosen = [str(v) for v in rng.choice(list(pool), size=n, replace=False)]
    voices = {v: pool[v] for v in chosen}
    rendered = turns_for(rng, voices, turns or int(rng.integers(10, 19)), cache)
    if not overlaps:
        rendered = _without_overlaps(rendered)
    audio, truth = mix(rng, rendered, float(rng.uniform(12, 25)))
    stem = out / f"{split}_{seed:03d}"
    sf.write(stem.with_suffix(".flac"), audio, SR, subtype="PCM_16")
    write_rttm(stem.with_suffix(".rttm"), stem.name, truth)
    return stem.with_suffix(".flac")


def _without_overlaps(turns: list[Turn]) -> list[Turn]:
    shifted: list[Turn] = []
    for turn in turns:
        start = turn.start
        if shifted:
            previous_end = shifted[-1].start + len(shifted[-1].audio) / SR
            start = max(start, previous_end + 0.4)
        shifted.append(Turn(turn.speaker, start, turn.audio))
    return shifted


def fixture(cache: Path) -> None:
    """The committed two-speaker test fixture: about 20 s, test voices, no overlap."""
    rng = np.random.default_rng(20261124)
    voices = {v: VOICES["test"][v] for v in ("ked", "es_f1")}
    rendered = _without_overlaps(turns_for(rng, voices, 5, cache))
    audio, truth = mix(rng, rendered, 20.0)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    sf.write(FIXTURE.with_suffix(".flac"), audio, SR, subtype="PCM_16")
    write_rttm(FIXTURE.with_suffix(".rttm"), FIXTURE.name, truth)
    print(f"{FIXTURE}.flac: {len(audio) / SR:.1f} s, {len(truth)} truth segments")
    # Enrollment audio of one of its voices: other sentences, another room and noise.
    said = {
        "The festival lasted three days and three nights.",
        "Some of them were recorded on wax cylinders.",
    }
    parts = [synthesise(VOICES["test"]["ked"], text, cache) for text in sorted(said)]
    enroll = [Turn("ked", 0.3 + 3.2 * i, part) for i, part in enumerate(parts)]
    audio, _ = mix(np.random.default_rng(7), enroll, 22.0)
    sf.write(ENROLL.with_suffix(".flac"), audio, SR, subtype="PCM_16")
    print(f"{ENROLL}.flac: {len(audio) / SR:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "conversations")
    parser.add_argument("--count", type=int, default=12, help="conversations per split")
    parser.add_argument("--fixture", action="store_true", help="write the test fixture only")
    args = parser.parse_args()
    cache = args.out / ".tts-cache"
    if args.fixture:
        fixture(cache)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for split in ("dev", "test"):
        for seed in range(args.count):
            path = conversation(seed, split, args.out, cache)
            print(f"{path}: {sf.info(path).duration:.1f} s")


if __name__ == "__main__":
    main()
