"""The .xlsx writer: files openpyxl and pandas read back exactly, safe for any text."""

from __future__ import annotations

import io
import re
import zipfile
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from pophealth.runner.xlsx import (
    CELL_TEXT_LIMIT,
    column_widths,
    rows_xml,
    sheet_xml,
    sheet_xml_of_rows,
    xlsx_bytes,
)

HOSTILE = [
    "<script>alert('x')</script>",
    'Tom & Jerry\'s "PCN"',
    '=HYPERLINK("http://x","y")',
    "  padded  ",
    "bell\x07 and null\x00 inside",
    "literal _x0041_ stays as written",
    "Ynys Môn – naïve café 😀",
]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Area Name": HOSTILE,
            "Value": [1.5, np.nan, np.inf, -0.000012345, 1e20, 3.0, 2 / 3],
            "Count": pd.array([1, None, 3, 4, 5, 6, 7], dtype="Int64"),
            "Patients": np.arange(7, dtype="int64") * 1000,
            "Flag": [True, False, True, False, True, False, True],
            "Note": [None, "a", pd.NA, "b", "c", np.nan, "d"],
        }
    )


def _excel_unescape(text):
    """What Excel shows for a cell's text: ``_xHHHH_`` decoded (ECMA-376 ST_Xstring).

    openpyxl leaves the escapes as written, so tests decode them as Excel does.
    """
    if not isinstance(text, str):
        return text
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


def _read(data: bytes, sheet: str = "Sheet") -> pd.DataFrame:
    frame = pd.read_excel(io.BytesIO(data), sheet_name=sheet)
    for column in frame.columns:
        if frame[column].dtype.kind in "OT":  # object or text
            frame[column] = frame[column].map(_excel_unescape)
    return frame


def test_every_part_is_well_formed_xml():
    data = xlsx_bytes({"One": _frame(), "Two": _frame().head(0)})
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        names = package.namelist()
        assert "[Content_Types].xml" in names and "xl/worksheets/sheet2.xml" in names
        for name in names:
            ElementTree.fromstring(package.read(name))  # raises if not well formed


def test_values_read_back_exactly_and_text_is_never_a_formula():
    frame = _frame()
    back = _read(xlsx_bytes({"Sheet": frame}))
    assert list(back.columns) == list(frame.columns)
    # control characters (not allowed in XML) and a literal _xHHHH_ come back as written
    assert back["Area Name"].tolist() == HOSTILE
    expected = frame["Value"].where(np.isfinite(frame["Value"]))
    pd.testing.assert_series_equal(back["Value"], expected, check_names=False, rtol=0)
    assert back["Count"].isna().tolist() == [False, True] + [False] * 5
    assert back["Patients"].tolist() == frame["Patients"].tolist()
    assert back["Flag"].tolist() == frame["Flag"].tolist()
    assert back["Note"].isna().tolist() == [True, False, True, False, False, True, False]
    book = load_workbook(io.BytesIO(xlsx_bytes({"Sheet": frame})))
    cell = book["Sheet"]["A4"]
    assert cell.data_type == "s" and cell.value.startswith("=HYPERLINK")


def test_header_is_bold_and_frozen_and_widths_fit():
    frame = _frame()
    book = load_workbook(io.BytesIO(xlsx_bytes({"Sheet": frame})))
    sheet = book["Sheet"]
    assert sheet.freeze_panes == "A2"
    assert sheet["A1"].font.b and not sheet["A2"].font.b
    assert sheet.column_dimensions["A"].width == min(60, max(len(t) for t in HOSTILE) + 2)
    assert column_widths(pd.DataFrame({"x": ["a" * 500]})) == [60.0]


def test_rows_built_once_make_any_subset_of_the_sheet():
    frame = _frame()
    rows = rows_xml(frame)
    headers = list(frame.columns)
    subset = sheet_xml_of_rows(headers, [rows[i] for i in (5, 1, 3)], column_widths(frame))
    back = _read(xlsx_bytes({"Sheet": subset}))
    expected = frame.iloc[[5, 1, 3]].reset_index(drop=True)
    assert back["Area Name"].tolist() == expected["Area Name"].tolist()
    assert back["Patients"].tolist() == expected["Patients"].tolist()


def test_long_text_is_cut_at_excels_cell_limit():
    back = _read(xlsx_bytes({"Sheet": pd.DataFrame({"t": ["x" * (CELL_TEXT_LIMIT + 10)]})}))
    assert len(back["t"][0]) == CELL_TEXT_LIMIT and back["t"][0].endswith("…")


@pytest.mark.parametrize("name", ["", "a" * 32, "bad/name", "what?", "[x]"])
def test_sheet_names_excel_refuses_are_an_error(name):
    with pytest.raises(ValueError, match="Sheet name"):
        xlsx_bytes({name: pd.DataFrame({"a": [1]})})


def test_a_sheet_built_once_can_go_in_many_workbooks():
    shared = sheet_xml(pd.DataFrame({"Source": ["GP registrations"], "Rows": [10]}))
    for area in ("A", "B"):
        data = xlsx_bytes({"Indicators": pd.DataFrame({"Area": [area]}), "Provenance": shared})
        assert _read(data, "Provenance")["Source"].tolist() == ["GP registrations"]
        assert _read(data, "Indicators")["Area"].tolist() == [area]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.floats(allow_nan=True, allow_infinity=False, width=64),
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"),
                max_size=30,
            ),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_any_values_make_a_workbook_openpyxl_reads(values):
    frame = pd.DataFrame({"v": pd.Series(values, dtype=object)})
    book = load_workbook(io.BytesIO(xlsx_bytes({"Sheet": frame})))
    cells = [
        _excel_unescape(row[0]) for row in book["Sheet"].iter_rows(min_row=2, values_only=True)
    ]
    cells += [None] * (len(values) - len(cells))  # trailing empty rows
    for written, read in zip(values, cells, strict=True):
        if written is None or (isinstance(written, float) and np.isnan(written)):
            assert read is None
        elif isinstance(written, float):
            assert read == written
        elif written.strip() == "" and written != written.strip():
            assert read in (written, None)
        else:
            assert read == written or (written == "" and read is None)
