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
from pophealth.geography import AREA_COLUMNS
from pophealth.sources import SOURCES
from pophealth.staffing import fair_share

CONFIDENCE = (0.95, 0.998)

TIDY_COLUMNS = [
    *(c for c in AREA_COLUMNS if c != "parent_name"),
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
    "kind",
    "need",
    "parent_comparison_95",
    "peer_rank",
    "peer_count",
    "peer_quintile",
    "fair_share",
    "fair_share_gap",
    "fair_share_gap_pct",
    "parent_fair_share",
    "parent_fair_share_gap",
    "rating",
]

#: A supply indicator this far (percent) below its fair share is rated "fewer than fair share"
#: (and this far above, "more than fair share").
FAIR_SHARE_THRESHOLD_PCT = 10.0
#: A need-related mean without an interval (IMD score) this far (percent) above England's
#: reads "higher need" (below, "lower need").
NEED_MEAN_THRESHOLD_PCT = 10.0
#: Every rating the table can hold, by kind.
RATINGS = {
    "outcome": ("better", "similar", "worse", "higher", "lower", "not compared"),
    "context": ("higher need", "similar need", "lower need", "not rated", "not compared"),
    "supply": (
        "fewer than fair share",
        "about fair share",
        "more than fair share",
        "not compared",
    ),
}


@lru_cache(maxsize=1)
def _catalogue_records() -> tuple[dict, ...]:
    text = resources.files("pophealth").joinpath("data/catalogue.yaml").read_text("utf-8")
    return tuple(yaml.safe_load(text)["indicators"])


def section_indicators(section: str) -> list[str]:
    """Ids of the catalogue's indicators in a profile section, in catalogue order."""
    return [r["id"] for r in _catalogue_records() if r["section"] == section]


def headline_indicators() -> tuple[str, ...]:
    """Ids of the catalogue's headline indicators (``headline: true``), in catalogue order."""
    return tuple(r["id"] for r in _catalogue_records() if r.get("headline"))


def indicator_sources() -> dict[str, list[list[str]]]:
    """Indicator id -> the source groups it needs (each group met by any one of its sources)."""
    return {r["id"]: [list(group) for group in r["sources"]] for r in _catalogue_records()}


def unavailable_indicators(present: set[str]) -> dict[str, str]:
    """Indicators that cannot be built from the ``present`` sources, with the reason.

    Args:
        present: Names of the sources found (keys of :data:`pophealth.sources.SOURCES`).

    Returns:
        Indicator id -> ``"needs a or b"`` for the first source group none of whose sources is
        present.
    """
    missing = {}
    for indicator, groups in indicator_sources().items():
        for group in groups:
            if not present & set(group):
                missing[indicator] = "needs " + " or ".join(group)
                break
    return missing


def needing(source: str) -> set[str]:
    """Indicators that cannot be built without ``source`` (every other source present)."""
    return set(unavailable_indicators(set(SOURCES) - {source}))


def load_catalogue() -> pd.DataFrame:
    """The indicator catalogue as a DataFrame (one row per indicator, in display order)."""
    frame = pd.DataFrame(list(_catalogue_records()))
    frame["order"] = np.arange(len(frame))
    return frame


def _long_measures(area_measures: pd.DataFrame, basis: str) -> pd.DataFrame:
    """Reshape ``<indicator>__num/__den`` columns to rows of numerator/denominator."""
    nums = [c for c in area_measures.columns if c.endswith("__num")]
    if not nums:
        return pd.DataFrame()
    indicators = [num[: -len("__num")] for num in nums]
    size = len(area_measures)
    missing = np.full(size, np.nan)
    # one array per column, stacked indicator by indicator (as many rows as areas each)
    numerators = np.concatenate([area_measures[num].to_numpy(dtype=float) for num in nums])
    denominators = np.concatenate(
        [
            area_measures[f"{i}__den"].to_numpy(dtype=float)
            if f"{i}__den" in area_measures
            else missing
            for i in indicators
        ]
    )
    return pd.DataFrame(
        {
            "area_code": np.tile(area_measures["area_code"].to_numpy(), len(nums)),
            "basis": basis,
            "indicator_id": np.repeat(np.array(indicators, dtype=object), size),
            "numerator": numerators,
            "denominator": denominators,
        }
    )


def _apply_statistics(long: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Compute value and limits for each indicator with its catalogue statistic.

    Rows sharing a statistic and multiplier go through one call (a handful of calls, not one
    per indicator: the explorer and designer recompute small tables on every click).
    """
    meta = catalogue.set_index("id")
    long = long[long["indicator_id"].isin(meta.index)]
    statistic = long["indicator_id"].map(meta["statistic"])
    supply = long["indicator_id"].map(meta["kind"]) == "supply" if "kind" in meta else False
    # FTE is not a count of events: a supply "rate" gets no Poisson interval
    branch = np.where(
        statistic == "rate",
        np.where(supply, "fte_rate", "rate"),
        statistic.astype(str),
    )
    keyed = long.assign(
        _branch=branch, _multiplier=long["indicator_id"].map(meta["multiplier"]).astype(float)
    )
    parts = []
    for (kind, multiplier), rows in keyed.groupby(["_branch", "_multiplier"], sort=False):
        rows = rows.drop(columns=["_branch", "_multiplier"]).reset_index(drop=True)
        if kind == "proportion":
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
        elif kind == "rate":
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
                if kind == "count":
                    value = rows["numerator"].to_numpy(dtype=float)
                    method = "count"
                else:
                    den = rows["denominator"].to_numpy(dtype=float)
                    value = np.where(den > 0, rows["numerator"] / den, np.nan) * multiplier
                    method = {
                        "mean": "weighted mean",
                        "share": "share (no interval)",
                        "fte_rate": "FTE rate (no interval: FTE is not a count; compared by "
                        "fair share)",
                    }.get(kind, "ratio (no interval)")
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
    resident_weights: str | None = None,
) -> pd.DataFrame:
    """Build the tidy indicator table for every area in the register.

    Args:
        register: Area register from :func:`pophealth.geography.build_area_register`.
        registered_measures: Area sums of practice measures (registered basis).
        resident_measures: Area sums of LSOA measures (resident basis).
        catalogue: Indicator catalogue (default: the packaged one).
        ethnicity_definition: Appended to the method of ``pct_ethnic_minority``.
        resident_weights: What weights resident-basis deprivation (e.g. "IoD2025 population
            denominators"), said in its method.

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
    has_data = (
        long["denominator"].fillna(0).gt(0).groupby([long["basis"], long["indicator_id"]])
    ).transform("any")
    is_count = long["indicator_id"] == "list_size"
    long = long[has_data | (is_count & (long["numerator"] > 0))]
    table = _apply_statistics(long, catalogue)
    table = table.rename(columns={"lower_95": "lower_ci", "upper_95": "upper_ci"})
    if ethnicity_definition:
        mask = table["indicator_id"] == "pct_ethnic_minority"
        table.loc[mask, "method"] = table.loc[mask, "method"] + f" ({ethnicity_definition})"
    table = _deprivation_methods(table, resident_weights)
    table = table.merge(register, on=["area_code", "basis"], how="left")
    meta = catalogue[["id", "title", "unit", "polarity", "order"]].rename(
        columns={"id": "indicator_id"}
    )
    table = table.merge(meta, on="indicator_id", how="left")
    # on the resident basis the list-size row counts registered patients living in the area
    resident_size = (table["indicator_id"] == "list_size") & (table["basis"] == "resident")
    table.loc[resident_size, "title"] = "Registered patients living in the area"
    table = add_benchmarks(table, catalogue=catalogue)
    level_order = {"neighbourhood": 0, "place": 1, "system": 2, "region": 3, "england": 4}
    table = table.assign(_lvl=table["level"].map(level_order)).sort_values(
        ["_lvl", "area_code", "basis", "order"]
    )
    return table[TIDY_COLUMNS].reset_index(drop=True)


def add_benchmarks(
    table: pd.DataFrame,
    comparator_code: str | np.ndarray = "ALL",
    catalogue: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Add parent and comparator values, the benchmark comparisons and the ratings by kind.

    Args:
        table: Indicator rows with ``area_code, basis, indicator_id, parent_code, value``,
            limits and ``polarity``; every parent and the comparator in the same table.
        comparator_code: Area code of the comparator rows (England / all loaded areas), or one
            code per row (a stacked table of several periods).
        catalogue: Indicator catalogue (default: the packaged one).

    Returns:
        The table with ``parent_value, comparator_value, comparison_95, comparison_99_8`` and
        the columns :func:`rate_by_kind` adds.
    """
    catalogue = load_catalogue() if catalogue is None else catalogue
    table = table.copy()
    values = table.set_index(["area_code", "basis", "indicator_id"])["value"]
    parent_key = pd.MultiIndex.from_arrays(
        [table["parent_code"], table["basis"], table["indicator_id"]]
    )
    table["parent_value"] = values.reindex(parent_key).to_numpy()
    comp_key = pd.MultiIndex.from_arrays(
        [
            np.broadcast_to(np.asarray(comparator_code, dtype=object), len(table)),
            table["basis"],
            table["indicator_id"],
        ]
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
    return rate_by_kind(table, catalogue)


def peer_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Range of values among peer areas (same level and basis) for spine charts.

    Returns:
        ``level, basis, indicator_id, peer_min, peer_q25, peer_q75, peer_max, peer_count``.
    """
    grouped = table.dropna(subset=["value"]).groupby(["level", "basis", "indicator_id"])["value"]
    # the quartiles in one pass each (a Python quantile call per group was most of the time)
    out = pd.DataFrame(
        {
            "peer_min": grouped.min(),
            "peer_q25": grouped.quantile(0.25),
            "peer_q75": grouped.quantile(0.75),
            "peer_max": grouped.max(),
            "peer_count": grouped.count(),
        }
    )
    return out.reset_index()


def _deprivation_methods(table: pd.DataFrame, resident_weights: str | None) -> pd.DataFrame:
    """Say how deprivation was weighted: by patients (registered) or residents (resident)."""
    out = table.copy()
    registered = out["basis"] == "registered"
    score = out["indicator_id"] == "imd_score"
    out.loc[score & registered, "method"] = (
        "patient-weighted mean of LSOA scores (registered patients by LSOA of residence)"
    )
    weights = resident_weights or "Census 2021 residents"
    out.loc[score & ~registered, "method"] = f"resident-weighted mean of LSOA scores ({weights})"
    core20 = out["indicator_id"] == "pct_core20"
    out.loc[core20 & registered, "method"] = (
        out.loc[core20 & registered, "method"] + " (patient-weighted)"
    )
    out.loc[core20 & ~registered, "method"] = (
        out.loc[core20 & ~registered, "method"] + f" (resident-weighted: {weights})"
    )
    share = out["indicator_id"] == "pct_lsoas_most_deprived_10"
    out.loc[share, "method"] = "share of the area's LSOAs (all counted: no interval)"
    return out


def _peer_position(table: pd.DataFrame) -> pd.DataFrame:
    """Rank (1 = highest value) and quintile (5 = highest fifth) among peers.

    Peers are the areas of the same level, area type and basis (e.g. every PCN loaded), and
    of the same ``period`` when the table has one.
    """
    keys = ["level", "area_type", "basis", "indicator_id"]
    # a stacked history table ranks each period's areas among that period's peers
    keys += ["period"] if "period" in table else []
    ranked = table.groupby(keys, dropna=False)["value"]
    rank = ranked.rank(method="min", ascending=False)
    count = ranked.transform("count")
    # quintile from the share of peers at or below the value
    share_below = ranked.rank(method="max", ascending=True) / count
    quintile = np.ceil(share_below * 5).clip(1, 5)
    return pd.DataFrame(
        {
            "peer_rank": rank.where(table["value"].notna()),
            "peer_count": count,
            "peer_quintile": quintile.where(table["value"].notna()),
        },
        index=table.index,
    )


def rate_by_kind(table: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Add the statistic each kind of indicator needs and its rating (see catalogue.yaml).

    * outcome: ``rating`` is the 95% comparison with England (with polarity);
      ``parent_comparison_95`` the comparison with the parent.
    * context: position among peers; need-related context is rated higher/lower need.
    * supply: fair share at England's and the parent's rates, gap in FTE and %, rated by
      :data:`FAIR_SHARE_THRESHOLD_PCT`.

    Returns:
        A new table with the extra columns of ``TIDY_COLUMNS``.
    """
    meta = catalogue.set_index("id")
    need_flags = meta["need"] if "need" in meta else pd.Series(False, index=meta.index)
    kind = table["indicator_id"].map(meta["kind"]).fillna("context")
    need = table["indicator_id"].map(need_flags.fillna(False).astype(bool)).fillna(False)
    # patients per FTE (unit "patients") puts the staff in the denominator; every other supply
    # value (catalogue statistic rate, or ratio without intervals) is FTE per patients
    shape = np.where(table["indicator_id"].map(meta["unit"]) == "patients", "ratio", "rate")
    multiplier = table["indicator_id"].map(meta["multiplier"]).astype(float)
    out = table.assign(kind=kind.to_numpy(), need=need.to_numpy(dtype=bool))
    parent = stats.compare_to_benchmark(
        out[["lower_ci", "upper_ci", "parent_value", "polarity"]],
        lower="lower_ci",
        upper="upper_ci",
        benchmark="parent_value",
        polarity="polarity",
        confidence_label="95",
    )
    out["parent_comparison_95"] = parent["comparison_95"].to_numpy()
    # a table already rated (a history re-benchmarked per period) is rated afresh
    out = out.drop(columns=["peer_rank", "peer_count", "peer_quintile"], errors="ignore")
    out = out.join(_peer_position(out))
    supply = (kind == "supply").to_numpy()
    for prefix, bench in (("", "comparator_value"), ("parent_", "parent_value")):
        fair, gap, pct = fair_share(
            out["numerator"], out["denominator"], out[bench], shape, multiplier
        )
        out[f"{prefix}fair_share"] = np.where(supply, fair, np.nan)
        out[f"{prefix}fair_share_gap"] = np.where(supply, gap, np.nan)
        if not prefix:
            out["fair_share_gap_pct"] = np.where(supply, pct, np.nan)
    out["rating"] = _ratings(out)
    is_england = (out["level"] == "england").to_numpy()
    out.loc[is_england, "rating"] = "not compared"
    return out


def _ratings(table: pd.DataFrame) -> np.ndarray:
    """The rating of each row by its kind (see :func:`rate_by_kind`)."""
    kind = table["kind"].to_numpy()
    comparison = table["comparison_95"].to_numpy(dtype=object)
    rating = np.full(len(table), "not rated", dtype=object)
    outcome = kind == "outcome"
    rating[outcome] = comparison[outcome]
    # need-related context: significance where there is an interval, else a set margin
    need = table["need"].to_numpy(dtype=bool) & (kind == "context")
    has_interval = table["lower_ci"].notna().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (table["value"] / table["comparator_value"]).to_numpy(dtype=float)
    margin = NEED_MEAN_THRESHOLD_PCT / 100
    direction = np.where(
        has_interval,
        np.select([comparison == "higher", comparison == "lower"], [1, -1], 0),
        np.select([ratio >= 1 + margin, ratio <= 1 - margin], [1, -1], 0),
    )
    unknown = np.where(has_interval, comparison == "not compared", np.isnan(ratio))
    need_words = np.select(
        [direction > 0, direction < 0], ["higher need", "lower need"], "similar need"
    )
    rating[need] = np.where(unknown, "not compared", need_words)[need]
    supply = kind == "supply"
    pct = table["fair_share_gap_pct"].to_numpy(dtype=float)
    threshold = FAIR_SHARE_THRESHOLD_PCT
    supply_words = np.select(
        [np.isnan(pct), pct <= -threshold, pct >= threshold],
        ["not compared", "fewer than fair share", "more than fair share"],
        "about fair share",
    )
    rating[supply] = supply_words[supply]
    return rating
