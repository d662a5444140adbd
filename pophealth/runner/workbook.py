"""Excel workbooks and CSV of the indicators: one per profile and one for the whole run.

Boards and PCN meetings circulate spreadsheets, so every profile links a workbook of its own
indicators (value, confidence limits, parent and comparator values, the comparison and the
trend where the table has one), with the definitions and provenance on their own sheets. The
headers follow Fingertips' data downloads ("Lower CI 95.0 limit", "Compared to England value
or percentiles"), with the comparator's real name in place of England when it differs.
Written by :mod:`pophealth.runner.xlsx` (a national run writes ~1,700 of them; the sheets every
workbook shares are built once); every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from pophealth.files import atomic_write_bytes, atomic_write_text
from pophealth.runner.xlsx import column_widths, rows_xml, sheet_xml, sheet_xml_of_rows, xlsx_bytes

#: Tidy-table column -> workbook header (Fingertips-like). ``{comparator}`` is filled in.
INDICATOR_HEADERS: dict[str, str] = {
    "area_code": "Area Code",
    "area_name": "Area Name",
    "area_type": "Area Type",
    "level": "Level",
    "basis": "Population basis",
    "parent_code": "Parent Code",
    "indicator_id": "Indicator ID",
    "title": "Indicator Name",
    "unit": "Unit",
    "value": "Value",
    "lower_ci": "Lower CI 95.0 limit",
    "upper_ci": "Upper CI 95.0 limit",
    "lower_99_8": "Lower CI 99.8 limit",
    "upper_99_8": "Upper CI 99.8 limit",
    "numerator": "Count",
    "denominator": "Denominator",
    "parent_value": "Parent value",
    "comparator_value": "{comparator} value",
    "comparison_95": "Compared to {comparator} value or percentiles",
    "comparison_99_8": "Compared to {comparator} (99.8% limits)",
    "trend": "Recent Trend",
    "method": "Method",
    "reason": "Value note",
}
DEFINITION_HEADERS = {
    "indicator_id": "Indicator ID",
    "title": "Indicator Name",
    "definition": "Definition",
    "numerator_source": "Numerator source",
    "denominator_source": "Denominator source",
    "polarity": "Polarity",
    "statistic": "Statistic",
    "unit": "Unit",
}
PROVENANCE_HEADERS = {
    "source": "Source",
    "file": "File",
    "release": "Release",
    "rows": "Rows",
    "sha256": "SHA-256",
}
RUN_WORKBOOK = "indicators.xlsx"
RUN_CSV = "indicators.csv"


def indicator_sheet(rows: pd.DataFrame, comparator: str) -> pd.DataFrame:
    """The tidy indicator rows with workbook headers (columns absent from ``rows`` skipped).

    Args:
        rows: Rows of the tidy indicator table (``PopHealthData.indicator_table``).
        comparator: The comparator's name (``England``, or ``All loaded areas`` in the demo).

    Returns:
        A new DataFrame: same rows, renamed and ordered columns.
    """
    columns = [c for c in INDICATOR_HEADERS if c in rows.columns]
    headers = {c: INDICATOR_HEADERS[c].format(comparator=comparator) for c in columns}
    return rows[columns].rename(columns=headers).reset_index(drop=True)


def _frame(frame: pd.DataFrame, headers: dict[str, str]) -> pd.DataFrame:
    return frame[[c for c in headers if c in frame.columns]].rename(columns=headers)


def _creator() -> str:
    from pophealth.runner.jobs import package_version

    return f"pophealth {package_version()}"


def workbook_bytes(
    rows: pd.DataFrame | bytes,
    definitions: pd.DataFrame | bytes,
    provenance: pd.DataFrame | bytes,
    *,
    comparator: str,
    about: Iterable[tuple[str, str]] | bytes = (),
) -> bytes:
    """An .xlsx of indicators, definitions, provenance and an About sheet.

    Args:
        rows: Tidy indicator rows (one area or many), or the Indicators sheet's XML.
        definitions: Catalogue rows (``indicator_id, title, definition, ...``), or that sheet's
            XML from :func:`sheet_xml` of :func:`definitions_sheet`.
        provenance: Source files (``source, file, release, rows, sha256``), or its sheet XML.
        comparator: The comparator's name, used in the headers.
        about: ``(field, value)`` lines for the About sheet (run, data release, notes), or its
            sheet XML.

    Returns:
        The workbook's bytes.
    """
    sheets = {
        "Indicators": rows if isinstance(rows, bytes) else indicator_sheet(rows, comparator),
        "Definitions": definitions_sheet(definitions),
        "Provenance": provenance
        if isinstance(provenance, bytes)
        else _frame(provenance, PROVENANCE_HEADERS),
        "About": about if isinstance(about, bytes) else about_sheet(about),
    }
    return xlsx_bytes(sheets, creator=_creator())


def definitions_sheet(definitions: pd.DataFrame | bytes) -> pd.DataFrame | bytes:
    """The Definitions sheet's table (catalogue rows with workbook headers), or XML as given."""
    if isinstance(definitions, bytes):
        return definitions
    return _frame(definitions, DEFINITION_HEADERS)


def about_sheet(about: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """The About sheet's table: one ``Field, Value`` row per line."""
    return pd.DataFrame(list(about), columns=["Field", "Value"])


def write_workbooks(
    table: pd.DataFrame,
    definitions: pd.DataFrame,
    provenance: pd.DataFrame,
    targets: dict[tuple[str, str], Path],
    out_dir: Path,
    *,
    comparator: str,
    about: Iterable[tuple[str, str]] = (),
) -> list[Path]:
    """Write one workbook per profile and the run's workbook and CSV of all its areas.

    Args:
        table: The tidy indicator table (every area).
        definitions: Catalogue definitions of the indicators.
        provenance: Source files of the prepared store.
        targets: ``(area_code, basis) -> workbook path`` for each profile of the run.
        out_dir: The run folder (``indicators.xlsx`` and ``indicators.csv`` go there).
        comparator: The comparator's name, used in the headers.
        about: ``(field, value)`` lines for every workbook's About sheet.

    Returns:
        The paths written.
    """
    about = list(about)
    keys = pd.MultiIndex.from_frame(table[["area_code", "basis"]])
    wanted = keys.isin(list(targets))
    run_rows = table[wanted]
    written = []
    # every profile's workbook shares these sheets: build their XML once
    shared_provenance = sheet_xml(_frame(provenance, PROVENANCE_HEADERS))
    shared_about = sheet_xml(about_sheet(about))
    definitions_xml: dict[frozenset, bytes] = {}
    # each row's XML is built once, for the run's workbook and its area's
    sheet = indicator_sheet(run_rows, comparator)
    headers, widths = [str(c) for c in sheet.columns], column_widths(sheet)
    row_xml = rows_xml(sheet)
    positions = pd.RangeIndex(len(run_rows))
    groups = pd.Series(positions).groupby(
        [run_rows["area_code"].to_numpy(), run_rows["basis"].to_numpy()], sort=False
    )
    ids_of = run_rows["indicator_id"].to_numpy()
    for (code, basis), where in groups.indices.items():
        ids = frozenset(ids_of[where].tolist())
        if ids not in definitions_xml:
            definitions_xml[ids] = sheet_xml(
                definitions_sheet(definitions[definitions["indicator_id"].isin(ids)])
            )
        data = workbook_bytes(
            sheet_xml_of_rows(headers, [row_xml[i] for i in where], widths),
            definitions_xml[ids],
            shared_provenance,
            comparator=comparator,
            about=shared_about,
        )
        atomic_write_bytes(targets[(code, basis)], data)
        written.append(targets[(code, basis)])
    data = workbook_bytes(
        sheet_xml_of_rows(headers, row_xml, widths),
        definitions,
        shared_provenance,
        comparator=comparator,
        about=shared_about,
    )
    atomic_write_bytes(out_dir / RUN_WORKBOOK, data)
    atomic_write_text(out_dir / RUN_CSV, run_rows.to_csv(index=False))
    return [*written, out_dir / RUN_WORKBOOK, out_dir / RUN_CSV]


__all__ = [
    "INDICATOR_HEADERS",
    "about_sheet",
    "definitions_sheet",
    "indicator_sheet",
    "workbook_bytes",
    "write_workbooks",
]
