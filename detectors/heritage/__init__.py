"""Heritage classification: features, a calibrated classifier, the live detector, file results.

For library users::

    from detectors.heritage import HeritageClassifier
    section = HeritageClassifier().classify_file("recording.flac")
    section["predicted_category"], section["scores"], section["timeline"]
"""

from detectors.heritage.classifier import HeritageClassifier
from detectors.heritage.detector import HeritageConfig, HeritageDetector, heritage_provenance
from detectors.heritage.excerpt import VECTOR_VERSION, ExcerptFeaturizer
from detectors.heritage.features import FEATURE_NAMES, FEATURE_VERSION, Featurizer
from detectors.heritage.model import DEFAULT_MODEL, HeritageModel, ModelError, load_model
from detectors.heritage.registry import ModelRegistry, registry_dir
from detectors.heritage.results import heritage_classification, with_heritage

__all__ = [
    "DEFAULT_MODEL",
    "FEATURE_NAMES",
    "FEATURE_VERSION",
    "VECTOR_VERSION",
    "ExcerptFeaturizer",
    "Featurizer",
    "HeritageClassifier",
    "HeritageConfig",
    "HeritageDetector",
    "HeritageModel",
    "ModelError",
    "ModelRegistry",
    "heritage_classification",
    "heritage_provenance",
    "load_model",
    "registry_dir",
    "with_heritage",
]
