"""pophealth: population health needs profiles for NHS England neighbourhoods, places and systems.

Typical interactive use::

    import pophealth
    data = pophealth.load("data/prepared")
    data.areas("neighbourhood")
    profile = data.profile("U12345")
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pophealth")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

# Layout of the prepared store (files, columns, manifest keys). Bump it when a change means a
# store written by an older pophealth cannot be read; ``load`` then asks for a new ``prepare``.
STORE_FORMAT = 2

__all__ = ["STORE_FORMAT", "__version__", "load"]


def load(prepared_dir, **kwargs):
    """Load a prepared store and return a :class:`pophealth.api.PopHealthData`.

    Args:
        prepared_dir: Folder written by ``pophealth prepare``.
        **kwargs: Passed to :func:`pophealth.api.load`.

    Returns:
        The analyst-facing data object.
    """
    from pophealth.api import load as _load

    return _load(prepared_dir, **kwargs)
