"""Fast look-ups of code columns (practice, LSOA, area codes) at national scale.

pandas 3 stores text as Arrow strings: ``Series.isin`` boxes every wanted value as an Arrow
scalar in Python and a hash look-up converts a million-row column to Python strings. These
helpers factorise the big column in Arrow and look up only its distinct codes. Results are
those of ``isin`` and ``Index.get_indexer``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


def positions(codes: pd.Series | pd.Index | np.ndarray, keys: Iterable) -> np.ndarray:
    """Position of each code in ``keys`` (unique), -1 where absent or missing.

    Args:
        codes: The column to look up (any length).
        keys: Unique codes, e.g. a store table's key column.

    Returns:
        Integer positions aligned with ``codes``, as ``pd.Index(keys).get_indexer(codes)``.
    """
    found, distinct = pd.factorize(codes)
    where = pd.Index(keys).get_indexer(distinct)
    if not len(where):
        return np.full(len(found), -1, dtype=np.intp)
    return np.where(found >= 0, where[np.maximum(found, 0)], -1)


def isin(codes: pd.Series | pd.Index | np.ndarray, wanted: Iterable) -> np.ndarray:
    """Boolean mask: which ``codes`` are in ``wanted``, as ``Series.isin``.

    Args:
        codes: The column to test.
        wanted: Codes to find (set, list, array or Series; duplicates allowed).

    Returns:
        A boolean array aligned with ``codes`` (a missing code matches only when ``wanted``
        holds a missing value, as with ``isin``).
    """
    if isinstance(wanted, set | frozenset):
        wanted = list(wanted)
    wanted = pd.Series(wanted, dtype=object)
    keys = pd.Index(pd.unique(wanted.dropna()))
    found, distinct = pd.factorize(codes)
    present = keys.get_indexer(pd.Index(distinct, dtype=object)) >= 0
    mask = (found >= 0) & present[np.maximum(found, 0)] if len(present) else found < -1
    if wanted.isna().any():
        mask |= found < 0
    return mask


def map_codes(codes: pd.Series, mapping: pd.Series) -> pd.Series:
    """``codes.map(mapping)``, looked up once per distinct code.

    A million registrations rows hold a few thousand practices: mapping the distinct codes and
    spreading the results is the same Series (values, dtype, index and name) at a fraction of
    the cost.

    Args:
        codes: The column to map.
        mapping: Values indexed by code (as for ``Series.map``).

    Returns:
        What ``codes.map(mapping)`` returns.
    """
    if not isinstance(codes.dtype, pd.StringDtype) or mapping.index.hasnans:
        return codes.map(mapping)  # the shortcut is for text codes (and a mapping without NaN)
    found, distinct = pd.factorize(codes, use_na_sentinel=False)  # a missing code is one too
    mapped = pd.Series(distinct, dtype=codes.dtype).map(mapping)
    return pd.Series(mapped.array.take(found), index=codes.index, name=codes.name)
