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
    canonical_schema,
    code_column,
    read_source_csv,
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
    table = read_source_csv(
        path,
        {
            "practice_code": ColumnPattern("Practice Code"),
            "practice_name": ColumnPattern("Practice Name"),
            "registered_patients": ColumnPattern(
                "Number of Registered Patients (Last Known Figure)"
            ),
            "weighted_patients": ColumnPattern("Number of Weighted Patients (Last Known Figure)"),
        },
        optional={"practice_name"},
        numeric={"registered_patients", "weighted_patients"},
        source="NHS Payments to General Practice CSV (nhspaymentsgp-YY-YY-prac-csv.csv)",
    )
    table = table.rows(table["practice_code"].notna())
    out = pd.DataFrame(
        {
            "practice_code": table.codes("practice_code"),
            "practice_name": table.text("practice_name"),
            "registered_patients": table.numbers("registered_patients", allow_missing=True),
            "weighted_patients": table.numbers("weighted_patients", allow_missing=True),
        }
    )
    table.check_no_repeats(
        out,
        ["practice_code"],
        what="a practice code",
        fix="the practice-level file has one row per practice; check for a concatenated file",
    )
    return table.output(out, PAYMENTS_SCHEMA)
