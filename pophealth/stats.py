"""Public-health statistics as DataFrame-in / DataFrame-out functions.

The methods follow the R package PHEindicatormethods (OHID/UKHSA) and the PHE
"Technical Guide: Confidence Intervals", vectorised with numpy/scipy so that
thousands of areas are handled in one call.

Every row-wise function returns a NEW DataFrame holding the input columns plus
``value``, ``lower_<label>`` / ``upper_<label>`` for each requested confidence
level (label from :func:`ci_label`: ``95`` for 0.95, ``99_8`` for 0.998),
``confidence`` (e.g. ``"95%, 99.8%"``), ``method`` and ``reason`` (empty, or why
the value is missing). Impossible input raises :class:`StatisticsInputError`
naming the column and the first offending rows.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pophealth.checks import require_columns
from pophealth.errors import PopHealthError

if TYPE_CHECKING:
    from scipy import stats as sps


def _scipy_stats():
    """``scipy.stats``, imported on first use.

    It takes half a second to import, and a process that only reads files (prepare's release
    worker) never needs it.
    """
    from scipy import stats

    return stats


__all__ = [
    "ESP2013_BANDS",
    "POLARITIES",
    "StatisticsInputError",
    "ci_label",
    "compare_to_benchmark",
    "dsr_dobson",
    "european_standard_population_2013",
    "funnel_limits_proportion",
    "funnel_limits_random_effects",
    "funnel_limits_rate",
    "funnel_overdispersion",
    "funnel_plot_points",
    "mean_t",
    "proportion_wilson",
    "rate_byar",
    "ratio_of_counts",
    "slope_index_of_inequality",
    "weighted_cut_points",
    "weighted_quantile_groups",
]

ESP2013_BANDS: list[str] = [
    "0-4",
    "5-9",
    "10-14",
    "15-19",
    "20-24",
    "25-29",
    "30-34",
    "35-39",
    "40-44",
    "45-49",
    "50-54",
    "55-59",
    "60-64",
    "65-69",
    "70-74",
    "75-79",
    "80-84",
    "85-89",
    "90+",
]

POLARITIES: tuple[str, str, str] = ("no judgement", "high is good", "low is good")

# Counts below this use exact Poisson limits; Byar's approximation is used from here up
# (PHE Technical Guide: Confidence Intervals).
EXACT_POISSON_BELOW = 10
_MAX_EXAMPLES = 3


class StatisticsInputError(PopHealthError, ValueError):
    """Input that no public-health statistic can be computed from (e.g. negative counts)."""


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def ci_label(confidence: float) -> str:
    """Column-name label for a confidence level.

    Args:
        confidence: Confidence level as a fraction, e.g. 0.95 or 0.998.

    Returns:
        ``"95"`` for 0.95, ``"99_8"`` for 0.998, ``"99_9"`` for 0.999.
    """
    percent = round(float(confidence) * 100, 8)
    return f"{percent:g}".replace(".", "_")


def _confidence_levels(confidence: float | Sequence[float]) -> tuple[float, ...]:
    levels = (confidence,) if np.isscalar(confidence) else tuple(confidence)
    if len(levels) == 0:
        raise StatisticsInputError("confidence must be a level such as 0.95 or (0.95, 0.998)")
    checked = []
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int | float | np.number):
            raise StatisticsInputError(
                f"confidence level {level!r} is not a number; use e.g. 0.95 or (0.95, 0.998)"
            )
        if not 0.9 <= float(level) < 1:
            hint = (
                f" (give it as a fraction: {float(level) / 100:g}, not {level:g})"
                if 90 <= float(level) < 100
                else ""
            )
            raise StatisticsInputError(
                f"confidence level {level:g} is outside the range 0.9 to 1 used for "
                f"public-health confidence intervals{hint}"
            )
        checked.append(float(level))
    if len({ci_label(level) for level in checked}) != len(checked):
        raise StatisticsInputError(f"confidence levels {levels} contain duplicates")
    return tuple(checked)


def _confidence_text(levels: Sequence[float]) -> str:
    return ", ".join(f"{round(level * 100, 8):g}%" for level in levels)


def _z(level: float) -> float:
    return float(_scipy_stats().norm.ppf(0.5 + level / 2))


def _require_columns(df: pd.DataFrame, columns: Sequence[Hashable], what: str) -> None:
    require_columns(df, columns, what, error=StatisticsInputError)


def _row_names(df: pd.DataFrame, positions: np.ndarray, id_col: Hashable | None) -> list[str]:
    if id_col is not None and id_col in df.columns:
        ids = df[id_col].to_numpy()[positions]
        return [f"{id_col} {value}" for value in ids]
    labels = df.index[positions].tolist()
    return [f"row {label!r}" if isinstance(label, str) else f"row {label}" for label in labels]


def _fmt(value: object) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    return repr(value) if isinstance(value, str) else str(value)


def _raise_for_rows(
    df: pd.DataFrame,
    bad: np.ndarray,
    problem: str,
    describe: Callable[[int], str],
    id_col: Hashable | None,
    fix: str = "",
) -> None:
    """Raise naming the first offending rows when any element of the boolean mask is set."""
    positions = np.flatnonzero(bad)
    if positions.size == 0:
        return
    shown = positions[:_MAX_EXAMPLES]
    names = _row_names(df, shown, id_col)
    examples = "; ".join(f"{name}: {describe(pos)}" for name, pos in zip(names, shown, strict=True))
    more = f"; and {positions.size - shown.size} more" if positions.size > shown.size else ""
    plural = "row" if positions.size == 1 else "rows"
    message = f"{problem} in {positions.size} {plural} ({examples}{more})"
    raise StatisticsInputError(message + (f". {fix}" if fix else ""))


def _numeric(df: pd.DataFrame, column: Hashable, id_col: Hashable | None) -> np.ndarray:
    """Column as float64, raising if it holds text, booleans or infinite values."""
    series = df[column]
    if pd.api.types.is_bool_dtype(series):
        raise StatisticsInputError(
            f"column {column!r} holds true/false values, not numbers; convert it to counts"
        )
    if not pd.api.types.is_numeric_dtype(series):
        converted = pd.to_numeric(series, errors="coerce")
        is_text = series.map(lambda v: isinstance(v, str | bytes | bool)).to_numpy(dtype=bool)
        bad = (series.notna() & converted.isna()).to_numpy() | is_text
        values = series.to_numpy()
        _raise_for_rows(
            df,
            bad,
            f"column {column!r} is not numeric: values that are not numbers",
            lambda pos: _fmt(values[pos]),
            id_col,
            "Convert it with pd.to_numeric and decide what non-numbers (e.g. suppressed '*') mean",
        )
        series = converted
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    _raise_for_rows(
        df,
        np.isinf(values),
        f"column {column!r} has infinite values",
        lambda pos: _fmt(values[pos]),
        id_col,
    )
    return values


def _check_non_negative(
    df: pd.DataFrame, values: np.ndarray, column: Hashable, role: str, id_col: Hashable | None
) -> None:
    _raise_for_rows(
        df,
        values < 0,
        f"{role} column {column!r} has negative values",
        lambda pos: f"{column} {_fmt(values[pos])}",
        id_col,
        "Counts and populations cannot be negative; check the source extract",
    )


def _check_multiplier(multiplier: object) -> None:
    """A multiplier scales a statistic (100 for %, 100,000 for rates): it must be positive."""
    ok = isinstance(multiplier, int | float | np.number) and not isinstance(multiplier, bool)
    if not ok or not np.isfinite(multiplier) or multiplier <= 0:
        raise StatisticsInputError(
            f"multiplier must be a positive number (e.g. 100 for a percentage, 100000 for a "
            f"rate per 100,000), not {multiplier!r}"
        )


def _reasons(size: int, conditions: Sequence[tuple[np.ndarray, str]]) -> np.ndarray:
    """Object array of reasons; the first matching condition wins."""
    reason = np.full(size, "", dtype=object)
    unset = np.ones(size, dtype=bool)
    for mask, text in conditions:
        hit = mask & unset
        reason[hit] = text
        unset &= ~hit
    return reason


def _finish(
    out: pd.DataFrame,
    value: np.ndarray,
    limits: Mapping[float, tuple[np.ndarray, np.ndarray]],
    levels: Sequence[float],
    method: object,
    reason: np.ndarray,
) -> pd.DataFrame:
    columns: dict[str, object] = {"value": value}
    for level in levels:
        lower, upper = limits[level]
        columns[f"lower_{ci_label(level)}"] = lower
        columns[f"upper_{ci_label(level)}"] = upper
    columns["confidence"] = _confidence_text(levels)
    columns["method"] = method
    columns["reason"] = reason
    for name, column in columns.items():
        out[name] = column
    return out


def _poisson_count_limits(
    counts: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confidence limits for Poisson counts: exact below 10, Byar's approximation above.

    Returns:
        (lower, upper, exact) where ``exact`` marks rows that used exact limits.
    """
    alpha = 1 - level
    x = np.asarray(counts, dtype="float64")
    exact = x < EXACT_POISSON_BELOW
    lower = np.full(x.shape, np.nan)
    upper = np.full(x.shape, np.nan)
    # Exact (Garwood 1936): chi-square quantiles with 2x and 2x+2 degrees of freedom.
    with np.errstate(invalid="ignore"):
        xe = np.where(exact, x, 1.0)
        exact_lower = np.where(
            xe > 0, _scipy_stats().chi2.ppf(alpha / 2, 2 * np.maximum(xe, 1e-300)) / 2, 0
        )
        exact_upper = _scipy_stats().chi2.ppf(1 - alpha / 2, 2 * xe + 2) / 2
    lower[exact] = exact_lower[exact]
    upper[exact] = exact_upper[exact]
    # Byar (Breslow & Day 1987).
    byar = x >= EXACT_POISSON_BELOW
    z = _z(level)
    xb = x[byar]
    lower[byar] = xb * (1 - 1 / (9 * xb) - z / (3 * np.sqrt(xb))) ** 3
    upper[byar] = (xb + 1) * (1 - 1 / (9 * (xb + 1)) + z / (3 * np.sqrt(xb + 1))) ** 3
    return lower, upper, exact


# --------------------------------------------------------------------------------------
# 1. Proportions
# --------------------------------------------------------------------------------------


def _proportion_counts(
    df: pd.DataFrame,
    numerator: Hashable,
    denominator: Hashable,
    id_col: Hashable | None,
    *,
    roles: tuple[str, str] = ("numerator", "denominator"),
    exceeds: str = "",
    detail: Callable[[int], str] | None = None,
    fix: str = "A proportion cannot exceed 1; check both columns refer to the same population",
) -> tuple[np.ndarray, np.ndarray]:
    """Parts and wholes, checked: numbers, not negative, no part above its whole.

    ``roles`` name the two columns in messages (e.g. count and population), ``exceeds`` says
    what a part above its whole means, ``detail`` describes one such row.
    """
    x = _numeric(df, numerator, id_col)
    n = _numeric(df, denominator, id_col)
    _check_non_negative(df, x, numerator, roles[0], id_col)
    _check_non_negative(df, n, denominator, roles[1], id_col)
    _raise_for_rows(
        df,
        x > n,
        exceeds or f"numerator {numerator!r} exceeds denominator {denominator!r}",
        detail or (lambda pos: f"{numerator} {_fmt(x[pos])} > {denominator} {_fmt(n[pos])}"),
        id_col,
        fix,
    )
    return x, n


def proportion_wilson(
    df: pd.DataFrame,
    numerator: Hashable,
    denominator: Hashable,
    confidence: float | Sequence[float] = 0.95,
    multiplier: float = 1,
    id_col: Hashable | None = None,
) -> pd.DataFrame:
    """Proportions with Wilson score confidence limits.

    The Wilson (1927) score interval without continuity correction, method 3 of
    Newcombe RG (1998) "Two-sided confidence intervals for the single proportion:
    comparison of seven methods", Statistics in Medicine 17:857-872, as used by
    PHEindicatormethods::phe_proportion.

    Args:
        df: One row per area (or any unit).
        numerator: Column of counts with the attribute (e.g. patients with diabetes).
        denominator: Column of counts in the population (e.g. registered patients).
        confidence: A level such as 0.95, or a sequence such as (0.95, 0.998).
        multiplier: 1 for proportions, 100 for percentages.
        id_col: Column identifying areas, quoted in error messages.

    Returns:
        A copy of ``df`` plus ``value``, ``lower_<label>``, ``upper_<label>``,
        ``confidence``, ``method`` ("Wilson") and ``reason``.

    Raises:
        StatisticsInputError: Missing/non-numeric columns, negative counts, numerator
            greater than denominator, or a confidence level outside 0.9-1.
    """
    levels = _confidence_levels(confidence)
    _check_multiplier(multiplier)
    _require_columns(df, [numerator, denominator], "the proportions table")
    x, n = _proportion_counts(df, numerator, denominator, id_col)
    missing = np.isnan(x) | np.isnan(n)
    zero = n == 0
    undefined = missing | zero
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(undefined, np.nan, x / n * multiplier)
        limits = {}
        for level in levels:
            z = _z(level)
            centre = 2 * x + z * z
            spread = z * np.sqrt(z * z + 4 * x * (1 - x / n))
            scale = multiplier / (2 * (n + z * z))
            lower = np.where(undefined, np.nan, (centre - spread) * scale)
            upper = np.where(undefined, np.nan, (centre + spread) * scale)
            # x == 0 / x == n give limits exactly at 0 / 1 (rounding can stray by 1e-17).
            lower = np.where(x == 0, 0.0, lower)
            upper = np.where((x == n) & ~undefined, float(multiplier), upper)
            limits[level] = (np.where(undefined, np.nan, lower), upper)
    reason = _reasons(
        len(df),
        [
            (missing, "numerator or denominator is missing"),
            (zero, "denominator is zero"),
        ],
    )
    return _finish(df.copy(), value, limits, levels, "Wilson", reason)


# --------------------------------------------------------------------------------------
# 2. Rates and ratios (exact Poisson / Byar)
# --------------------------------------------------------------------------------------


def _poisson_statistic(
    df: pd.DataFrame,
    count: Hashable,
    denominator: Hashable,
    multiplier: float,
    confidence: float | Sequence[float],
    id_col: Hashable | None,
    count_role: str,
    denominator_role: str,
    what: str,
) -> pd.DataFrame:
    levels = _confidence_levels(confidence)
    _check_multiplier(multiplier)
    _require_columns(df, [count, denominator], what)
    x = _numeric(df, count, id_col)
    n = _numeric(df, denominator, id_col)
    _check_non_negative(df, x, count, count_role, id_col)
    _check_non_negative(df, n, denominator, denominator_role, id_col)
    _raise_for_rows(
        df,
        (x < EXACT_POISSON_BELOW) & (x != np.round(x)),
        f"{count_role} column {count!r} has fractional counts below {EXACT_POISSON_BELOW}, "
        "where exact Poisson limits need whole numbers",
        lambda pos: f"{count} {_fmt(x[pos])}",
        id_col,
        "Pass whole event counts; a measure that is not a count (e.g. FTE) has no Poisson interval",
    )
    missing = np.isnan(x) | np.isnan(n)
    zero = n == 0
    undefined = missing | zero
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(undefined, np.nan, multiplier / n)
        value = x * scale
        limits = {}
        exact = np.zeros(len(df), dtype=bool)
        for level in levels:
            lower, upper, exact = _poisson_count_limits(np.where(missing, 0, x), level)
            limits[level] = (lower * scale, upper * scale)
    method = np.where(exact, "Exact Poisson", "Byar").astype(object)
    method[missing] = ""
    reason = _reasons(
        len(df),
        [
            (missing, f"{count_role} or {denominator_role} is missing"),
            (zero, f"{denominator_role} is zero"),
        ],
    )
    return _finish(df.copy(), value, limits, levels, method, reason)


def rate_byar(
    df: pd.DataFrame,
    count: Hashable,
    denominator: Hashable,
    multiplier: float = 100_000,
    confidence: float | Sequence[float] = 0.95,
    id_col: Hashable | None = None,
) -> pd.DataFrame:
    """Crude rates with exact Poisson limits for small counts and Byar's method otherwise.

    Counts below 10 use exact limits from chi-square quantiles (Garwood F (1936)
    "Fiducial limits for the Poisson distribution", Biometrika 28:437-442); counts
    of 10 or more use Byar's approximation (Breslow NE, Day NE (1987) Statistical
    Methods in Cancer Research vol II, IARC), as in the PHE "Technical Guide:
    Confidence Intervals" and PHEindicatormethods::phe_rate.

    Args:
        df: One row per area.
        count: Column of event counts (e.g. emergency admissions).
        denominator: Column of population at risk (e.g. registered patients).
        multiplier: Rate per this many people (100,000 by default).
        confidence: A level such as 0.95, or a sequence such as (0.95, 0.998).
        id_col: Column identifying areas, quoted in error messages.

    Returns:
        A copy of ``df`` plus ``value``, limits, ``confidence``, ``method`` ("Exact
        Poisson" or "Byar" per row) and ``reason``.

    Raises:
        StatisticsInputError: Missing/non-numeric columns, negative counts or
            populations, or a confidence level outside 0.9-1.
    """
    return _poisson_statistic(
        df, count, denominator, multiplier, confidence, id_col, "count", "denominator",
        "the rates table",
    )  # fmt: skip


def ratio_of_counts(
    df: pd.DataFrame,
    observed: Hashable,
    expected: Hashable,
    multiplier: float = 1,
    confidence: float | Sequence[float] = 0.95,
    id_col: Hashable | None = None,
) -> pd.DataFrame:
    """Ratio of an observed count to an expected count (e.g. a standardised ratio).

    The observed count is treated as Poisson and the expected count as fixed; limits
    are the count's exact (Garwood 1936, counts below 10) or Byar (Breslow & Day
    1987) limits divided by the expected count, as in PHEindicatormethods
    (calculate_ISRatio) and the PHE "Technical Guide: Confidence Intervals".

    Args:
        df: One row per area.
        observed: Column of observed counts.
        expected: Column of expected counts (or any fixed divisor).
        multiplier: 1 for a ratio, 100 for a standardised ratio on the 100 scale.
        confidence: A level such as 0.95, or a sequence such as (0.95, 0.998).
        id_col: Column identifying areas, quoted in error messages.

    Returns:
        A copy of ``df`` plus ``value``, limits, ``confidence``, ``method`` and ``reason``.

    Raises:
        StatisticsInputError: Missing/non-numeric columns, negative counts or a
            confidence level outside 0.9-1.
    """
    return _poisson_statistic(
        df, observed, expected, multiplier, confidence, id_col, "observed count",
        "expected count", "the observed/expected table",
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# 3. Means
# --------------------------------------------------------------------------------------


def _as_list(columns: Hashable | Sequence[Hashable] | None) -> list[Hashable]:
    if columns is None:
        return []
    if isinstance(columns, str) or not isinstance(columns, Sequence):
        return [columns]
    return list(columns)


def mean_t(
    df: pd.DataFrame,
    value: Hashable,
    group_by: Hashable | Sequence[Hashable],
    confidence: float | Sequence[float] = 0.95,
    id_col: Hashable | None = None,
) -> pd.DataFrame:
    """Group means with Student's t confidence limits.

    mean ± t(1 - alpha/2, n - 1) * s / sqrt(n) (Student (1908) "The probable error
    of a mean", Biometrika 6:1-25), as in PHEindicatormethods::phe_mean. Missing
    values are left out of each group's count.

    Args:
        df: One row per observation (e.g. one row per practice).
        value: Column of values to average.
        group_by: Column(s) defining the groups (e.g. ``"icb_code"``).
        confidence: A level such as 0.95, or a sequence such as (0.95, 0.998).
        id_col: Column identifying rows, quoted in error messages.

    Returns:
        One row per group: the ``group_by`` columns, ``value_sum``, ``value_count``,
        ``stdev``, ``value``, limits, ``confidence``, ``method`` ("Student's t") and
        ``reason`` (set when a group has fewer than 2 values).

    Raises:
        StatisticsInputError: Missing or non-numeric columns, or a bad confidence level.
    """
    levels = _confidence_levels(confidence)
    groups = _as_list(group_by)
    _require_columns(df, [value, *groups], "the table of values")
    values = _numeric(df, value, id_col)
    frame = df[groups].copy()
    frame["_value"] = values
    grouped = frame.groupby(groups, sort=True, dropna=False)["_value"]
    out = grouped.agg(value_sum="sum", value_count="count", stdev="std").reset_index()
    count = out["value_count"].to_numpy(dtype="float64")
    stdev = out["stdev"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(count > 0, out["value_sum"].to_numpy(dtype="float64") / count, np.nan)
        limits = {}
        for level in levels:
            t = _scipy_stats().t.ppf(0.5 + level / 2, np.maximum(count - 1, 1))
            half = np.where(count >= 2, t * stdev / np.sqrt(count), np.nan)
            limits[level] = (mean - half, mean + half)
    reason = _reasons(
        len(out),
        [(count == 0, "no values in group"), (count < 2, "fewer than 2 values in group")],
    )
    return _finish(out, mean, limits, levels, "Student's t", reason)


# --------------------------------------------------------------------------------------
# 4. Directly standardised rates
# --------------------------------------------------------------------------------------


def european_standard_population_2013() -> pd.DataFrame:
    """European Standard Population 2013 in 19 five-year bands (0-4 … 85-89, 90+).

    Eurostat (2013) "Revision of the European Standard Population", with the
    90-94 and 95+ bands combined into 90+ as in PHE/OHID Fingertips indicators.

    Returns:
        DataFrame with columns ``age_band`` (str) and ``esp2013`` (int64), total 100,000.
    """
    source = resources.files("pophealth").joinpath("data", "esp2013.csv")
    with source.open("r", encoding="utf-8") as handle:
        standard = pd.read_csv(handle, dtype={"age_band": str, "esp2013": "int64"})
    return standard


def _standard_weights(standard: pd.DataFrame | Mapping[str, float] | pd.Series | None) -> pd.Series:
    if standard is None:
        esp = european_standard_population_2013()
        return pd.Series(esp["esp2013"].to_numpy(float), index=esp["age_band"], name="standard")
    if isinstance(standard, pd.DataFrame):
        if "age_band" not in standard.columns or standard.shape[1] != 2:
            raise StatisticsInputError(
                "standard must be a DataFrame with columns 'age_band' and one column of "
                f"standard population counts; got columns {list(standard.columns)}"
            )
        weight_col = next(c for c in standard.columns if c != "age_band")
        series = pd.Series(standard[weight_col].to_numpy(), index=standard["age_band"].astype(str))
    elif isinstance(standard, pd.Series):
        series = standard.copy()
        series.index = series.index.astype(str)
    elif isinstance(standard, Mapping):
        series = pd.Series(dict(standard))
        series.index = series.index.astype(str)
    else:
        raise StatisticsInputError(
            f"standard must be None, a DataFrame, a Series or a mapping, not {type(standard)}"
        )
    weights = pd.to_numeric(series, errors="coerce").astype(float)
    if weights.isna().any() or (weights < 0).any() or weights.sum() <= 0:
        raise StatisticsInputError(
            "standard population weights must be non-negative numbers with a positive total"
        )
    if series.index.duplicated().any():
        dupes = sorted(set(series.index[series.index.duplicated()]))
        raise StatisticsInputError(f"standard population repeats age bands {dupes}")
    return weights.rename("standard")


def _band_hint(band: str, expected: list[str]) -> str:
    """Suggest the standard band starting at the same age, else the closest spelling."""
    start = re.match(r"\s*(\d+)", band)
    same_start = [b for b in expected if start and re.match(rf"{start.group(1)}\D", b + " ")]
    close = same_start or difflib.get_close_matches(band, expected, n=1)
    return f"{band!r} (did you mean {close[0]!r}?)" if close else repr(band)


def dsr_dobson(
    df: pd.DataFrame,
    count: Hashable,
    population: Hashable,
    age_band: Hashable,
    group_by: Hashable | Sequence[Hashable],
    standard: pd.DataFrame | Mapping[str, float] | pd.Series | None = None,
    multiplier: float = 100_000,
    confidence: float | Sequence[float] = 0.95,
    min_count: int = 10,
    id_col: Hashable | None = None,
) -> pd.DataFrame:
    """Directly standardised rates (DSRs) with Dobson confidence limits.

    DSR = multiplier * sum(w_i * O_i / n_i) / sum(w_i); var(DSR) = sum(w_i^2 O_i /
    n_i^2) / sum(w_i)^2. Limits follow Dobson AJ, Kuulasmaa K, Eberle E, Scherer J
    (1991) "Confidence intervals for weighted sums of Poisson parameters", Stat
    Med 10:457-462: DSR + sqrt(var/O) * (O_limit - O), where O is the total count
    and O_limit its Poisson limit (exact below 10, Byar otherwise), as in
    PHEindicatormethods::calculate_dsr. Following PHE practice, DSRs from fewer than
    ``min_count`` events are not calculated (value NaN, with a reason).

    Args:
        df: One row per group and age band.
        count: Column of event counts.
        population: Column of population in the age band.
        age_band: Column of age-band labels matching the standard (``ESP2013_BANDS``).
        group_by: Column(s) identifying areas (and e.g. sex).
        standard: None for the European Standard Population 2013, or a DataFrame
            (``age_band`` + one weight column), Series or mapping of band -> weight.
        multiplier: Rate per this many people (100,000 by default).
        confidence: A level such as 0.95, or a sequence such as (0.95, 0.998).
        min_count: Smallest total count for which a DSR is calculated.
        id_col: Column identifying rows, quoted in error messages.

    Returns:
        One row per group: ``group_by`` columns, ``total_count``, ``total_pop``,
        ``value``, limits, ``confidence``, ``method`` ("Dobson") and ``reason``.

    Raises:
        StatisticsInputError: Missing/non-numeric columns, negative values, age bands
            that do not match the standard, or duplicate age bands within a group.
    """
    levels = _confidence_levels(confidence)
    _check_multiplier(multiplier)
    groups = _as_list(group_by)
    _require_columns(df, [count, population, age_band, *groups], "the DSR input table")
    weights = _standard_weights(standard)
    values = {"count": df[count].to_numpy(), "population": df[population].to_numpy()}
    x, n = _proportion_counts(
        df,
        count,
        population,
        id_col,
        roles=("count", "population"),
        exceeds=f"count column {count!r} is above its age band's population {population!r}",
        detail=lambda pos: (
            f"{count} {_fmt(float(values['count'][pos]))} > "
            f"{population} {_fmt(float(values['population'][pos]))} "
            f"({age_band} {df[age_band].iloc[pos]})"
        ),
        fix="Each row is one age band: its events cannot outnumber its people; check the join "
        "of counts to populations",
    )

    bands = df[age_band].astype(str).to_numpy()
    extra = sorted(set(bands) - set(weights.index))
    if extra:
        hints = ", ".join(_band_hint(band, list(weights.index)) for band in extra)
        raise StatisticsInputError(
            f"column {age_band!r} has age bands not in the standard population: {hints}. "
            f"Expected bands: {', '.join(weights.index)}"
        )
    frame = df[groups].copy()
    frame["_band"] = bands
    duplicated = frame.duplicated(subset=[*groups, "_band"], keep=False).to_numpy()
    _raise_for_rows(
        df,
        duplicated,
        f"age band repeated within a group in column {age_band!r}",
        lambda pos: f"{age_band} {bands[pos]}",
        id_col,
        "Aggregate to one row per group and age band first",
    )
    band_counts = frame.groupby(groups, sort=True, dropna=False)["_band"].nunique()
    incomplete = band_counts[band_counts < len(weights)]
    if len(incomplete):
        first_key = incomplete.index[0]
        key = first_key if isinstance(first_key, tuple) else (first_key,)
        selector = np.ones(len(frame), dtype=bool)
        for column, item in zip(groups, key, strict=True):
            selector &= (frame[column] == item).to_numpy()
        missing_bands = [b for b in weights.index if b not in set(bands[selector])]
        raise StatisticsInputError(
            f"{len(incomplete)} group(s) lack some age bands of the standard population "
            f"(first: {dict(zip(groups, key, strict=True))} is missing "
            f"{', '.join(missing_bands)}). "
            "Add rows with count 0 for bands with no events, and the band's population"
        )

    w = weights.reindex(bands).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["_count"] = x
        frame["_pop"] = n
        frame["_weighted"] = w * x / n
        frame["_variance"] = w * w * x / (n * n)
        frame["_zero_pop"] = n == 0
        frame["_missing"] = np.isnan(x) | np.isnan(n)
    summed = frame.groupby(groups, sort=True, dropna=False).agg(
        total_count=("_count", "sum"),
        total_pop=("_pop", "sum"),
        weighted=("_weighted", "sum"),
        variance=("_variance", "sum"),
        zero_pop=("_zero_pop", "any"),
        missing=("_missing", "any"),
    )
    out = summed.index.to_frame(index=False)
    out["total_count"] = summed["total_count"].to_numpy()
    out["total_pop"] = summed["total_pop"].to_numpy()
    total_w = float(weights.sum())
    total = summed["total_count"].to_numpy(dtype=float)
    missing = summed["missing"].to_numpy(dtype=bool)
    zero_pop = summed["zero_pop"].to_numpy(dtype=bool)
    too_few = total < min_count
    no_events = total == 0
    undefined = missing | zero_pop | too_few
    with np.errstate(divide="ignore", invalid="ignore"):
        dsr = summed["weighted"].to_numpy() / total_w
        var = summed["variance"].to_numpy() / total_w**2
        value = np.where(undefined, np.nan, dsr * multiplier)
        limits = {}
        for level in levels:
            lower_count, upper_count, _ = _poisson_count_limits(total, level)
            step = np.sqrt(var / total)
            lower = (dsr + step * (lower_count - total)) * multiplier
            upper = (dsr + step * (upper_count - total)) * multiplier
            bad = undefined | no_events
            limits[level] = (np.where(bad, np.nan, lower), np.where(bad, np.nan, upper))
    reason = _reasons(
        len(out),
        [
            (missing, "count or population is missing in an age band"),
            (zero_pop, "population is zero in an age band"),
            (too_few, f"total count is below {min_count}: too few events for a reliable DSR"),
            (no_events, "total count is zero: Dobson limits are undefined"),
        ],
    )
    return _finish(out, value, limits, levels, "Dobson", reason)


# --------------------------------------------------------------------------------------
# 5. Population-weighted quantile groups
# --------------------------------------------------------------------------------------


def weighted_cut_points(
    values: Sequence[float],
    weights: Sequence[float],
    n_groups: int,
    descending: bool = False,
) -> np.ndarray:
    """Cut points splitting a population into ``n_groups`` groups of equal weight.

    Values are sorted (ascending, or descending when ``descending``) and cut point k
    (k = 1..n_groups-1) is the first value at which the cumulative weight reaches
    k / n_groups of the total: the population-weighted quantile definition used for
    practice deprivation quintiles (e.g. OHID National General Practice Profiles).
    Group k then holds the values from cut point k-1 (exclusive) to cut point k
    (inclusive), so groups fill from group 1. Missing values are ignored.

    Args:
        values: Values to split (e.g. practice IMD scores).
        weights: Weights (e.g. registered patients), non-negative.
        n_groups: Number of groups (5 for quintiles, 10 for deciles).
        descending: Count from the highest value (group 1 = highest values).

    Returns:
        Array of ``n_groups - 1`` cut points, in the order they are reached.

    Raises:
        StatisticsInputError: Negative weights, no weight, or fewer than 2 groups.
    """
    if isinstance(n_groups, bool) or not isinstance(n_groups, int | np.integer) or n_groups < 2:
        raise StatisticsInputError(f"n_groups must be an integer of at least 2, not {n_groups!r}")
    v = np.asarray(values, dtype="float64")
    w = np.asarray(weights, dtype="float64")
    if v.shape != w.shape:
        raise StatisticsInputError("values and weights must have the same length")
    keep = ~(np.isnan(v) | np.isnan(w))
    v, w = v[keep], w[keep]
    if (w < 0).any():
        raise StatisticsInputError("weights (populations) cannot be negative")
    if w.sum() <= 0:
        raise StatisticsInputError("weights (populations) total zero: no population to split")
    sign = -1.0 if descending else 1.0
    order = np.argsort(sign * v, kind="stable")
    v, w = v[order], w[order]
    share = np.cumsum(w) / w.sum()
    targets = np.arange(1, n_groups) / n_groups
    # A tiny tolerance stops float rounding in the cumulative sum from skipping a value.
    positions = np.searchsorted(share, targets - 1e-12, side="left")
    return v[np.minimum(positions, v.size - 1)]


def weighted_quantile_groups(
    df: pd.DataFrame,
    value: Hashable,
    weight: Hashable,
    n_groups: int = 5,
    reference: pd.DataFrame | None = None,
    higher_is_more_deprived: bool = True,
    id_col: Hashable | None = None,
) -> pd.DataFrame:
    """Assign population-weighted quantile groups (quintiles, deciles).

    Cut points come from :func:`weighted_cut_points` on ``reference`` (e.g. all
    practices in England, so local groups are national quintiles) or on ``df``
    itself. Groups fill from group 1 (see :func:`weighted_cut_points`): a value equal
    to a cut point goes into the group nearer group 1.

    Args:
        df: One row per unit (e.g. practice) with a value and a weight.
        value: Column of values (e.g. IMD score).
        weight: Column of weights (e.g. registered patients).
        n_groups: Number of groups.
        reference: Table with the same ``value``/``weight`` columns for the cut points.
        higher_is_more_deprived: If True group 1 holds the highest values (most
            deprived); otherwise group 1 holds the lowest values.
        id_col: Column identifying rows, quoted in error messages.

    Returns:
        A copy of ``df`` plus ``quantile_group`` (nullable Int64; <NA> where the value
        is missing).

    Raises:
        StatisticsInputError: Missing/non-numeric columns or negative weights.
    """
    _require_columns(df, [value, weight], "the table to split into groups")
    v = _numeric(df, value, id_col)
    w = _numeric(df, weight, id_col)
    _check_non_negative(df, w, weight, "weight", id_col)
    descending = bool(higher_is_more_deprived)
    if reference is None:
        cuts = weighted_cut_points(v, w, n_groups, descending=descending)
    else:
        _require_columns(reference, [value, weight], "the reference table")
        rv = _numeric(reference, value, None)
        rw = _numeric(reference, weight, None)
        _check_non_negative(reference, rw, weight, "reference weight", None)
        cuts = weighted_cut_points(rv, rw, n_groups, descending=descending)
    # Group = 1 + number of cut points passed before reaching the value.
    if descending:
        group = 1 + np.searchsorted(-cuts, -v, side="left")
    else:
        group = 1 + np.searchsorted(cuts, v, side="left")
    out = df.copy()
    out["quantile_group"] = pd.array(np.where(np.isnan(v), 0, group), dtype="Int64")
    out.loc[np.isnan(v), "quantile_group"] = pd.NA
    return out


# --------------------------------------------------------------------------------------
# 6. Slope and relative index of inequality
# --------------------------------------------------------------------------------------

_TRANSFORMS = ("none", "log", "logit")


def _transform(values: np.ndarray, transform: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if transform == "log":
            return np.log(values)
        if transform == "logit":
            return np.log(values / (1 - values))
    return values


def _untransform(values: np.ndarray, transform: str) -> np.ndarray:
    if transform == "log":
        return np.exp(values)
    if transform == "logit":
        return 1 / (1 + np.exp(-values))
    return values


_SII_BLOCK = 32  # sets simulated together on the linear scale


def slope_index_of_inequality(
    df: pd.DataFrame,
    value: Hashable,
    population: Hashable,
    group: Hashable,
    lower: Hashable | None = None,
    upper: Hashable | None = None,
    confidence: float | Sequence[float] = 0.95,
    n_sims: int = 100_000,
    seed: int = 1,
    rii: bool = True,
    by: Hashable | Sequence[Hashable] | None = None,
    se: Hashable | None = None,
    limits_confidence: float = 0.95,
    transform: str = "none",
) -> pd.DataFrame:
    """Slope (SII) and relative (RII) index of inequality across ordered groups.

    Groups (e.g. deprivation quintiles, 1 = most deprived) are given a relative rank
    at the midpoint of their share of the cumulative population; the value is
    regressed on rank by weighted least squares with population-share weights
    (equivalently, sqrt(a)*y on sqrt(a) and b*sqrt(a), no intercept). SII is the
    slope: the fitted difference between the least (rank 1) and most (rank 0)
    deprived ends. RII = (intercept + SII) / intercept. Confidence limits come from
    Monte Carlo simulation, drawing each group's value from a normal distribution
    with its standard error (from ``se`` or from its ``lower``/``upper`` limits),
    optionally on the log or logit scale. Low A, Low A (2004) "Measuring the gap:
    quantifying and comparing local health inequalities", J Public Health 26:388-395;
    PHEindicatormethods::phe_sii.

    The same seeded standard-normal draws are used for every ``by`` set, so results
    are reproducible and do not depend on the order or number of sets.

    Args:
        df: One row per ``by`` set and group.
        value: Column of group values.
        population: Column of group populations (all > 0).
        group: Column of ordered group numbers (1 = most deprived).
        lower: Column of the groups' lower confidence limits (with ``upper``).
        upper: Column of the groups' upper confidence limits.
        confidence: Level(s) for the SII/RII limits, e.g. 0.95 or (0.95, 0.998).
        n_sims: Number of simulations (at least 1,000; 100,000 by default, as
            PHEindicatormethods::phe_sii).
        seed: Random seed.
        rii: Also return the RII and its limits.
        by: Column(s) defining separate sets (e.g. ``"icb_code"``).
        se: Column of standard errors, used instead of ``lower``/``upper``.
        limits_confidence: Confidence level of the given ``lower``/``upper`` limits.
        transform: "none", "log" (rates) or "logit" (proportions): the scale on which
            the standard error is derived and values are simulated.

    Returns:
        One row per ``by`` set: ``by`` columns, ``n_groups``, ``sii``,
        ``sii_lower_<label>``, ``sii_upper_<label>``, (``rii``, ``rii_lower_<label>``,
        ``rii_upper_<label>``), ``confidence``, ``method`` and ``reason``.

    Raises:
        StatisticsInputError: Missing/non-numeric columns, non-positive populations,
            repeated groups, bad limits or settings.
    """
    levels = _confidence_levels(confidence)
    (limits_level,) = _confidence_levels(limits_confidence)
    if transform not in _TRANSFORMS:
        raise StatisticsInputError(f"transform must be one of {_TRANSFORMS}, not {transform!r}")
    if isinstance(n_sims, bool) or not isinstance(n_sims, int | np.integer) or n_sims < 1000:
        raise StatisticsInputError(f"n_sims must be an integer of at least 1000, not {n_sims!r}")
    if (lower is None) != (upper is None):
        raise StatisticsInputError("give both lower and upper limit columns, or neither")
    by_cols = _as_list(by)
    spread_cols = [c for c in (lower, upper, se) if c is not None]
    _require_columns(df, [value, population, group, *by_cols, *spread_cols], "the SII table")
    y = _numeric(df, value, None)
    pop = _numeric(df, population, None)
    rank = _numeric(df, group, None)
    _raise_for_rows(
        df,
        ~(pop > 0),
        f"population column {population!r} has zero, negative or missing values",
        lambda pos: f"{group} {_fmt(rank[pos])}: {population} {_fmt(pop[pos])}",
        by_cols[0] if by_cols else None,
        "Every quantile group needs a population to place it on the deprivation scale",
    )
    if se is not None:
        spread = _numeric(df, se, None)
        _check_non_negative(df, spread, se, "standard error", by_cols[0] if by_cols else None)
        spread = spread.copy()
    elif lower is not None:
        lo = _numeric(df, lower, None)
        hi = _numeric(df, upper, None)
        _raise_for_rows(
            df,
            lo > hi,
            f"lower limit {lower!r} exceeds upper limit {upper!r}",
            lambda pos: f"{lower} {_fmt(lo[pos])} > {upper} {_fmt(hi[pos])}",
            by_cols[0] if by_cols else None,
        )
        spread = (_transform(hi, transform) - _transform(lo, transform)) / (2 * _z(limits_level))
    else:
        spread = np.full(len(df), np.nan)
    if transform != "none":
        valid = (y > 0) & (y < 1) if transform == "logit" else y > 0
        scale_rule = "between 0 and 1" if transform == "logit" else "above 0"
        _raise_for_rows(
            df,
            ~valid & ~np.isnan(y),
            f"value column {value!r} must be {scale_rule} for transform {transform!r}",
            lambda pos: f"{group} {_fmt(rank[pos])}: {value} {_fmt(y[pos])}",
            by_cols[0] if by_cols else None,
            "Use transform='none' for values that can be zero or negative",
        )
    ty = _transform(y, transform)

    frame = pd.DataFrame({"_rank": rank, "_y": ty, "_pop": pop, "_se": spread})
    for column in by_cols:
        frame[column] = df[column].to_numpy()
    key_cols = by_cols or ["_all"]
    if not by_cols:
        frame["_all"] = 0
    duplicated = frame.duplicated(subset=[*key_cols, "_rank"], keep=False).to_numpy()
    _raise_for_rows(
        df,
        duplicated,
        f"quantile group column {group!r} repeats a group within a set",
        lambda pos: f"{group} {_fmt(rank[pos])}",
        by_cols[0] if by_cols else None,
        "Give one row per set and quantile group",
    )
    all_groups = np.sort(np.unique(rank))
    if all_groups.size < 2:
        raise StatisticsInputError(f"column {group!r} needs at least 2 quantile groups")

    wide_y = frame.set_index([*key_cols, "_rank"])["_y"].unstack("_rank")
    wide_pop = frame.set_index([*key_cols, "_rank"])["_pop"].unstack("_rank")
    wide_se = frame.set_index([*key_cols, "_rank"])["_se"].unstack("_rank")
    wide_y = wide_y.reindex(columns=all_groups)
    wide_pop = wide_pop.reindex(columns=all_groups)
    wide_se = wide_se.reindex(columns=all_groups)

    ymat = wide_y.to_numpy()
    pmat = wide_pop.to_numpy()
    smat = wide_se.to_numpy()
    incomplete = np.isnan(pmat).any(axis=1)
    missing_value = np.isnan(ymat).any(axis=1) & ~incomplete
    no_se = np.isnan(smat).any(axis=1) & ~incomplete & ~missing_value

    share = np.nan_to_num(pmat) / np.nansum(pmat, axis=1, keepdims=True)
    midpoint = np.cumsum(share, axis=1) - share / 2
    mean_rank = (share * midpoint).sum(axis=1, keepdims=True)
    sxx = (share * (midpoint - mean_rank) ** 2).sum(axis=1, keepdims=True)
    # WLS slope = y @ slope_weights, intercept = y @ share - slope * mean_rank.
    slope_weights = share * (midpoint - mean_rank) / sxx
    natural = _untransform(ymat, transform)
    sii = np.einsum("ij,ij->i", natural, slope_weights)
    intercept = np.einsum("ij,ij->i", natural, share) - sii * mean_rank[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        rii_value = (intercept + sii) / intercept

    rng = np.random.default_rng(seed)
    draws = rng.standard_normal((n_sims, all_groups.size))
    quantiles = sorted({q for level in levels for q in ((1 - level) / 2, (1 + level) / 2)})
    sii_q = np.full((len(ymat), len(quantiles)), np.nan)
    rii_q = np.full((len(ymat), len(quantiles)), np.nan)
    simulate = ~(incomplete | missing_value | no_se)
    rows_to_simulate = np.flatnonzero(simulate)
    if transform == "none":
        # linear in the draws: one matrix product per block of sets (memory n_sims x block)
        for start in range(0, len(rows_to_simulate), _SII_BLOCK):
            block = rows_to_simulate[start : start + _SII_BLOCK]
            noise_sii = draws @ (smat[block] * slope_weights[block]).T
            sim_sii = sii[block] + noise_sii
            sii_q[block] = np.quantile(sim_sii, quantiles, axis=0).T
            if rii:
                base = np.einsum("ij,ij->i", ymat[block], share[block])
                sim_intercept = (
                    base + draws @ (smat[block] * share[block]).T - sim_sii * mean_rank[block, 0]
                )
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = (sim_intercept + sim_sii) / sim_intercept
                rii_q[block] = np.quantile(ratio, quantiles, axis=0).T
        rows_to_simulate = rows_to_simulate[:0]
    # other scales: one set at a time (memory n_sims x n_groups), each fully vectorised
    for row in rows_to_simulate:
        simulated = _untransform(ymat[row] + draws * smat[row], transform)
        sim_sii = simulated @ slope_weights[row]
        sim_intercept = simulated @ share[row] - sim_sii * mean_rank[row, 0]
        sii_q[row] = np.quantile(sim_sii, quantiles)
        if rii:
            with np.errstate(divide="ignore", invalid="ignore"):
                rii_q[row] = np.quantile((sim_intercept + sim_sii) / sim_intercept, quantiles)

    out = wide_y.index.to_frame(index=False)
    if not by_cols:
        out = out.drop(columns="_all")
    out["n_groups"] = all_groups.size - np.isnan(pmat).sum(axis=1)
    undefined = incomplete | missing_value
    out["sii"] = np.where(undefined, np.nan, sii)
    for level in levels:
        label = ci_label(level)
        out[f"sii_lower_{label}"] = sii_q[:, quantiles.index((1 - level) / 2)]
        out[f"sii_upper_{label}"] = sii_q[:, quantiles.index((1 + level) / 2)]
    if rii:
        out["rii"] = np.where(undefined, np.nan, rii_value)
        for level in levels:
            label = ci_label(level)
            out[f"rii_lower_{label}"] = rii_q[:, quantiles.index((1 - level) / 2)]
            out[f"rii_upper_{label}"] = rii_q[:, quantiles.index((1 + level) / 2)]
    out["confidence"] = _confidence_text(levels)
    scale = {"none": "", "log": " on the log scale", "logit": " on the logit scale"}[transform]
    out["method"] = f"WLS on cumulative population midpoint; {n_sims} simulations{scale}"
    missing_groups = [
        ", ".join(_fmt(g) for g in all_groups[np.isnan(pmat[i])]) for i in range(len(pmat))
    ]
    reason = _reasons(len(out), [(missing_value, "a quantile group's value is missing")])
    reason[incomplete] = [
        f"missing quantile groups {missing_groups[i]}" for i in np.flatnonzero(incomplete)
    ]
    reason[no_se] = "no standard errors or confidence limits for the groups: no SII limits"
    out["reason"] = reason
    return out


# --------------------------------------------------------------------------------------
# 7. Funnel plot control limits
# --------------------------------------------------------------------------------------


def _interpolated_limit(
    distribution: sps.rv_discrete, probability: float, divisor: np.ndarray
) -> np.ndarray:
    """Spiegelhalter (2005) appendix A.1: interpolated quantile of a discrete distribution."""
    r_p = distribution.ppf(probability)
    cdf_r = distribution.cdf(r_p)
    cdf_below = distribution.cdf(r_p - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = (cdf_r - probability) / (cdf_r - cdf_below)
        return (r_p - alpha) / divisor


def _funnel_frame(denominators: Sequence[float], what: str) -> np.ndarray:
    n = np.asarray(denominators, dtype="float64")
    if n.ndim != 1:
        raise StatisticsInputError(f"{what} must be a one-dimensional sequence")
    bad = np.flatnonzero(~(n >= 0))
    if bad.size:
        raise StatisticsInputError(
            f"{what} must be non-negative numbers; position {bad[0]} is {n[bad[0]]!r}"
        )
    return n


def funnel_limits_proportion(
    denominators: Sequence[float],
    target: float,
    confidence: float | Sequence[float] = (0.95, 0.998),
    multiplier: float = 1,
) -> pd.DataFrame:
    """Funnel-plot control limits for proportions (exact binomial, interpolated).

    For each denominator n, the limit at probability p is (r_p - a) / n where r_p is
    the binomial p-quantile and a = (F(r_p) - p) / (F(r_p) - F(r_p - 1)) smooths the
    discrete steps: Spiegelhalter DJ (2005) "Funnel plots for comparing institutional
    performance", Stat Med 24:1185-1202, appendix A.1.1.

    Args:
        denominators: Whole-number denominators (e.g. from :func:`funnel_plot_points`).
        target: Target proportion on the ``multiplier`` scale (e.g. 30 with multiplier 100).
        confidence: Control-limit levels, by default 95% and 99.8%.
        multiplier: 1 for proportions, 100 for percentages.

    Returns:
        DataFrame ``denominator, lower_95, upper_95, lower_99_8, upper_99_8`` (one
        pair per level), clipped to [0, multiplier]; NaN where the denominator is 0.

    Raises:
        StatisticsInputError: Negative or fractional denominators, or a target
            outside 0 to multiplier.
    """
    levels = _confidence_levels(confidence)
    _check_multiplier(multiplier)
    n = _funnel_frame(denominators, "denominators")
    if not np.all(n == np.round(n)):
        raise StatisticsInputError("binomial funnel limits need whole-number denominators")
    p = float(target) / multiplier
    if not 0 <= p <= 1:
        raise StatisticsInputError(f"target {target} is outside 0 to {multiplier}")
    out = pd.DataFrame({"denominator": n})
    distribution = _scipy_stats().binom(n, p)
    for level in levels:
        label = ci_label(level)
        for side, probability in (("lower", (1 - level) / 2), ("upper", (1 + level) / 2)):
            limit = _interpolated_limit(distribution, probability, n)
            limit = np.clip(limit * multiplier, 0, multiplier)
            out[f"{side}_{label}"] = np.where(n > 0, limit, np.nan)
    return out


def funnel_limits_rate(
    denominators: Sequence[float],
    target_rate: float,
    confidence: float | Sequence[float] = (0.95, 0.998),
    multiplier: float = 100_000,
) -> pd.DataFrame:
    """Funnel-plot control limits for rates and ratios (exact Poisson, interpolated).

    The expected count is E = n * target_rate / multiplier and the limit is
    (r_p - a) / n * multiplier with r_p the Poisson p-quantile of E and a the
    interpolation of Spiegelhalter DJ (2005) "Funnel plots for comparing
    institutional performance", Stat Med 24:1185-1202, appendix A.1.2. For
    standardised ratios pass expected counts as ``denominators``, ``target_rate=1``
    and ``multiplier=1`` (or 100).

    Args:
        denominators: Populations (or expected counts for ratios).
        target_rate: Target rate per ``multiplier`` (e.g. England's rate).
        confidence: Control-limit levels, by default 95% and 99.8%.
        multiplier: Rate per this many people.

    Returns:
        DataFrame ``denominator`` plus ``lower_<label>`` / ``upper_<label>`` per level,
        limits floored at 0; NaN where the denominator is 0.

    Raises:
        StatisticsInputError: Negative denominators or a negative target.
    """
    levels = _confidence_levels(confidence)
    _check_multiplier(multiplier)
    n = _funnel_frame(denominators, "denominators")
    if not float(target_rate) >= 0:
        raise StatisticsInputError(f"target_rate {target_rate} must be zero or more")
    expected = n * float(target_rate) / multiplier
    out = pd.DataFrame({"denominator": n})
    distribution = _scipy_stats().poisson(expected)
    for level in levels:
        label = ci_label(level)
        for side, probability in (("lower", (1 - level) / 2), ("upper", (1 + level) / 2)):
            limit = _interpolated_limit(distribution, probability, n) * multiplier
            out[f"{side}_{label}"] = np.where(n > 0, np.maximum(limit, 0), np.nan)
    return out


_FUNNEL_STATISTICS = ("proportion", "rate")


def _funnel_transform(statistic: str) -> None:
    if statistic not in _FUNNEL_STATISTICS:
        raise StatisticsInputError(
            f"statistic must be one of {', '.join(_FUNNEL_STATISTICS)}, not {statistic!r}"
        )


def _variance_stabilised(
    values: np.ndarray, denominators: np.ndarray, statistic: str, multiplier: float
) -> tuple[np.ndarray, np.ndarray]:
    """Values on the variance-stabilising scale and their standard errors.

    Proportions: arcsine square root, se 1 / (2 sqrt(n)); rates: square root of the
    (per-person) rate, se 1 / (2 sqrt(n)) (Spiegelhalter 2005, QSHC, table 1).
    """
    share = np.asarray(values, dtype=float) / multiplier
    n = np.asarray(denominators, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if statistic == "proportion":
            y = np.arcsin(np.sqrt(np.clip(share, 0, 1)))
        else:
            y = np.sqrt(np.maximum(share, 0))
        se = 1 / (2 * np.sqrt(n))
    return y, se


def funnel_overdispersion(
    values: Sequence[float],
    denominators: Sequence[float],
    target: float,
    statistic: str = "proportion",
    multiplier: float = 1,
    winsorise: float = 0.1,
    significance: float = 0.05,
) -> dict[str, float | bool | int]:
    """Overdispersion of a set of peers around a target, and the random-effects variance.

    Spiegelhalter DJ (2005) "Handling over-dispersion of performance indicators", Qual Saf
    Health Care 14:347-351, as FunnelPlotR (Wiles T) does: z-scores on the
    variance-stabilised scale (arcsine square root for proportions, square root for rates),
    Winsorised at ``winsorise`` in each tail; ``phi = sum(z^2) / I``. The peers are
    overdispersed when ``I * phi`` exceeds the chi-square (I - 1 degrees of freedom) upper
    ``significance`` point; then the additive random-effects variance is
    ``tau2 = max(0, (I * phi - (I - 1)) / (sum(w) - sum(w^2) / sum(w)))`` with
    ``w = 1 / se^2``; otherwise ``tau2 = 0``.

    Args:
        values: The peers' values on the ``multiplier`` scale (e.g. percentages).
        denominators: The peers' denominators (people).
        target: The target on the ``multiplier`` scale (e.g. England's value).
        statistic: ``proportion`` or ``rate``.
        multiplier: 100 for percentages, 10,000 for rates per 10,000, ...
        winsorise: Share Winsorised in each tail (Spiegelhalter's 10%).
        significance: Level of the chi-square test of overdispersion.

    Returns:
        ``{"n": I, "phi", "tau2", "overdispersed"}``.

    Raises:
        StatisticsInputError: Fewer than 3 usable peers, non-positive denominators, a bad
            multiplier or statistic.
    """
    _funnel_transform(statistic)
    _check_multiplier(multiplier)
    value = np.asarray(values, dtype=float)
    n = np.asarray(denominators, dtype=float)
    if value.shape != n.shape:
        raise StatisticsInputError("values and denominators must have the same length")
    usable = np.isfinite(value) & np.isfinite(n)
    if (n[usable] <= 0).any():
        raise StatisticsInputError("funnel denominators must be positive")
    value, n = value[usable], n[usable]
    if len(value) < 3:
        raise StatisticsInputError(
            f"overdispersion needs at least 3 peers with values, not {len(value)}"
        )
    y, se = _variance_stabilised(value, n, statistic, multiplier)
    y0, _ = _variance_stabilised(np.array([target]), np.array([1.0]), statistic, multiplier)
    z = (y - y0[0]) / se
    low, high = np.quantile(z, [winsorise, 1 - winsorise])
    z = np.clip(z, low, high)
    count = len(z)
    phi = float(np.sum(z**2) / count)
    overdispersed = bool(count * phi > _scipy_stats().chi2.ppf(1 - significance, count - 1))
    w = 1 / se**2
    tau2 = 0.0
    if overdispersed:
        tau2 = max(0.0, (count * phi - (count - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    return {"n": count, "phi": phi, "tau2": float(tau2), "overdispersed": overdispersed}


def funnel_limits_random_effects(
    denominators: Sequence[float],
    target: float,
    tau2: float,
    statistic: str = "proportion",
    confidence: float | Sequence[float] = (0.95, 0.998),
    multiplier: float = 1,
) -> pd.DataFrame:
    """Funnel limits widened for overdispersion (Spiegelhalter 2005 random effects).

    On the variance-stabilised scale the limits are ``y0 +/- z * sqrt(se^2 + tau2)`` and are
    transformed back (``sin^2`` for proportions, squares for rates), as in Spiegelhalter DJ
    (2005) Qual Saf Health Care 14:347-351 and FunnelPlotR.

    Args:
        denominators: Denominators to draw limits at.
        target: Target on the ``multiplier`` scale.
        tau2: Random-effects variance from :func:`funnel_overdispersion`.
        statistic: ``proportion`` or ``rate``.
        confidence: Levels, by default 95% and 99.8%.
        multiplier: Scale of ``target`` and the limits.

    Returns:
        ``denominator`` plus ``lower_<label>``/``upper_<label>`` per level (NaN at 0).
    """
    _funnel_transform(statistic)
    _check_multiplier(multiplier)
    levels = _confidence_levels(confidence)
    n = _funnel_frame(denominators, "denominators")
    if not tau2 >= 0:
        raise StatisticsInputError(f"tau2 must be zero or more, not {tau2!r}")
    y0, _ = _variance_stabilised(np.array([target]), np.array([1.0]), statistic, multiplier)
    _, se = _variance_stabilised(np.zeros(len(n)), n, statistic, multiplier)
    out = pd.DataFrame({"denominator": n})
    for level in levels:
        spread = _z(level) * np.sqrt(se**2 + tau2)
        for side, sign in (("lower", -1), ("upper", 1)):
            y = y0[0] + sign * spread
            if statistic == "proportion":
                limit = np.sin(np.clip(y, 0, np.pi / 2)) ** 2
            else:
                limit = np.maximum(y, 0) ** 2
            out[f"{side}_{ci_label(level)}"] = np.where(n > 0, limit * multiplier, np.nan)
    return out


def funnel_plot_points(
    n_points: int, max_denominator: float, min_denominator: float = 1, whole_numbers: bool = True
) -> np.ndarray:
    """Denominator grid for drawing smooth funnel limits.

    Points are spaced geometrically, so the curved small-denominator end of the
    funnel gets as many points as the flat end.

    Args:
        n_points: Number of points wanted (at least 2).
        max_denominator: Largest denominator (e.g. the largest area's population).
        min_denominator: Smallest denominator (default 1).
        whole_numbers: Round to whole numbers (needed for binomial limits); repeated
            values after rounding are dropped, so fewer than ``n_points`` may return.

    Returns:
        Ascending array of denominators from ``min_denominator`` to ``max_denominator``.

    Raises:
        StatisticsInputError: Fewer than 2 points or a bad range.
    """
    if n_points < 2:
        raise StatisticsInputError("n_points must be at least 2")
    if not 0 < min_denominator <= max_denominator:
        raise StatisticsInputError(
            f"need 0 < min_denominator ({min_denominator}) <= max_denominator ({max_denominator})"
        )
    grid = np.geomspace(min_denominator, max_denominator, int(n_points))
    if whole_numbers:
        grid = np.unique(np.round(grid))
        grid = grid[grid > 0]
    return grid


# --------------------------------------------------------------------------------------
# 8. Benchmark comparison
# --------------------------------------------------------------------------------------


def _column_or_constant(df: pd.DataFrame, spec: object) -> tuple[np.ndarray | object, bool]:
    if isinstance(spec, Hashable) and not isinstance(spec, int | float) and spec in df.columns:
        return df[spec].to_numpy(), True
    return spec, False


def compare_to_benchmark(
    df: pd.DataFrame,
    lower: Hashable,
    upper: Hashable,
    benchmark: Hashable | float,
    polarity: str,
    confidence_label: str | float,
    id_col: Hashable | None = None,
) -> pd.DataFrame:
    """Compare each area's confidence interval with a benchmark value.

    The Fingertips/OHID rule: an interval wholly above the benchmark is
    significantly higher, wholly below is lower; a benchmark inside the interval,
    or exactly on a limit, is similar (PHE "Technical Guide: Confidence Intervals";
    Fingertips benchmarking). With a polarity, higher/lower become better/worse.

    Args:
        df: One row per area.
        lower: Column of lower limits (e.g. ``"lower_95"``).
        upper: Column of upper limits.
        benchmark: Column name of benchmark values, or a constant value.
        polarity: Column name of polarities, or a constant; one of ``POLARITIES``.
        confidence_label: Label for the output column, e.g. "95" or 0.95.
        id_col: Column identifying areas, quoted in error messages.

    Returns:
        A copy of ``df`` plus ``comparison_<label>``: "higher"/"lower"/"similar"
        ("no judgement") or "better"/"worse"/"similar", and "not compared" where a
        limit or the benchmark is missing.

    Raises:
        StatisticsInputError: Missing/non-numeric columns, unknown polarity, or a
            lower limit above the upper limit.
    """
    label = (
        ci_label(confidence_label) if not isinstance(confidence_label, str) else confidence_label
    )
    _require_columns(df, [lower, upper], "the table to benchmark")
    lo = _numeric(df, lower, id_col)
    hi = _numeric(df, upper, id_col)
    bench_spec, bench_is_column = _column_or_constant(df, benchmark)
    if bench_is_column:
        bench = _numeric(df, benchmark, id_col)
    elif isinstance(benchmark, int | float | np.number) and not isinstance(benchmark, bool):
        bench = np.full(len(df), float(benchmark))
    else:
        raise StatisticsInputError(
            f"benchmark {benchmark!r} is neither a column of the table nor a number"
        )
    _raise_for_rows(
        df,
        lo > hi,
        f"lower limit {lower!r} exceeds upper limit {upper!r}",
        lambda pos: f"{lower} {_fmt(lo[pos])} > {upper} {_fmt(hi[pos])}",
        id_col,
    )
    polarity_values, polarity_is_column = _column_or_constant(df, polarity)
    if polarity_is_column:
        pol = pd.Series(polarity_values).astype("string").str.strip().str.lower().to_numpy()
        bad = ~np.isin(pol, POLARITIES)
        raw = polarity_values
        _raise_for_rows(
            df,
            bad,
            f"polarity column {polarity!r} has values other than {', '.join(POLARITIES)}",
            lambda pos: f"{polarity} {raw[pos]!r}",
            id_col,
        )
    else:
        if not isinstance(polarity, str) or polarity.strip().lower() not in POLARITIES:
            close = difflib.get_close_matches(str(polarity), POLARITIES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise StatisticsInputError(
                f"polarity {polarity!r} is not a column nor one of {POLARITIES}{hint}"
            )
        pol = np.full(len(df), polarity.strip().lower(), dtype=object)
    above = lo > bench
    below = hi < bench
    not_compared = np.isnan(lo) | np.isnan(hi) | np.isnan(bench)
    high_good = pol == "high is good"
    low_good = pol == "low is good"
    result = np.full(len(df), "similar", dtype=object)
    result[above] = "higher"
    result[below] = "lower"
    result[above & high_good] = "better"
    result[below & high_good] = "worse"
    result[above & low_good] = "worse"
    result[below & low_good] = "better"
    result[not_compared] = "not compared"
    out = df.copy()
    out[f"comparison_{label}"] = result
    return out
