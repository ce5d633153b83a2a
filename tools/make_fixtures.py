"""Generate the audio fixtures for the tests and the looping demo scene.

Speech is synthesized with espeak-ng and festival (``text2wave``), music and
noise are synthesized with numpy, and everything is mixed at 16 kHz mono and
written as 16-bit FLAC. Every speech-truth JSON is derived from the clean speech
track alone: each utterance is rendered, resampled to 16 kHz, trimmed, placed on
a 10 ms frame grid, and the frames whose RMS is within 40 dB of that
utterance's loudest frame are speech; regions separated by less than 0.3 s are
merged and regions shorter than 0.1 s are dropped.

All randomness uses fixed seeds, so running the script twice gives the same
files. The synthesizers are needed only to regenerate the fixtures, never by
the tests::

    apt-get install espeak-ng festival festvox-kallpc16k festvox-kdlpc16k \
        festvox-us-slt-hts
    .venv/bin/python tools/make_fixtures.py
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import soundfile as sf
import soxr

SR = 16_000
FRAME = SR // 100  # 10 ms analysis frame
SPEECH_DB = 40.0  # frames within this many dB of the utterance peak are speech
TRIM_DB = 50.0  # leading/trailing frames further below the peak are cut
MIN_GAP_FRAMES = 30  # speech regions closer than 0.3 s are merged
MIN_REGION_FRAMES = 10  # speech regions shorter than 0.1 s are dropped
SPEECH_DBFS = -23.0  # active-speech RMS level of every utterance (before gain)
FADE_S = 0.3  # fade-in/out of each music stretch
HEADROOM = 0.98  # peak limit of the final mix (linear full scale)
TRUNCATE_FRACTION = 0.3  # part of vad_clean.flac kept in truncated.flac

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TESTS_DIR = REPO / "tests" / "data"
DEFAULT_DEMO_DIR = REPO / "stream" / "data"
REGENERATE = ".venv/bin/python tools/make_fixtures.py"

Regions = list[tuple[float, float]]


# --------------------------------------------------------------------------- voices


@dataclass(frozen=True)
class EspeakVoice:
    """An espeak-ng voice (``-v`` name with optional ``+variant``), speed and pitch."""

    name: str
    speed: int = 160  # words per minute
    pitch: int = 50  # 0-99
    package: ClassVar[str] = "espeak-ng"

    def command(self, text_file: Path, wav_file: Path) -> list[str]:
        """Return the espeak-ng command line that speaks ``text_file`` into ``wav_file``."""
        return [
            "espeak-ng",
            *("-v", self.name, "-s", str(self.speed), "-p", str(self.pitch)),
            *("-f", str(text_file), "-w", str(wav_file)),
        ]

    @property
    def label(self) -> str:
        """Human-readable description of the voice settings."""
        return f"espeak-ng -v {self.name} -s {self.speed} -p {self.pitch}"


@dataclass(frozen=True)
class FestivalVoice:
    """A festival voice (``voice_<name>``) with a duration stretch factor."""

    name: str
    package: str  # Debian package that ships the voice
    stretch: float = 1.0  # >1 speaks slower

    def command(self, text_file: Path, wav_file: Path) -> list[str]:
        """Return the text2wave command line that speaks ``text_file`` into ``wav_file``."""
        return [
            "text2wave",
            *("-eval", f"(voice_{self.name})"),
            *("-eval", f"(Parameter.set 'Duration_Stretch {self.stretch:g})"),
            *("-o", str(wav_file), str(text_file)),
        ]

    @property
    def label(self) -> str:
        """Human-readable description of the voice settings."""
        stretch = f" (duration stretch {self.stretch:g})" if self.stretch != 1.0 else ""
        return f"festival voice_{self.name}{stretch}"


Voice = EspeakVoice | FestivalVoice


def kal(stretch: float = 1.0) -> FestivalVoice:
    """Festival's American English male diphone voice ``kal_diphone``."""
    return FestivalVoice("kal_diphone", "festvox-kallpc16k", stretch)


def ked(stretch: float = 1.0) -> FestivalVoice:
    """Festival's American English male diphone voice ``ked_diphone``."""
    return FestivalVoice("ked_diphone", "festvox-kdlpc16k", stretch)


def slt(stretch: float = 1.0) -> FestivalVoice:
    """Festival's American English female HTS voice ``cmu_us_slt_arctic_hts``."""
    return FestivalVoice("cmu_us_slt_arctic_hts", "festvox-us-slt-hts", stretch)


class Synthesizer:
    """Renders text with an external TTS program into trimmed 16 kHz float arrays."""

    def __init__(self, workdir: Path) -> None:
        """Write intermediate text and WAV files into ``workdir``."""
        self.workdir = workdir
        self._count = 0

    def __call__(self, text: str, voice: Voice) -> np.ndarray:
        """Speak ``text`` with ``voice``; return mono float64 audio at ``SR``, trimmed."""
        self._count += 1
        text_file = self.workdir / f"utt{self._count:03d}.txt"
        wav_file = text_file.with_suffix(".wav")
        text_file.write_text(text + "\n", encoding="utf-8")
        result = subprocess.run(
            voice.command(text_file, wav_file), check=True, capture_output=True, text=True
        )
        if not wav_file.exists():  # text2wave exits 0 when the voice is missing
            msg = f"{voice.label} wrote no audio (is {voice.package} installed?)\n{result.stderr}"
            raise RuntimeError(msg)
        audio, rate = sf.read(wav_file, dtype="float64", always_2d=True)
        mono = audio.mean(axis=1)
        if rate != SR:
            mono = soxr.resample(mono, rate, SR)
        return trim(mono)


# ----------------------------------------------------------------- signal helpers


def seconds(samples: int) -> float:
    """Convert a sample count to seconds."""
    return samples / SR


def db_to_gain(db: float) -> float:
    """Convert decibels to a linear amplitude factor."""
    return float(10.0 ** (db / 20.0))


def rms(x: np.ndarray) -> float:
    """Root-mean-square of a signal (0 for an empty or silent one)."""
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def pad_to_frames(x: np.ndarray) -> np.ndarray:
    """Zero-pad ``x`` to a whole number of analysis frames."""
    return np.pad(x, (0, -len(x) % FRAME))


def frame_rms(x: np.ndarray) -> np.ndarray:
    """RMS of each 10 ms frame of ``x`` (the last partial frame is zero-padded)."""
    frames = pad_to_frames(x).reshape(-1, FRAME)
    levels: np.ndarray = np.sqrt(np.mean(np.square(frames), axis=1))
    return levels


def loud_frames(x: np.ndarray, range_db: float) -> np.ndarray:
    """Boolean mask of frames whose RMS is within ``range_db`` of the loudest frame."""
    levels = frame_rms(x)
    mask: np.ndarray = levels >= levels.max() * db_to_gain(-range_db)
    return mask


def trim(x: np.ndarray) -> np.ndarray:
    """Cut leading and trailing frames more than ``TRIM_DB`` below the loudest frame."""
    loud = np.flatnonzero(loud_frames(x, TRIM_DB))
    return x[loud[0] * FRAME : (loud[-1] + 1) * FRAME]


def set_active_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale speech so that the RMS over its speech frames is ``dbfs``."""
    padded = pad_to_frames(x)
    active = padded.reshape(-1, FRAME)[loud_frames(x, SPEECH_DB)]
    return x * (db_to_gain(dbfs) / rms(active))


def set_level(x: np.ndarray, dbfs: float) -> np.ndarray:
    """Scale ``x`` so that its overall RMS is ``dbfs``."""
    return x * (db_to_gain(dbfs) / rms(x))


def fade(x: np.ndarray, fade_s: float) -> np.ndarray:
    """Apply raised-cosine fade-in and fade-out of ``fade_s`` seconds."""
    n = min(round(fade_s * SR), len(x) // 2)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))
    out = x.copy()
    out[:n] *= ramp
    out[len(x) - n :] *= ramp[::-1]
    return out


def to_int16(x: np.ndarray) -> np.ndarray:
    """Quantize float audio in [-1, 1] to 16-bit integers (round to nearest)."""
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


# ------------------------------------------------------------------ noise and hum


def colored_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f**exponent power spectrum above 20 Hz.

    It is made in the frequency domain, so it is periodic in ``n`` samples and
    loops without a seam.
    """
    freqs = np.fft.rfftfreq(n, 1.0 / SR)
    spectrum = rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))
    shape = np.zeros_like(freqs)
    audible = freqs >= 20.0
    shape[audible] = freqs[audible] ** (-exponent / 2.0)
    noise = np.fft.irfft(spectrum * shape, n)
    return noise / rms(noise)


def mains_hum(n: int, mains_hz: float = 50.0) -> np.ndarray:
    """Unit-RMS mains hum: a fundamental plus decaying, odd-weighted harmonics."""
    t = np.arange(n) / SR
    weights = {1: 1.0, 2: 0.35, 3: 0.6, 4: 0.12, 5: 0.3, 7: 0.15, 9: 0.08}
    hum = sum(w * np.sin(2 * np.pi * k * mains_hz * t + 0.7 * k) for k, w in weights.items())
    return set_level(np.asarray(hum), 0.0)


@dataclass(frozen=True)
class Background:
    """Steady background under a whole scene, levels in dB below ``SPEECH_DBFS``."""

    noise_db: float  # noise level below the speech level (the SNR)
    exponent: float = 1.0  # spectral slope of the noise: 1 = pink, 2 = brown
    hum_db: float | None = None  # 50 Hz hum level below the speech level
    seed: int = 0

    def render(self, n: int) -> np.ndarray:
        """Return ``n`` samples of this background."""
        rng = np.random.default_rng(self.seed)
        out = colored_noise(n, self.exponent, rng) * db_to_gain(SPEECH_DBFS - self.noise_db)
        if self.hum_db is not None:
            out += mains_hum(n) * db_to_gain(SPEECH_DBFS - self.hum_db)
        return out


# -------------------------------------------------------------------------- music

Instrument = Callable[[float, int], np.ndarray]  # (frequency Hz, samples) -> tone


def envelope(n: int, attack_s: float, release_s: float) -> np.ndarray:
    """Linear attack and release envelope of ``n`` samples."""
    env = np.ones(n)
    attack = min(round(attack_s * SR), n)
    release = min(round(release_s * SR), n - attack)
    env[:attack] = np.linspace(0.0, 1.0, attack, endpoint=False)
    env[n - release :] *= np.linspace(1.0, 0.0, release)
    return env


def additive(
    freq: float, n: int, amps: Sequence[float], decays: Sequence[float], attack_s: float
) -> np.ndarray:
    """Sum of harmonics ``k*freq`` (k = 1, 2, ...) with amplitudes and decay rates (1/s)."""
    t = np.arange(n) / SR
    tone = np.zeros(n)
    for k, (amp, decay) in enumerate(zip(amps, decays, strict=True), start=1):
        if k * freq < 0.45 * SR and amp > 0.0:
            tone += amp * np.exp(-decay * t) * np.sin(2 * np.pi * k * freq * t)
    shaped: np.ndarray = tone * envelope(n, attack_s, 0.05)
    return shaped


def pluck(freq: float, n: int) -> np.ndarray:
    """Plucked-string timbre: bright attack, upper harmonics dying fastest."""
    k = np.arange(1, 15)
    amps = np.abs(np.sin(np.pi * k * 0.18)) / k
    return additive(freq, n, amps.tolist(), (1.5 + 1.1 * k).tolist(), 0.003)


def organ(freq: float, n: int) -> np.ndarray:
    """Organ-like timbre: steady drawbar harmonics 1, 2, 3, 4, 6 and 8."""
    amps = [1.0, 0.55, 0.4, 0.3, 0.0, 0.2, 0.0, 0.12]
    return additive(freq, n, amps, [0.0] * len(amps), 0.03)


def click(n: int, rng: np.random.Generator) -> np.ndarray:
    """Percussive click: a high-passed, fast-decaying noise burst."""
    burst = np.diff(rng.standard_normal(n + 1)) * np.exp(-np.arange(n) / (0.012 * SR))
    return 0.5 * burst


def kick(n: int) -> np.ndarray:
    """Bass drum: a sine sweeping from 110 Hz down to 45 Hz with fast decay."""
    t = np.arange(n) / SR
    freq = 45.0 + 65.0 * np.exp(-t / 0.04)
    phase = 2 * np.pi * np.cumsum(freq) / SR
    return np.sin(phase) * np.exp(-t / 0.15)


@dataclass(frozen=True)
class Note:
    """A note: onset and length in seconds, MIDI pitch and relative amplitude."""

    start: float
    length: float
    midi: int
    amp: float = 1.0


def midi_to_hz(midi: int) -> float:
    """Equal-tempered frequency of a MIDI note number."""
    return float(440.0 * 2.0 ** ((midi - 69) / 12.0))


PENTATONIC = (0, 2, 4, 7, 9)
PROGRESSION = ((0, 4, 7), (-3, 0, 4), (-7, -3, 0), (-5, -1, 2))  # I vi IV V


def melody(rng: np.random.Generator, duration: float, beat: float, tonic: int) -> list[Note]:
    """A random walk over the major pentatonic scale in eighths, quarters and dotted quarters."""
    notes, t, degree = [], 0.0, 5
    while t < duration:
        length = beat * float(rng.choice([0.5, 0.5, 1.0, 1.5]))
        degree = int(np.clip(degree + rng.choice([-2, -1, -1, 1, 1, 2]), 0, 10))
        octave, step = divmod(degree, len(PENTATONIC))
        notes.append(Note(t, length, tonic + 12 * octave + PENTATONIC[step]))
        t += length
    return notes


def chords(duration: float, beat: float, tonic: int, amp: float) -> list[Note]:
    """The I-vi-IV-V progression, one chord per 4-beat bar, as sustained triads."""
    bar, notes = 4 * beat, []
    for i in range(int(np.ceil(duration / bar))):
        chord = PROGRESSION[i % len(PROGRESSION)]
        notes += [Note(i * bar, bar, tonic - 12 + interval, amp) for interval in chord]
    return notes


def bass(duration: float, beat: float, tonic: int, amp: float) -> list[Note]:
    """Chord roots two octaves below the tonic on beats 1 and 3."""
    notes = []
    for i in range(int(np.ceil(duration / (2 * beat)))):
        root = PROGRESSION[(i // 2) % len(PROGRESSION)][0]
        notes.append(Note(2 * i * beat, 1.8 * beat, tonic - 24 + root, amp))
    return notes


def render_notes(notes: Sequence[Note], instrument: Instrument, n: int) -> np.ndarray:
    """Render notes with ``instrument`` into a buffer of ``n`` samples."""
    out = np.zeros(n)
    for note in notes:
        start = round(note.start * SR)
        length = min(round(note.length * SR), n - start)
        if length > 0:
            out[start : start + length] += note.amp * instrument(midi_to_hz(note.midi), length)
    return out


def drums(n: int, beat: float, rng: np.random.Generator) -> np.ndarray:
    """Kick on beats 1 and 3, clicks on every eighth note (accented on the beat)."""
    out = np.zeros(n)
    hit = round(0.25 * SR)
    for i, start in enumerate(range(0, n - hit, round(beat * SR / 2))):
        if i % 4 == 0:
            out[start : start + hit] += 0.9 * kick(hit)
        out[start : start + hit] += (0.6 if i % 2 == 0 else 0.3) * click(hit, rng)
    return out


@dataclass(frozen=True)
class MusicStyle:
    """Arrangement of a synthetic music stretch."""

    tempo_bpm: float
    tonic: int  # MIDI note of the melody's tonic
    lead: Instrument
    accompaniment: Instrument | None  # plays chords and bass
    percussion: bool


STYLES = {
    "folk": MusicStyle(112.0, 62, pluck, pluck, percussion=True),
    "chorale": MusicStyle(76.0, 67, organ, organ, percussion=False),
    "dance": MusicStyle(124.0, 60, pluck, organ, percussion=True),
}


def compose(style: MusicStyle, duration: float, seed: int) -> np.ndarray:
    """Render ``duration`` seconds of music in ``style`` (melody, chords, bass, drums)."""
    rng = np.random.default_rng(seed)
    n, beat = round(duration * SR), 60.0 / style.tempo_bpm
    music = render_notes(melody(rng, duration, beat, style.tonic), style.lead, n)
    if style.accompaniment is not None:
        backing = chords(duration, beat, style.tonic, 0.3) + bass(duration, beat, style.tonic, 0.6)
        music += render_notes(backing, style.accompaniment, n)
    if style.percussion:
        music += drums(n, beat, rng)
    return music


# ------------------------------------------------------------------------- scenes


@dataclass(frozen=True)
class Say:
    """An utterance placed ``gap`` seconds after the end of the previous item."""

    text: str
    voice: Voice
    gap: float = 1.5  # negative values overlap the previous item
    gain_db: float = 0.0


@dataclass(frozen=True)
class Music:
    """A stretch of synthetic music placed ``gap`` seconds after the previous item."""

    duration: float
    style: str
    seed: int
    gap: float = 1.5  # negative values overlap the previous item
    level_dbfs: float = -25.0


@dataclass(frozen=True)
class Scene:
    """A fixture: a sequence of items, an optional background and a fixed duration."""

    name: str
    description: str
    duration: float
    items: tuple[Say | Music, ...] = ()
    background: Background | None = None

    @property
    def voices(self) -> list[Voice]:
        """The distinct voices the scene uses, in order of first use."""
        return list(dict.fromkeys(item.voice for item in self.items if isinstance(item, Say)))


@dataclass(frozen=True)
class Rendered:
    """A mixed scene and its speech truth."""

    scene: Scene
    audio: np.ndarray
    speech: Regions

    @property
    def speech_ratio(self) -> float:
        """Fraction of the duration covered by speech regions."""
        return sum(end - start for start, end in self.speech) / self.scene.duration


def render_item(item: Say | Music, synth: Synthesizer) -> np.ndarray:
    """Render one scene item as a frame-padded float signal at its target level."""
    if isinstance(item, Say):
        audio = set_active_level(synth(item.text, item.voice), SPEECH_DBFS + item.gain_db)
    else:
        audio = fade(set_level(compose(STYLES[item.style], item.duration, item.seed), 0.0), FADE_S)
        audio *= db_to_gain(item.level_dbfs)
    return pad_to_frames(audio)


def frames_to_regions(mask: np.ndarray) -> Regions:
    """Turn a per-frame speech mask into merged, filtered regions in seconds."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    merged: list[tuple[int, int]] = []
    for start, end in zip(starts, ends, strict=True):
        if merged and start - merged[-1][1] < MIN_GAP_FRAMES:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return [
        (round(start * FRAME / SR, 3), round(end * FRAME / SR, 3))
        for start, end in merged
        if end - start >= MIN_REGION_FRAMES
    ]


def render_scene(scene: Scene, synth: Synthesizer) -> Rendered:
    """Place the scene's items, derive the speech truth and mix in the background."""
    n = round(scene.duration * SR)
    if n % FRAME:
        raise ValueError(f"{scene.name}: duration must be a multiple of 10 ms")
    speech, other = np.zeros(n), np.zeros(n)
    mask = np.zeros(n // FRAME, dtype=bool)
    cursor = 0
    for item in scene.items:
        clip = render_item(item, synth)
        start = round((seconds(cursor) + item.gap) * SR / FRAME) * FRAME
        end = start + len(clip)
        if start < 0 or end > n:
            raise ValueError(f"{scene.name}: {item} does not fit ({seconds(end):.2f} s)")
        if isinstance(item, Say):
            speech[start:end] += clip
            mask[start // FRAME : end // FRAME] |= loud_frames(speech[start:end], SPEECH_DB)
        else:
            other[start:end] += clip
        cursor = max(cursor, end)
    if scene.background is not None:
        other += scene.background.render(n)
    mix = speech + other
    peak = float(np.max(np.abs(mix), initial=0.0))
    if peak > HEADROOM:
        mix *= HEADROOM / peak
    return Rendered(scene, mix, frames_to_regions(mask))


# -------------------------------------------------------------------------- specs

VAD_CLEAN = Scene(
    name="vad_clean",
    description=(
        "Five English sentences from five voice settings (espeak-ng and festival), "
        "separated by 1-3 s of digital silence; no noise."
    ),
    duration=20.0,
    items=(
        Say(
            "Welcome to the east gallery of the city museum.",
            EspeakVoice("en-us", 165, 45),
            gap=0.6,
        ),
        Say("These tapestries come from Flanders.", kal(), gap=1.2),
        Say("Please do not touch the fabric.", EspeakVoice("en+f3", 150, 65), gap=2.5),
        Say("The colours come from plant dyes.", slt(), gap=1.4),
        Say(
            "Audio guides are available at the front desk.",
            EspeakVoice("en-gb-x-rp+m3", 140, 35),
            gap=1.9,
        ),
    ),
)

VAD_NOISE = Scene(
    name="vad_noise",
    description=(
        "Five English sentences from five other voice settings with pink noise at "
        "about 15 dB SNR and 50 Hz mains hum with harmonics throughout."
    ),
    duration=20.0,
    items=(
        Say("This was recorded on wire in 1948.", ked(), gap=0.6),
        Say(
            "The speaker is the harbour master of Leith.",
            EspeakVoice("en-gb-scotland+m1", 150, 40),
            gap=1.3,
        ),
        Say("He describes the winter storms of that year.", slt(1.1), gap=2.2, gain_db=-2.0),
        Say(
            "Listen for the ships' bells in the background.",
            EspeakVoice("en-us+f2", 170, 70),
            gap=1.0,
        ),
        Say("The tape was restored in our own studio.", kal(0.9), gap=1.6, gain_db=2.0),
    ),
    background=Background(noise_db=15.0, exponent=1.0, hum_db=22.0, seed=1101),
)

VAD_MUSIC = Scene(
    name="vad_music",
    description=(
        "Five English sentences interleaved with three 5 s stretches of synthetic music "
        "(plucked folk tune with clicks; organ chorale; organ chords with plucked lead and "
        "drums). The chorale overlaps the end of one sentence and the start of the next, "
        "the fourth sentence starts over the end of the third; every stretch has "
        "seconds of music without speech. Faint room noise throughout."
    ),
    duration=30.0,
    items=(
        Say("This room holds old instruments.", EspeakVoice("en-us-nyc+f4", 155, 55), gap=0.5),
        Music(5.0, "folk", seed=201, gap=1.0),
        Say("This harpsichord was built in Antwerp.", kal(1.1), gap=1.0),
        Music(5.0, "chorale", seed=202, gap=-1.0, level_dbfs=-29.0),
        Say(
            "The organ pipes behind you are made of tin and lead.",
            EspeakVoice("en-gb+m7", 145, 30),
            gap=-2.0,
        ),
        Music(5.0, "dance", seed=203, gap=1.0),
        Say("Concerts take place every Sunday at noon.", slt(0.95), gap=-1.5),
        Say("Tickets are sold online.", EspeakVoice("en-gb-x-gbclan+f1", 165, 60), gap=1.5),
    ),
    background=Background(noise_db=50.0, exponent=1.5, seed=1201),
)

VAD_SILENCE = Scene(
    name="vad_silence",
    description="Five seconds of digital silence (all samples zero).",
    duration=5.0,
)

DEMO = Scene(
    name="demo",
    description=(
        "Looping guided-tour scene: a guide speaks, a visitor asks a question, the guide "
        "answers, about 10 s of synthetic music, a curator speaks, then a quiet room-tone "
        "pause; mild room noise throughout, periodic so the file loops without a seam."
    ),
    duration=60.0,
    items=(
        Say("Good morning everyone, and welcome to the museum.", slt(), gap=1.5),
        Say(
            "In this room you can see the oldest maps of the harbour, drawn by hand in 1650.",
            slt(),
            gap=0.9,
        ),
        Say("Excuse me, who drew these maps?", EspeakVoice("en-us+m3", 160, 45), gap=1.6),
        Say(
            "They were drawn by a ship's pilot, whose name we still do not know.",
            slt(),
            gap=1.0,
        ),
        Say("Now let us listen to some music from that time.", slt(), gap=1.2),
        Music(10.0, "chorale", seed=301, gap=1.5, level_dbfs=-26.0),
        Say(
            "This is the curator speaking. The next room shows the instruments "
            "the pilots used to find their way at sea.",
            kal(),
            gap=1.6,
        ),
        Say("Please follow the blue line on the floor, and mind the step.", kal(), gap=0.9),
        Say("Is the next room open today?", EspeakVoice("en-us+m3", 160, 45), gap=1.4),
        Say("Yes, it is open until six o'clock.", kal(), gap=0.8),
    ),
    background=Background(noise_db=32.0, exponent=1.6, seed=1301),
)

TEST_SCENES = (VAD_CLEAN, VAD_NOISE, VAD_MUSIC, VAD_SILENCE)


# ------------------------------------------------------------------------ writers


def write_flac(path: Path, audio: np.ndarray) -> None:
    """Write mono float audio as a 16-bit FLAC at ``SR``."""
    sf.write(path, to_int16(audio), SR, format="FLAC", subtype="PCM_16")


def truth_json(rendered: Rendered) -> str:
    """Serialize the speech truth, one ``[start, end]`` pair per line."""
    truth = {
        "sample_rate": SR,
        "duration": float(rendered.scene.duration),
        "speech": [list(region) for region in rendered.speech],
        "description": rendered.scene.description,
    }
    text = json.dumps(truth, indent=2)
    return re.sub(r"\[\s+([\d.]+),\s+([\d.]+)\s+\]", r"[\1, \2]", text) + "\n"


def write_scene(rendered: Rendered, out_dir: Path) -> Path:
    """Write ``<name>.flac`` and ``<name>.json``; return the FLAC path."""
    flac = out_dir / f"{rendered.scene.name}.flac"
    write_flac(flac, rendered.audio)
    flac.with_suffix(".json").write_text(truth_json(rendered), encoding="utf-8")
    return flac


def ensure_undecodable(path: Path) -> None:
    """Raise if soundfile can decode ``path``: a bad-input fixture must be bad."""
    try:
        sf.read(path)
    except (sf.LibsndfileError, RuntimeError):
        return
    raise RuntimeError(f"{path} decodes although it should not")


BAD_INPUTS = {
    "empty.wav": "0 bytes.",
    "corrupt.wav": "A RIFF/WAVE header followed by 2 KiB of random bytes; no fmt chunk.",
    "truncated.flac": "The first 30% of the bytes of vad_clean.flac.",
    "not_audio.wav": "A short UTF-8 text file with a .wav name.",
}


def write_bad_inputs(out_dir: Path, clean_flac: Path) -> None:
    """Write the bad-input fixtures listed in ``BAD_INPUTS``."""
    garbage = np.random.default_rng(404).bytes(2048)
    flac_bytes = clean_flac.read_bytes()
    contents = {
        "empty.wav": b"",
        "corrupt.wav": b"RIFF" + struct.pack("<I", 4 + len(garbage)) + b"WAVE" + garbage,
        "truncated.flac": flac_bytes[: round(len(flac_bytes) * TRUNCATE_FRACTION)],
        "not_audio.wav": "Not audio — plain UTF-8 text named .wav.\n".encode(),
    }
    for name, data in contents.items():
        path = out_dir / name
        path.write_bytes(data)
        if name != "truncated.flac":  # a decoder may return the intact first part
            ensure_undecodable(path)


def readme(rendered: Sequence[Rendered]) -> str:
    """Markdown description of every test fixture and how to regenerate them."""
    lines = [
        "# Test audio fixtures",
        "",
        "Generated by `tools/make_fixtures.py` (espeak-ng, festival and numpy; fixed seeds).",
        "Regenerate all of them, and the demo scene in `stream/data/`, from the repository root:",
        "",
        "```sh",
        REGENERATE,
        "```",
        "",
        "Audio files are 16 kHz mono 16-bit FLAC. Each `<name>.json` beside one holds the",
        "speech truth `{sample_rate, duration, speech: [[start, end], ...], description}` in",
        "seconds, derived from the clean speech track alone: 10 ms frames within 40 dB of",
        "each utterance's loudest frame, gaps under 0.3 s merged, regions under 0.1 s dropped.",
        "",
        "| file | duration | speech | contents |",
        "| --- | --- | --- | --- |",
    ]
    for item in rendered:
        voices = "; ".join(f"`{voice.label}`" for voice in item.scene.voices)
        contents = item.scene.description + (f" Voices: {voices}." if voices else "")
        lines.append(
            f"| `{item.scene.name}.flac` + `.json` | {item.scene.duration:g} s "
            f"| {item.speech_ratio:.0%} | {contents} |"
        )
    lines += [f"| `{name}` | | | Bad input: {text} |" for name, text in BAD_INPUTS.items()]
    return "\n".join(lines) + "\n"


def notice(scene: Scene) -> str:
    """Provenance and licence notes for the demo scene."""
    packages = sorted({voice.package for voice in scene.voices if voice.package != "espeak-ng"})
    voices = "\n".join(
        f"- {voice.label} (Debian package {voice.package})" for voice in scene.voices
    )
    return (
        f"{scene.name}.flac and {scene.name}.json were generated by tools/make_fixtures.py\n"
        f"(`{REGENERATE}`).\n\n"
        "Speech was synthesized with espeak-ng (Debian package espeak-ng) and festival's\n"
        f"text2wave (Debian package festival) using these voices:\n{voices}\n\n"
        "espeak-ng is a GPL-3.0-or-later program; the audio it outputs is not covered by\n"
        "the program's licence. The festival voice data are licensed as stated in the\n"
        f"copyright files of the Debian packages {', '.join(packages)}\n"
        "(/usr/share/doc/<package>/copyright): free to use and distribute, keeping the\n"
        "authors' notices. The music and the room noise were synthesized with numpy by the\n"
        "same script and use no third-party material.\n"
    )


def check_tools(scenes: Sequence[Scene]) -> None:
    """Exit with a clear message if a needed TTS program is not installed."""
    programs = {
        "espeak-ng" if isinstance(v, EspeakVoice) else "text2wave" for s in scenes for v in s.voices
    }
    missing = sorted(p for p in programs if shutil.which(p) is None)
    if missing:
        raise SystemExit(
            f"missing programs: {', '.join(missing)} (apt-get install espeak-ng festival)"
        )


def report(out_dirs: Sequence[Path], rendered: Sequence[Rendered]) -> None:
    """Print the size of every output file, and duration and speech ratio of each scene."""
    scenes = {f"{item.scene.name}.flac": item for item in rendered}
    for path in sorted(p for out_dir in out_dirs for p in out_dir.iterdir() if p.is_file()):
        line = f"{path}: {path.stat().st_size} bytes"
        if path.name in scenes:
            item = scenes[path.name]
            line += f", {item.scene.duration:g} s, speech {item.speech_ratio:.1%}"
            line += f" in {len(item.speech)} regions"
        print(line)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-tests", type=Path, default=DEFAULT_TESTS_DIR, help="test fixtures")
    parser.add_argument("--out-demo", type=Path, default=DEFAULT_DEMO_DIR, help="demo scene")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Generate all fixtures."""
    args = parse_args(argv)
    check_tools((*TEST_SCENES, DEMO))
    args.out_tests.mkdir(parents=True, exist_ok=True)
    args.out_demo.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="make_fixtures_") as tmp:
        synth = Synthesizer(Path(tmp))
        tests = [render_scene(scene, synth) for scene in TEST_SCENES]
        demo = render_scene(DEMO, synth)
    flacs = [write_scene(item, args.out_tests) for item in tests]
    write_bad_inputs(args.out_tests, flacs[0])
    (args.out_tests / "README.md").write_text(readme(tests), encoding="utf-8")
    write_scene(demo, args.out_demo)
    (args.out_demo / "NOTICE").write_text(notice(DEMO), encoding="utf-8")
    report([args.out_tests, args.out_demo], [*tests, demo])


if __name__ == "__main__":
    main()
