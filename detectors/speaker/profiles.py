"""Enrolled voices: named speaker embeddings in one JSON file, written atomically.

The file (``speakers/profiles.json`` under the data directory by default) reads::

    {
      "format": "heritage-audio voice profiles",
      "version": 1,
      "encoder": "ge2e_speaker_encoder_int8.onnx sha256:...",
      "profiles": {
        "Guide Rossi": {
          "embedding": [256 floats: unit length, from the encoder named above],
          "seconds": 42.5,            # voiced audio the embedding was made from
          "sources": ["rossi-1.wav"], # file names it was enrolled from
          "enrolled": "2026-11-24T06:00:00+00:00"
        }
      }
    }

Profiles made by another encoder cannot be compared with its embeddings; they
are skipped with a warning when the file is read.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from detectors.speaker.clustering import Matrix, Vector, unit
from detectors.speaker.encoder import EMBEDDING_SIZE, ENCODER_MODELS, encoder_provenance

logger = logging.getLogger(__name__)

FORMAT = "heritage-audio voice profiles"
VERSION = 1
PROFILES_FILE = Path("speakers") / "profiles.json"
MAX_NAME = 64


@dataclass(frozen=True)
class VoiceProfile:
    """One enrolled voice."""

    name: str
    embedding: Vector
    seconds: float  # voiced audio enrolled (s)
    sources: tuple[str, ...] = ()
    enrolled: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def check_name(name: str) -> str:
    """``name`` stripped, or ``ValueError`` if it cannot label a speaker."""
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_NAME or not cleaned.isprintable():
        raise ValueError(f"a voice name is 1 to {MAX_NAME} printable characters, got {name!r}")
    if cleaned.startswith("Speaker_"):
        raise ValueError("names starting with 'Speaker_' are kept for unknown speakers")
    return cleaned


class ProfileStore:
    """Load, save, list and remove enrolled voices in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ProfileStore:
        """The store of the application data directory."""
        return cls(data_dir / PROFILES_FILE)

    def load(self) -> dict[str, VoiceProfile]:
        """Every usable profile by name (none if the file does not exist yet)."""
        if not self.path.exists():
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"voice profiles {self.path} are unreadable: {exc}") from None
        if document.get("format") != FORMAT or document.get("version") != VERSION:
            raise ValueError(f"{self.path} is not a version {VERSION} voice-profile file")
        # The shipped encoders embed voices alike (the int8 one is the float one quantised):
        # profiles enrolled with either serve both.
        if document.get("encoder") not in {encoder_provenance(p) for p in ENCODER_MODELS.values()}:
            logger.warning(
                "voice profiles in %s were made by another speaker encoder (%s): re-enroll them",
                self.path,
                document.get("encoder"),
            )
            return {}
        return {name: _profile(name, entry) for name, entry in document["profiles"].items()}

    def names(self) -> list[str]:
        """Enrolled names, sorted."""
        return sorted(self.load())

    def save(self, profile: VoiceProfile) -> None:
        """Add or replace ``profile``."""
        profiles = self.load()
        profiles[check_name(profile.name)] = profile
        self._write(profiles)

    def remove(self, name: str) -> bool:
        """Remove the profile ``name``; False if there was none."""
        profiles = self.load()
        if profiles.pop(name, None) is None:
            return False
        self._write(profiles)
        return True

    def _write(self, profiles: dict[str, VoiceProfile]) -> None:
        document = {
            "format": FORMAT,
            "version": VERSION,
            "encoder": encoder_provenance(),
            "profiles": {
                name: {
                    "embedding": [round(float(x), 7) for x in p.embedding],
                    "seconds": round(p.seconds, 2),
                    "sources": list(p.sources),
                    "enrolled": p.enrolled,
                }
                for name, p in sorted(profiles.items())
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write beside the target, then rename: readers see the old file or the new one.
        fd, tmp = tempfile.mkstemp(prefix=".profiles-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(document, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _profile(name: str, entry: dict[str, Any]) -> VoiceProfile:
    embedding = np.asarray(entry["embedding"], dtype=np.float32)
    if embedding.shape != (EMBEDDING_SIZE,) or not np.all(np.isfinite(embedding)):
        raise ValueError(f"voice profile {name!r} has no valid {EMBEDDING_SIZE}-d embedding")
    return VoiceProfile(
        name=name,
        embedding=unit(embedding),
        seconds=float(entry.get("seconds", 0.0)),
        sources=tuple(entry.get("sources", ())),
        enrolled=str(entry.get("enrolled", "")),
    )


def match_names(
    centroids: Matrix, profiles: dict[str, VoiceProfile], max_distance: float
) -> dict[int, str]:
    """Names for the speaker ``centroids`` that an enrolled voice matches within
    ``max_distance`` (cosine); each name goes to at most one speaker, closest pairs first."""
    if not profiles or len(centroids) == 0:
        return {}
    names = list(profiles)
    enrolled = np.stack([profiles[n].embedding for n in names])
    distances = 1.0 - centroids @ enrolled.T
    matches: dict[int, str] = {}
    for flat in np.argsort(distances, axis=None):
        speaker, profile = divmod(int(flat), len(names))
        if distances[speaker, profile] > max_distance:
            break
        if speaker not in matches and names[profile] not in matches.values():
            matches[speaker] = names[profile]
    return matches
