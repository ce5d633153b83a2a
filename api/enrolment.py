"""Enrolling a voice from a result: a curator names a speaker and asks that later analyses
recognise that voice. The speaker's own segments (where nobody else speaks) are cut from
the stored upload and embedded as ``heritage-audio speakers enroll`` would embed a file."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from detectors.speaker.profiles import ProfileStore, VoiceProfile, check_name

MAX_ENROL_S = 120.0  # more adds little to a profile and only costs time


def _minus(start: float, end: float, cut: tuple[float, float]) -> list[tuple[float, float]]:
    """What is left of [start, end] outside ``cut``; slivers of 50 ms or less dropped."""
    parts = [(start, min(end, cut[0])), (max(start, cut[1]), end)]
    return [(a, b) for a, b in parts if b - a > 0.05]


def solo_segments(section: dict[str, Any], label: str) -> list[tuple[float, float]]:
    """The label's segments minus any overlap with another speaker's, in seconds."""
    segments = section.get("segments", [])
    others = [(float(s["start"]), float(s["end"])) for s in segments if s["speaker"] != label]
    out: list[tuple[float, float]] = []
    for seg in segments:
        if seg["speaker"] != label:
            continue
        pieces = [(float(seg["start"]), float(seg["end"]))]
        for cut in others:
            pieces = [part for start, end in pieces for part in _minus(start, end, cut)]
        out += pieces
    return out


def enrol(
    audio: Path, section: dict[str, Any], label: str, name: str, *, data_dir: Path, source: str
) -> VoiceProfile:
    """Embed ``label``'s speech in ``audio`` and save it as the voice ``name`` (blocking);
    ``ValueError`` for a name that cannot label a speaker or too little speech."""
    from stream.speaker_report import enrollment_embedding  # the analysis stack, on demand

    name = check_name(name)
    with sf.SoundFile(str(audio)) as f:
        rate = f.samplerate
        pieces, total = [], 0.0
        for start, end in solo_segments(section, label):
            stop = min(end, start + MAX_ENROL_S - total)
            f.seek(int(start * rate))
            pieces.append(f.read(int((stop - start) * rate), dtype="float32", always_2d=True))
            total += stop - start
            if total >= MAX_ENROL_S:
                break
    if not pieces:
        raise ValueError(f"{label} has no speech of their own to enrol")
    with tempfile.TemporaryDirectory(prefix="enrol-") as tmp:
        clip = Path(tmp) / "voice.wav"
        sf.write(str(clip), np.concatenate(pieces), rate, subtype="FLOAT")
        embedding, seconds = enrollment_embedding([clip])
    profile = VoiceProfile(name=name, embedding=embedding, seconds=seconds, sources=(source,))
    ProfileStore.in_data_dir(data_dir).save(profile)
    return profile
