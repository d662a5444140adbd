"""Loaders for ONS geography lookups and LSOA 2011 -> 2021 conversion of LSOA values.

* LSOA 2021 -> sub-ICB location -> ICB -> LAD: ``LSOA21CD, LSOA21NM, SICBLyyCD, SICBLyyCDH,
  SICBLyyNM, ICByyCD, ICByyCDH, ICByyNM, LADyyCD, LADyyNM`` (any two-digit year; extra columns such
  as Cancer Alliance or ``ObjectId`` are ignored; LAD columns may be absent -> NA).
* LSOA 2011 -> 2021: ``LSOA11CD, LSOA11NM, LSOA21CD, LSOA21NM, CHGIND, LADyyCD, LADyyNM, …``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pophealth.codes import isin
from pophealth.sources.common import (
    ColumnPattern,
    canonical_schema,
    code_column,
    code_columns,
    read_source_csv,
)

__all__ = [
    "CHANGE_CODES",
    "LSOA11_TO_21_SCHEMA",
    "LSOA21_LOOKUP_SCHEMA",
    "convert_lsoa11_to_lsoa21",
    "load_lsoa11_to_lsoa21",
    "load_lsoa21_lookup",
]

#: ONS CHGIND: U unchanged, S split, M merged, X complex (redesigned).
CHANGE_CODES: tuple[str, ...] = ("U", "S", "M", "X")

LSOA21_LOOKUP_SCHEMA = canonical_schema(
    "LSOA 2021 to sub-ICB, ICB and LAD lookup",
    {
        "lsoa21_code": code_column(unique=True),
        "lsoa21_name": code_column(nullable=True),
        "sicbl_code": code_column(),
        **code_columns("sicbl_ods", "sicbl_name"),
        "icb_code": code_column(),
        **code_columns("icb_ods", "icb_name", "lad_code", "lad_name"),
    },
)
LSOA11_TO_21_SCHEMA = canonical_schema(
    "LSOA 2011 to LSOA 2021 lookup",
    {
        "lsoa11_code": code_column(),
        "lsoa21_code": code_column(),
        "change_code": pa.Column(str, pa.Check.isin(list(CHANGE_CODES))),
        "lad_code": code_column(nullable=True),
    },
)


def load_lsoa21_lookup(path: str | Path) -> pd.DataFrame:
    """Load the ONS LSOA 2021 -> sub-ICB location -> ICB -> LAD lookup (any edition year).

    ``…CDH`` columns hold the NHS (ODS) codes (``01F``, ``QYG``) -> ``sicbl_ods``/``icb_ods``.

    Returns:
        ``lsoa21_code, lsoa21_name, sicbl_code, sicbl_ods, sicbl_name, icb_code, icb_ods,
        icb_name, lad_code, lad_name`` (LAD columns all-NA when the edition has none; fill them
        from the IoD files, which carry LAD).
    """
    table = read_source_csv(
        path,
        {
            "lsoa21_code": ColumnPattern("LSOA21CD"),
            "lsoa21_name": ColumnPattern("LSOA21NM"),
            "sicbl_code": ColumnPattern(regex=[r"sicbl\d\dcd"]),
            "sicbl_ods": ColumnPattern(regex=[r"sicbl\d\dcdh"]),
            "sicbl_name": ColumnPattern(regex=[r"sicbl\d\dnm"]),
            "icb_code": ColumnPattern(regex=[r"icb\d\dcd"]),
            "icb_ods": ColumnPattern(regex=[r"icb\d\dcdh"]),
            "icb_name": ColumnPattern(regex=[r"icb\d\dnm"]),
            "lad_code": ColumnPattern(regex=[r"lad\d\dcd"]),
            "lad_name": ColumnPattern(regex=[r"lad\d\dnm"]),
        },
        optional={"lsoa21_name", "lad_code", "lad_name"},
        source="ONS LSOA21 to SICBL/ICB/LAD lookup",
    )
    out = pd.DataFrame(index=table.raw.index)
    for name in LSOA21_LOOKUP_SCHEMA.columns:
        # codes made joinable, names trimmed; absent optional columns all-NA
        out[name] = table.codes(name) if name.endswith(("_code", "_ods")) else table.text(name)
    return table.output(out, LSOA21_LOOKUP_SCHEMA)


def load_lsoa11_to_lsoa21(path: str | Path) -> pd.DataFrame:
    """Load the ONS LSOA 2011 -> LSOA 2021 lookup (``LSOA11_LSOA21_LADyy_LU``).

    Returns:
        ``lsoa11_code, lsoa21_code, change_code`` (``U``/``S``/``M``/``X``), ``lad_code``.
    """
    table = read_source_csv(
        path,
        {
            "lsoa11_code": ColumnPattern("LSOA11CD"),
            "lsoa21_code": ColumnPattern("LSOA21CD"),
            "change_code": ColumnPattern("CHGIND"),
            "lad_code": ColumnPattern(regex=[r"lad\d\dcd"]),
        },
        optional={"lad_code"},
        source="ONS LSOA 2011 to LSOA 2021 lookup",
    )
    out = pd.DataFrame(
        {
            "lsoa11_code": table.codes("lsoa11_code"),
            "lsoa21_code": table.codes("lsoa21_code"),
            "change_code": table.codes("change_code").str.upper(),
            "lad_code": table.codes("lad_code"),
        }
    )
    return table.output(out, LSOA11_TO_21_SCHEMA)


def convert_lsoa11_to_lsoa21(
    values: pd.DataFrame,
    lookup: pd.DataFrame,
    weights: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Carry LSOA 2011 values (scores, rates) onto LSOA 2021 using the ONS best-fit changes.

    * ``U`` unchanged and ``S`` split: each 2021 LSOA takes its 2011 parent's value (a split
      parent gives its value to every child).
    * ``M`` merged: the 2021 LSOA takes the population-weighted mean of its 2011 parents.
    * ``X`` complex: a 2021 LSOA with several 2011 parents takes their population-weighted mean;
      a 2011 LSOA with several 2021 children gives its value to each.

    Weights should be the IoD2019 population denominators (File 7/File 6 "Total population:
    mid 2015 (excluding prisoners)"), i.e. the population the 2011 values describe. With
    ``weights=None`` parents are weighted equally. Missing values are skipped per column.

    Only convert scores and rates: ranks and deciles are relative to all LSOAs and must not be
    averaged; re-derive them on the 2021 LSOAs from the converted scores (the caller does this).

    Args:
        values: ``lsoa11_code`` plus numeric value columns (not ranks/deciles).
        lookup: Output of :func:`load_lsoa11_to_lsoa21`.
        weights: ``lsoa11_code, population`` or ``None``.

    Returns:
        ``(converted, report)``: ``converted`` has ``lsoa21_code`` plus the value columns (one row
        per 2021 LSOA reached); ``report`` has ``change_code, n_lsoa11, n_lsoa21`` per change
        code, plus a row ``not_in_lookup`` counting 2011 codes the lookup does not know.

    Raises:
        ValueError: Missing ``lsoa11_code``, rank/decile or non-numeric value columns, repeated
            2011 codes, or missing/negative weights for a 2021 LSOA with several parents.
    """
    if "lsoa11_code" not in values.columns:
        raise ValueError("values needs an 'lsoa11_code' column")
    value_columns = [c for c in values.columns if c != "lsoa11_code"]
    refused = [c for c in value_columns if "rank" in c.lower() or "decile" in c.lower()]
    if refused:
        raise ValueError(
            f"ranks/deciles cannot be averaged across LSOA changes: {refused}; convert scores and "
            "re-derive ranks and deciles on LSOA 2021"
        )
    non_numeric = [c for c in value_columns if not pd.api.types.is_numeric_dtype(values[c])]
    if non_numeric:
        raise ValueError(f"value columns must be numeric: {non_numeric}")
    if values["lsoa11_code"].duplicated().any():
        repeated = values.loc[values["lsoa11_code"].duplicated(), "lsoa11_code"].head(5).tolist()
        raise ValueError(f"values repeat lsoa11_code, e.g. {repeated}")

    pairs = lookup[["lsoa11_code", "lsoa21_code", "change_code"]].drop_duplicates(
        ["lsoa11_code", "lsoa21_code"]
    )
    joined = pairs.merge(values, on="lsoa11_code", how="inner", validate="many_to_one")
    if weights is None:
        joined["_weight"] = 1.0
    else:
        weight_map = weights.drop_duplicates("lsoa11_code").set_index("lsoa11_code")["population"]
        joined["_weight"] = joined["lsoa11_code"].map(weight_map).astype("float64")
        parents = joined.groupby("lsoa21_code")["lsoa11_code"].transform("size")
        bad = (parents > 1) & ~(joined["_weight"] > 0)
        if bad.any():
            examples = joined.loc[bad, "lsoa11_code"].head(5).tolist()
            raise ValueError(
                f"{int(bad.sum())} LSOA 2011 parent(s) of merged/complex LSOA 2021 have no "
                f"positive population weight, e.g. {examples}; supply the IoD2019 population "
                "denominators"
            )
        # A single parent needs no weight: its value passes through.
        joined["_weight"] = joined["_weight"].where(parents > 1, 1.0)

    grouped_keys = joined["lsoa21_code"]
    converted = pd.DataFrame({"lsoa21_code": pd.unique(grouped_keys)})
    converted = converted.set_index("lsoa21_code")
    for column in value_columns:
        present = joined[column].notna()
        weighted = (joined[column].astype("float64") * joined["_weight"]).where(present, 0.0)
        numerator = weighted.groupby(grouped_keys).sum()
        denominator = joined["_weight"].where(present, 0.0).groupby(grouped_keys).sum()
        converted[column] = (numerator / denominator.replace(0.0, np.nan)).reindex(converted.index)
    converted = converted.reset_index()

    report = (
        joined.groupby("change_code")
        .agg(n_lsoa11=("lsoa11_code", "nunique"), n_lsoa21=("lsoa21_code", "nunique"))
        .reindex(list(CHANGE_CODES), fill_value=0)
        .rename_axis("change_code")
        .reset_index()
    )
    unknown = ~isin(values["lsoa11_code"], pairs["lsoa11_code"])
    report = pd.concat(
        [
            report,
            pd.DataFrame(
                {
                    "change_code": ["not_in_lookup"],
                    "n_lsoa11": [int(unknown.sum())],
                    "n_lsoa21": [0],
                }
            ),
        ],
        ignore_index=True,
    )
    return converted, report
