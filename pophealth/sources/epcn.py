r"""Loader for the ODS ePCN workbook (``ePCN.xlsx``): PCNs and practice-to-PCN memberships.

Both sheets' header cells contain embedded newlines (``Partner\nOrganisation\nCode``) and one
has a trailing space; before July 2022 "Sub ICB Loc" read "CCG" / "Clinical Commissioning
Group". Headers are normalised before matching, so both eras load. Dates are yyyymmdd numbers
(or text).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from pophealth.sources.common import (
    ColumnPattern,
    SourceFormatError,
    canonical_schema,
    clean_codes,
    code_column,
    code_columns,
    date_column,
    header_key,
    parse_dates,
    resolve_columns,
    validate_output,
)

__all__ = ["EpcnTables", "MEMBERSHIP_SCHEMA", "PCN_SCHEMA", "load_epcn", "membership_at"]

PCN_SHEET = "PCNDetails"
MEMBERSHIP_SHEET = "PCN Core Partner Details"

PCN_SCHEMA = canonical_schema(
    "ePCN PCNDetails",
    {
        "pcn_code": code_column(),
        **code_columns("pcn_name", "sicbl_ods"),
        "open_date": date_column(),
        "close_date": date_column(),
    },
)
MEMBERSHIP_SCHEMA = canonical_schema(
    "ePCN PCN Core Partner Details",
    {
        "practice_code": code_column(),
        **code_columns("practice_name", "practice_sicbl_ods"),
        "pcn_code": code_column(),
        "pcn_name": code_column(nullable=True),
        "start_date": date_column(),
        "end_date": date_column(),
    },
)

_PCN_COLUMNS = {
    "pcn_code": ColumnPattern("PCN Code"),
    "pcn_name": ColumnPattern("PCN Name"),
    "sicbl_ods": ColumnPattern(
        "Current Sub ICB Loc Code",
        "Current Clinical Commissioning Group Code",
        "Current CCG Code",
        regex=[r"current (sub icb loc(ation)?|ccg|clinical commissioning group) code"],
    ),
    "open_date": ColumnPattern("Open Date"),
    "close_date": ColumnPattern("Close Date"),
}
_MEMBERSHIP_COLUMNS = {
    "practice_code": ColumnPattern("Partner Organisation Code"),
    "practice_name": ColumnPattern("Partner Name"),
    "practice_sicbl_ods": ColumnPattern(
        "Practice Parent Sub ICB Loc Code",
        "Practice Parent CCG Code",
        regex=[r"practice parent (sub icb loc(ation)?|ccg|clinical commissioning group) code"],
    ),
    "pcn_code": ColumnPattern("PCN Code"),
    "pcn_name": ColumnPattern("PCN Name"),
    "start_date": ColumnPattern("Practice to PCN Relationship Start Date"),
    "end_date": ColumnPattern("Practice to PCN Relationship End Date"),
}


class EpcnTables(NamedTuple):
    """The two ePCN tables in canonical columns."""

    pcns: pd.DataFrame
    memberships: pd.DataFrame


def _read_sheet(
    path: Path, sheets: dict[str, pd.DataFrame], wanted_sheet: str, columns: dict
) -> pd.DataFrame:
    by_key = {header_key(name): name for name in sheets}
    sheet_name = by_key.get(header_key(wanted_sheet))
    if sheet_name is None:
        raise SourceFormatError(
            path,
            f"sheet {wanted_sheet!r} not found",
            examples=f"sheets found: {', '.join(map(repr, sheets))}",
            fix="use the ODS ePCN.xlsx workbook (inside epcn.zip)",
        )
    frame = sheets[sheet_name]
    headers = [str(h) for h in frame.columns]
    found = resolve_columns(headers, columns, path, source=f"ePCN sheet {sheet_name!r}")
    frame = frame.set_axis(headers, axis=1)
    # An empty trailing row in the sheet reads as all-NaN: drop rows without the key code.
    out = pd.DataFrame({name: frame[header] for name, header in found.items()})
    return out.dropna(how="all")


def _as_text(values: pd.Series) -> pd.Series:
    return clean_codes(values.astype(object).where(values.notna(), None).astype("str"))


def load_epcn(path: str | Path) -> EpcnTables:
    """Load ``ePCN.xlsx``: PCN details and practice-to-PCN relationships (all, with dates).

    Args:
        path: The official workbook.

    Returns:
        :class:`EpcnTables` with ``pcns`` (``pcn_code, pcn_name, sicbl_ods, open_date,
        close_date``) and ``memberships`` (``practice_code, practice_name, practice_sicbl_ods,
        pcn_code, pcn_name, start_date, end_date``). Use :func:`membership_at` for the
        memberships in force on a date.

    Raises:
        SourceFormatError: Missing sheet or column, unparseable dates.
    """
    path = Path(path)
    try:
        sheets = pd.read_excel(path, sheet_name=None, dtype=object, engine="openpyxl")
    except (ValueError, OSError, KeyError) as error:
        raise SourceFormatError(
            path, f"could not be read as an Excel workbook ({error})", fix="use ePCN.xlsx"
        ) from error
    pcn_raw = _read_sheet(path, sheets, PCN_SHEET, _PCN_COLUMNS)
    member_raw = _read_sheet(path, sheets, MEMBERSHIP_SHEET, _MEMBERSHIP_COLUMNS)
    # Excel rows: header is row 1, data from row 2.
    pcns = pd.DataFrame(
        {
            "pcn_code": _as_text(pcn_raw["pcn_code"]),
            "pcn_name": _as_text(pcn_raw["pcn_name"]),
            "sicbl_ods": _as_text(pcn_raw["sicbl_ods"]),
            "open_date": parse_dates(pcn_raw["open_date"], path, "Open Date"),
            "close_date": parse_dates(pcn_raw["close_date"], path, "Close Date"),
        }
    ).reset_index(drop=True)
    memberships = pd.DataFrame(
        {
            "practice_code": _as_text(member_raw["practice_code"]),
            "practice_name": _as_text(member_raw["practice_name"]),
            "practice_sicbl_ods": _as_text(member_raw["practice_sicbl_ods"]),
            "pcn_code": _as_text(member_raw["pcn_code"]),
            "pcn_name": _as_text(member_raw["pcn_name"]),
            "start_date": parse_dates(
                member_raw["start_date"], path, "Practice to PCN Relationship Start Date"
            ),
            "end_date": parse_dates(
                member_raw["end_date"], path, "Practice to PCN Relationship End Date"
            ),
        }
    ).reset_index(drop=True)
    validate_output(pcns, PCN_SCHEMA, path)
    validate_output(memberships, MEMBERSHIP_SCHEMA, path)
    return EpcnTables(pcns=pcns, memberships=memberships)


def membership_at(
    memberships: pd.DataFrame, date: str | pd.Timestamp | None = None
) -> pd.DataFrame:
    """Return the practice-to-PCN memberships in force on ``date``, one PCN per practice.

    In force: ``start_date`` is missing or on/before ``date``, and ``end_date`` is missing or
    on/after ``date``. With ``date=None`` the current memberships are returned (no end date).
    A practice in more than one PCN on the date keeps the membership with the latest start date;
    how many practices that affected is stored in ``result.attrs["n_practices_in_multiple_pcns"]``
    and their codes in ``result.attrs["practices_in_multiple_pcns"]`` (so the caller can report
    them).

    Args:
        memberships: ``EpcnTables.memberships``.
        date: The reference date (anything ``pd.Timestamp`` accepts), or ``None`` for current.

    Returns:
        A new DataFrame with the membership columns (input not modified).
    """
    if date is None:
        in_force = memberships["end_date"].isna()
    else:
        when = pd.Timestamp(date).normalize()
        starts_ok = memberships["start_date"].isna() | (memberships["start_date"] <= when)
        ends_ok = memberships["end_date"].isna() | (memberships["end_date"] >= when)
        in_force = starts_ok & ends_ok
    current = memberships.loc[in_force]
    pcns_per_practice = current.groupby("practice_code")["pcn_code"].nunique()
    multiple = sorted(pcns_per_practice.index[pcns_per_practice > 1])
    result = (
        current.sort_values(["practice_code", "start_date"], na_position="first", kind="stable")
        .drop_duplicates("practice_code", keep="last")
        .reset_index(drop=True)
    )
    result.attrs["n_practices_in_multiple_pcns"] = len(multiple)
    result.attrs["practices_in_multiple_pcns"] = multiple
    return result
