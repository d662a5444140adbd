"""The installed package version, importable by any module without importing the package façade."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pophealth")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"
