"""File helpers shared by prepare, fetch, the CLI and the runner: checksums and atomic writes.

An atomic write goes to a temporary file in the target's folder and is moved into place with
``os.replace``: a process killed at any moment leaves the old file, the new file or a stray
``.<name>.*.tmp`` file, never a partial target. A write that fails for a reason the user can fix
(disk full, read-only folder, a path under a file, permission denied) raises one
:class:`~pophealth.errors.OutputError` naming the path and the fix.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pophealth.errors import OutputError, output_error

TEMP_SUFFIX = ".tmp"
_CHUNK_BYTES = 1 << 20


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; published outputs should get the usual umask-based mode.
_FILE_MODE = 0o666 & ~_current_umask()


def sha256_of(path: str | os.PathLike[str], chunk_size: int = _CHUNK_BYTES) -> str:
    """Return the SHA-256 hex digest of a file (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


# Faults of the file system being written (disk full, read-only, ...); raised while writing the
# temporary file they are about the output, whatever the body of the block was doing.
_WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}
)


def _is_write_fault(error: OSError, tmp: Path) -> bool:
    """Whether an ``OSError`` from inside an :func:`atomic_path` block is about writing ``tmp``.

    Errors naming another file (an input being read) or without an errno (network) are left as
    they are.
    """
    if isinstance(error, OutputError):
        return False
    if error.filename is not None:
        return os.fspath(error.filename) == os.fspath(tmp)
    return error.errno in _WRITE_ERRNOS


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; moved onto ``path`` when the block ends.

    On an error the temporary file is removed and ``path`` is left as it was.

    Raises:
        OutputError: The folder cannot be created or written, or the disk is full (naming
            ``path`` and the fix).
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
        )
        os.close(fd)
    except OSError as error:
        raise output_error(target, error) from error
    tmp = Path(tmp_name)
    try:
        if hasattr(os, "chmod"):
            os.chmod(tmp, _FILE_MODE)
        yield tmp
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and _is_write_fault(error, tmp):
            # disk full, read-only: one clear error naming the file; nothing partial is left
            raise output_error(target, error) from error
        raise
    try:
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise output_error(target, error) from error


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the move)."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))
