"""Render a labelled corpus for the six heritage categories, reproducibly, from Debian and PyPI.

Music comes from music21's bundled corpus (Ryan's Mammoth, O'Neill's, Essen folksongs,
Bach chorales, quartets and piano pieces, Monteverdi, trecento, Palestrina) rendered with
fluidsynth; speech from espeak-ng and festival voices (never mbrola); singing from the
formant singer of ``tools/heritage_synth.py``. Each category:

- folk_music: a tune on a folk instrument (fiddle, accordion, pipes, whistle, banjo, ...),
  with strummed chords, a drone or a frame drum on the beat; some sung ballads.
- classical_music: chorales, quartets and piano pieces on orchestral/chamber instruments.
- opera: a solo singer with strong vibrato over a string/wind accompaniment, in a hall.
- spoken_word: poetry and prose read by a TTS voice, clean, in a quiet small room.
- historical_speech: addresses read by a TTS voice through an archival degradation chain.
- religious_chant: one to eight unison voices, free rhythm, long reverberation, no drums.

30 % of the clips of every category but historical speech get room noise (and some
mains hum), an eighth of the music an archival degradation: neither a noise
floor nor a degraded sound may decide the category on its own.

The split is by piece, by voice AND by soundfont: train renders with FluidR3_GM, val with
TimGM6mb, test with MuseScore_General; pieces are assigned by a hash of their id, TTS and
singer voices from disjoint lists. Rates (16-48 kHz), channels, loudness, tempo and
instruments vary. Output: ``OUT/{train,val,test}/<category>/<clip>.flac`` and
``OUT/manifest.json``. ``--fixtures DIR`` writes instead one 7 s mono 16 kHz clip per
category (from the test split) for ``tests/data/heritage``::

    apt-get install fluidsynth fluid-soundfont-gm timgm6mb-soundfont \
        musescore-general-soundfont espeak-ng festival festvox-kallpc16k festvox-kdlpc16k \
        festvox-us-slt-hts festvox-italp16k festvox-itapc16k festvox-ca-ona-hts \
        festvox-czech-dita festvox-czech-machac festvox-ru festvox-suopuhe-lj festvox-suopuhe-mv
    .venv/bin/python tools/make_heritage_corpus.py /tmp/heritage-corpus
    .venv/bin/python tools/make_heritage_corpus.py --fixtures tests/data/heritage
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heritage_synth import SINGERS, Note, SingerVoice, degrade, reverb, sing, write_midi

CATEGORIES = (
    "folk_music",
    "classical_music",
    "opera",
    "spoken_word",
    "historical_speech",
    "religious_chant",
)
SPLITS = ("train", "val", "test")
SOUNDFONTS = {
    "train": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "val": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "test": "/usr/share/sounds/sf3/MuseScore_General.sf3",
}
SINGER_SPLIT = {
    "train": ("soprano_a", "mezzo_a", "tenor_a", "baritone_a", "bass_a"),
    "val": ("alto_b", "baritone_b"),
    "test": ("soprano_b", "tenor_b"),
}
FESTIVAL_SPLIT = {
    "train": (
        "kal_diphone",
        "pc_diphone",
        "czech_machac",
        "msu_ru_nsh_clunits",
        "hy_fi_mv_diphone",
        "upc_ca_ona_hts",
    ),
    "val": ("ked_diphone", "suo_fi_lj_diphone"),
    "test": ("cmu_us_slt_arctic_hts", "czech_dita", "lp_diphone"),
}
ESPEAK_LANGS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
    "de",
    "fr-fr",
    "it",
    "es",
    "nl",
    "pl",
    "pt",
    "sv",
    "cs",
    "fi",
)
ESPEAK_VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
    "Andy",
    "Annie",
    "Denis",
    "Gene",
    "Jacky",
    "Lee",
    "Mr serious",
)
OUTPUT_RATES = (16000, 22050, 32000, 44100, 48000)
CLIP_S = 9.0
FIXTURE_S = 7.0
FIXTURE_RATE = 16000

POEMS = (
    "Shall I compare thee to a summer's day? Thou art more lovely and more temperate.",
    "Rough winds do shake the darling buds of May, and summer's lease hath all too short a date.",
    "I wandered lonely as a cloud that floats on high o'er vales and hills.",
    "When all at once I saw a crowd, a host, of golden daffodils, beside the lake.",
    "Tyger Tyger, burning bright, in the forests of the night.",
    "Season of mists and mellow fruitfulness, close bosom-friend of the maturing sun.",
    "Because I could not stop for Death, he kindly stopped for me.",
    "Once upon a midnight dreary, while I pondered, weak and weary.",
    "I celebrate myself, and sing myself, and what I assume you shall assume.",
    "She walks in beauty, like the night of cloudless climes and starry skies.",
    "It was the best of times, it was the worst of times, it was the age of wisdom.",
    "It is a truth universally acknowledged that a single man in possession of a good fortune "
    "must be in want of a wife.",
    "Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail "
    "about a little.",
    "The sea is calm tonight. The tide is full, the moon lies fair upon the straits.",
    "Hope is the thing with feathers that perches in the soul.",
    "My heart leaps up when I behold a rainbow in the sky.",
    "Under the wide and starry sky, dig the grave and let me lie.",
    "The woods are lovely, dark and deep, and I have promises to keep.",
    "In Xanadu did Kubla Khan a stately pleasure-dome decree.",
    "Whose woods these are I think I know. His house is in the village though.",
    "All happy families are alike; each unhappy family is unhappy in its own way.",
    "The curfew tolls the knell of parting day, the lowing herd wind slowly o'er the lea.",
)
SPEECHES = (
    "Four score and seven years ago our fathers brought forth on this continent a new nation.",
    "Now we are engaged in a great civil war, testing whether that nation can long endure.",
    "The only thing we have to fear is fear itself.",
    "With malice toward none, with charity for all, let us strive on to finish the work.",
    "Ask not what your country can do for you; ask what you can do for your country.",
    "We here highly resolve that these dead shall not have died in vain.",
    "Let every nation know that we shall pay any price, bear any burden, meet any hardship.",
    "This great nation will endure as it has endured, will revive and will prosper.",
    "Citizens, the hour has come to speak plainly of the trials before us.",
    "Ladies and gentlemen, I address you tonight on a matter of grave national importance.",
    "The world will little note, nor long remember what we say here.",
    "Government of the people, by the people, for the people, shall not perish from the earth.",
    "We must be the great arsenal of democracy.",
    "Friends and fellow citizens, the period for a new election is not far distant.",
)

Generator = np.random.Generator
Rendered = tuple[np.ndarray, dict[str, Any]]  # audio (samples[, channels]), facts about it


def stable_hash(text: str) -> int:
    """A hash that does not change between runs (Python's ``hash`` is salted)."""
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)  # noqa: S324 - not security


def piece_split(piece_id: str) -> str:
    """70/15/15 split of pieces by a stable hash of their id."""
    bucket = stable_hash(piece_id) % 100
    return "train" if bucket < 70 else "val" if bucket < 85 else "test"


# --------------------------------------------------------------------------- pieces


def corpus_dir() -> Path:
    """Where music21 keeps its bundled corpus."""
    import music21

    return Path(music21.__file__).parent / "corpus"


def _abc_numbers(path: Path) -> list[int]:
    numbers = []
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("X:"):
            try:
                numbers.append(int(line[2:].strip()))
            except ValueError:
                continue
    return numbers


@lru_cache(maxsize=1)
def piece_pools() -> dict[str, list[str]]:
    """Piece ids per category (``relative/path`` or ``relative/path#number``)."""
    root = corpus_dir()

    def files(sub: str, pattern: str) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in (root / sub).rglob(pattern))

    folk: list[str] = files("ryansMammoth", "*.abc")
    for sub in ("essenFolksong", "oneills1850"):
        for rel in files(sub, "*.abc"):
            folk += [f"{rel}#{n}" for n in _abc_numbers(root / rel)]
    classical = [f for f in files("bach", "*.mxl") if "bwv" in f]
    for sub in (
        "beethoven",
        "mozart",
        "haydn",
        "schumann_clara",
        "schumann_robert",
        "corelli",
        "cpebach",
        "weber",
        "joplin",
        "beach",
        "chopin",
        "handel",
    ):
        classical += files(sub, "*.mxl") + files(sub, "*.krn") + files(sub, "*.xml")
    opera = files("monteverdi", "*.mxl") + files("trecento", "*.xml")
    chant = files("palestrina", "*.krn") + [f"modal:{i}" for i in range(300)]
    return {
        "folk_music": folk,
        "classical_music": classical,
        "opera": opera,
        "religious_chant": chant,
    }


Part = list[tuple[float, float, int]]  # (onset quarters, length quarters, MIDI pitch)


@lru_cache(maxsize=64)
def load_parts(piece_id: str) -> tuple[tuple[tuple[float, float, int], ...], ...]:
    """The notes of each part of a corpus piece, in quarter lengths."""
    from music21 import converter

    rel, _, number = piece_id.partition("#")
    path = corpus_dir() / rel
    score = converter.parse(str(path), number=int(number)) if number else converter.parse(path)
    if hasattr(score, "scores"):  # an Opus
        score = score.scores[0]
    parts = []
    for part in score.parts if score.parts else [score]:
        notes = []
        for n in part.flatten().notes:
            start, dur = float(n.offset), float(n.quarterLength)
            if dur <= 0:
                continue
            for p in n.pitches:
                notes.append((start, dur, int(p.midi)))
        if notes:
            parts.append(tuple(sorted(notes)))
    return tuple(parts)


def modal_melody(rng: np.random.Generator, n: int = 60) -> Part:
    """A plainchant-like line: stepwise in a church mode, around a reciting tone."""
    mode = [[0, 2, 3, 5, 7, 9, 10], [0, 1, 3, 5, 7, 8, 10], [0, 2, 4, 5, 7, 9, 10]][
        int(rng.integers(3))
    ]
    degree, out = 0, []
    for i in range(n):
        degree += int(rng.choice([-2, -1, -1, 0, 1, 1, 2]))
        degree = int(np.clip(degree, -3, 7))
        octave, step = divmod(degree, 7)
        out.append((float(i), 1.0, 57 + 12 * octave + mode[step]))
    return out


def excerpt(part: Part, start_q: float, length_q: float) -> Part:
    """Notes of ``part`` within a span, re-based to 0."""
    end = start_q + length_q
    return [(s - start_q, d, p) for s, d, p in part if start_q <= s < end]


def to_notes(
    part: Part, sec_per_q: float, rng: np.random.Generator, vel: int, jitter: float = 0.01
) -> list[Note]:
    """Quarter-length notes to timed notes with a little human timing and dynamics."""
    return [
        Note(
            max(0.0, s * sec_per_q + jitter * rng.standard_normal()),
            max(0.05, d * sec_per_q * 0.95),
            p,
            velocity=int(np.clip(vel + 10 * rng.standard_normal(), 30, 127)),
        )
        for s, d, p in part
    ]


def tempo_for(parts: tuple[Part, ...] | list[Part], target_s: float) -> float:
    """Seconds per quarter so that the median note lasts about ``target_s``."""
    durs = [d for part in parts for _, d, _ in part]
    return target_s / max(0.125, float(np.median(durs)) if durs else 1.0)


def pick_excerpt(parts: tuple[Part, ...], sec_per_q: float, rng: np.random.Generator) -> list[Part]:
    """A random excerpt of CLIP_S seconds (plus a tail) from all parts."""
    total = max((s + d for part in parts for s, d, _ in part), default=0.0)
    length_q = (CLIP_S + 1.0) / sec_per_q
    start_q = float(rng.uniform(0, max(0.0, total - length_q)))
    start_q = float(np.floor(start_q))
    return [excerpt(list(p), start_q, length_q) for p in parts]


# --------------------------------------------------------------------------- rendering


_SYNTHS: dict[str, tuple[Any, int]] = {}
SYNTH_RATE = 44100


def _synth(soundfont: str) -> tuple[Any, int]:
    """One fluidsynth instance per soundfont and process (loading an sf3 takes seconds)."""
    if soundfont not in _SYNTHS:
        import fluidsynth as fl  # pyfluidsynth, over Debian's libfluidsynth

        synth = fl.Synth(samplerate=float(SYNTH_RATE), gain=0.5)
        synth.set_chorus_level(0.0)
        _SYNTHS[soundfont] = (synth, synth.sfload(soundfont))
    return _SYNTHS[soundfont]


def fluidsynth(
    tracks: list[tuple[int, int, int, int, list[Note]]], soundfont: str, sr: int, work: Path
) -> np.ndarray:
    """Render note tracks (channel, program, volume, pan, notes) with fluidsynth.

    Returns (samples, 2) float64 at ``sr``; a MIDI file of the same tracks is written to
    ``work`` for inspection.
    """
    write_midi(work / "in.mid", tracks)
    synth, sfid = _synth(soundfont)
    synth.system_reset()
    synth.get_samples(3 * SYNTH_RATE)  # flush the previous clip's reverb tail
    events: list[tuple[float, int, int, int, int]] = []  # time, kind(0 off, 1 on), ch, key, vel
    for channel, program, volume, pan, notes in tracks:
        synth.program_select(
            channel, sfid, 128 if channel == 9 else 0, 0 if channel == 9 else program
        )
        synth.cc(channel, 7, volume)
        synth.cc(channel, 10, pan)
        synth.cc(channel, 91, 40)
        for n in notes:
            key = int(np.clip(round(n.pitch), 0, 127))
            events.append((n.start, 1, channel, key, int(np.clip(n.velocity, 1, 127))))
            events.append((n.start + n.dur, 0, channel, key, 0))
    events.sort()
    blocks, now = [], 0
    for t, kind, channel, key, vel in events:
        at = int(t * SYNTH_RATE)
        if at > now:
            blocks.append(synth.get_samples(at - now))
            now = at
        if kind:
            synth.noteon(channel, key, vel)
        else:
            synth.noteoff(channel, key)
    end = int((CLIP_S + 1.5) * SYNTH_RATE)
    if end > now:
        blocks.append(synth.get_samples(end - now))
    pcm = np.concatenate(blocks).astype(np.float64).reshape(-1, 2) / 32768.0
    return resample(pcm, SYNTH_RATE, sr)


def tts(
    text: str, voice: str, rng: np.random.Generator, work: Path, slow: bool
) -> tuple[np.ndarray, int]:
    """Speak ``text`` with a voice id ``festival:<name>`` or ``espeak:<lang>+<variant>``."""
    txt, wav = work / "t.txt", work / "t.wav"
    txt.write_text(text + "\n", encoding="utf-8")
    kind, _, name = voice.partition(":")
    if kind == "festival":
        stretch = rng.uniform(1.05, 1.35) if slow else rng.uniform(0.9, 1.15)
        cmd = [
            "text2wave",
            "-eval",
            f"(voice_{name})",
            "-eval",
            f"(Parameter.set 'Duration_Stretch {stretch:.2f})",
            "-o",
            str(wav),
            str(txt),
        ]
    else:
        speed = int(rng.integers(110, 150) if slow else rng.integers(140, 185))
        pitch = int(rng.integers(25, 75))
        cmd = [
            "espeak-ng",
            "-v",
            name,
            "-s",
            str(speed),
            "-p",
            str(pitch),
            "-f",
            str(txt),
            "-w",
            str(wav),
        ]
    subprocess.run(cmd, check=True, capture_output=True)
    audio, rate = sf.read(wav, dtype="float64", always_2d=True)
    return audio.mean(axis=1), int(rate)


def speech_voices(split: str) -> list[str]:
    """TTS voice ids of a split: festival voices as listed, espeak voices by hash."""
    voices = [f"festival:{v}" for v in FESTIVAL_SPLIT[split]]
    for lang in ESPEAK_LANGS:
        for variant in ESPEAK_VARIANTS:
            vid = f"espeak:{lang}+{variant}"
            if piece_split(vid) == split:
                voices.append(vid)
    return voices


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Resample (samples,) or (samples, channels) audio."""
    return x if src == dst else np.asarray(soxr.resample(x, src, dst, quality="HQ"))


def mono(x: np.ndarray) -> np.ndarray:
    """Mean of the channels."""
    return x.mean(axis=1) if x.ndim == 2 else x


def fit(x: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad the first axis to ``n`` samples."""
    if len(x) >= n:
        return x[:n]
    pad = [(0, n - len(x))] + [(0, 0)] * (x.ndim - 1)
    return np.pad(x, pad)


def rms(x: np.ndarray) -> float:
    """Root mean square (0 for silence)."""
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


# --------------------------------------------------------------------------- recipes


FOLK_LEAD = (110, 21, 22, 23, 73, 75, 78, 109, 105, 24, 25, 15, 46)
CLASSICAL_ENSEMBLES = {
    "string_quartet": (40, 40, 41, 42),
    "strings": (48, 48, 49, 48),
    "organ": (19, 19, 19, 19),
    "piano": (0, 0, 0, 0),
    "harpsichord": (6, 6, 6, 6),
    "brass": (56, 60, 57, 58),
    "woodwinds": (73, 68, 71, 70),
    "orchestra": (40, 68, 42, 43),
}


def _chords(
    melody: list[Note], beat: float, end: float, rng: np.random.Generator, program_velocity: int
) -> list[Note]:
    """Strummed triads on every beat, rooted on the melody's pitch class at that beat."""
    pcs = {int(n.pitch) % 12 for n in melody}
    out, t = [], 0.0
    while t < end:
        sounding = [n for n in melody if n.start <= t < n.start + n.dur] or melody[:1]
        root = int(sounding[0].pitch) % 12
        third = 4 if (root + 4) % 12 in pcs else 3
        for i, iv in enumerate((0, third, 7, 12)):
            out.append(Note(t + 0.012 * i, beat * 0.9, 48 + root + iv, velocity=program_velocity))
        t += beat
    return out


def render_folk(split: str, rng: Generator, work: Path, sr: int) -> Rendered:
    pool = [p for p in piece_pools()["folk_music"] if piece_split(p) == split]
    piece = pool[int(rng.integers(len(pool)))]
    parts = load_parts(piece)
    spq = tempo_for(parts[:1], rng.uniform(0.14, 0.35))
    mel_part = pick_excerpt(parts[:1], spq, rng)[0]
    melody = to_notes(mel_part, spq, rng, 95)
    beat = spq * (1 if spq > 0.25 else 2)
    lead = int(rng.choice(FOLK_LEAD))
    shift = (
        12 * int(np.clip(round((72 - np.median([n.pitch for n in melody])) / 12), -1, 1))
        if melody
        else 0
    )
    melody = [Note(n.start, n.dur, n.pitch + shift, velocity=n.velocity) for n in melody]
    tracks = [(0, lead, 110, 64, melody)]
    accomp = str(
        rng.choice(["guitar", "piano", "accordion", "drone", "drum", "guitar+drum", "none"])
    )
    if "guitar" in accomp or accomp in ("piano", "accordion"):
        program = {"guitar": 25, "piano": 0, "accordion": 21}[accomp.partition("+")[0]]
        tracks.append((1, program, 80, 40, _chords(melody, beat, CLIP_S + 1, rng, 70)))
    if accomp == "drone" and melody:
        tonic = 36 + int(melody[-1].pitch) % 12
        drone = [
            Note(0, CLIP_S + 1, tonic, velocity=70),
            Note(0, CLIP_S + 1, tonic + 7, velocity=60),
        ]
        tracks.append((1, int(rng.choice([109, 21, 19])), 70, 64, drone))
    if "drum" in accomp:
        hits, t, i = [], 0.0, 0
        drum = int(rng.choice([45, 47, 64, 41]))
        while t < CLIP_S + 1:
            hits.append(Note(t, 0.1, drum, velocity=100 if i % 2 == 0 else 70))
            if rng.random() < 0.5:
                hits.append(Note(t + beat / 2, 0.1, drum + 2, velocity=55))
            t, i = t + beat, i + 1
        tracks.append((9, 0, 90, 64, hits))
    sung = bool(rng.random() < 0.2)
    audio = fluidsynth(
        tracks[1:] if sung and len(tracks) > 1 else tracks, SOUNDFONTS[split], sr, work
    )
    info: dict[str, Any] = {"piece": piece, "lead_program": lead, "accompaniment": accomp}
    if sung:
        singer = _singer(split, rng)
        voice = sing(
            _fit_range(melody, singer),
            singer,
            22050,
            rng,
            vibrato_rate=rng.uniform(4.5, 6),
            vibrato_cents=rng.uniform(0, 25),
        )
        audio = _mix_voice(audio, resample(voice, 22050, sr), rng.uniform(0, 6))
        info |= {"sung": True, "voice": singer.name}
    return audio, info


def render_classical(split: str, rng: Generator, work: Path, sr: int) -> Rendered:
    pool = [p for p in piece_pools()["classical_music"] if piece_split(p) == split]
    piece = pool[int(rng.integers(len(pool)))]
    parts = load_parts(piece)[:6]
    spq = tempo_for(parts, rng.uniform(0.2, 0.6))
    chosen = pick_excerpt(parts, spq, rng)
    ensemble = str(rng.choice(list(CLASSICAL_ENSEMBLES)))
    programs = CLASSICAL_ENSEMBLES[ensemble]
    tracks = []
    for i, part in enumerate(chosen):
        channel = i if i < 9 else i + 1
        tracks.append(
            (
                channel,
                programs[min(i, 3)],
                100,
                int(20 + 90 * i / max(1, len(chosen) - 1)),
                to_notes(part, spq, rng, int(rng.integers(60, 105))),
            )
        )
    audio = fluidsynth(tracks, SOUNDFONTS[split], sr, work)
    if rng.random() < 0.5:
        audio = np.stack(
            [
                reverb(audio[:, c], sr, rng.uniform(1.0, 2.5), rng.uniform(0.1, 0.35), rng)
                for c in range(2)
            ],
            axis=1,
        )
    return audio, {"piece": piece, "ensemble": ensemble}


def _singer(split: str, rng: np.random.Generator) -> SingerVoice:
    names = SINGER_SPLIT[split]
    name = names[int(rng.integers(len(names)))]
    return next(s for s in SINGERS if s.name == name)


def _fit_range(
    notes: list[Note],
    singer: SingerVoice,
    vowels: str = "aeiou",
    rng: np.random.Generator | None = None,
) -> list[Note]:
    """Transpose by octaves into the singer's range; give each note a vowel."""
    if not notes:
        return []
    centre = (singer.low + singer.high) / 2
    shift = 12 * round((centre - float(np.median([n.pitch for n in notes]))) / 12)
    gen = rng or np.random.default_rng(len(notes))
    return [
        Note(
            n.start,
            n.dur,
            float(np.clip(n.pitch + shift, singer.low - 2, singer.high + 2)),
            vowel=str(gen.choice(list(vowels))),
            velocity=n.velocity,
        )
        for n in notes
    ]


def _mix_voice(accomp: np.ndarray, voice: np.ndarray, voice_db: float) -> np.ndarray:
    """Add a mono voice in the centre, ``voice_db`` above the accompaniment's level."""
    n = max(len(accomp), len(voice))
    accomp, voice = fit(accomp, n), fit(voice, n)
    a_level = rms(accomp) or 1e-3
    voice = voice / (rms(voice) or 1.0) * a_level * 10 ** (voice_db / 20)
    return accomp + voice[:, None]


def render_opera(split: str, rng: Generator, work: Path, sr: int) -> Rendered:
    pool = [p for p in piece_pools()["opera"] if piece_split(p) == split]
    piece = pool[int(rng.integers(len(pool)))]
    parts = load_parts(piece)[:5]
    spq = tempo_for(parts[:1], rng.uniform(0.35, 0.8))
    chosen = pick_excerpt(parts, spq, rng)
    singer = _singer(split, rng)
    melody = _fit_range(to_notes(chosen[0], spq, rng, 95, 0.0), singer, rng=rng)
    programs = [int(rng.choice([48, 49, 40, 44, 68, 71, 60])) for _ in chosen[1:]]
    tracks = [
        (i + 1, prog, 90, int(30 + 20 * i), to_notes(p, spq, rng, 70))
        for i, (prog, p) in enumerate(zip(programs, chosen[1:], strict=True))
    ]
    if chosen[1:]:
        bass = [(s, d, p - 12) for s, d, p in chosen[-1]]
        tracks.append((8, 43, 80, 64, to_notes(bass, spq, rng, 70)))
    accomp = (
        fluidsynth(tracks, SOUNDFONTS[split], sr, work)
        if tracks
        else np.zeros((int(sr * CLIP_S), 2))
    )
    rate, extent = rng.uniform(5.0, 7.0), rng.uniform(50, 130)
    voice = sing(melody, singer, 22050, rng, vibrato_rate=rate, vibrato_cents=extent, glide_s=0.05)
    voice = resample(voice, 22050, sr)
    voice = reverb(voice, sr, rng.uniform(1.0, 2.2), rng.uniform(0.1, 0.3), rng)
    audio = _mix_voice(accomp, voice, rng.uniform(2, 10))
    return audio, {
        "piece": piece,
        "voice": singer.name,
        "vibrato_hz": round(rate, 2),
        "vibrato_cents": round(extent),
    }


def free_rhythm(pitches: list[int], rng: np.random.Generator) -> list[tuple[float, float, int]]:
    """Syllabic chant durations with phrase-final lengthening and breaths; no pulse."""
    out, t, since_breath = [], 0.0, 0
    phrase = int(rng.integers(5, 12))
    for p in pitches:
        dur = float(rng.choice([rng.uniform(0.25, 0.6), rng.uniform(0.15, 0.3)], p=[0.75, 0.25]))
        since_breath += 1
        if since_breath >= phrase:
            dur = rng.uniform(0.9, 2.0)
        out.append((t, dur, p))
        t += dur
        if since_breath >= phrase:
            t += rng.uniform(0.3, 0.9)
            since_breath, phrase = 0, int(rng.integers(5, 12))
        if t > CLIP_S + 1:
            break
    return out


def render_chant(split: str, rng: Generator, work: Path, sr: int) -> Rendered:
    del work
    pool = [p for p in piece_pools()["religious_chant"] if piece_split(p) == split]
    piece = pool[int(rng.integers(len(pool)))]
    if piece.startswith("modal:"):
        line = modal_melody(np.random.default_rng(stable_hash(piece)))
    else:
        parts = load_parts(piece)
        line = list(parts[int(rng.integers(len(parts)))])
        start = int(rng.integers(0, max(1, len(line) - 40)))
        line = line[start:]
    timed = free_rhythm([p for _, _, p in line], rng)
    singer = _singer(split, rng)
    notes = _fit_range([Note(s, d, p) for s, d, p in timed], singer, rng=rng)
    n_voices = int(rng.choice([1, 2, 3, 4, 6, 8]))
    voices = []
    for v in range(n_voices):
        lag = 0.0 if v == 0 else float(rng.normal(0, 0.03))
        octave = 12 if (v % 3 == 2 and rng.random() < 0.3) else 0
        vn = [
            Note(max(0.0, n.start + lag), n.dur, n.pitch + octave, n.vowel, n.velocity)
            for n in notes
        ]
        voices.append(
            sing(
                vn,
                singer,
                22050,
                rng,
                vibrato_rate=rng.uniform(4.5, 6),
                vibrato_cents=rng.uniform(0, 15),
                glide_s=0.08,
                detune_cents=float(rng.normal(0, 10)) if v else 0.0,
            )
        )
    drone = bool(rng.random() < 0.3 and notes)
    if drone:
        final = notes[-1].pitch - 12 * (notes[-1].pitch - 12 >= singer.low - 2)
        voices.append(
            0.6
            * sing(
                [Note(0.0, CLIP_S + 1, final, "o")],
                singer,
                22050,
                rng,
                vibrato_rate=5.0,
                vibrato_cents=5.0,
            )
        )
    n = max(len(v) for v in voices)
    dry = sum(fit(v, n) for v in voices)
    dry = resample(np.asarray(dry), 22050, sr)
    rt60 = rng.uniform(2.5, 7.0)
    wet = rng.uniform(0.4, 0.7)
    audio = np.stack(
        [
            reverb(dry, sr, rt60, wet, np.random.default_rng(int(rng.integers(1 << 30))))
            for _ in range(2)
        ],
        axis=1,
    )
    return audio, {
        "piece": piece,
        "voice": singer.name,
        "voices": n_voices,
        "rt60": round(rt60, 1),
        "drone": drone,
    }


def _speak(
    texts: tuple[str, ...], split: str, rng: np.random.Generator, work: Path, slow: bool
) -> tuple[np.ndarray, int, str]:
    voices = speech_voices(split)
    voice = voices[int(rng.integers(len(voices)))]
    pieces, rate, total = [], 16000, 0.0
    for i in rng.permutation(len(texts)):
        x, rate_i = tts(texts[int(i)], voice, rng, work, slow)
        x = resample(x, rate_i, 16000)
        pause = np.zeros(int(16000 * rng.uniform(0.3, 0.9)))
        pieces += [x / (np.max(np.abs(x)) + 1e-9), pause]
        total += (len(x) + len(pause)) / 16000
        if total > CLIP_S + 0.5:
            break
    del rate
    return np.concatenate(pieces), 16000, voice


def render_spoken(split: str, rng: Generator, work: Path, sr: int) -> Rendered:
    x, rate, voice = _speak(POEMS, split, rng, work, slow=False)
    x = resample(x, rate, sr)
    if rng.random() < 0.6:
        x = reverb(x, sr, rng.uniform(0.15, 0.5), rng.uniform(0.03, 0.15), rng)
    x = x + rng.standard_normal(len(x)) * rms(x) * 10 ** (-rng.uniform(55, 75) / 20)
    return x[:, None], {"voice": voice}


def render_historical(split: str, rng: Generator, work: Path, sr: int) -> Rendered:
    x, rate, voice = _speak(SPEECHES, split, rng, work, slow=True)
    if rng.random() < 0.6:
        x = reverb(x, rate, rng.uniform(0.5, 1.5), rng.uniform(0.1, 0.3), rng)
    x = resample(x, rate, 22050)
    severity = rng.uniform(0.35, 1.0)
    x = degrade(x, 22050, rng, severity)
    return resample(x, 22050, sr)[:, None], {"voice": voice, "severity": round(severity, 2)}


RECIPES: dict[
    str, Callable[[str, np.random.Generator, Path, int], tuple[np.ndarray, dict[str, Any]]]
] = {
    "folk_music": render_folk,
    "classical_music": render_classical,
    "opera": render_opera,
    "spoken_word": render_spoken,
    "historical_speech": render_historical,
    "religious_chant": render_chant,
}
MUSIC = ("folk_music", "classical_music", "opera", "religious_chant")
RENDERED = ("folk_music", "classical_music", "opera")  # the categories fluidsynth plays


def pink_noise(n: int, rng: Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f power spectrum (room, ventilation, tape hiss)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1.0))
    x = np.fft.irfft(spectrum, n)
    return x / (rms(x) or 1.0)


def add_room_noise(
    audio: np.ndarray, category: str, sr: int, rng: Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """Background noise and sometimes mains hum in some clips of every category but
    historical speech: a noise floor or hum alone must not decide between categories.

    Drawn from its own generator, so the clips without it are as before.
    """
    if category == "historical_speech" or rng.random() >= 0.3:
        return audio, {}
    level = rms(audio) or 1e-3
    snr = rng.uniform(12, 35) if category in MUSIC else rng.uniform(15, 40)
    n = len(audio)
    noise = pink_noise(n, rng) * level * 10 ** (-snr / 20)
    info: dict[str, Any] = {"noise_snr_db": round(snr, 1)}
    if rng.random() < 0.4:  # a guide speaking over a gallery's mains hum is still speech
        t = np.arange(n) / sr
        mains = float(rng.choice([50.0, 60.0]))
        hum_db = rng.uniform(-45, -30)
        noise += (
            level
            * 10 ** (hum_db / 20)
            * sum(a * np.sin(2 * np.pi * mains * k * t) for k, a in ((1, 1.0), (2, 0.5), (3, 0.3)))
        )
        info["hum_db"] = round(hum_db, 1)
    return audio + noise[:, None], info


def finish(
    audio: np.ndarray, category: str, sr: int, rng: Generator, noise_rng: Generator
) -> Rendered:
    """Archival-music augmentation, room noise, channel layout and loudness: the packaging."""
    info: dict[str, Any] = {}
    audio = audio if audio.ndim == 2 else audio[:, None]
    audio = fit(audio, int(CLIP_S * sr))
    audio, noise_info = add_room_noise(audio, category, sr, noise_rng)
    info |= noise_info
    if category in MUSIC and rng.random() < 0.12:
        # Old music recordings exist too: degradation alone must not mean historical speech.
        severity = rng.uniform(0.2, 0.8)
        audio = degrade(mono(audio), sr, rng, severity)[:, None]
        info["degraded"] = round(severity, 2)
    layout = str(rng.choice(["mono", "stereo", "stereo", "dead_right"]))
    if layout == "mono":
        audio = mono(audio)[:, None]
    else:
        if audio.shape[1] == 1:
            audio = np.repeat(audio, 2, axis=1) * np.array([1.0, rng.uniform(0.6, 1.0)])
        if layout == "dead_right":
            audio[:, 1] *= 1e-4
    info["layout"] = layout
    level = rng.uniform(-34, -14)
    audio = audio / (rms(audio) or 1.0) * 10 ** (level / 20)
    peak = np.max(np.abs(audio))
    if peak > 0.99:
        audio *= 0.99 / peak
    info["rms_dbfs"] = round(level, 1)
    return audio, info


def render_clip(job: tuple[str, str, int, int, str]) -> dict[str, Any]:
    """Render one clip (category, split, index, seed, out path); returns its manifest entry."""
    category, split, index, seed, out = job
    rng = np.random.default_rng([seed, CATEGORIES.index(category), SPLITS.index(split), index])
    sr = int(rng.choice(OUTPUT_RATES))
    with tempfile.TemporaryDirectory(prefix="heritage-") as tmp:
        audio, info = RECIPES[category](split, rng, Path(tmp), sr)
    noise_rng = np.random.default_rng(
        [seed, CATEGORIES.index(category), SPLITS.index(split), index, 1]
    )
    audio, packaging = finish(audio, category, sr, rng, noise_rng)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = "PCM_24" if rng.random() < 0.3 else "PCM_16"
    sf.write(path, audio.astype(np.float32), sr, subtype=subtype)
    return {
        "file": str(path),
        "category": category,
        "split": split,
        "sample_rate": sr,
        "soundfont": Path(SOUNDFONTS[split]).name if category in RENDERED else None,
        **info,
        **packaging,
    }


def write_fixtures(out: Path, seed: int) -> None:
    """One 7 s mono 16 kHz FLAC per category from the test split (voices, pieces, soundfont)."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    with tempfile.TemporaryDirectory(prefix="heritage-fix-") as tmp:
        for category in CATEGORIES:
            entry = render_clip((category, "test", 10_000, seed, f"{tmp}/{category}.flac"))
            audio, sr = sf.read(entry["file"], dtype="float64", always_2d=True)
            x = resample(mono(audio), sr, FIXTURE_RATE)[: int(FIXTURE_S * FIXTURE_RATE)]
            x *= 10 ** (-20 / 20) / (rms(x) or 1.0)
            x = np.clip(x, -0.99, 0.99)
            sf.write(out / f"{category}.flac", x.astype(np.float32), FIXTURE_RATE, subtype="PCM_16")
            entry |= {
                "file": f"{category}.flac",
                "sample_rate": FIXTURE_RATE,
                "layout": "mono",
                "rms_dbfs": -20.0,
            }
            entries.append(entry)
    (out / "fixtures.json").write_text(json.dumps(entries, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", help="corpus directory to write")
    parser.add_argument("--fixtures", type=Path, help="write the test fixtures here instead")
    parser.add_argument("--train", type=int, default=150, help="clips per category in train")
    parser.add_argument("--val", type=int, default=40, help="clips per category in val")
    parser.add_argument("--test", type=int, default=50, help="clips per category in test")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--jobs", type=int, default=2, help="rendering processes (default 2)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.fixtures:
        write_fixtures(args.fixtures, args.seed)
        return
    if args.out is None:
        parser.error("give OUT or --fixtures DIR")
    counts = {"train": args.train, "val": args.val, "test": args.test}
    jobs = [
        (cat, split, i, args.seed, str(args.out / split / cat / f"{cat}-{split}-{i:04d}.flac"))
        for split in SPLITS
        for cat in CATEGORIES
        for i in range(counts[split])
    ]
    started = time.monotonic()
    entries = []
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for done, entry in enumerate(pool.imap_unordered(render_clip, jobs, chunksize=2), 1):
            entries.append(entry)
            if done % 50 == 0:
                print(f"{done}/{len(jobs)} clips, {time.monotonic() - started:.0f} s", flush=True)
    entries.sort(key=lambda e: e["file"])
    manifest = {
        "seed": args.seed,
        "clip_s": CLIP_S,
        "soundfonts": SOUNDFONTS,
        "singers": SINGER_SPLIT,
        "festival": FESTIVAL_SPLIT,
        "clips": entries,
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{len(entries)} clips in {time.monotonic() - started:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
