"""pyarrow's CSV fast path gives exactly the pandas C parser's columns, or nothing."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pophealth.sources import arrow_csv, common

# cells where the two parsers could differ: numbers the C parser reads and pyarrow would not (or
# the other way round), missing-value tokens, codes, text needing quotes, non-ASCII text
CELLS = [
    "",
    " ",
    "NA",
    "N/A",
    "nan",
    "NaN",
    "inf",
    "-Infinity",
    "1",
    "+1",
    "-1",
    "-0",
    "007",
    "12",
    "1.5",
    ".5",
    "5.",
    "1e3",
    "1E-2",
    "0.7008",
    " 2 ",
    "2 ",
    "0x10",
    "1_0",
    "1,234",
    "True",
    "false",
    "CLOSED",
    "E01000001",
    "W01000001",
    "Y90001",
    "café",
    "9223372036854775808",
    "12345678901234567890",
    "a, b",
    'say "hi"',
    "two\nlines",
]
NUMERIC = ["1", "-3", "007", "12", "450", "+2"]
DECIMAL = ["1.5", ".5", "0.7008", "1e3", "12", "3.25E-1"]


def _write(path: Path, rows: list[list[str]], *, encoding: str, quoting: int, newline: str):
    buffer = io.StringIO(newline="")
    csv.writer(buffer, quoting=quoting, lineterminator=newline).writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))


def _both(path: Path, headers: list[str], text: set[str]):
    """The fast path's columns and the C parser's (None where the C parser refuses the file)."""
    encoding = common.detect_encoding(path)
    fast = arrow_csv.read_columns(path, headers, text, encoding, common.read_header(path))
    try:
        reference = common._read_csv_c_engine(path, headers, text, encoding)[headers]
    except common.SourceFormatError:
        reference = None
    return fast, reference


column_cells = st.one_of(
    st.lists(st.sampled_from(CELLS), min_size=1, max_size=8),
    st.lists(st.sampled_from(NUMERIC), min_size=1, max_size=8),
    st.lists(st.sampled_from(DECIMAL), min_size=1, max_size=8),
    st.lists(st.sampled_from([*NUMERIC, *DECIMAL, "", "NA"]), min_size=1, max_size=8),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    columns=st.lists(column_cells, min_size=1, max_size=4),
    numeric=st.lists(st.booleans(), min_size=4, max_size=4),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_fast_path_reads_as_the_c_parser(tmp_path, columns, numeric, encoding, quoting, newline):
    rows = max(len(c) for c in columns)
    headers = [f"COL_{i}" for i in range(len(columns))]
    body = [[c[r % len(c)] for c in columns] for r in range(rows)]
    path = tmp_path / "file.csv"
    _write(path, [headers, *body], encoding=encoding, quoting=quoting, newline=newline)
    text = {h for h, is_number in zip(headers, numeric, strict=False) if not is_number}
    fast, reference = _both(path, headers, text)
    if reference is None:  # what the C parser refuses, the fast path leaves to it
        assert fast is None
    elif fast is not None:
        pd.testing.assert_frame_equal(fast, reference, check_exact=True)


def test_fast_path_reads_clean_files_itself(tmp_path):
    path = tmp_path / "gp-reg-pat-prac-lsoa-all.csv"
    rows = [
        ["EXTRACT_DATE", "PRACTICE_CODE", "LSOA_CODE", "NUMBER_OF_PATIENTS", "FTE"],
        ["2025-10-01", "Y90001", "E01000001", "561", "0.5"],
        ["2025-10-01", "Y90001", "", "+7", "1e-1"],
        ["2025-10-01", "y90002 ", "NA", "0", "2"],
    ]
    _write(path, rows, encoding="utf-8-sig", quoting=csv.QUOTE_MINIMAL, newline="\r\n")
    fast, reference = _both(path, rows[0], set(rows[0][:3]))
    assert fast is not None  # pyarrow read it
    pd.testing.assert_frame_equal(fast, reference, check_exact=True)
    assert fast["NUMBER_OF_PATIENTS"].dtype == np.int64 and fast["FTE"].dtype == np.float64
    assert fast["LSOA_CODE"].tolist()[1:] == [np.nan, "NA"]  # empty is missing, NA is a code


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("A,B\n1,x\n2\n", "a short row: the C parser fills it with NaN"),
        ("A,B\n1,x\n2,y,z\n", "a long row: the C parser's own error"),
        ('"A\nX",B\n1,x\n', "a header over two lines"),
        ("A,A\n1,2\n", "a repeated header"),
        ("A,B\n 1 ,x\n", "a number with spaces (the C parser reads it as a number)"),
        ("A,B\n", "no rows"),
    ],
)
def test_fast_path_leaves_what_it_cannot_match_to_the_c_parser(tmp_path, content, why):
    path = tmp_path / "file.csv"
    path.write_text(content)
    headers = list(dict.fromkeys(common.read_header(path)))
    found = common.read_header(path)
    assert arrow_csv.read_columns(path, headers, {"B"}, "utf-8-sig", found) is None, why


def test_cp1252_file_is_read_as_the_c_parser_reads_it(tmp_path):
    path = tmp_path / "epraccur-like.csv"
    path.write_bytes("CODE,NAME,N\nA81001,THE DENSHAM SURGERY \u2013 ST\xe9,3\n".encode("cp1252"))
    assert common.detect_encoding(path) == "cp1252"
    fast, reference = _both(path, ["CODE", "NAME", "N"], {"CODE", "NAME"})
    assert fast is not None
    pd.testing.assert_frame_equal(fast, reference, check_exact=True)
    assert fast["NAME"].iloc[0] == "THE DENSHAM SURGERY \u2013 ST\xe9"


def test_read_csv_columns_of_every_demo_csv_matches_the_c_parser(demo_raw, monkeypatch):
    checked = 0
    for path in sorted(demo_raw.rglob("*.csv")):
        headers = list(dict.fromkeys(common.read_header(path)))
        # every column once as text and once left to type inference
        for text in (set(headers), set()):
            columns = {f"c{i}": h for i, h in enumerate(headers)}
            numeric = [] if text else list(columns)
            fast = common.read_csv_columns(path, columns, numeric=numeric)
            with monkeypatch.context() as patched:
                patched.setattr(arrow_csv, "read_columns", lambda *_args: None)
                reference = common.read_csv_columns(path, columns, numeric=numeric)
            pd.testing.assert_frame_equal(fast, reference, check_exact=True)
            checked += 1
    assert checked > 20
