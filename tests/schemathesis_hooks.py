"""schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks``): uploads carry real
audio, generated here, so the analysis path behind a 202 is exercised, not only the
refusal of bytes that are not audio.

Each positive upload body's ``audio_file`` becomes a WAV, FLAC or Ogg Vorbis file of 0.05-3 s at a
common sample rate, mono or stereo, of a tone, noise, silence or a chirp; everything else
schemathesis generated (the form fields, valid or not) is kept.
"""

from __future__ import annotations

import hashlib
import io
import random
from typing import Any

import numpy as np
import schemathesis
import soundfile as sf
from schemathesis.transport.serialization import Binary

UPLOAD_PATH = "/api/v1/process"
FORMATS = (("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"))


def real_audio(
    *, seconds: float, rate: int, channels: int, fmt: tuple[str, str], kind: str, seed: int
) -> bytes:
    """Encoded audio of ``kind`` (tone, noise, silence, chirp)."""
    frames = max(1, int(seconds * rate))
    t = np.arange(frames) / rate
    rng = np.random.default_rng(seed)
    signal = {
        "tone": 0.3 * np.sin(2 * np.pi * rng.uniform(80, 2000) * t),
        "noise": rng.normal(0, 0.1, frames),
        "silence": np.zeros(frames),
        "chirp": 0.3 * np.sin(2 * np.pi * (100 + 1000 * t / max(seconds, 0.01)) * t),
    }[kind]
    audio = np.repeat(signal[:, None], channels, axis=1).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format=fmt[0], subtype=fmt[1])
    return buffer.getvalue()


def audio_for(seed: bytes) -> bytes:
    """Audio chosen by ``seed`` (the bytes schemathesis generated): the same case gets
    the same file when schemathesis replays it."""
    pick = random.Random(hashlib.sha256(seed).digest())
    return real_audio(
        seconds=pick.uniform(0.05, 3.0),
        rate=pick.choice([8000, 16000, 22050, 44100, 48000]),
        channels=pick.randint(1, 2),
        fmt=pick.choice(FORMATS),
        kind=pick.choice(["tone", "noise", "silence", "chirp"]),
        seed=pick.randrange(2**16),
    )


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    """Real audio in the positive fuzzing cases of the upload; a case with any negative
    component (body, headers, query) keeps what schemathesis made, so that its refusal is
    still what is tested.
    Here rather than in ``flatmap_body``, which cannot tell the two apart."""
    del context, kwargs
    body = case.body
    if not (
        case.operation.path == UPLOAD_PATH
        and case.meta is not None
        and case.meta.generation.mode == "positive"
        # The coverage phase's header cases become negative once the run's own
        # Authorization header replaces theirs: fuzzing's cases only.
        and case.meta.phase.name == "fuzzing"
        and all(c.mode == "positive" for c in case.meta.components.values())
        # With an X-API-Key of its own the case is about credentials, not the upload.
        and {name.lower() for name in case.headers or {}} <= {"authorization"}
        and isinstance(body, dict)
        and isinstance(body.get("audio_file"), Binary)
    ):
        return
    # In place: schemathesis re-validates a body a hook replaces, and its validator takes
    # a multipart body with a new file for a schema violation (ST201 on positive cases).
    body["audio_file"].data = audio_for(body["audio_file"].data)
