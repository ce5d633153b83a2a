"""Cultural tags: the heritage category, an estimate of the recording era, and hints.

The era is inferred from what a recording chain leaves in the sound, not from any
catalogue: acoustic 78s rarely carry anything above 4-5 kHz, electrical 78s reach
6-8 kHz under loud surface noise, tape reaches 12-16 kHz over hiss, digital
recordings use the whole band over a low floor (or pause in true digital silence).
Each era's score is a soft membership of its band edge (normal in log-frequency,
half an octave wide) times one of its range of noise floors; the scores are
evidence, not dating, and the result says which measures it used. The noise floor
is the quietest 10 % of the file: dense material without pauses reads its quietest
passage as the floor and looks older than it is.
"""

from __future__ import annotations

import math
from typing import Any

# Per era: the band edge the chain leaves (Hz) and the range of noise floors it has (dBFS).
ERAS: dict[str, dict[str, Any]] = {
    "acoustic_78rpm": {"years": "c. 1895-1925", "bandwidth_hz": 3500.0, "floor": (-45.0, -20.0)},
    "electrical_78rpm": {"years": "c. 1925-1955", "bandwidth_hz": 6500.0, "floor": (-55.0, -30.0)},
    "analogue_tape": {"years": "c. 1950-1990", "bandwidth_hz": 13000.0, "floor": (-75.0, -45.0)},
    "digital": {"years": "c. 1982-", "bandwidth_hz": 20000.0, "floor": (-150.0, -65.0)},
}
BANDWIDTH_OCTAVES = 0.5  # spread of each era's band edge
FLOOR_SPREAD_DB = 10.0  # how fast an era's likelihood falls outside its floor range
DIGITAL_SILENCE_RATIO = 0.01  # share of 50 ms frames below -120 dBFS
FULL_BAND = 0.9  # bandwidth above this fraction of Nyquist: limited by the sample rate

CATEGORY_HINTS = {
    "folk_music": ["folk instruments (fiddle, accordion, pipes, guitar, flute)", "regular pulse"],
    "classical_music": ["orchestral, chamber or piano repertoire"],
    "opera": ["trained solo voice with vibrato", "orchestral accompaniment"],
    "spoken_word": ["read or recited speech"],
    "historical_speech": ["speech in an archival recording chain"],
    "religious_chant": ["unison or monophonic voices", "long reverberation", "no percussion"],
}


def era_estimate(technical: dict[str, Any], sample_rate: int) -> dict[str, Any] | None:
    """The most likely recording era with its confidence and all scores."""
    bandwidth = technical.get("effective_bandwidth_hz")
    noise = technical.get("noise_floor_dbfs")
    if not bandwidth:
        return None
    nyquist = sample_rate / 2
    capped = bandwidth >= FULL_BAND * nyquist
    if (technical.get("digital_silence_ratio") or 0) >= DIGITAL_SILENCE_RATIO:
        noise = -140.0  # pauses of digital zero: no analogue stage (or a noise gate) in the chain
    scores = {}
    for era, spec in ERAS.items():
        edge = spec["bandwidth_hz"]
        if capped and edge >= nyquist:
            band = 1.0  # the file's rate hides any edge above its Nyquist
        else:
            band = math.exp(-0.5 * (math.log2(bandwidth / edge) / BANDWIDTH_OCTAVES) ** 2)
        scores[era] = band * _floor_likelihood(noise, spec["floor"])
    total = sum(scores.values())
    if total <= 0:
        return None
    scores = {k: round(v / total, 3) for k, v in scores.items()}
    best = max(scores, key=lambda k: scores[k])
    return {
        "era": best,
        "years": ERAS[best]["years"],
        "confidence": scores[best],
        "scores": scores,
        "basis": {
            "effective_bandwidth_hz": bandwidth,
            "bandwidth_limited_by_sample_rate": capped,
            "noise_floor_dbfs": technical.get("noise_floor_dbfs"),
            "digital_silence_ratio": technical.get("digital_silence_ratio"),
        },
    }


def _floor_likelihood(noise: float | None, floor: tuple[float, float]) -> float:
    """1 inside the era's range of noise floors, falling off as a Gaussian outside it."""
    if noise is None:
        return 1.0
    low, high = floor
    distance = max(low - noise, noise - high, 0.0)
    return math.exp(-0.5 * (distance / FLOOR_SPREAD_DB) ** 2)


def hints(content: dict[str, Any], category: str | None) -> list[dict[str, str]]:
    """Instrumentation and voice hints from the content measures and the category."""
    out: list[dict[str, str]] = []
    ratios = content.get("ratios") or {}
    if (ratios.get("speech") or 0) >= 0.3:
        out.append({"hint": "spoken voice", "source": "voice activity"})
    if (ratios.get("music") or 0) >= 0.3:
        out.append({"hint": "tonal music", "source": "harmonic content"})
    balance = content.get("harmonic_percussive_ratio_db")
    pulse = content.get("tempo_bpm") or {}
    if balance is not None and balance >= 6:
        out.append({"hint": "sustained tones, little percussion", "source": "harmonic balance"})
    if balance is not None and balance <= 0 and pulse.get("strength", 0) >= 0.3:
        out.append({"hint": "percussion with a regular pulse", "source": "onsets"})
    for hint in CATEGORY_HINTS.get(category or "", []):
        out.append({"hint": hint, "source": "heritage category"})
    return out


def cultural_tags(
    technical: dict[str, Any],
    content: dict[str, Any],
    sample_rate: int,
    heritage: dict[str, Any] | None,
) -> dict[str, Any]:
    """The ``cultural_tags`` section."""
    category = (heritage or {}).get("predicted_category")
    return {
        "genre": category,
        "genre_confidence": (heritage or {}).get("confidence"),
        "recording_era": era_estimate(technical, sample_rate),
        "instrumentation_hints": hints(content, category),
    }
