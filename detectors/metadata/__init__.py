"""Archival metadata of whole files: technical, content, cultural tags, Dublin Core."""

from detectors.metadata.dublin_core import ELEMENTS, check_curator_fields, validate_oai_dc
from detectors.metadata.generator import (
    MetadataGenerator,
    SignalAnalyzer,
    assemble,
    generate_metadata,
    metadata_for_result,
)

__all__ = [
    "ELEMENTS",
    "MetadataGenerator",
    "SignalAnalyzer",
    "assemble",
    "check_curator_fields",
    "generate_metadata",
    "metadata_for_result",
    "validate_oai_dc",
]
