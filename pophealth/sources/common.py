"""Shared helpers for the source loaders: errors, header matching, CSV reading, parsing.

Only loaders read files. Every loader goes through these helpers so that all of them:

* match columns by their official labels after the same normalisation (never by position,
  except for the header-less ODS ``epraccur.csv``);
* fail with a :class:`SourceFormatError` naming the file, the column, example rows and a fix;
* read CSVs as the pandas C engine does, codes as ``str`` (pyarrow's reader where it gives the
  same columns, :mod:`pophealth.sources.arrow_csv`), so a million-row file reads in well under
  a second.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import datetime as dt
import difflib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.engines import pandas_engine

from pophealth.codes import isin
from pophealth.errors import PopHealthError
from pophealth.files import sha256_of
from pophealth.sources import arrow_csv

__all__ = [
    "ColumnPattern",
    "SourceColumns",
    "SourceFormatError",
    "header_key",
    "normalise_header",
    "parse_dates",
    "parse_numeric",
    "parse_numeric_columns",
    "read_csv_columns",
    "read_header",
    "read_source_csv",
    "resolve_columns",
    "sha256_of",
    "validate_output",
    "validated",
]

#: Tokens publishers use for a missing number (workforce: ``NA`` and, earlier, ``ND``).
MISSING_NUMBER_TOKENS: frozenset[str] = frozenset({"", "NA", "ND", "N/A", "NAN", "-", ".."})

_BOM = "\ufeff"
_MEASURES_SUFFIX = re.compile(r";\s*measures\s*:\s*value\s*$", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_COLON_SPACING = re.compile(r"\s*:\s*")


class SourceFormatError(PopHealthError, ValueError):
    """An official source file is not in the format its loader expects.

    The message names the file, the column (when one is at fault), example rows and a suggested fix.

    Attributes:
        path: The file that could not be read.
        column: The column at fault, if any.
    """

    def __init__(
        self,
        path: str | Path,
        problem: str,
        *,
        column: str | None = None,
        examples: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.column = column
        parts = [f"{self.path.name}: {problem}"]
        if column is not None:
            parts.append(f"column: {column!r}")
        if examples:
            parts.append(f"examples: {examples}")
        if fix:
            parts.append(f"fix: {fix}")
        parts.append(f"file: {self.path}")
        super().__init__("\n  ".join(parts))


# --------------------------------------------------------------------------------------------
# Header normalisation and matching
# --------------------------------------------------------------------------------------------


def normalise_header(text: object) -> str:
    """Return a header cell as published but tidied for comparison.

    Strips a UTF-8 byte-order mark, collapses runs of whitespace (including the newlines embedded in
    ePCN header cells) to single spaces, trims leading/trailing spaces, drops a Nomis
    ``; measures: Value`` suffix and makes the spacing after colons one space.

    Args:
        text: A header cell (anything; ``None`` becomes "").

    Returns:
        The tidied header, case preserved.
    """
    value = "" if text is None else str(text)
    value = value.replace(_BOM, "")
    value = _WHITESPACE.sub(" ", value).strip()
    value = _MEASURES_SUFFIX.sub("", value).strip()
    value = _COLON_SPACING.sub(": ", value).strip()
    return value


def header_key(text: object) -> str:
    """Return the comparison key of a header: normalised, lower case, ``_`` read as a space.

    ``NUMBER_OF_PATIENTS``, ``Number of Patients`` and ``Number of patients`` share one key.
    """
    value = normalise_header(text).replace("_", " ")
    return _WHITESPACE.sub(" ", value).strip().casefold()


class ColumnPattern:
    r"""A header to look for: exact labels (compared by :func:`header_key`) and/or regexes.

    Args:
        *labels: Official labels; any one of them matches.
        regex: Regular expressions matched in full against the header key (lower case,
            underscores as spaces), e.g. ``r"sicbl\d\dcd"`` for ``SICBL23CD``/``SICBL24CD``.
        prefix_min: Accept a header that is a truncated prefix of a label, at least this many
            characters long (the IoD2025 File 7 ships one header cut off at 80 characters).
    """

    def __init__(
        self, *labels: str, regex: Sequence[str] = (), prefix_min: int | None = None
    ) -> None:
        self.labels = tuple(labels)
        self.keys = tuple(header_key(label) for label in labels)
        self.regexes = tuple(re.compile(r, re.IGNORECASE) for r in regex)
        self.prefix_min = prefix_min

    def matches(self, key: str) -> bool:
        """Whether a header key matches this pattern."""
        if key in self.keys:
            return True
        if any(r.fullmatch(key) for r in self.regexes):
            return True
        if self.prefix_min is not None and len(key) >= self.prefix_min:
            return any(label_key.startswith(key) for label_key in self.keys)
        return False

    def describe(self) -> str:
        """Human-readable description for error messages."""
        shown = [repr(label) for label in self.labels]
        shown += [f"/{r.pattern}/" for r in self.regexes]
        return " or ".join(shown)


PatternLike = ColumnPattern | str | Sequence[str]


def _as_pattern(pattern: PatternLike) -> ColumnPattern:
    if isinstance(pattern, ColumnPattern):
        return pattern
    if isinstance(pattern, str):
        return ColumnPattern(pattern)
    return ColumnPattern(*pattern)


def resolve_columns(
    headers: Sequence[str],
    wanted: Mapping[str, PatternLike],
    path: str | Path,
    *,
    optional: Iterable[str] = (),
    source: str = "file",
) -> dict[str, str | None]:
    """Find each wanted column among a file's headers by its official label.

    Args:
        headers: The headers exactly as read from the file.
        wanted: Canonical name -> official label(s) or :class:`ColumnPattern`.
        path: The file (for error messages).
        optional: Canonical names that may be absent (mapped to ``None``).
        source: What the file should be, e.g. ``"GP registrations by LSOA"`` (for messages).

    Returns:
        Canonical name -> the matching header as it appears in the file (or ``None``).

    Raises:
        SourceFormatError: A required column is missing (close matches among the headers found are
            suggested) or two canonical columns would read the same header.
    """
    optional_names = set(optional)
    keys = [header_key(h) for h in headers]
    found: dict[str, str | None] = {}
    for canonical, pattern_like in wanted.items():
        pattern = _as_pattern(pattern_like)
        hits = [h for h, k in zip(headers, keys, strict=True) if pattern.matches(k)]
        if hits:
            found[canonical] = hits[0]
            continue
        if canonical in optional_names:
            found[canonical] = None
            continue
        raise missing_column_error(path, pattern, headers, source=source)
    return found


def missing_column_error(
    path: str | Path, pattern: ColumnPattern, headers: Sequence[str], *, source: str = "file"
) -> SourceFormatError:
    """Build the error for a required column that is not among a file's headers."""
    keys = {header_key(h): h for h in headers}
    close: list[str] = []
    for label_key in pattern.keys or tuple(r.pattern for r in pattern.regexes):
        for hit in difflib.get_close_matches(label_key, list(keys), n=3, cutoff=0.6):
            if keys[hit] not in close:
                close.append(keys[hit])
    shown_headers = ", ".join(repr(h) for h in list(headers)[:15])
    if len(headers) > 15:
        shown_headers += f", … ({len(headers)} columns)"
    if close:
        fix = (
            f"did you mean {', '.join(repr(c) for c in close)}? If the publisher renamed the "
            "column, add the new label to the loader's aliases; otherwise check this is the "
            f"official {source}"
        )
    else:
        fix = f"check this is the official {source} (headers found: {shown_headers})"
    return SourceFormatError(
        path,
        f"required column not found in this {source}",
        column=pattern.describe(),
        examples=f"headers found: {shown_headers}",
        fix=fix,
    )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) when the start decodes, else Windows-1252 (old ODS/NHS files)."""
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character may be cut at the end of the sample.
        if error.start < len(head) - 4:
            return "cp1252"
    return "utf-8-sig"


def read_header(path: str | Path) -> list[str]:
    """Return the first row of a CSV file exactly as published (BOM removed).

    Raises:
        SourceFormatError: The file is missing or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceFormatError(path, "file not found", fix="check the path and file name")
    with path.open("rb") as handle:
        start = handle.read(512)
    if start[:2] == b"\x1f\x8b" or start[:4] == b"PK\x03\x04":
        raise SourceFormatError(
            path,
            "this is a compressed (gzip or zip) file, not a CSV",
            fix="extract the CSV from the download and put that in the raw folder",
        )
    if start.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        raise SourceFormatError(
            path,
            "this is a web page (often a download error page), not the CSV",
            fix="download the file again from the publisher's page",
        )
    with path.open(encoding=detect_encoding(path), newline="", errors="replace") as handle:
        first = next(csv.reader(handle), None)
    if not first:
        raise SourceFormatError(path, "the file is empty", fix="download the file again")
    first[0] = first[0].replace(_BOM, "")
    return first


def read_csv_columns(
    path: str | Path,
    columns: Mapping[str, str | None],
    *,
    numeric: Iterable[str] = (),
) -> pd.DataFrame:
    """Read selected columns of a CSV as the pandas C engine does and rename them canonically.

    Text columns are read as ``str`` with nothing turned into NaN except empty cells, so codes such
    as ``NA`` or ``CLOSED`` survive as published. Columns listed in ``numeric`` get the C parser's
    type inference (``int64`` for clean integer columns, ``float64`` for clean decimals, else
    text); convert them with :func:`parse_numeric`, which handles whatever the parser could not.
    pyarrow's reader gives the same columns faster (:mod:`pophealth.sources.arrow_csv`); a file
    it cannot read exactly so is read by the C parser.

    Args:
        path: CSV file with a header row.
        columns: Canonical name -> header in the file (``None`` entries are skipped).
        numeric: Canonical names of numeric columns.

    Returns:
        DataFrame with canonical column names, in the order of ``columns``.
    """
    path = Path(path)
    present = {canonical: header for canonical, header in columns.items() if header is not None}
    numeric_names = set(numeric)
    headers = list(dict.fromkeys(present.values()))
    # a header some canonical column reads as text is text (as the C parser's dtype=str was)
    text = {h for c, h in present.items() if c not in numeric_names}
    encoding = detect_encoding(path)
    frame = arrow_csv.read_columns(path, headers, text, encoding, read_header(path))
    if frame is None:
        frame = _read_csv_c_engine(path, headers, text, encoding)
    check_not_cut_short(path)
    # Headers may carry a BOM or odd spacing; pandas keeps them verbatim, so select by position.
    return pd.DataFrame(
        {canonical: frame[header] for canonical, header in present.items()}, index=frame.index
    )


def _read_csv_c_engine(
    path: Path, headers: list[str], text: set[str], encoding: str
) -> pd.DataFrame:
    """The columns read by the pandas C engine (text as ``str``, empty text cells NaN).

    Raises:
        SourceFormatError: The C parser cannot read the file.
    """
    dtypes = {h: str for h in headers if h in text}
    try:
        return pd.read_csv(
            path,
            usecols=headers,
            dtype=dtypes,
            keep_default_na=False,
            na_values={h: [""] for h in dtypes},
            encoding=encoding,
            engine="c",
            low_memory=False,
        )
    except (pd.errors.ParserError, ValueError) as error:
        raise SourceFormatError(
            path, f"could not be read as CSV ({error})", fix="check the file is the official CSV"
        ) from error


def check_not_cut_short(path: str | Path) -> None:
    """Raise if the CSV's last row has fewer fields than its header (a file cut mid-row).

    The C parser fills the missing cells of a short last row with NaN, and a number cut in
    half still parses; a download that stopped mid-row must be an error, not a smaller count.

    Raises:
        SourceFormatError: Naming the file, the last line and how many fields it has.
    """
    path = Path(path)
    n_fields = len(read_header(path))
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(0, size - (1 << 16)))
        tail = handle.read()
    lines = [line for line in tail.replace(b"\r", b"").split(b"\n") if line.strip()]
    if len(lines) < 2 and size > (1 << 16):
        return  # one huge last line: nothing to compare safely
    if not lines:
        return
    last = lines[-1].decode(detect_encoding(path).replace("-sig", ""), errors="replace")
    fields = next(csv.reader([last]), [])
    if 1 < n_fields and len(fields) < n_fields:
        raise SourceFormatError(
            path,
            f"the file is cut short: its last row has {len(fields)} of the header's {n_fields} "
            "fields",
            examples=f"last line: {last[:120]!r}",
            fix="the download stopped part-way; download the file again",
        )


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def _cell_check(
    path: Path, column: str, values: pd.Series, header_rows: int
) -> Callable[[pd.Series, str, str], None]:
    """A check of one column's cells: ``refuse(mask, problem, fix)`` raises where ``mask`` holds.

    The error names the file, the column and the first offending lines; ``{n}`` in ``problem``
    becomes how many cells are at fault.
    """

    def refuse(mask: pd.Series, problem: str, fix: str) -> None:
        if mask.any():
            raise SourceFormatError(
                path,
                problem.format(n=int(mask.sum())),
                column=column,
                examples=_example_rows(path, values.index, values, mask, header_rows),
                fix=fix,
            )

    return refuse


def _example_rows(
    path: Path, frame_index: pd.Index, raw: pd.Series, mask: pd.Series, header_rows: int
) -> str:
    bad_positions = np.flatnonzero(mask.to_numpy())
    shown = []
    for position in bad_positions[:5]:
        # Line numbers as a spreadsheet shows them: header on line 1.
        shown.append(f"line {int(position) + 1 + header_rows}: {raw.iloc[position]!r}")
    more = f" (and {len(bad_positions) - 5} more)" if len(bad_positions) > 5 else ""
    return "; ".join(shown) + more


def parse_numeric(
    values: pd.Series,
    path: str | Path,
    column: str,
    *,
    integer: bool = False,
    allow_missing: bool = False,
    header_rows: int = 1,
) -> pd.Series:
    """Convert a column to numbers, accepting thousands separators and publishers' NA tokens.

    ``"29,199"`` -> 29199; ``NA``/``ND``/empty -> NaN (only when ``allow_missing``).

    Args:
        values: The column as read (numbers or strings).
        path: The file (for errors).
        column: The official column name (for errors).
        integer: Return ``int64`` (or nullable ``Int64`` when missing values are allowed).
        allow_missing: Whether missing tokens are acceptable.
        header_rows: Rows above the data (for line numbers in errors).

    Returns:
        ``float64``, ``int64`` or ``Int64`` series with the same index.

    Raises:
        SourceFormatError: Non-numeric or (for integers) fractional values, or missing values where
            none are allowed; the message gives line numbers and the offending cells.
    """
    path = Path(path)
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype("float64")
        missing_token = numbers.isna()
        bad_text = pd.Series(False, index=values.index)
    else:
        numbers, missing_token = _numbers_of_text(values)
        bad_text = numbers.isna() & ~missing_token
    refuse = _cell_check(path, column, values, header_rows)
    refuse(
        bad_text,
        "{n} non-numeric value(s) where numbers are expected",
        "check the file is not truncated or shifted and that this column holds numbers",
    )
    if not allow_missing:
        refuse(
            missing_token,
            "{n} missing value(s) where numbers are required",
            "fill or remove the incomplete rows, or download the file again",
        )
    if not integer:
        return numbers
    fractional = numbers.notna() & (numbers != np.floor(numbers))
    refuse(
        fractional,
        "fractional value(s) where whole counts are expected",
        "check the column holds counts",
    )
    if numbers.isna().any():
        return numbers.astype("Int64")
    return numbers.astype("int64")


def _numbers_of_text(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Published text cells as numbers, and which cells are missing tokens (``NA``, empty …).

    Each distinct cell is parsed once (an age or a count repeats across a million rows) and the
    results are spread back to the rows; the same steps as cell by cell.

    Returns:
        ``(numbers, missing_token)``: ``float64`` (NaN where not a number) and ``bool``, with
        the index of ``values``.
    """
    codes, uniques = _factorize_text(values)
    text = pd.Series(uniques, dtype=object).astype("string").str.strip()
    missing = (text.isna() | text.str.upper().isin(MISSING_NUMBER_TOKENS)).to_numpy(dtype=bool)
    parsed = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
    parsed = parsed.astype("float64").to_numpy()
    # a missing cell (code -1) takes the last slot: NaN and a missing token
    numbers = np.append(parsed, np.nan)[codes]
    missing_token = np.append(missing, True)[codes]
    return (
        pd.Series(numbers, index=values.index, dtype="float64", name=values.name),
        pd.Series(missing_token, index=values.index, dtype=bool, name=values.name),
    )


def _factorize_text(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` of a column's cells as Python objects (missing cells coded -1).

    A ``str`` column is factorised as it is (Arrow's dictionary encoding, no Python object per
    cell); the distinct values are the same Python strings either way.
    """
    if isinstance(values.dtype, pd.StringDtype):
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        return codes, np.asarray(uniques, dtype=object)
    return pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)


def parse_numeric_columns(
    frame: pd.DataFrame,
    path: str | Path,
    columns: Mapping[str, str],
    *,
    allow_missing: bool = False,
    header_rows: int = 1,
) -> pd.DataFrame:
    """Convert many columns to ``float64`` at once, as :func:`parse_numeric` does one by one.

    Wide files (the GP workforce detail has ~800 columns) would spend most of their load time on
    per-column overhead, so the text columns are parsed together in one pass. Any column with a
    bad cell is handed to :func:`parse_numeric`, in ``columns`` order, so errors (and their
    messages) are exactly those of parsing the columns one at a time.

    Args:
        frame: The columns as read (numbers or strings), by canonical name.
        path: The file (for errors).
        columns: Canonical name -> official column name (for errors), in the order to check.
        allow_missing: Whether missing tokens are acceptable.
        header_rows: Rows above the data (for line numbers in errors).

    Returns:
        ``float64`` frame with the canonical names of ``columns``, in that order, same index.

    Raises:
        SourceFormatError: As :func:`parse_numeric`, for the first column in error.
    """
    names = list(columns)
    n_rows = len(frame)
    values = np.empty((n_rows, len(names)), dtype="float64")
    bad = np.zeros(len(names), dtype=bool)
    text_positions = []
    for position, name in enumerate(names):
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column):
            values[:, position] = column.to_numpy(dtype="float64", na_value=np.nan)
            bad[position] = not allow_missing and bool(np.isnan(values[:, position]).any())
        else:
            text_positions.append(position)
    if text_positions:
        # One pass over every text cell: same steps as parse_numeric, column-major.
        text_columns = [frame[names[p]] for p in text_positions]
        if all(isinstance(c.dtype, pd.StringDtype) for c in text_columns):
            stacked = pd.concat(text_columns, ignore_index=True)  # Arrow text stays Arrow text
        else:
            stacked = pd.Series(np.concatenate([c.to_numpy(dtype=object) for c in text_columns]))
        numbers, missing_token = _numbers_of_text(stacked)
        failed = (numbers.isna() & ~missing_token) | (missing_token & (not allow_missing))
        shape = (len(text_positions), n_rows)
        values[:, text_positions] = numbers.to_numpy().reshape(shape).T
        bad[text_positions] = failed.to_numpy().reshape(shape).any(axis=1)
    for position in np.flatnonzero(bad):
        name = names[position]
        parse_numeric(
            frame[name],
            path,
            columns[name],
            allow_missing=allow_missing,
            header_rows=header_rows,
        )
    return pd.DataFrame(values, index=frame.index, columns=names)


_DATE_FORMATS = ("%d%b%Y", "%Y-%m-%d", "%Y%m%d", "%d/%m/%Y", "%Y-%m-%d %H:%M:%S", "%d-%b-%Y")


def _parse_one_date(value: object) -> pd.Timestamp | None:
    """Parse one published date; ``None`` when it matches no known format."""
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return pd.Timestamp(value).normalize()
    if isinstance(value, (int, np.integer)) or (
        isinstance(value, (float, np.floating)) and float(value).is_integer()
    ):
        value = str(int(value))
    text = str(value).strip()
    for fmt in _DATE_FORMATS:
        try:
            return pd.Timestamp(dt.datetime.strptime(text, fmt)).normalize()
        except ValueError:
            continue
    return None


def parse_dates(
    values: pd.Series,
    path: str | Path,
    column: str,
    *,
    allow_missing: bool = True,
    header_rows: int = 1,
) -> pd.Series:
    """Parse published dates to ``datetime64[ns]`` at midnight.

    Accepts ``04JAN2021``, ``01Jan2022``, ISO ``2025-10-01``, ``yyyymmdd`` numbers or strings
    (``20191001``, ``20191001.0``), ``01/04/1974`` and Excel datetimes. Each distinct value is
    parsed once, so a million rows sharing one extract date cost nothing.

    Raises:
        SourceFormatError: A value matches no known format (or is missing when not allowed).
    """
    path = Path(path)
    # Factorise first: each distinct published value is parsed once (no per-row Python).
    codes, uniques = _factorize_text(values)
    parsed_uniques: list[pd.Timestamp | None] = []
    unparsed: set[int] = set()
    for position, unique in enumerate(uniques):
        if isinstance(unique, str) and not unique.strip():
            parsed_uniques.append(pd.NaT)
            continue
        parsed = _parse_one_date(unique)
        if parsed is None:
            unparsed.add(position)
            parsed = pd.NaT
        parsed_uniques.append(parsed)
    refuse = _cell_check(path, column, values, header_rows)
    refuse(
        pd.Series(np.isin(codes, list(unparsed)), index=values.index),
        "unrecognised date(s)",
        "dates must look like 04JAN2021, 01Jan2022, 2025-10-01 or 20191001",
    )
    lookup = np.array(
        [np.datetime64("NaT") if p is pd.NaT else p.to_datetime64() for p in parsed_uniques]
        + [np.datetime64("NaT")],
        dtype="datetime64[ns]",
    )
    result = pd.Series(lookup[codes], index=values.index, name=values.name)
    if not allow_missing:
        refuse(result.isna(), "missing date(s)", "every row needs a date in this column")
    return result


# Codes fixed by clean_codes while a prepare step counts them (see counting_code_fixes).
_CODE_FIXES: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "pophealth_code_fixes", default=None
)


@contextlib.contextmanager
def counting_code_fixes() -> Iterator[list[int]]:
    """Count the code cells :func:`clean_codes` trims or upper-cases inside the block.

    Yields:
        A one-element list holding the count (read it after the block).
    """
    counter = [0]
    token = _CODE_FIXES.set(counter)
    try:
        yield counter
    finally:
        _CODE_FIXES.reset(token)


def clean_codes(values: pd.Series) -> pd.Series:
    """Codes as published, made joinable: spaces trimmed, upper-cased, empty cells NaN.

    ODS and ONS codes are upper-case by definition (``Y90001``, ``E01000001``), so a code that
    only differs in case or surrounding spaces is the same code. Each fix is counted (see
    :func:`counting_code_fixes`) so ``prepare`` reports how many codes it changed.
    """
    raw = values.astype("str")
    text = raw.str.strip().str.upper()
    counter = _CODE_FIXES.get()
    if counter is not None:
        counter[0] += int((raw.notna() & (raw != text)).sum())
    return text.mask(text.isna() | (text == ""))


def clean_text(values: pd.Series) -> pd.Series:
    """Published text (names, roles, data-source labels): spaces trimmed, empty cells NaN.

    Unlike :func:`clean_codes`, case is kept and nothing is counted as a code fix.
    """
    text = values.astype("str").str.strip()
    return text.mask(text.isna() | (text == ""))


# --------------------------------------------------------------------------------------------
# Validation and provenance
# --------------------------------------------------------------------------------------------


def validate_output(frame: pd.DataFrame, schema: pa.DataFrameSchema, path: str | Path) -> None:
    """Check a loader's output against its declared canonical schema.

    Raises:
        SourceFormatError: The output breaks the schema (names the file and the failing column).
    """
    if plainly_valid(frame, schema):
        return
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        column = None
        examples = None
        if len(cases):
            column = str(cases["column"].iloc[0])
            examples = "; ".join(
                f"{row.check}: {row.failure_case!r}" for row in cases.head(5).itertuples()
            )
        raise SourceFormatError(
            path,
            f"loaded data break the {schema.name or 'canonical'} schema",
            column=column,
            examples=examples,
            fix="check this is the right official file for this loader",
        ) from errors


def plainly_valid(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> bool:
    """Whether ``frame`` meets a loader's ``schema``, decided by a few vectorised tests.

    A shortcut of :func:`validate_output` (pandera runs each check through its machinery, a
    large part of a loader's time on national files): true only when pandera would accept the
    frame too. It knows the schemas loaders declare (:func:`canonical_schema`: exactly these
    columns in this order, each with pandera's own dtype test, nullability, uniqueness and the
    built-in ``ge``, ``in_range``, ``isin`` and ``str_matches`` checks); for anything else, and
    any frame it does not plainly accept, pandera decides and names the problems.
    """
    try:
        if schema.checks or schema.unique or schema.index is not None or schema.dtype is not None:
            return False
        if not (schema.strict is True and schema.ordered and not schema.coerce):
            return False
        if list(frame.columns) != list(schema.columns):  # exactly these, in order, once each
            return False
        for name, column in schema.columns.items():
            if column.regex or column.coerce or column.parsers:
                return False
            values = frame[name]
            if column.unique and not values.is_unique:  # pandera's test (missing values too)
                return False
            if column.dtype is not None:
                matches = column.dtype.check(pandas_engine.Engine.dtype(values.dtype), values)
                if not bool(matches if isinstance(matches, bool) else matches.all()):
                    return False
            present = values.notna().to_numpy()
            if not present.all():
                if not column.nullable:
                    return False
                values = values[present]
            if not all(_check_passes(check, values) for check in column.checks):
                return False
    except Exception:  # noqa: BLE001 - pandera decides, and says why
        return False
    return True


def _check_passes(check: pa.Check, values: pd.Series) -> bool:
    """Whether a built-in pandera check holds for every (non-missing) value; False if unknown."""
    if not check.ignore_na or check.element_wise or check.groupby is not None:
        return False
    stats = check.statistics
    if check.name == "greater_than_or_equal_to":
        return bool((values >= stats["min_value"]).all())
    if check.name == "in_range":
        low = values >= stats["min_value"] if stats["include_min"] else values > stats["min_value"]
        high = values <= stats["max_value"] if stats["include_max"] else values < stats["max_value"]
        return bool((low & high).all())
    if check.name == "isin":
        return bool(isin(values, list(stats["allowed_values"])).all())
    if check.name == "str_matches":  # pandera's own call
        return bool(values.str.match(stats["pattern"], na=False).all())
    return False


def code_column(*, nullable: bool = False, **kwargs: object) -> pa.Column:
    """A pandera column for codes/names (``str``)."""
    return pa.Column(str, nullable=nullable, **kwargs)


def check_no_repeats(
    frame: pd.DataFrame,
    keys: Sequence[str],
    path: str | Path,
    *,
    column: str,
    fix: str,
    what: str | None = None,
) -> None:
    """Refuse a loaded table in which a key (e.g. a practice, or a practice and register) repeats.

    Args:
        frame: The loaded table.
        keys: Canonical columns that name one row.
        path: The file (for the message).
        column: The published column to name in the message.
        fix: What to do about it (two extracts concatenated, two years …).
        what: The key in words, e.g. ``"a practice code"`` (default: ``a <keys joined by and>``).

    Raises:
        SourceFormatError: Naming how many rows repeat and up to five repeated keys.
    """
    repeated = frame.duplicated(list(keys), keep=False)
    if repeated.any():
        shown = frame.loc[repeated, list(keys)].drop_duplicates().head(5)
        raise SourceFormatError(
            path,
            f"{int(repeated.sum())} rows repeat {what or 'a ' + ' and '.join(keys)}",
            column=column,
            examples="; ".join(" ".join(map(str, r)) for r in shown.itertuples(index=False)),
            fix=fix,
        )


def code_columns(*names: str, nullable: bool = True) -> dict[str, pa.Column]:
    """Pandera columns for several codes/names at once, in order (nullable by default).

    Most canonical tables carry a run of optional codes and names (PCN, sub-ICB, ICB …); one call
    declares the run, e.g. ``{**code_columns("pcn_code", "pcn_name"), ...}``.
    """
    return {name: code_column(nullable=nullable) for name in names}


def date_column(*, nullable: bool = True) -> pa.Column:
    """A pandera column for dates (``datetime64[ns]``)."""
    return pa.Column("datetime64[ns]", nullable=nullable)


def canonical_schema(name: str, columns: Mapping[str, pa.Column]) -> pa.DataFrameSchema:
    """A strict, ordered schema: exactly these columns in this order."""
    return pa.DataFrameSchema(dict(columns), strict=True, ordered=True, name=name)


# --------------------------------------------------------------------------------------------
# One loader's file: read, find columns, parse, validate
# --------------------------------------------------------------------------------------------


def validated(frame: pd.DataFrame, schema: pa.DataFrameSchema, path: str | Path) -> pd.DataFrame:
    """Return a loader's output with a fresh 0..n-1 index, checked by :func:`validate_output`."""
    out = frame.reset_index(drop=True)
    validate_output(out, schema, path)
    return out


@dataclass(frozen=True)
class SourceColumns:
    """The wanted columns of one official CSV, as read and named canonically.

    Every loader reads its file the same way (find the columns by their official labels, read
    them, parse them naming the published header in errors); this holds what that needs so each
    loader only says what is particular to its source. Build one with :func:`read_source_csv`.

    Attributes:
        path: The file (named by every error).
        raw: The columns as read, by canonical name (absent optional columns are not there).
        headers: Canonical name -> header as published (``None`` for an absent optional column).
    """

    path: Path
    raw: pd.DataFrame
    headers: Mapping[str, str | None]

    def __contains__(self, name: object) -> bool:
        return name in self.raw

    def __getitem__(self, name: str) -> pd.Series:
        return self.raw[name]

    def label(self, name: str) -> str:
        """The header of a canonical column as published (what errors name)."""
        return str(self.headers[name])

    def rows(self, keep: pd.Series) -> SourceColumns:
        """The same columns restricted to the rows where ``keep`` is true."""
        return replace(self, raw=self.raw.loc[keep])

    def column(self, name: str, clean: Callable[[pd.Series], pd.Series] | None = None) -> pd.Series:
        """A column passed through ``clean``; all-NA text where an optional column is absent."""
        if name not in self.raw:
            return pd.Series(pd.NA, index=self.raw.index, dtype="str")
        return self.raw[name] if clean is None else clean(self.raw[name])

    def codes(self, name: str) -> pd.Series:
        """A code column made joinable by :func:`clean_codes` (all-NA when absent)."""
        return self.column(name, clean_codes)

    def text(self, name: str) -> pd.Series:
        """A name or label column with surrounding spaces trimmed (all-NA when absent)."""
        return self.column(name, lambda values: values.str.strip())

    def numbers(
        self, name: str, *, integer: bool = False, allow_missing: bool = False
    ) -> pd.Series:
        """A numeric column parsed by :func:`parse_numeric` (errors name the published header)."""
        return parse_numeric(
            self.raw[name],
            self.path,
            self.label(name),
            integer=integer,
            allow_missing=allow_missing,
        )

    def dates(self, name: str, *, allow_missing: bool = True) -> pd.Series:
        """A date column parsed by :func:`parse_dates` (errors name the published header)."""
        return parse_dates(self.raw[name], self.path, self.label(name), allow_missing=allow_missing)

    def check_no_repeats(
        self, frame: pd.DataFrame, keys: Sequence[str], *, fix: str, what: str | None = None
    ) -> None:
        """:func:`check_no_repeats` for a table read from this file (names the last key)."""
        check_no_repeats(frame, keys, self.path, column=self.label(keys[-1]), fix=fix, what=what)

    def output(self, frame: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
        """The loader's result: ``frame`` re-indexed and checked against ``schema``."""
        return validated(frame, schema, self.path)


def read_source_csv(
    path: str | Path,
    wanted: Mapping[str, PatternLike],
    *,
    source: str,
    optional: Iterable[str] = (),
    numeric: Iterable[str] = (),
) -> SourceColumns:
    """Read the wanted columns of an official CSV, found by their official labels.

    Args:
        path: The CSV file.
        wanted: Canonical name -> official label(s) or :class:`ColumnPattern`.
        source: What the file should be (for messages), as in :func:`resolve_columns`.
        optional: Canonical names that may be absent.
        numeric: Canonical names left to the C parser's number inference (see
            :func:`read_csv_columns`).

    Returns:
        The columns read, with their published headers and the path.

    Raises:
        SourceFormatError: The file is missing, not a CSV, cut short or lacks a required column.
    """
    path = Path(path)
    headers = resolve_columns(read_header(path), wanted, path, optional=optional, source=source)
    return SourceColumns(path, read_csv_columns(path, headers, numeric=numeric), headers)


#: An ODS organisation code (headerless ODS files start with one).
ODS_CODE = re.compile(r"^[A-Z0-9]{3,8}$")


def headerless_fields(
    raw: pd.DataFrame, fields: dict[str, int]
) -> tuple[dict[str, pd.Series], int]:
    """Fields of a headerless ODS file by their 1-based positions, past an added header row.

    ODS files have no header; a row whose first cell is not an ODS code is one someone added
    (skipped, and counted so error messages give the file's own line numbers).

    Returns:
        ``(columns by field name, header rows skipped)``.
    """
    header_rows = 0
    if len(raw) and not ODS_CODE.match(str(raw.iloc[0, 0]).strip().upper()):
        raw = raw.iloc[1:]
        header_rows = 1
    return {name: raw[position - 1] for name, position in fields.items()}, header_rows
