"""A small, fast writer of Office Open XML spreadsheets (.xlsx) from DataFrames.

A national run writes a workbook beside each of ~1,700 profiles. openpyxl took ~55 ms a
workbook (~90 s of the run) and ~1 min for the run's workbook of every area; the files are plain
tables (a bold header row, frozen below it, column widths), so they are written here directly as
SpreadsheetML (ECMA-376 Part 1, §18): one worksheet part per table, text as inline strings (no
shared-string table to build), numbers as ``xsd:double``, missing values as absent cells. A
sheet's XML can be built once and reused in many workbooks (definitions, provenance).

Text is made safe for XML and for Excel: ``& < >`` and quotes escaped, characters XML 1.0 does not
allow (control characters) written as Excel's ``_xHHHH_`` escapes, and a literal ``_xHHHH_`` in
the text escaped so Excel shows it as written (ECMA-376 Part 1, §22.9.2.19 ST_Xstring).
Inline strings are never formulas, so text starting with ``=`` stays text.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np
import pandas as pd

#: Excel's limits (a sheet name's length; characters a cell holds).
SHEET_NAME_LIMIT = 31
CELL_TEXT_LIMIT = 32_767
_BAD_SHEET_NAME = re.compile(r"[\[\]:*?/\\]")
# XML 1.0 forbids these; Excel writes them as _xHHHH_
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_LITERAL_ESCAPE = re.compile(r"_(x[0-9A-Fa-f]{4}_)")
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
# cellXfs: 0 = normal, 1 = bold header
_STYLES = (
    f'{_XML_HEAD}<styleSheet xmlns="{_MAIN}">'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def _excel_text(value: str) -> str:
    """Text escaped for an XML element and for Excel's ``_xHHHH_`` convention."""
    if len(value) > CELL_TEXT_LIMIT:
        value = value[: CELL_TEXT_LIMIT - 1] + "…"
    if "_x" in value:
        value = _LITERAL_ESCAPE.sub(r"_x005F_\1", value)
    if _CONTROL.search(value):
        value = _CONTROL.sub(lambda m: f"_x{ord(m.group()):04X}_", value)
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    return value


def _text_cell(value: str, style: str = "") -> str:
    text = _excel_text(value)
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f'<c{style} t="inlineStr"><is><t{space}>{text}</t></is></c>'


# Cells carry no ``r`` reference (it is optional, ECMA-376 §18.3.1.4): a missing value is an
# empty ``<c/>`` holding its place, so a row's XML does not depend on where the row goes and is
# built once for the run's table and every profile's workbook.
_EMPTY = "<c/>"


def _cell(value: object) -> str:
    """One cell's XML (``<c/>`` for a missing value)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return _EMPTY
    if isinstance(value, bool | np.bool_):
        return f'<c t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | np.integer):
        return f"<c><v>{int(value)}</v></c>"
    if isinstance(value, float | np.floating):
        number = float(value)
        return f"<c><v>{number!r}</v></c>" if math.isfinite(number) else _EMPTY
    if isinstance(value, datetime | pd.Timestamp):
        return _text_cell(value.isoformat())
    return _text_cell(str(value))


def _numeric_cells(values: np.ndarray) -> list[str]:
    """Cells of a float or integer column (NaN and infinities left empty)."""
    if values.dtype.kind in "iu":
        return [f"<c><v>{number}</v></c>" for number in values.tolist()]
    return [
        f"<c><v>{number!r}</v></c>" if math.isfinite(number) else _EMPTY
        for number in values.tolist()
    ]


def _column_cells(column: pd.Series) -> list[str]:
    kind = column.dtype.kind
    if kind in "fiu" and not isinstance(column.dtype, pd.api.extensions.ExtensionDtype):
        return _numeric_cells(column.to_numpy())
    if kind in "fiu":  # nullable Int64 / Float64: NA becomes NaN
        return _numeric_cells(column.to_numpy(dtype=float, na_value=np.nan))
    values = column.tolist()
    # text columns repeat (names, titles, methods): each distinct value is escaped once
    cells: dict = {}
    out = []
    for value in values:
        try:
            cell = cells[value]
        except KeyError:
            cell = cells[value] = _cell(value)
        except TypeError:  # unhashable
            cell = _cell(value)
        out.append(cell)
    return out


def rows_xml(frame: pd.DataFrame) -> list[str]:
    """Each row of ``frame`` as a worksheet ``<row>`` element, in order (no header).

    Args:
        frame: The table (the index is not written).

    Returns:
        One XML string per row; join any of them, in any order, with :func:`sheet_xml_of_rows`.
    """
    columns = [_column_cells(frame.iloc[:, i]) for i in range(frame.shape[1])]
    return ["<row>" + "".join(cells) + "</row>" for cells in zip(*columns, strict=True)]


def column_widths(frame: pd.DataFrame) -> list[float]:
    """Column widths fitting the header and the longest value (at most 60 characters)."""
    widths = []
    for i, header in enumerate(frame.columns):
        values = frame.iloc[:, i].dropna().unique()
        longest = max([len(str(header))] + [len(str(v)) for v in values.tolist()])
        widths.append(float(min(60, longest + 2)))
    return widths


def sheet_xml_of_rows(headers: list[str], rows: list[str], widths: list[float]) -> bytes:
    """A worksheet part from a header and rows built by :func:`rows_xml`.

    Args:
        headers: The header row's text (bold, frozen above the rows).
        rows: ``<row>`` elements from :func:`rows_xml` (a subset or reordering is fine).
        widths: Column widths, one per header.

    Returns:
        The worksheet XML (UTF-8), ready for :func:`xlsx_bytes`.
    """
    header_row = "<row>" + "".join(_text_cell(str(h), ' s="1"') for h in headers) + "</row>"
    cols = "".join(
        f'<col min="{i}" max="{i}" width="{w}" customWidth="1"/>'
        for i, w in enumerate(widths, start=1)
    )
    pane = (
        '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
        'activePane="bottomLeft" state="frozen"/>'
        '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
    )
    return "".join(
        [
            f'{_XML_HEAD}<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">{pane}',
            '<sheetFormatPr defaultRowHeight="15"/>',
            f"<cols>{cols}</cols>" if cols else "",
            "<sheetData>",
            header_row,
            *rows,
            "</sheetData></worksheet>",
        ]
    ).encode()


def sheet_xml(frame: pd.DataFrame) -> bytes:
    """A worksheet part: a bold header row frozen above the rows, column widths set.

    Args:
        frame: The table; its column names become the header row. The index is not written.

    Returns:
        The worksheet XML (UTF-8), ready for :func:`xlsx_bytes`.
    """
    headers = [str(c) for c in frame.columns]
    return sheet_xml_of_rows(headers, rows_xml(frame), column_widths(frame))


def _check_sheet_name(name: str) -> str:
    if not name or len(name) > SHEET_NAME_LIMIT or _BAD_SHEET_NAME.search(name):
        raise ValueError(
            f"Sheet name {name!r} is not allowed in Excel: use 1-{SHEET_NAME_LIMIT} characters "
            "without [ ] : * ? / \\."
        )
    return name


def xlsx_bytes(
    sheets: Mapping[str, pd.DataFrame | bytes],
    *,
    creator: str = "pophealth",
    created: datetime | None = None,
) -> bytes:
    """An .xlsx workbook of the given sheets, in order.

    Args:
        sheets: Sheet name -> a DataFrame, or XML already built by :func:`sheet_xml` (so a
            sheet shared by many workbooks is built once).
        creator: The workbook's author property (package and version).
        created: The workbook's created time (default now, UTC).

    Returns:
        The workbook's bytes.

    Raises:
        ValueError: A sheet name Excel does not allow, or no sheets.
    """
    if not sheets:
        raise ValueError("A workbook needs at least one sheet.")
    names = [_check_sheet_name(name) for name in sheets]
    stamp = (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    n = len(names)
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for i in range(1, n + 1)
    )
    content_types = (
        f'{_XML_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        f"{overrides}"
        '<Override PartName="/xl/styles.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        '<Override PartName="/docProps/core.xml" '
        'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        "</Types>"
    )
    root_rels = (
        f'{_XML_HEAD}<Relationships xmlns="{_PKG_REL}">'
        f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/'
        'relationships/metadata/core-properties" Target="docProps/core.xml"/>'
        "</Relationships>"
    )
    core = (
        f"{_XML_HEAD}<cp:coreProperties "
        'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<dc:creator>{_excel_text(creator)}</dc:creator>"
        f'<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>'
        "</cp:coreProperties>"
    )
    sheet_entries = "".join(
        f'<sheet name="{_excel_text(name).replace(chr(34), "&quot;")}" sheetId="{i}" '
        f'r:id="rId{i}"/>'
        for i, name in enumerate(names, start=1)
    )
    workbook = (
        f'{_XML_HEAD}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
        f"<sheets>{sheet_entries}</sheets></workbook>"
    )
    workbook_rels = (
        f'{_XML_HEAD}<Relationships xmlns="{_PKG_REL}">'
        + "".join(
            f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, n + 1)
        )
        + f'<Relationship Id="rId{n + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
        "</Relationships>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=3) as package:
        package.writestr("[Content_Types].xml", content_types)
        package.writestr("_rels/.rels", root_rels)
        package.writestr("docProps/core.xml", core)
        package.writestr("xl/workbook.xml", workbook)
        package.writestr("xl/_rels/workbook.xml.rels", workbook_rels)
        package.writestr("xl/styles.xml", _STYLES)
        for i, sheet in enumerate(sheets.values(), start=1):
            xml = sheet if isinstance(sheet, bytes) else sheet_xml(sheet)
            package.writestr(f"xl/worksheets/sheet{i}.xml", xml)
    return buffer.getvalue()


__all__ = [
    "CELL_TEXT_LIMIT",
    "SHEET_NAME_LIMIT",
    "column_widths",
    "rows_xml",
    "sheet_xml",
    "sheet_xml_of_rows",
    "xlsx_bytes",
]
