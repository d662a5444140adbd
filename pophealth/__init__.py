"""pophealth: population health needs profiles for NHS England neighbourhoods, places and systems.

Typical interactive use::

    import pophealth
    data = pophealth.load("data/prepared")
    data.areas("neighbourhood")
    profile = data.profile("U12345")
"""

from pophealth._version import STORE_FORMAT, __version__

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
