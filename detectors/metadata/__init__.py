"""Archival metadata of whole files: technical, content, cultural tags, Dublin Core."""

from detectors.metadata.dublin_core import ELEMENTS, validate_oai_dc
from detectors.metadata.generator import MetadataGenerator, generate_metadata

__all__ = ["ELEMENTS", "MetadataGenerator", "generate_metadata", "validate_oai_dc"]
