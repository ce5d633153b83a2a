"""The product brief's Python entry points, as MAXXI's scripts call them."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from sinks.maxxi import MAXXIConnector
from stream.sources import SourceError
from stream.system import ProductionAudioSystem
from tests.conftest import DATA


def test_comprehensive_analysis_then_maxxi_archive(tmp_path: Path) -> None:
    settings = Settings(HERITAGE_DATA_DIR=tmp_path, MAXXI_OUTPUT_DIR=tmp_path / "maxxi")
    result = ProductionAudioSystem(settings).process_audio_comprehensive(
        DATA / "vad_clean.flac", dublin_core={"title": "Gallery talk"}
    )
    assert set(result["results"]) == {
        "voice_activity", "speaker_recognition", "heritage_classification", "metadata_generation",
    }  # fmt: skip
    elements = result["results"]["metadata_generation"]["dublin_core"]["elements"]
    assert elements["title"] == ["Gallery talk"]
    connector = MAXXIConnector(settings)
    stored = connector.store_in_archive(connector.format_for_maxxi(result))
    assert stored.is_relative_to(tmp_path / "maxxi")
    assert result["task_id"] in stored.read_text()


def test_unreadable_audio_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        ProductionAudioSystem(Settings(HERITAGE_DATA_DIR=tmp_path)).process_audio_comprehensive(
            DATA / "not_audio.wav"
        )
