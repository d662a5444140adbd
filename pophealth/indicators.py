"""Indicators: area numerators and denominators to a tidy table with intervals and benchmarks.

The catalogue (``pophealth/data/catalogue.yaml``) defines every indicator: title, definition,
sources, polarity, statistic and unit. :func:`compute_indicator_table` turns summed area
measures into the tidy table (one row per area x basis x indicator) with 95% and 99.8%
limits, the parent's value, the comparator's value (England, or all loaded areas) and the
benchmark comparison at both confidence levels.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd
import yaml

from pophealth import stats

CONFIDENCE = (0.95, 0.998)

TIDY_COLUMNS = [
    "area_code",
    "area_name",
    "level",
    "area_type",
    "basis",
    "parent_code",
    "system_code",
    "indicator_id",
    "title",
    "unit",
    "polarity",
    "numerator",
    "denominator",
    "value",
    "lower_ci",
    "upper_ci",
    "lower_99_8",
    "upper_99_8",
    "method",
    "confidence",
    "reason",
    "parent_value",
    "comparator_value",
    "comparison_95",
    "comparison_99_8",
]


@lru_cache(maxsize=1)
def _catalogue_records() -> tuple[dict, ...]:
    text = resources.files("pophealth").joinpath("data/catalogue.yaml").read_text("utf-8")
    return tuple(yaml.safe_load(text)["indicators"])


def load_catalogue() -> pd.DataFrame:
    """The indicator catalogue as a DataFrame (one row per indicator, in display order)."""
    frame = pd.DataFrame(list(_catalogue_records()))
    frame["order"] = np.arange(len(frame))
    return frame


def _long_measures(area_measures: pd.DataFrame, basis: str) -> pd.DataFrame:
    """Reshape ``<indicator>__num/__den`` columns to rows of numerator/denominator."""
    nums = [c for c in area_measures.columns if c.endswith("__num")]
    rows = []
    for num in nums:
        indicator = num[: -len("__num")]
        den = f"{indicator}__den"
        rows.append(
            pd.DataFrame(
                {
                    "area_code": area_measures["area_code"].to_numpy(),
                    "basis": basis,
                    "indicator_id": indicator,
                    "numerator": area_measures[num].to_numpy(dtype=float),
                    "denominator": area_measures[den].to_numpy(dtype=float)
                    if den in area_measures
                    else np.nan,
                }
            )
        )
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _apply_statistics(long: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Compute value and limits for each indicator with its catalogue statistic."""
    meta = catalogue.set_index("id")
    parts = []
    for indicator, rows in long.groupby("indicator_id", sort=False):
        if indicator not in meta.index:
            continue
        spec = meta.loc[indicator]
        statistic, multiplier = spec["statistic"], float(spec["multiplier"])
        rows = rows.reset_index(drop=True)
        if statistic == "proportion":
            # attributed numerators are patient-weighted estimates; float error must not
            # push one above its denominator
            rows = rows.assign(numerator=rows["numerator"].clip(upper=rows["denominator"]))
            out = stats.proportion_wilson(
                rows,
                "numerator",
                "denominator",
                confidence=CONFIDENCE,
                multiplier=multiplier,
                id_col="area_code",
            )
        elif statistic == "rate":
            out = stats.rate_byar(
                rows,
                "numerator",
                "denominator",
                multiplier=multiplier,
                confidence=CONFIDENCE,
                id_col="area_code",
            )
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                if statistic == "count":
                    value = rows["numerator"].to_numpy(dtype=float)
                    method = "count"
                else:
                    den = rows["denominator"].to_numpy(dtype=float)
                    value = np.where(den > 0, rows["numerator"] / den, np.nan) * multiplier
                    method = (
                        "patient-weighted mean" if statistic == "mean" else "ratio (no interval)"
                    )
            out = rows.assign(
                value=value,
                lower_95=np.nan,
                upper_95=np.nan,
                lower_99_8=np.nan,
                upper_99_8=np.nan,
                confidence="",
                method=method,
                reason=np.where(np.isnan(value), "denominator is zero", ""),
            )
        parts.append(out)
    return pd.concat(parts, ignore_index=True)


def compute_indicator_table(
    register: pd.DataFrame,
    registered_measures: pd.DataFrame | None,
    resident_measures: pd.DataFrame | None,
    catalogue: pd.DataFrame | None = None,
    ethnicity_definition: str | None = None,
) -> pd.DataFrame:
    """Build the tidy indicator table for every area in the register.

    Args:
        register: Area register from :func:`pophealth.geography.build_area_register`.
        registered_measures: Area sums of practice measures (registered basis).
        resident_measures: Area sums of LSOA measures (resident basis).
        catalogue: Indicator catalogue (default: the packaged one).
        ethnicity_definition: Appended to the method of ``pct_ethnic_minority``.

    Returns:
        The tidy table with the columns in ``TIDY_COLUMNS``.
    """
    catalogue = load_catalogue() if catalogue is None else catalogue
    longs = []
    if registered_measures is not None and len(registered_measures):
        longs.append(_long_measures(registered_measures, "registered"))
    if resident_measures is not None and len(resident_measures):
        longs.append(_long_measures(resident_measures, "resident"))
    long = pd.concat(longs, ignore_index=True)
    long = long.merge(register[["area_code", "basis"]], on=["area_code", "basis"], how="inner")
    # an indicator with no data at all for a basis is not built (stated in the profile)
    has_data = long.groupby(["basis", "indicator_id"])["denominator"].transform(
        lambda d: bool((d.fillna(0) > 0).any())
    )
    is_count = long["indicator_id"] == "list_size"
    long = long[has_data | (is_count & (long["numerator"] > 0))]
    table = _apply_statistics(long, catalogue)
    table = table.rename(columns={"lower_95": "lower_ci", "upper_95": "upper_ci"})
    if ethnicity_definition:
        mask = table["indicator_id"] == "pct_ethnic_minority"
        table.loc[mask, "method"] = table.loc[mask, "method"] + f" ({ethnicity_definition})"
    table = table.merge(register, on=["area_code", "basis"], how="left")
    meta = catalogue[["id", "title", "unit", "polarity", "order"]].rename(
        columns={"id": "indicator_id"}
    )
    table = table.merge(meta, on="indicator_id", how="left")
    values = table.set_index(["area_code", "basis", "indicator_id"])["value"]
    parent_key = pd.MultiIndex.from_arrays(
        [table["parent_code"], table["basis"], table["indicator_id"]]
    )
    table["parent_value"] = values.reindex(parent_key).to_numpy()
    comp_key = pd.MultiIndex.from_arrays(
        [np.full(len(table), "ALL", dtype=object), table["basis"], table["indicator_id"]]
    )
    table["comparator_value"] = values.reindex(comp_key).to_numpy()
    for label in ("95", "99_8"):
        lower = "lower_ci" if label == "95" else "lower_99_8"
        upper = "upper_ci" if label == "95" else "upper_99_8"
        compared = stats.compare_to_benchmark(
            table[[lower, upper, "comparator_value", "polarity"]],
            lower=lower,
            upper=upper,
            benchmark="comparator_value",
            polarity="polarity",
            confidence_label=label,
        )
        table[f"comparison_{label}"] = compared[f"comparison_{label}"].to_numpy()
    level_order = {"neighbourhood": 0, "place": 1, "system": 2, "region": 3, "england": 4}
    table = table.assign(_lvl=table["level"].map(level_order)).sort_values(
        ["_lvl", "area_code", "basis", "order"]
    )
    return table[TIDY_COLUMNS].reset_index(drop=True)


def peer_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Range of values among peer areas (same level and basis) for spine charts.

    Returns:
        ``level, basis, indicator_id, peer_min, peer_q25, peer_q75, peer_max, peer_count``.
    """
    grouped = table.dropna(subset=["value"]).groupby(["level", "basis", "indicator_id"])["value"]
    out = grouped.agg(
        peer_min="min",
        peer_q25=lambda s: s.quantile(0.25),
        peer_q75=lambda s: s.quantile(0.75),
        peer_max="max",
        peer_count="count",
    )
    return out.reset_index()
