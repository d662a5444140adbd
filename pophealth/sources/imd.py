"""Loaders for the English Indices of Deprivation "File 7" (scores, ranks, deciles, populations).

* IoD2025, LSOA 2021: ``File_7_IoD2025_All_Ranks_Scores_Deciles_Population_Denominators.csv``
  (56 columns, 33,755 rows); one header is truncated in the official file.
* IoD2019, LSOA 2011:
  ``File_7_-_All_IoD2019_Scores__Ranks__Deciles_and_Population_Denominators_3.csv``
  (57 columns, 32,844 rows); the last header has a trailing space.

Columns are found by their official labels (any Local Authority District year; a BOM, trailing
spaces and thousands separators are tolerated). Deciles are national (1 = most deprived 10%).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pophealth.sources.common import (
    ColumnPattern,
    canonical_schema,
    code_column,
    read_source_csv,
)

__all__ = [
    "IOD2019_SCHEMA",
    "IOD2025_SCHEMA",
    "SCORE_COLUMNS",
    "load_iod2019_file7",
    "load_iod2025_file7",
]

_RANK_SUFFIX = " (where 1 is most deprived)"
_DECILE_SUFFIX = " (where 1 is most deprived 10% of LSOAs)"

#: canonical name -> official File 7 label (same in IoD2019 and IoD2025).
SCORE_COLUMNS: dict[str, str] = {
    "imd_score": "Index of Multiple Deprivation (IMD) Score",
    "income_score": "Income Score (rate)",
    "employment_score": "Employment Score (rate)",
    "education_score": "Education, Skills and Training Score",
    "health_score": "Health Deprivation and Disability Score",
    "crime_score": "Crime Score",
    "barriers_score": "Barriers to Housing and Services Score",
    "living_env_score": "Living Environment Score",
    "idaci_score": "Income Deprivation Affecting Children Index (IDACI) Score (rate)",
    "idaopi_score": "Income Deprivation Affecting Older People (IDAOPI) Score (rate)",
}


REQUIRED_COLUMNS = ("imd_score", "imd_rank", "imd_decile")


def _columns(lsoa_year: str) -> dict[str, ColumnPattern]:
    return {
        f"lsoa{lsoa_year}_code": ColumnPattern(f"LSOA code (20{lsoa_year})"),
        f"lsoa{lsoa_year}_name": ColumnPattern(f"LSOA name (20{lsoa_year})"),
        "lad_code": ColumnPattern(regex=[r"local authority district code \(\d{4}\)"]),
        "lad_name": ColumnPattern(regex=[r"local authority district name \(\d{4}\)"]),
        "imd_score": ColumnPattern(SCORE_COLUMNS["imd_score"]),
        "imd_rank": ColumnPattern(
            f"Index of Multiple Deprivation (IMD) Rank{_RANK_SUFFIX}",
            "Index of Multiple Deprivation (IMD) Rank",
        ),
        # Prefix matching tolerates the publisher's truncated decile headers.
        "imd_decile": ColumnPattern(
            f"Index of Multiple Deprivation (IMD) Decile{_DECILE_SUFFIX}",
            "Index of Multiple Deprivation (IMD) Decile",
            prefix_min=60,
        ),
        **{
            name: ColumnPattern(label)
            for name, label in SCORE_COLUMNS.items()
            if name != "imd_score"
        },
        "population": ColumnPattern(regex=[r"total population: mid \d{4}.*"]),
    }


def _schema(name: str, lsoa_year: str) -> pa.DataFrameSchema:
    return canonical_schema(
        name,
        {
            f"lsoa{lsoa_year}_code": code_column(unique=True),
            f"lsoa{lsoa_year}_name": code_column(nullable=True),
            "lad_code": code_column(nullable=True),
            "lad_name": code_column(nullable=True),
            "imd_score": pa.Column("float64"),
            "imd_rank": pa.Column("int64", pa.Check.ge(1)),
            "imd_decile": pa.Column("int64", pa.Check.in_range(1, 10)),
            **{
                name: pa.Column("float64", nullable=True)
                for name in SCORE_COLUMNS
                if name != "imd_score"
            },
            "population": pa.Column("Int64", pa.Check.ge(0), nullable=True),
        },
    )


IOD2025_SCHEMA = _schema("IoD2025 File 7", "21")
IOD2019_SCHEMA = _schema("IoD2019 File 7", "11")


def _load_file7(path: str | Path, lsoa_year: str, schema: pa.DataFrameSchema) -> pd.DataFrame:
    wanted = _columns(lsoa_year)
    # the IMD itself is required; names, LAD, domains and denominators are used when present
    optional = [c for c in wanted if c not in REQUIRED_COLUMNS and c != f"lsoa{lsoa_year}_code"]
    table = read_source_csv(
        path,
        wanted,
        optional=optional,
        numeric=[c for c in wanted if not c.endswith(("_code", "_name"))],
        source=f"{schema.name} CSV (all ranks, scores, deciles, population)",
    )
    absent = [name for name, header in table.headers.items() if header is None]
    if absent:
        warnings.warn(
            f"{table.path}: {schema.name} lacks column(s) {', '.join(absent)}; they are left "
            "empty (indicators that need them, e.g. IoD population weights, fall back to Census "
            "counts).",
            stacklevel=3,
        )
    out = pd.DataFrame(index=table.raw.index)
    for name in wanted:
        if name not in table:
            out[name] = pd.Series(
                pd.NA, index=table.raw.index, dtype="Int64" if name == "population" else "object"
            )
            if name.endswith("_score"):
                out[name] = np.nan
        elif name.endswith("_code"):
            out[name] = table.codes(name)
        elif name.endswith("_name"):
            out[name] = table.text(name)
        elif name in ("imd_rank", "imd_decile"):
            out[name] = table.numbers(name, integer=True)
        elif name == "population":
            out[name] = table.numbers(name, integer=True).astype("Int64")
        else:
            out[name] = table.numbers(name, allow_missing=name != "imd_score")
    return table.output(out, schema)


def load_iod2025_file7(path: str | Path) -> pd.DataFrame:
    """Load IoD2025 File 7 (LSOA 2021).

    Returns:
        ``lsoa21_code, lsoa21_name, lad_code, lad_name, imd_score, imd_rank, imd_decile,
        income_score, employment_score, education_score, health_score, crime_score,
        barriers_score, living_env_score, idaci_score, idaopi_score, population``
        (population = total, mid 2022).
    """
    return _load_file7(path, "21", IOD2025_SCHEMA)


def load_iod2019_file7(path: str | Path) -> pd.DataFrame:
    """Load IoD2019 File 7 (LSOA 2011); convert with ``lookups.convert_lsoa11_to_lsoa21``.

    Returns:
        As :func:`load_iod2025_file7` with ``lsoa11_code, lsoa11_name`` (population = total,
        mid 2015, excluding prisoners).
    """
    return _load_file7(path, "11", IOD2019_SCHEMA)
