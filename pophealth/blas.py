"""One BLAS thread for small, many-times-repeated linear algebra (the QOF model fits).

numpy's OpenBLAS splits every matrix product over all cores. For the recorded-vs-expected model
(a Newton step is a ~6,000 x 41 product, 42 fits of a few steps each) the threads cost more
than they save, and on a busy machine (two cores, another job running) a product waits for a
descheduled thread: the national fits took 14 s instead of 1 s. :func:`one_thread` limits
OpenBLAS to one thread inside a block, as ``threadpoolctl`` would (not a dependency), and does
nothing where no OpenBLAS is loaded. Results agree with the threaded ones to rounding.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from pathlib import Path

# (getter, setter) symbol names of the OpenBLAS builds numpy and scipy wheels ship
_SYMBOLS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


def _loaded_openblas() -> list[tuple]:
    """(get, set) functions of every OpenBLAS library loaded in this process."""
    maps = Path("/proc/self/maps")
    if not maps.exists():  # not Linux: leave the threads as they are
        return []
    paths = sorted(
        {line.split()[-1] for line in maps.read_text().splitlines() if "openblas" in line.lower()}
    )
    found = []
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for getter, setter in _SYMBOLS:
            if hasattr(library, getter) and hasattr(library, setter):
                found.append((getattr(library, getter), getattr(library, setter)))
                break
    return found


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with OpenBLAS limited to one thread (restored afterwards)."""
    import numpy  # noqa: F401 - load numpy's OpenBLAS so that it is found

    libraries = _loaded_openblas()
    before = [get() for get, _ in libraries]
    for _, set_threads in libraries:
        set_threads(1)
    try:
        yield
    finally:
        for (_, set_threads), threads in zip(libraries, before, strict=True):
            set_threads(threads)
