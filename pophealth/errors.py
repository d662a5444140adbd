"""The one error family of pophealth.

Every error the package raises on purpose derives from :class:`PopHealthError`, so callers (and the
CLI, which prints one clear line and exits 2 for these) can catch them in one place. Concrete
errors keep their builtin mixins (``ValueError``, ``KeyError``, ``FileNotFoundError``) so existing
``except ValueError`` code keeps working.
"""

from __future__ import annotations


class PopHealthError(Exception):
    """Base of every error pophealth raises on purpose (bad input, bad configuration, bad store)."""


class InputError(PopHealthError, ValueError):
    """Input data or parameters are wrong in a way the user can fix."""


class MissingFileError(PopHealthError, FileNotFoundError):
    """A file or folder the user named (or the run needs) does not exist."""


class OutputError(PopHealthError, OSError):
    """An output cannot be written (read-only folder, disk full, a path under a file)."""
