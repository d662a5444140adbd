"""The one error family of pophealth.

Every error the package raises on purpose derives from :class:`PopHealthError`, so callers (and the
CLI, which prints one clear line and exits 2 for these) can catch them in one place. Concrete
errors keep their builtin mixins (``ValueError``, ``KeyError``, ``FileNotFoundError``) so existing
``except ValueError`` code keeps working.
"""

from __future__ import annotations

import errno


class PopHealthError(Exception):
    """Base of every error pophealth raises on purpose (bad input, bad configuration, bad store)."""


class InputError(PopHealthError, ValueError):
    """Input data or parameters are wrong in a way the user can fix."""


class MissingFileError(PopHealthError, FileNotFoundError):
    """A file or folder the user named (or the run needs) does not exist."""


class OutputError(PopHealthError, OSError):
    """An output cannot be written (read-only folder, disk full, a path under a file)."""


_OUTPUT_FIXES = {
    errno.ENOSPC: ("the disk is full", "free space on that disk or choose another --out folder"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space or choose another --out folder"),
    errno.EROFS: ("the file system is read-only", "choose a writable --out folder"),
    errno.EACCES: ("permission denied", "choose a folder you can write to, or fix its permissions"),
    errno.EPERM: ("permission denied", "choose a folder you can write to, or fix its permissions"),
    errno.ENOTDIR: (
        "part of the path is a file, not a folder",
        "choose an --out path whose parents are folders",
    ),
    errno.EEXIST: (
        "a file stands where a folder should be",
        "remove that file or choose another --out folder",
    ),
    errno.EISDIR: ("a folder stands where a file should be", "remove that folder"),
}


def output_error(path: object, error: OSError) -> OutputError:
    """One clear :class:`OutputError` for an ``OSError`` raised while writing ``path``.

    Args:
        path: The file or folder being written.
        error: The operating system's error.

    Returns:
        An OutputError naming the path, what went wrong and the fix (``errno`` kept).
    """
    what, fix = _OUTPUT_FIXES.get(
        error.errno or 0, (error.strerror or str(error), "check the --out folder")
    )
    result = OutputError(f"cannot write {path}: {what}. Fix: {fix}.")
    result.errno = error.errno
    return result
