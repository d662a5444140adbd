"""Loader for "NHS Payments to General Practice" practice-level CSV (weighted patients).

Official file ``nhspaymentsgp-YY-YY-prac-csv.csv`` (UTF-8 BOM). Columns are found by their
official labels ``Practice Code``, ``Practice Name``,
``Number of Registered Patients (Last Known Figure)`` and
``Number of Weighted Patients (Last Known Figure)``. The organisation columns' labels are shifted in
2022-23 (``Code`` holds PCN codes, ``CCG NAME`` PCN names), so those are never used.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from pophealth.sources.common import (
    ColumnPattern,
    SourceFormatError,
    canonical_schema,
    clean_codes,
    code_column,
    parse_numeric,
    read_csv_columns,
    read_header,
    resolve_columns,
    validate_output,
)

__all__ = ["PAYMENTS_SCHEMA", "load_weighted_patients"]

PAYMENTS_SCHEMA = canonical_schema(
    "NHS payments to general practice",
    {
        "practice_code": code_column(unique=True),
        "practice_name": code_column(nullable=True),
        "registered_patients": pa.Column("float64", pa.Check.ge(0), nullable=True),
        "weighted_patients": pa.Column("float64", pa.Check.ge(0), nullable=True),
    },
)


def load_weighted_patients(path: str | Path) -> pd.DataFrame:
    """Load registered and weighted (global sum / Carr-Hill) patients per practice.

    The published figures are averages over the year's quarters, so both are ``float64``
    (e.g. 4029.25). Thousands separators are accepted; empty cells become NaN.

    Returns:
        ``practice_code, practice_name, registered_patients, weighted_patients``.

    Raises:
        SourceFormatError: Missing columns, non-numeric values, repeated practice codes.
    """
    path = Path(path)
    headers = read_header(path)
    columns = resolve_columns(
        headers,
        {
            "practice_code": ColumnPattern("Practice Code"),
            "practice_name": ColumnPattern("Practice Name"),
            "registered_patients": ColumnPattern(
                "Number of Registered Patients (Last Known Figure)"
            ),
            "weighted_patients": ColumnPattern("Number of Weighted Patients (Last Known Figure)"),
        },
        path,
        optional={"practice_name"},
        source="NHS Payments to General Practice CSV (nhspaymentsgp-YY-YY-prac-csv.csv)",
    )
    raw = read_csv_columns(path, columns, numeric={"registered_patients", "weighted_patients"})
    raw = raw.loc[raw["practice_code"].notna()]
    out = pd.DataFrame(
        {
            "practice_code": clean_codes(raw["practice_code"]),
            "practice_name": raw["practice_name"].str.strip()
            if "practice_name" in raw
            else pd.Series(pd.NA, index=raw.index, dtype="str"),
            "registered_patients": parse_numeric(
                raw["registered_patients"],
                path,
                str(columns["registered_patients"]),
                allow_missing=True,
            ),
            "weighted_patients": parse_numeric(
                raw["weighted_patients"],
                path,
                str(columns["weighted_patients"]),
                allow_missing=True,
            ),
        }
    ).reset_index(drop=True)
    repeated = out["practice_code"].duplicated(keep=False)
    if repeated.any():
        raise SourceFormatError(
            path,
            f"{int(repeated.sum())} rows repeat a practice code",
            column=str(columns["practice_code"]),
            examples=", ".join(out.loc[repeated, "practice_code"].unique()[:5]),
            fix="the practice-level file has one row per practice; check for a concatenated file",
        )
    validate_output(out, PAYMENTS_SCHEMA, path)
    return out
