"""Package version and prepared-store format, importable without importing the package façade."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pophealth")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

# Layout of the prepared store (files, columns, manifest keys). Bump it when a change means a
# store written by an older pophealth cannot be read; ``load`` then asks for a new ``prepare``.
STORE_FORMAT = 2
