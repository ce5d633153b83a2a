"""Entry points of the product brief, for existing MAXXI scripts and library users.

>>> from stream.system import ProductionAudioSystem
>>> result = ProductionAudioSystem().process_audio_comprehensive("interview.wav")
>>> from sinks.maxxi import MAXXIConnector
>>> connector = MAXXIConnector()
>>> connector.store_in_archive(connector.format_for_maxxi(result))
>>> from stream.system import SpeakerRecognition
>>> speakers = SpeakerRecognition(n_speakers=2).identify_speakers("interview.wav")
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from config.pipeline import PipelineConfig, load_pipeline_config
from config.settings import Settings, load_settings
from stream.analyze import SECTIONS, analyze_file

SPEAKERS = frozenset({"speaker_recognition"})


class ProductionAudioSystem:
    """A whole analysis in one call, as the HTTP API's ``comprehensive`` runs it."""

    def __init__(
        self, settings: Settings | None = None, config: PipelineConfig | None = None
    ) -> None:
        self.settings = settings or load_settings()
        self.config = config or load_pipeline_config(self.settings.HERITAGE_CONFIG)

    def process_audio_comprehensive(
        self,
        path: str | PathLike[str],
        *,
        n_speakers: int | None = None,
        dublin_core: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The result document: voice activity, speakers, heritage category and metadata.

        ``dublin_core``: curator-supplied elements (title, creator, rights, ...) merged
        into the generated ones. Raises :class:`stream.sources.SourceError` for
        unreadable audio.
        """
        return analyze_file(
            Path(path), self.config, n_speakers=n_speakers, sections=SECTIONS, curator=dublin_core
        )


class SpeakerRecognition:
    """The brief's speaker entry point: who speaks when in a file, over the same whole-file
    clustering as the ``speaker`` analysis (``n_speakers`` when known, else estimated).

    The clustering is fitted on each file it is given, so "training" is that fit:
    :meth:`train_speaker_clustering` and :meth:`identify_speakers` both return the file's
    ``speaker_recognition`` section (segments labelled ``Speaker_1``, ... or an enrolled
    voice's name, and ``speakers_detected``); the first also keeps it in :attr:`last`.
    """

    def __init__(
        self,
        n_speakers: int | None = None,
        settings: Settings | None = None,
        config: PipelineConfig | None = None,
    ) -> None:
        if n_speakers is not None and not 1 <= n_speakers <= 32:
            raise ValueError(f"n_speakers must be 1 to 32, not {n_speakers}")
        self.n_speakers = n_speakers
        self.settings = settings or load_settings()
        self.config = config or load_pipeline_config(self.settings.HERITAGE_CONFIG)
        self.last: dict[str, Any] | None = None

    def train_speaker_clustering(self, path: str | PathLike[str]) -> dict[str, Any]:
        """Fit the speaker clustering to ``path`` and return its speakers (kept in ``last``)."""
        self.last = self.identify_speakers(path)
        return self.last

    def identify_speakers(self, path: str | PathLike[str]) -> dict[str, Any]:
        """The ``speaker_recognition`` section of the result document for ``path``."""
        document = analyze_file(
            Path(path), self.config, n_speakers=self.n_speakers, sections=SPEAKERS
        )
        section: dict[str, Any] = document["results"]["speaker_recognition"]
        return section
