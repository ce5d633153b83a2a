"""The installed version of heritage-audio, for provenance and ``/health``."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("heritage-audio")
except PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "0.0.0+source"
