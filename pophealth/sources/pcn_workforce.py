"""Loader for NHS England "Primary Care Network Workforce" individual-level CSV (monthly).

Official file: ``1.Primary Care Networks - <Month YYYY> Individual Level.csv`` inside
``PCNWFIndividualCSV.MMYYYY.zip`` (with ``0.Primary Care Network Individual-Level CSV overall
definitions.xlsx``). One row per role held by a person working for a PCN (``Data_source``
``NWRS Staff``; ``UNIQUE_IDENTIFIER`` pseudonymises the person, so distinct identifiers give
headcounts), or per role covered by a contracted service (``NWRS Contracted Services``: FTE only,
no person, no headcount). These are the staff the PCN employs or has deployed to it, mostly
funded by the Additional Roles Reimbursement Scheme (ARRS); they are not in the GP practice file.

Header (November 2025)::

    Data_source,CENSUS_YEAR,CENSUS_MONTH,PCN_CODE,PCN_NAME,SUB_ICB_CODE,SUB_ICB_NAME,ICB_CODE,
    ICB_NAME,COMM_REGION_CODE,COMM_REGION_NAME,STAFF_GROUP,STAFF_ROLE,DETAILED_STAFF_ROLE,FTE,
    UNIQUE_IDENTIFIER
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pophealth.sources.common import (
    ColumnPattern,
    SourceFormatError,
    canonical_schema,
    clean_codes,
    clean_text,
    code_column,
    read_source_csv,
)

__all__ = [
    "PCN_STAFF_GROUPS",
    "PCN_WORKFORCE_SCHEMA",
    "load_pcn_workforce",
    "pcn_fte_by_group",
    "staff_group_of",
]

SOURCE_NAME = "PCN workforce individual-level CSV"

#: Published ``STAFF_GROUP`` (lower case) -> the practice file's staff group. PCN directors
#: (clinical and non-clinical) lead and manage the network: counted with admin/non-clinical.
PCN_STAFF_GROUPS: dict[str, str] = {
    "directors": "admin",
    "other gps": "gp",
    "gps": "gp",
    "other nurses": "nurse",
    "nurses": "nurse",
    "other direct patient care staff": "dpc",
    "direct patient care": "dpc",
    "other admin/non-clinical staff": "admin",
    "other admin/non-clinical": "admin",
    "admin/non-clinical": "admin",
}

# codes are trimmed and upper-cased (counted as fixes); names and labels keep their case
_CODE_COLUMNS = ("pcn_code", "sicbl_ods", "icb_ods")

_WANTED: dict[str, ColumnPattern] = {
    "data_source": ColumnPattern("Data_source", "DATA_SOURCE"),
    "census_year": ColumnPattern("CENSUS_YEAR", "YEAR"),
    "census_month": ColumnPattern("CENSUS_MONTH", "MONTH"),
    "pcn_code": ColumnPattern("PCN_CODE"),
    "pcn_name": ColumnPattern("PCN_NAME"),
    "sicbl_ods": ColumnPattern("SUB_ICB_CODE", "CCG_CODE"),
    "icb_ods": ColumnPattern("ICB_CODE", "STP_CODE"),
    "staff_group": ColumnPattern("STAFF_GROUP"),
    "staff_role": ColumnPattern("STAFF_ROLE"),
    "detailed_staff_role": ColumnPattern("DETAILED_STAFF_ROLE"),
    "fte": ColumnPattern("FTE"),
    "unique_identifier": ColumnPattern("UNIQUE_IDENTIFIER"),
}
_OPTIONAL = {"census_year", "census_month", "pcn_name", "sicbl_ods", "icb_ods"}
_OPTIONAL |= {"detailed_staff_role", "unique_identifier", "data_source"}

PCN_WORKFORCE_SCHEMA = canonical_schema(
    "PCN workforce individual level",
    {
        "data_source": code_column(nullable=True),
        "census_year": pa.Column("Int64", nullable=True),
        "census_month": pa.Column("Int64", pa.Check.in_range(1, 12), nullable=True),
        "pcn_code": code_column(),
        "pcn_name": code_column(nullable=True),
        "sicbl_ods": code_column(nullable=True),
        "icb_ods": code_column(nullable=True),
        "staff_group": code_column(),
        "staff_role": code_column(nullable=True),
        "detailed_staff_role": code_column(nullable=True),
        "group": code_column(
            checks=pa.Check.isin(sorted(set(PCN_STAFF_GROUPS.values())))  # type: ignore[arg-type]
        ),
        "fte": pa.Column("float64", pa.Check.ge(0), nullable=True),
        "unique_identifier": code_column(nullable=True),
    },
)


def staff_group_of(published: pd.Series) -> pd.Series:
    """Map published ``STAFF_GROUP`` values to ``gp``/``nurse``/``dpc``/``admin`` (else NaN)."""
    # a handful of distinct values over tens of thousands of rows: each is keyed once
    codes, uniques = pd.factorize(published.astype("str"), use_na_sentinel=True)
    key = pd.Series(uniques, dtype="str").str.strip().str.casefold()
    groups = key.str.replace(r"\s+", " ", regex=True).map(PCN_STAFF_GROUPS)
    # a missing value (code -1) takes the last, missing, group
    groups = pd.concat([groups, pd.Series([np.nan], dtype=groups.dtype)], ignore_index=True)
    return groups.iloc[codes].set_axis(published.index).rename(published.name)


def load_pcn_workforce(path: str | Path) -> pd.DataFrame:
    """Load the PCN workforce individual-level CSV: one row per role held (or contracted).

    Returns:
        ``data_source, census_year, census_month, pcn_code, pcn_name, sicbl_ods, icb_ods,
        staff_group, staff_role, detailed_staff_role`` (as published), ``group`` (the practice
        file's staff group: ``gp``, ``nurse``, ``dpc``, ``admin``; see :data:`PCN_STAFF_GROUPS`),
        ``fte`` (float, ``NA`` -> NaN) and ``unique_identifier`` (text; empty for contracted
        services).

    Raises:
        SourceFormatError: A required column is missing, an FTE is not a number, a row has no PCN
            code, or a ``STAFF_GROUP`` is not one the publisher uses (names the values and rows).
    """
    table = read_source_csv(
        path,
        _WANTED,
        optional=_OPTIONAL,
        numeric={"fte", "census_year", "census_month"},
        source=SOURCE_NAME,
    )
    path, columns = table.path, table.headers
    out = pd.DataFrame(index=table.raw.index)
    for name in ("data_source", "pcn_code", "pcn_name", "sicbl_ods", "icb_ods"):
        out[name] = table.column(name, clean_codes if name in _CODE_COLUMNS else clean_text)
    for name in ("census_year", "census_month"):
        out[name] = (
            table.numbers(name, integer=True, allow_missing=True)
            if name in table
            else pd.Series(pd.NA, index=table.raw.index)
        ).astype("Int64")
    out = out[["data_source", "census_year", "census_month", *out.columns[1:5]]]
    no_pcn = out["pcn_code"].isna()
    if no_pcn.any():
        raise SourceFormatError(
            path,
            f"{int(no_pcn.sum())} row(s) have no PCN code",
            column=str(columns["pcn_code"]),
            examples=", ".join(f"line {i + 2}" for i in np.flatnonzero(no_pcn)[:5]),
            fix="every row of the PCN workforce CSV names its PCN; check the file is complete",
        )
    for name in ("staff_group", "staff_role", "detailed_staff_role"):
        out[name] = table.column(name, clean_text)
    out["group"] = staff_group_of(out["staff_group"])
    unknown = out["group"].isna()
    if unknown.any():
        values = sorted(set(out.loc[unknown, "staff_group"].fillna("(blank)")))
        lines = np.flatnonzero(unknown.to_numpy())[:5] + 2
        raise SourceFormatError(
            path,
            f"{int(unknown.sum())} row(s) have a STAFF_GROUP this loader does not know",
            column=str(columns["staff_group"]),
            examples=f"{', '.join(repr(v) for v in values[:5])} at line(s) "
            + ", ".join(str(n) for n in lines),
            fix="known groups: "
            + ", ".join(sorted(PCN_STAFF_GROUPS))
            + "; if the publisher added a group, add it to PCN_STAFF_GROUPS",
        )
    out["fte"] = table.numbers("fte", allow_missing=True)
    out["unique_identifier"] = table.codes("unique_identifier")
    return table.output(out, PCN_WORKFORCE_SCHEMA)


def pcn_fte_by_group(staff: pd.DataFrame) -> pd.DataFrame:
    """PCN-employed FTE and headcount per PCN and staff group.

    Args:
        staff: Output of :func:`load_pcn_workforce`.

    Returns:
        ``pcn_code, group, fte, headcount, contracted_fte`` — headcount counts distinct
        ``unique_identifier`` (contracted services have none); ``contracted_fte`` is the part of
        the FTE from contracted services. Rows with a missing FTE add nothing to ``fte``.
    """
    contracted = (
        staff["data_source"].fillna("").str.casefold().str.contains("contract", regex=False)
    )
    frame = staff.assign(
        fte=staff["fte"].fillna(0.0),
        contracted_fte=np.where(contracted, staff["fte"].fillna(0.0), 0.0),
    )
    summed = frame.groupby(["pcn_code", "group"], as_index=False)[["fte", "contracted_fte"]].sum()
    heads = (
        frame.dropna(subset=["unique_identifier"])
        .groupby(["pcn_code", "group"])["unique_identifier"]
        .nunique()
        .rename("headcount")
    )
    summed = summed.merge(heads, on=["pcn_code", "group"], how="left")
    summed["headcount"] = summed["headcount"].fillna(0).astype("int64")
    return summed[["pcn_code", "group", "fte", "headcount", "contracted_fte"]]
