"""Signal generators for the heritage corpus: a formant singer, rooms, archival degradations.

Used by ``tools/make_heritage_corpus.py``; numpy and scipy only, every random choice
drawn from the ``numpy.random.Generator`` passed in, so a seed fixes the output.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

# Vowel formants (Hz) and bandwidths for a male voice (Peterson & Barney / singing-voice
# tables); female and high voices scale them up by the voice's ``formant_scale``.
VOWELS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "a": ((730, 1090, 2440, 3400, 4200), (90, 110, 160, 250, 300)),
    "e": ((530, 1840, 2480, 3500, 4200), (70, 100, 160, 250, 300)),
    "i": ((300, 2250, 3000, 3600, 4300), (60, 90, 150, 250, 300)),
    "o": ((500, 850, 2500, 3350, 4200), (80, 100, 150, 250, 300)),
    "u": ((320, 800, 2400, 3300, 4100), (60, 90, 150, 250, 300)),
}


@dataclass(frozen=True)
class SingerVoice:
    """Timbre of a synthetic singer: one 'voice' of the corpus split."""

    name: str
    low: int  # lowest MIDI pitch of the comfortable range
    high: int  # highest MIDI pitch
    formant_scale: float  # 1.0 male, ~1.15-1.25 female
    tilt_db_per_octave: float  # source spectral slope (steeper = darker)
    singer_formant_db: float  # boost near 3 kHz (trained operatic voices ring)
    breath: float  # aspiration noise relative to the harmonic part
    jitter_cents: float  # slow random pitch wander


SINGERS: tuple[SingerVoice, ...] = (
    SingerVoice("soprano_a", 60, 84, 1.22, -11.0, 12.0, 0.02, 6.0),
    SingerVoice("mezzo_a", 55, 79, 1.15, -12.0, 10.0, 0.03, 7.0),
    SingerVoice("tenor_a", 48, 69, 1.02, -10.0, 13.0, 0.02, 5.0),
    SingerVoice("baritone_a", 43, 65, 0.96, -12.5, 11.0, 0.03, 6.0),
    SingerVoice("bass_a", 38, 60, 0.92, -13.0, 9.0, 0.04, 8.0),
    SingerVoice("soprano_b", 62, 86, 1.25, -9.5, 14.0, 0.015, 4.0),
    SingerVoice("tenor_b", 50, 70, 1.05, -11.5, 8.0, 0.05, 9.0),
    SingerVoice("alto_b", 53, 74, 1.12, -13.5, 7.0, 0.04, 7.0),
    SingerVoice("baritone_b", 45, 64, 0.98, -10.5, 12.0, 0.02, 5.0),
)


@dataclass(frozen=True)
class Note:
    """A sung or played note: onset and length in seconds, MIDI pitch."""

    start: float
    dur: float
    pitch: float
    vowel: str = "a"
    velocity: int = 90


def _envelope_db(freqs: np.ndarray, vowel: str, voice: SingerVoice) -> np.ndarray:
    """Spectral envelope (dB) of ``vowel`` sung by ``voice`` at ``freqs`` Hz."""
    centres, widths = VOWELS[vowel]
    total = np.zeros_like(freqs)
    for i, (fc, bw) in enumerate(zip(centres, widths, strict=True)):
        fc_s = fc * voice.formant_scale
        gain = 1.0 / (1.0 + ((freqs - fc_s) / (bw * voice.formant_scale / 2)) ** 2)
        total += gain * (0.6 ** (i * 0.6))
    env = 20 * np.log10(total + 1e-3)
    env += voice.singer_formant_db * np.exp(-0.5 * ((freqs - 2900.0) / 350.0) ** 2)
    env += voice.tilt_db_per_octave * np.log2(np.maximum(freqs, 50.0) / 100.0)
    return env


def _contours(
    notes: list[Note], end: float, ctrl_rate: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pitch (MIDI, held through rests), amplitude and vowel index at ``ctrl_rate`` Hz."""
    m = int(end * ctrl_rate) + 1
    pitch = np.full(m, np.nan)
    amp = np.zeros(m)
    vowel_idx = np.zeros(m, dtype=int)
    names = list(VOWELS)
    for note in notes:
        a, b = int(note.start * ctrl_rate), int((note.start + note.dur) * ctrl_rate)
        pitch[a:b] = note.pitch
        vowel_idx[a:b] = names.index(note.vowel)
        attack = max(1, int(0.05 * ctrl_rate))
        env = np.ones(b - a)
        env[:attack] = np.linspace(0, 1, attack)[: b - a]
        release = min(len(env), max(1, int(0.08 * ctrl_rate)))
        env[-release:] *= np.linspace(1, 0, release)
        amp[a:b] = np.maximum(amp[a:b], env * (note.velocity / 100.0))
    valid = ~np.isnan(pitch)
    idx = np.where(valid, np.arange(m), 0)
    np.maximum.accumulate(idx, out=idx)
    pitch = np.where(valid, pitch, pitch[idx])
    pitch = np.where(np.isnan(pitch), pitch[valid][0], pitch)
    return pitch, amp, vowel_idx


def sing(
    notes: list[Note],
    voice: SingerVoice,
    sr: int,
    rng: np.random.Generator,
    *,
    vibrato_rate: float,
    vibrato_cents: float,
    glide_s: float = 0.06,
    detune_cents: float = 0.0,
) -> np.ndarray:
    """Additive synthesis of a singer: harmonics shaped by vowel formants, with vibrato."""
    if not notes:
        return np.zeros(0)
    end = max(n.start + n.dur for n in notes) + 0.3
    n = int(end * sr)
    ctrl_rate = 200  # control points per second
    pitch, amp, vowel_idx = _contours(notes, end, ctrl_rate)
    m = len(pitch)
    t_ctrl = np.arange(m) / ctrl_rate
    # Portamento: a one-pole glide on the pitch contour.
    alpha = np.exp(-1.0 / max(1.0, glide_s * ctrl_rate))
    pitch = signal.lfilter([1 - alpha], [1, -alpha], pitch, zi=[pitch[0] * alpha])[0]
    rate = vibrato_rate * (1 + 0.05 * rng.standard_normal())
    vib_phase = 2 * np.pi * rate * t_ctrl + rng.uniform(0, 2 * np.pi)
    # Vibrato grows in after each onset, as trained singers do.
    vib_depth = vibrato_cents * np.clip(amp, 0, 1)
    wander = np.cumsum(rng.standard_normal(m)) * voice.jitter_cents / np.sqrt(ctrl_rate)
    wander -= signal.savgol_filter(wander, min(m - (1 - m % 2), 401), 1) if m > 10 else 0
    cents = 100 * pitch + vib_depth * np.sin(vib_phase) + wander + detune_cents
    f0_ctrl = 440.0 * 2 ** ((cents / 100 - 69) / 12)
    t = np.arange(n) / sr
    f0 = np.interp(t, t_ctrl, f0_ctrl)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    n_harm = int(min(sr / 2 - 200, 6000) / max(60.0, float(f0_ctrl.min())))
    out = np.zeros(n)
    names = list(VOWELS)
    for k in range(1, n_harm + 1):
        # Harmonic amplitude from the vowel envelope at k*f0, per control point.
        fk_ctrl = k * f0_ctrl
        gains = np.zeros(m)
        for vi, name in enumerate(names):
            sel = vowel_idx == vi
            if sel.any():
                gains[sel] = 10 ** (_envelope_db(fk_ctrl[sel], name, voice) / 20)
        gains = np.convolve(gains, np.ones(8) / 8, mode="same")  # vowel changes over ~40 ms
        out += np.interp(t, t_ctrl, gains) * (k * f0 < sr / 2 - 100) * np.sin(k * phase)
    noise = rng.standard_normal(n)
    b, a = signal.butter(2, [800 / (sr / 2), min(0.95, 5000 / (sr / 2))], btype="band")
    out += voice.breath * 30 * signal.lfilter(b, a, noise) * np.sqrt(np.abs(out) + 1e-3)
    out *= np.interp(t, t_ctrl, amp)
    peak = np.max(np.abs(out))
    return out / peak if peak > 0 else out


def reverb(x: np.ndarray, sr: int, rt60: float, wet: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with an exponentially decaying noise tail (a diffuse room of ``rt60`` s)."""
    length = int(min(rt60 * 1.2, 8.0) * sr)
    t = np.arange(length) / sr
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
    # Rooms absorb highs faster: darken the tail progressively.
    b, a = signal.butter(1, min(0.99, 4000 / (sr / 2)))
    tail = 0.5 * tail + 0.5 * signal.lfilter(b, a, tail)
    tail[: int(0.01 * sr)] *= np.linspace(0, 1, int(0.01 * sr))
    tail /= np.sqrt(np.sum(tail**2)) + 1e-12
    wet_sig = signal.fftconvolve(x, tail)[: len(x)]
    dry = x / (np.sqrt(np.mean(x**2)) + 1e-12)
    wet_sig /= np.sqrt(np.mean(wet_sig**2)) + 1e-12
    return (1 - wet) * dry + wet * wet_sig


def degrade(x: np.ndarray, sr: int, rng: np.random.Generator, severity: float) -> np.ndarray:
    """An archival disc/tape chain: wow and flutter, band limit, saturation, noise, clicks, hum.

    ``severity`` 0..1 scales every stage; 1 is an acoustic 78 rpm transfer.
    """
    n = len(x)
    t = np.arange(n) / sr
    # Wow (slow) and flutter (fast) speed variation, by reading along a warped time axis.
    wow = rng.uniform(0.4, 1.4)
    flutter = rng.uniform(5, 12)
    depth_w = severity * rng.uniform(0.001, 0.006)
    depth_f = severity * rng.uniform(0.0003, 0.002)
    warp = t + depth_w / (2 * np.pi * wow) * np.sin(2 * np.pi * wow * t + rng.uniform(0, 6))
    warp += depth_f / (2 * np.pi * flutter) * np.sin(2 * np.pi * flutter * t)
    y = np.interp(np.clip(warp, 0, t[-1]), t, x)
    # Band limit with a horn-like resonance.
    low = rng.uniform(120, 250) + severity * rng.uniform(0, 200)
    high = rng.uniform(6000, 7000) - severity * rng.uniform(1500, 4000)
    high = min(high, 0.45 * sr)
    sos = signal.butter(4, [low, high], btype="band", fs=sr, output="sos")
    y = signal.sosfilt(sos, y)
    f_res = rng.uniform(700, 2200)
    b, a = signal.iirpeak(f_res, rng.uniform(1.5, 4), fs=sr)
    y = y + severity * 0.6 * signal.lfilter(b, a, y)
    y /= np.max(np.abs(y)) + 1e-12
    drive = 1 + severity * rng.uniform(1, 4)
    y = np.tanh(drive * y) / np.tanh(drive)
    level = np.sqrt(np.mean(y**2))
    # Surface noise: band-limited hiss, modulated at the disc's rotation.
    noise = signal.sosfilt(sos, rng.standard_normal(n))
    noise /= np.sqrt(np.mean(noise**2)) + 1e-12
    rotation = rng.choice([1.3, 0.55, 0.75])
    noise *= 1 + 0.3 * np.sin(2 * np.pi * rotation * t)
    snr_db = 32 - severity * rng.uniform(8, 20)
    y += noise * level * 10 ** (-snr_db / 20)
    # Clicks and crackle.
    rate = severity * rng.uniform(3, 40)
    n_clicks = rng.poisson(rate * n / sr)
    click_len = max(4, int(0.0015 * sr))
    shape = np.exp(-np.arange(click_len) / (click_len / 4)) * rng.choice([-1, 1], click_len)
    for pos in rng.integers(0, max(1, n - click_len), n_clicks):
        y[pos : pos + click_len] += shape * level * rng.uniform(1, 8)
    # Mains hum with harmonics.
    mains = rng.choice([50.0, 60.0])
    hum = sum(
        h_amp * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6))
        for k, h_amp in ((1, 1.0), (2, 0.5), (3, 0.35), (5, 0.15))
    )
    hum_db = -36 + severity * rng.uniform(0, 14) - rng.uniform(0, 10)
    y += hum * level * 10 ** (hum_db / 20)
    return y


def write_midi(path: Path, tracks: list[tuple[int, int, int, int, list[Note]]]) -> None:
    """Write a type-1 standard MIDI file; each track is (channel, program, volume, pan, notes).

    Timing is in seconds (tempo fixed at 120 bpm, 960 ticks per second).
    """
    tpq = 480  # ticks per quarter; 120 bpm -> 960 ticks/s

    def vlq(value: int) -> bytes:
        out = [value & 0x7F]
        value >>= 7
        while value:
            out.append(0x80 | (value & 0x7F))
            value >>= 7
        return bytes(reversed(out))

    chunks = []
    tempo = b"\x00\xff\x51\x03" + (500000).to_bytes(3, "big") + b"\x00\xff\x2f\x00"
    chunks.append(b"MTrk" + struct.pack(">I", len(tempo)) + tempo)
    for channel, program, volume, pan, notes in tracks:
        events: list[tuple[int, int, bytes]] = [
            (0, 0, bytes([0xC0 | channel, program])),
            (0, 0, bytes([0xB0 | channel, 7, volume])),
            (0, 0, bytes([0xB0 | channel, 10, pan])),
            (0, 0, bytes([0xB0 | channel, 91, 40])),
        ]
        for note in notes:
            on = round(note.start * 960)
            off = max(on + 1, round((note.start + note.dur) * 960))
            p = int(np.clip(round(note.pitch), 0, 127))
            events.append((on, 2, bytes([0x90 | channel, p, int(np.clip(note.velocity, 1, 127))])))
            events.append((off, 1, bytes([0x80 | channel, p, 0])))
        events.sort(key=lambda e: (e[0], e[1]))
        body = b""
        now = 0
        for tick, _, data in events:
            body += vlq(tick - now) + data
            now = tick
        body += b"\x00\xff\x2f\x00"
        chunks.append(b"MTrk" + struct.pack(">I", len(body)) + body)
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), tpq)
    path.write_bytes(header + b"".join(chunks))
