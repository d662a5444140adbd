"""Store-wide derived tables computed once per batch run and read by every warm kernel.

A batch run's kernels each load the store and build the same store-wide tables before their
first profile: the indicator table (~3.5 s at England scale) and, with a release history, the
indicator table of every period (~75 s for 12 monthly periods). The runner's own process
computes them anyway (the run's workbooks and manifest need them), so it writes them to a
temporary folder and points its kernels there (:data:`SHARED_TABLES_ENV`); a kernel reads a table
instead of building it when the file was written from the same store, options and pophealth
version (the file's name carries that key), and builds it itself otherwise.

The tables are parquet files written atomically; what is read back is the same table
(:func:`read_shared_table` checks the columns and restores each column's dtype).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pophealth.files import atomic_write_bytes
from pophealth.store import python_strings

#: Environment variable naming the folder of shared tables (set by the runner for its kernels).
SHARED_TABLES_ENV = "POPHEALTH_SHARED_TABLES"
#: The tables shared: ``PopHealthData`` attributes.
SHARED_TABLES = ("indicator_table", "indicator_history", "membership_changes", "trend_words")
_DTYPES_KEY = b"pophealth.dtypes"


def shared_tables_dir() -> Path | None:
    """The folder named by :data:`SHARED_TABLES_ENV`, or None when unset."""
    value = os.environ.get(SHARED_TABLES_ENV, "").strip()
    return Path(value) if value else None


def tables_key(parts: dict) -> str:
    """A short key of everything a store-wide table depends on (store, options, version)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def shared_table_path(folder: Path, name: str, key: str) -> Path:
    """Where table ``name`` computed under ``key`` is kept in ``folder``."""
    return Path(folder) / f"{name}-{key}.parquet"


def write_shared_table(frame: pd.DataFrame, folder: Path, name: str, key: str) -> Path:
    """Write ``frame`` for the kernels of a run (atomically; the dtypes kept in its metadata).

    Args:
        frame: The table (a ``PopHealthData`` attribute named in :data:`SHARED_TABLES`).
        folder: The run's shared-tables folder (created if needed).
        name: The attribute's name.
        key: :func:`tables_key` of the store and options it was computed from.

    Returns:
        The file written.
    """
    path = shared_table_path(folder, name, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{name}-*.parquet"):  # from an earlier store or version
        if stale != path:
            stale.unlink(missing_ok=True)
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    dtypes = {str(c): str(t) for c, t in frame.dtypes.items()}
    metadata = {**(table.schema.metadata or {}), _DTYPES_KEY: json.dumps(dtypes).encode()}
    table = table.replace_schema_metadata(metadata)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="lz4")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return path


def read_shared_table(folder: Path, name: str, key: str) -> pd.DataFrame | None:
    """Table ``name`` as the runner's process computed it, or None when it has no such file.

    An unreadable file (truncated, not parquet) gives a warning naming it and None: the caller
    builds the table itself.

    Text is held as Python strings, as in tables the kernel builds itself
    (:func:`pophealth.store.python_strings`); object columns come back as object columns.
    """
    path = shared_table_path(folder, name, key)
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        # the kernel can build the table itself: slower, never wrong
        warnings.warn(
            f"{path}: the shared {name} could not be read ({error}); building it in this "
            "process instead. Run the profiles again to share it afresh.",
            stacklevel=2,
        )
        return None
    dtypes = json.loads((table.schema.metadata or {}).get(_DTYPES_KEY, b"{}"))
    with python_strings():
        frame = table.to_pandas()
    for column, dtype in dtypes.items():
        if column in frame and dtype == "object" and frame[column].dtype != object:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


__all__ = [
    "SHARED_TABLES",
    "SHARED_TABLES_ENV",
    "read_shared_table",
    "shared_table_path",
    "shared_tables_dir",
    "tables_key",
    "write_shared_table",
]
