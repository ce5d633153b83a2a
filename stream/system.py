"""Entry points of the product brief, for existing MAXXI scripts and library users.

>>> from stream.system import ProductionAudioSystem
>>> result = ProductionAudioSystem().process_audio_comprehensive("interview.wav")
>>> from sinks.maxxi import MAXXIConnector
>>> connector = MAXXIConnector()
>>> connector.store_in_archive(connector.format_for_maxxi(result))
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

from config.pipeline import PipelineConfig, load_pipeline_config
from config.settings import Settings, load_settings
from stream.analyze import SECTIONS, analyze_file


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
