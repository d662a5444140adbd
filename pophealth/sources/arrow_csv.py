"""Fast path of :func:`pophealth.sources.common.read_csv_columns`: pyarrow's CSV reader.

The pandas C parser turns every text cell into a Python string before pandas stores it as Arrow
text again; pyarrow's reader keeps text in Arrow buffers throughout (3-5x faster on the national
registrations files). The loaders, their checks and their error messages were written against
the C parser's output, so this path must give exactly that output or nothing:

* every wanted column is read as text, exactly as published (no cell becomes missing);
* text columns: empty cells become missing, as the C parser's ``na_values`` did;
* numeric columns get the C parser's inferred type, decided from the text: ``int64`` when every
  cell is an integer, ``float64`` when every cell is a decimal number, else text (``""`` kept);
* anything this path cannot decide the C parser's way (a number with spaces around it, ``nan``,
  ``inf``, ``True``, an integer beyond int64, a header on two lines, a repeated header, a
  one-column file, a row with too few or too many fields, bytes the encoding cannot decode, an
  empty table …) returns ``None``, and the caller reads the file with the C parser as before
  (same result, same errors). So does a file with many numeric columns
  (:data:`MAX_NUMERIC_COLUMNS`), which the C parser reads faster.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv

# the C parser's integers and decimal numbers (pandas' tokenizer: sign, digits, optional point
# and digits, optional exponent); matched against the whole cell
_INTEGER = r"^[+-]?[0-9]+$"
_DECIMAL = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
# every cell the C parser might read as a number or a boolean once spaces are trimmed (a
# superset: a column whose cells all match is left to the C parser itself)
_MAYBE_NUMBER = "|".join((_DECIMAL, r"^[+-]?inf(inity)?$", r"^(true|false)$"))
# a file with more numeric columns is left to the C parser (the GP workforce file's ~170): each
# column's type is decided here from its text, which costs more than the C parser's own reading
MAX_NUMERIC_COLUMNS = 16
# below this many distinct values, cells are classified by Python's re (see _all_match)
_FEW_VALUES = 512
# pyarrow's reader works in blocks of this size (fewer, larger chunks than its 1 MB default)
_BLOCK_BYTES = 1 << 24
# the first line must be the whole header row (read_header's row): looked for in this many bytes
_HEAD_BYTES = 1 << 16


def read_columns(
    path: Path,
    headers: Sequence[str],
    text: Iterable[str],
    encoding: str,
    published: Sequence[str],
) -> pd.DataFrame | None:
    """Read columns of a CSV with pyarrow as the pandas C parser would, or ``None``.

    Args:
        path: CSV file with a header row.
        headers: The headers to read (distinct, as published).
        text: Which of ``headers`` are text (``str``, empty cells missing); the others are
            numeric (the C parser's type inference).
        encoding: ``utf-8-sig`` or ``cp1252`` (:func:`pophealth.sources.common.detect_encoding`).
        published: The file's header row (:func:`pophealth.sources.common.read_header`).

    Returns:
        Columns by header, in ``headers`` order, with the C parser's dtypes and values; ``None``
        when the C parser must read the file (see the module docstring).
    """
    text = set(text)
    if len(set(headers) - text) > MAX_NUMERIC_COLUMNS:
        return None
    # pandas reads the first of repeated headers (pyarrow may not) and skips lines of spaces
    # (pyarrow reads them as a cell of a one-column file, and refuses them in a wider one)
    if len(published) < 2 or any(published.count(h) != 1 for h in headers):
        return None
    if not _header_on_first_line(path):
        return None
    try:
        table = pv.read_csv(
            path,
            read_options=pv.ReadOptions(
                # pyarrow skips a UTF-8 byte-order mark itself; other encodings are transcoded
                encoding="utf8" if encoding == "utf-8-sig" else encoding,
                block_size=_BLOCK_BYTES,
                # one thread: prepare reads releases in two processes at once, where the
                # reader's threads only add their own overhead
                use_threads=False,
            ),
            parse_options=pv.ParseOptions(newlines_in_values=True),
            convert_options=pv.ConvertOptions(
                include_columns=list(headers),
                column_types=dict.fromkeys(headers, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except Exception:  # noqa: BLE001 - whatever pyarrow refuses, the C parser reads (or reports)
        return None
    if table.num_rows == 0:
        return None  # the C parser's types of empty columns are its own
    columns: dict[str, object] = {}
    for header in headers:
        column = table.column(header)
        if header in text:
            columns[header] = _as_text(column, empty_missing=True)
            continue
        numbers = _inferred(column)
        if numbers is None:
            return None
        columns[header] = numbers
    return pd.DataFrame(columns, index=pd.RangeIndex(table.num_rows))


def _header_on_first_line(path: Path) -> bool:
    """Whether the header row ends at the first line break (no quoted line break inside it)."""
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0]
    if not ends:
        return False
    # an odd number of quotes leaves a quoted field open across the line break
    return head[: min(ends)].count(b'"') % 2 == 0


def _as_text(column: pa.ChunkedArray, *, empty_missing: bool) -> pd.api.extensions.ExtensionArray:
    """Arrow text as the C parser's ``str`` column (``empty_missing``: ``""`` cells missing)."""
    if empty_missing:
        empty = pc.equal(column, "")
        if pc.any(empty).as_py():
            column = pc.if_else(empty, pa.scalar(None, pa.string()), column)
    dtype = pd.api.types.pandas_dtype(str)
    if isinstance(dtype, pd.StringDtype):
        return dtype.__from_arrow__(column)
    # pandas without the Arrow-backed ``str`` type: Python strings, NaN where missing
    values = column.to_numpy(zero_copy_only=False).astype(object)
    values[pd.isna(values)] = np.nan
    return values


def _inferred(column: pa.ChunkedArray):
    """A numeric column typed as the C parser infers it, or ``None`` when that is not certain."""
    # the type follows from the distinct cells (a count column has a few thousand)
    distinct = column.unique()
    if _all_match(distinct, _INTEGER):
        if pc.any(pc.starts_with(distinct, "+")).as_py():
            column = pc.replace_substring_regex(column, r"^\+", "")
        try:
            return pc.cast(column, pa.int64()).to_numpy()
        except pa.ArrowInvalid:
            return None  # beyond int64: the C parser's unsigned or float types
    if _all_match(distinct, _DECIMAL):
        try:
            values = pc.cast(column, pa.float64()).to_numpy()
        except pa.ArrowInvalid:
            return None
        return values if np.isfinite(values).all() else None
    if _all_match(pc.utf8_trim_whitespace(distinct), _MAYBE_NUMBER, ignore_case=True):
        return None  # numbers with spaces, inf, booleans: the C parser decides
    return _as_text(column, empty_missing=False)


def _all_match(values: pa.Array, pattern: str, *, ignore_case: bool = False) -> bool:
    """Whether every value matches ``pattern`` in full."""
    if len(values) <= _FEW_VALUES:
        # Arrow compiles the pattern on every call, which costs more than a few Python matches
        regex = _compiled(pattern, ignore_case)
        return all(regex.fullmatch(value) for value in values.to_pylist())
    return bool(pc.all(pc.match_substring_regex(values, pattern, ignore_case=ignore_case)).as_py())


@functools.cache
def _compiled(pattern: str, ignore_case: bool) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
