"""Excel workbooks and CSV of the indicators: one per profile and one for the whole run.

Boards and PCN meetings circulate spreadsheets, so every profile links a workbook of its own
indicators (value, confidence limits, parent and comparator values, the comparison and the
trend where the table has one), with the definitions and provenance on their own sheets. The
headers follow Fingertips' data downloads ("Lower CI 95.0 limit", "Compared to England value
or percentiles"), with the comparator's real name in place of England when it differs.
Written with openpyxl; every file is written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from pophealth.files import atomic_write_bytes, atomic_write_text

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


def workbook_bytes(
    rows: pd.DataFrame,
    definitions: pd.DataFrame,
    provenance: pd.DataFrame,
    *,
    comparator: str,
    about: Iterable[tuple[str, str]] = (),
) -> bytes:
    """An .xlsx of indicators, definitions, provenance and an About sheet.

    Args:
        rows: Tidy indicator rows (one area or many).
        definitions: Catalogue rows (``indicator_id, title, definition, ...``).
        provenance: Source files (``source, file, release, rows, sha256``).
        comparator: The comparator's name, used in the headers.
        about: ``(field, value)`` lines for the About sheet (run, data release, notes).

    Returns:
        The workbook's bytes.
    """
    from openpyxl.utils import get_column_letter

    sheets = {
        "Indicators": indicator_sheet(rows, comparator),
        "Definitions": _frame(definitions, DEFINITION_HEADERS),
        "Provenance": _frame(provenance, PROVENANCE_HEADERS),
        "About": pd.DataFrame(list(about), columns=["Field", "Value"]),
    }
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for name, frame in sheets.items():
            frame.to_excel(writer, sheet_name=name, index=False)
            sheet = writer.sheets[name]
            sheet.freeze_panes = "A2"
            for index, column in enumerate(frame.columns, start=1):
                longest = max([len(str(column))] + [len(str(v)) for v in frame[column].head(200)])
                sheet.column_dimensions[get_column_letter(index)].width = min(60, longest + 2)
    return buffer.getvalue()


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
    for (code, basis), rows in run_rows.groupby(["area_code", "basis"], sort=False):
        ids = set(rows["indicator_id"])
        data = workbook_bytes(
            rows,
            definitions[definitions["indicator_id"].isin(ids)],
            provenance,
            comparator=comparator,
            about=about,
        )
        atomic_write_bytes(targets[(code, basis)], data)
        written.append(targets[(code, basis)])
    data = workbook_bytes(run_rows, definitions, provenance, comparator=comparator, about=about)
    atomic_write_bytes(out_dir / RUN_WORKBOOK, data)
    atomic_write_text(out_dir / RUN_CSV, run_rows.to_csv(index=False))
    return [*written, out_dir / RUN_WORKBOOK, out_dir / RUN_CSV]


__all__ = ["INDICATOR_HEADERS", "indicator_sheet", "workbook_bytes", "write_workbooks"]
