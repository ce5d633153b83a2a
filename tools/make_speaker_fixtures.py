"""Generate the speech clips of the speaker-encoder tests (``tests/data/speaker/*.flac``).

Four synthetic voices, two sentences each, rendered by espeak-ng and festival
(``text2wave``), resampled to 16 kHz mono, cut to the speech (leading and
trailing audio more than 50 dB under the loudest 10 ms frame is dropped),
padded with 0.2 s of digital silence at both ends, scaled to an RMS level and
written as 16-bit FLAC. One clip is scaled to -42 dBFS so that the encoder's
volume normalisation (to -30 dBFS, increase only) has work to do.

The synthesisers are deterministic, so running the script twice gives the
same files. They are needed only to regenerate the clips, never by the tests::

    apt-get install espeak-ng festival festvox-kallpc16k festvox-us-slt-hts
    .venv/bin/python tools/make_speaker_fixtures.py

Afterwards ``tools/export_speaker_encoder.py`` (in its throwaway virtualenv)
recomputes ``tests/data/speaker/reference.npz`` from these clips.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SR = 16_000  # Hz
FRAME = SR // 100  # 10 ms, for trimming
TRIM_DB = 50.0  # frames further below the loudest frame are cut at both ends
PAD_S = 0.2  # digital silence added before and after the speech (s)

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "tests" / "data" / "speaker"


@dataclass(frozen=True)
class Clip:
    """One fixture: file stem, voice id, synthesiser command prefix, text and level."""

    name: str
    voice: str  # clips with the same voice id come from the same synthetic speaker
    command: tuple[str, ...]  # argv before the text-file and output arguments
    text: str
    dbfs: float = -26.0  # RMS level of the written clip (dBFS)


def espeak(voice: str, speed: int, pitch: int) -> tuple[str, ...]:
    """The espeak-ng argv prefix for ``voice`` at ``speed`` words/min and ``pitch`` 0-99."""
    return ("espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch))


def festival(voice: str) -> tuple[str, ...]:
    """The text2wave argv prefix for festival voice ``voice_<voice>``."""
    return ("text2wave", "-eval", f"(voice_{voice})")


M3 = espeak("en-us+m3", 150, 40)
F3 = espeak("en+f3", 155, 65)
KAL = festival("kal_diphone")
SLT = festival("cmu_us_slt_arctic_hts")

CLIPS = (
    Clip("espeak_m3_a", "espeak_m3", M3, "The museum opens its doors at nine every morning."),
    Clip("espeak_m3_b", "espeak_m3", M3, "Old recordings tell us how our grandparents spoke."),
    Clip("espeak_f3_a", "espeak_f3", F3, "Please follow the blue line to the music gallery."),
    Clip("espeak_f3_b", "espeak_f3", F3, "This violin was made by hand two centuries ago."),
    Clip("kal_a", "kal", KAL, "Welcome to the sound archive of the city."),
    Clip("kal_b", "kal", KAL, "Every tape in this room was carefully restored.", dbfs=-42.0),
    Clip("slt_a", "slt", SLT, "The choir sang here for the very first time in spring."),
    Clip("slt_b", "slt", SLT, "Listen closely to the voices of the fishermen."),
)


def synthesise(clip: Clip, workdir: Path) -> np.ndarray:
    """Render ``clip.text``; return mono float64 audio at ``SR``, trimmed, padded and scaled."""
    text_file = workdir / f"{clip.name}.txt"
    wav_file = workdir / f"{clip.name}.wav"
    text_file.write_text(clip.text + "\n", encoding="utf-8")
    if clip.command[0] == "espeak-ng":
        argv = [*clip.command, "-f", str(text_file), "-w", str(wav_file)]
    else:
        argv = [*clip.command, "-o", str(wav_file), str(text_file)]
    result = subprocess.run(argv, check=True, capture_output=True, text=True)
    if not wav_file.exists():  # text2wave exits 0 when the voice is missing
        raise RuntimeError(f"{' '.join(clip.command)} wrote no audio\n{result.stderr}")
    audio, rate = sf.read(wav_file, dtype="float64", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != SR:
        mono = soxr.resample(mono, rate, SR)
    frames = np.pad(mono, (0, -len(mono) % FRAME)).reshape(-1, FRAME)
    levels = np.sqrt(np.mean(np.square(frames), axis=1))
    loud = np.flatnonzero(levels >= levels.max() * 10.0 ** (-TRIM_DB / 20.0))
    speech = mono[loud[0] * FRAME : (loud[-1] + 1) * FRAME]
    pad = np.zeros(round(PAD_S * SR))
    clip_audio = np.concatenate([pad, speech, pad])
    gain = 10.0 ** (clip.dbfs / 20.0) / np.sqrt(np.mean(np.square(clip_audio)))
    scaled: np.ndarray = clip_audio * gain
    return scaled


def generate(out_dir: Path = OUT_DIR) -> list[Path]:
    """Write every clip of ``CLIPS`` into ``out_dir`` as 16-bit FLAC; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in CLIPS:
            audio = synthesise(clip, Path(tmp))
            duration = len(audio) / SR
            if not 1.5 <= duration <= 4.0:
                raise RuntimeError(f"{clip.name} lasts {duration:.2f} s, outside 1.5-4 s")
            if np.max(np.abs(audio)) >= 1.0:
                raise RuntimeError(f"{clip.name} clips at {clip.dbfs} dBFS RMS")
            path = out_dir / f"{clip.name}.flac"
            sf.write(path, audio, SR, subtype="PCM_16")
            written.append(path)
            print(f"{path}: {duration:.2f} s, voice {clip.voice}")
    return written


def main() -> None:
    """Command line: regenerate the clips (optionally into another folder)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
