"""Loader for NHS England GP workforce "Practice Level - Detailed" CSV (805 columns).

Official file: ``1 General Practice – <Month YYYY> Practice Level - Detailed.csv`` inside
``GPWPracticeCSV.MMYYYY.zip``. Missing values are ``NA`` (earlier ``ND``) and become NaN; the
``*_SOURCE`` columns say whether a staff group's figures were provided or estimated and are kept
so that estimated FTEs can be flagged.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from pophealth.sources.common import (
    ColumnPattern,
    canonical_schema,
    clean_codes,
    code_column,
    parse_numeric,
    read_csv_columns,
    read_header,
    resolve_columns,
    validate_output,
)

__all__ = ["FTE_COLUMNS", "SOURCE_COLUMNS", "WORKFORCE_SCHEMA", "load_workforce"]

#: canonical name -> official column.
FTE_COLUMNS: dict[str, str] = {
    "gp_fte": "TOTAL_GP_FTE",
    "gp_extg_fte": "TOTAL_GP_EXTG_FTE",
    "gp_exl_fte": "TOTAL_GP_EXL_FTE",
    "gp_extgl_fte": "TOTAL_GP_EXTGL_FTE",
    "nurse_fte": "TOTAL_NURSES_FTE",
    "dpc_fte": "TOTAL_DPC_FTE",
    "admin_fte": "TOTAL_ADMIN_FTE",
}
SOURCE_COLUMNS: dict[str, str] = {
    "gp_source": "GP_SOURCE",
    "nurse_source": "NURSE_SOURCE",
    "dpc_source": "DPC_SOURCE",
    "admin_source": "ADMIN_SOURCE",
}
_ID_COLUMNS: dict[str, str] = {
    "practice_code": "PRAC_CODE",
    "practice_name": "PRAC_NAME",
    "pcn_code": "PCN_CODE",
    "sicbl_ods": "SUB_ICB_CODE",
    "icb_ods": "ICB_CODE",
}

WORKFORCE_SCHEMA = canonical_schema(
    "GP workforce practice level",
    {
        "practice_code": code_column(),
        "practice_name": code_column(nullable=True),
        "pcn_code": code_column(nullable=True),
        "sicbl_ods": code_column(nullable=True),
        "icb_ods": code_column(nullable=True),
        "total_patients": pa.Column("Int64", pa.Check.ge(0), nullable=True),
        **{name: pa.Column("float64", pa.Check.ge(0), nullable=True) for name in FTE_COLUMNS},
        **{name: code_column(nullable=True) for name in SOURCE_COLUMNS},
    },
)


def load_workforce(path: str | Path) -> pd.DataFrame:
    """Load practice-level FTEs and their estimation flags.

    ``PCN_CODE`` is kept as published but upper-cased like every code (``UNALIGNED`` for practices
    in no PCN, ``NA`` before
    PCNs). FTE ``NA``/``ND`` -> NaN. ``total_patients`` is nullable ``Int64``. Before
    2022 the sub-ICB column was ``CCG_CODE`` and the ICB column ``STP_CODE``; both are accepted.

    Returns:
        ``practice_code, practice_name, pcn_code, sicbl_ods, icb_ods, total_patients, gp_fte,
        gp_extg_fte, gp_exl_fte, gp_extgl_fte, nurse_fte, dpc_fte, admin_fte, gp_source,
        nurse_source, dpc_source, admin_source``.
    """
    path = Path(path)
    headers = read_header(path)
    wanted: dict[str, ColumnPattern] = {
        "practice_code": ColumnPattern("PRAC_CODE"),
        "practice_name": ColumnPattern("PRAC_NAME"),
        "pcn_code": ColumnPattern("PCN_CODE"),
        "sicbl_ods": ColumnPattern("SUB_ICB_CODE", "CCG_CODE"),
        "icb_ods": ColumnPattern("ICB_CODE", "STP_CODE"),
        "total_patients": ColumnPattern("TOTAL_PATIENTS"),
        **{name: ColumnPattern(label) for name, label in FTE_COLUMNS.items()},
        **{name: ColumnPattern(label) for name, label in SOURCE_COLUMNS.items()},
    }
    columns = resolve_columns(
        headers,
        wanted,
        path,
        optional={"pcn_code", "icb_ods", *SOURCE_COLUMNS},
        source="GP workforce 'Practice Level - Detailed' CSV",
    )
    numeric = {"total_patients", *FTE_COLUMNS}
    raw = read_csv_columns(path, columns, numeric=numeric)
    out = pd.DataFrame(index=raw.index)
    for name in _ID_COLUMNS:
        out[name] = (
            clean_codes(raw[name])
            if name in raw
            else pd.Series(pd.NA, index=raw.index, dtype="str")
        )
    out["total_patients"] = parse_numeric(
        raw["total_patients"],
        path,
        str(columns["total_patients"]),
        integer=True,
        allow_missing=True,
    ).astype("Int64")
    for name in FTE_COLUMNS:
        out[name] = parse_numeric(raw[name], path, str(columns[name]), allow_missing=True)
    for name in SOURCE_COLUMNS:
        out[name] = (
            raw[name].str.strip() if name in raw else pd.Series(pd.NA, index=raw.index, dtype="str")
        )
    out = out.reset_index(drop=True)
    validate_output(out, WORKFORCE_SCHEMA, path)
    return out
