"""Speaker recognition: the GE2E speaker encoder and its front end (no torch at run time)."""

from detectors.speaker.encoder import SpeakerEncoder, encoder_provenance

__all__ = ["SpeakerEncoder", "encoder_provenance"]
