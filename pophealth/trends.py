"""Change over time: Making Data Count SPC (XmR charts) and the Fingertips recent-trend test.

Two DataFrame-in / DataFrame-out methods, chosen by series length in :func:`direction_of_travel`:

* **Statistical process control** (Shewhart XmR chart, the "Making Data Count" method NHS England
  asks boards to use instead of RAG). Centre line = mean; process limits = mean +/- 2.66 x mean
  moving range (2.66 = 3 / d2, d2 = 1.128 for ranges of two points; Wheeler & Chambers 1992,
  *Understanding Statistical Process Control*). Moving ranges above 3.267 x their mean (the
  upper range limit) are screened out of the mean moving range before the limits are set, as in
  NHSRplotthedots, so one wild point does not widen the limits. Special-cause rules (NHS England
  & NHS Improvement 2019, *Making Data Count: Getting started*; NHS-R NHSRplotthedots 0.2):

  1. a point beyond a process limit;
  2. a **shift**: a run of ``SHIFT_RUN`` = 7 or more consecutive points on the same side of the
     mean (a point exactly on the mean breaks the run);
  3. a **trend**: ``TREND_RUN`` = 7 or more consecutive points each higher (or each lower) than
     the one before (an equal neighbour breaks the run);
  4. **two of three**: two or three of three consecutive points beyond two thirds of the way to the
     same process limit (the "2-sigma" zone); the flagged points are those near the limit (two
     near opposite limits do not count).

  The run lengths are parameters; MDC documents 7 for both (some older guides use 6 for trend).
  SPC needs ``MIN_SPC_POINTS`` = 12 points (MDC advises 15-20 for stable limits; NHSRplotthedots
  warns below 12), so a year of monthly releases is the shortest series charted.

* **Recent trend** (Public Health England Fingertips): the chi-squared test for linear trend in
  proportions (Cochran 1954, *Biometrics* 10:417-451; Armitage 1955, *Biometrics* 11:375-386)
  over the most recent ``RECENT_POINTS`` = 5 periods; fewer periods -> "Not enough data".

The icons of Making Data Count are reported in words (``variation`` column): "Special cause
improvement (higher)", "Special cause concern (lower)", "Special cause variation (higher), no
judgement", or "Common cause variation", read from the latest point with the indicator's polarity
(``high is good`` / ``low is good`` / ``no judgement``, as in the catalogue).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from pophealth.stats import (
    POLARITIES,
    StatisticsInputError,
    _as_list,
    _numeric,
    _proportion_counts,
    _raise_for_rows,
    _require_columns,
)

__all__ = [
    "MIN_SPC_POINTS",
    "RECENT_POINTS",
    "SHIFT_RUN",
    "TREND_RUN",
    "direction_of_travel",
    "recent_trend",
    "spc_summary",
    "xmr_chart",
]

XMR_LIMIT_FACTOR = 2.66  # 3 / d2 with d2 = 1.128 for moving ranges of two points
MOVING_RANGE_SCREEN = 3.267  # D4 for n = 2: upper range limit as a multiple of the mean range
SHIFT_RUN = 7
TREND_RUN = 7
MIN_SPC_POINTS = 12
RECENT_POINTS = 5
RECENT_CONFIDENCE = 0.999
NOT_ENOUGH = "Not enough data"
#: Fewest values a profile draws a sparkline and reads a direction for (fewer: the values are
#: shown with "not enough data for a trend").
MIN_TREND_POINTS = 3


def _check_series(
    df: pd.DataFrame, by: list[Hashable], period: Hashable, columns: Sequence[Hashable], what: str
) -> pd.DataFrame:
    """Check columns and one row per series and period; return rows sorted by series, period."""
    _require_columns(df, [*by, period, *columns], what)
    key = [*by, period]
    duplicated = df.duplicated(key, keep=False).to_numpy()
    _raise_for_rows(
        df,
        duplicated,
        f"{what} has more than one row for the same {' x '.join(map(str, key))}",
        lambda pos: ", ".join(f"{c}={df[c].iloc[pos]!r}" for c in key),
        None,
        "Give one value per series and period (aggregate releases first)",
    )
    missing_period = df[period].isna().to_numpy()
    _raise_for_rows(
        df,
        missing_period,
        f"{what} has missing {period!r}",
        lambda pos: "period is empty",
        None,
        "Every value needs the period it belongs to",
    )
    return df.sort_values(key, kind="stable")


def _series_positions(frame: pd.DataFrame, by_cols: list[Hashable]) -> dict:
    """Series key -> row positions (one series of every row when there are no key columns)."""
    if not by_cols:
        return {None: np.arange(len(frame))}
    return frame.groupby(by_cols, sort=False, dropna=False).indices


def _polarity_of(df: pd.DataFrame, polarity: str | Hashable | None) -> np.ndarray:
    """Polarity per row: a column name, one polarity for every row, or None (no judgement)."""
    if polarity is None:
        return np.full(len(df), "no judgement", dtype=object)
    if isinstance(polarity, str) and polarity in POLARITIES:
        return np.full(len(df), polarity, dtype=object)
    _require_columns(df, [polarity], "polarity")
    values = df[polarity].fillna("no judgement").astype(str).to_numpy(dtype=object)
    bad = ~np.isin(values, POLARITIES)
    _raise_for_rows(
        df,
        bad,
        f"column {polarity!r} has unknown polarities",
        lambda pos: repr(values[pos]),
        None,
        f"Use one of {', '.join(POLARITIES)}",
    )
    return values


def _run_lengths(flags: np.ndarray) -> np.ndarray:
    """Run length of consecutive True values at each element, row by row (0 where False).

    Rows are series, columns periods; every row is done at once.
    """
    forward = np.zeros(flags.shape, dtype=int)
    backward = np.zeros(flags.shape, dtype=int)
    width = flags.shape[1]
    for j in range(width):
        previous = forward[:, j - 1] if j else 0
        forward[:, j] = np.where(flags[:, j], previous + 1, 0)
    for j in range(width - 1, -1, -1):
        following = backward[:, j + 1] if j + 1 < width else 0
        backward[:, j] = np.where(flags[:, j], following + 1, 0)
    return np.where(flags, forward + backward - 1, 0)


def _batch_rules(
    values: np.ndarray, shift_run: int, trend_run: int, screen_outliers: bool
) -> dict[str, np.ndarray]:
    """XmR limits and rule flags of many series of one length at once.

    Rows are series, columns their periods in order (no missing values). A national history has
    tens of thousands of series of the same length; one Python call per series took most of a
    run's trend words. The tests check every row against a plain
    one-series-at-a-time reading of the rules (the screened mean moving range may differ from
    it in the last bit: kept ranges are summed per row, not averaged after compaction).
    """
    width = values.shape[1]
    mean = values.mean(axis=1)
    moving = np.abs(np.diff(values, axis=1))
    mean_range = moving.mean(axis=1)  # series have at least MIN_SPC_POINTS (>= 3) points
    if screen_outliers:
        kept = moving <= MOVING_RANGE_SCREEN * mean_range[:, None]
        count = kept.sum(axis=1)
        total = np.where(kept, moving, 0.0).sum(axis=1)
        mean_range = np.where(count > 0, total / np.maximum(count, 1), mean_range)
    upper = mean + XMR_LIMIT_FACTOR * mean_range
    lower = mean - XMR_LIMIT_FACTOR * mean_range
    outside_high = values > upper[:, None]
    outside_low = values < lower[:, None]
    shift_high = _run_lengths(values > mean[:, None]) >= shift_run
    shift_low = _run_lengths(values < mean[:, None]) >= shift_run
    steps = np.diff(values, axis=1)
    trend_high = np.zeros(values.shape, dtype=bool)
    trend_low = np.zeros(values.shape, dtype=bool)
    for rising, target in ((steps > 0, trend_high), (steps < 0, trend_low)):
        hit = _run_lengths(rising) >= trend_run - 1
        target[:, :-1] |= hit
        target[:, 1:] |= hit
    zone = 2 / 3 * XMR_LIMIT_FACTOR * mean_range
    near_high = values > (mean + zone)[:, None]
    near_low = values < (mean - zone)[:, None]
    two_high = np.zeros(values.shape, dtype=bool)
    two_low = np.zeros(values.shape, dtype=bool)
    for i in range(width - 2):
        for near, target in ((near_high, two_high), (near_low, two_low)):
            window = near[:, i : i + 3]
            enough = window.sum(axis=1) >= 2
            target[:, i : i + 3] |= window & enough[:, None]
    return {
        "mean": mean,
        "mean_moving_range": mean_range,
        "upper_process_limit": upper,
        "lower_process_limit": lower,
        "outside_limits": outside_high | outside_low,
        "shift": shift_high | shift_low,
        "trend": trend_high | trend_low,
        "two_of_three": two_high | two_low,
        "high": outside_high | shift_high | trend_high | two_high,
        "low": outside_low | shift_low | trend_low | two_low,
    }


def _variation_words(high: bool, low: bool, polarity: str) -> tuple[str, str]:
    """(code, words) for a point's special-cause side and the indicator's polarity."""
    if not (high or low):
        return "common_cause", "Common cause variation"
    side = "higher" if high else "lower"
    if polarity == "no judgement":
        return f"neither_{side}", f"Special cause variation ({side}), no judgement"
    good = (high and polarity == "high is good") or (low and polarity == "low is good")
    if good:
        return f"improvement_{side}", f"Special cause improvement ({side})"
    return f"concern_{side}", f"Special cause concern ({side})"


#: The columns :func:`xmr_chart` adds to its input, in order.
XMR_COLUMNS = (
    "mean",
    "mean_moving_range",
    "upper_process_limit",
    "lower_process_limit",
    "outside_limits",
    "shift",
    "trend",
    "two_of_three",
    "special_cause",
    "variation_code",
    "variation",
)


def xmr_chart(
    df: pd.DataFrame,
    value: Hashable,
    period: Hashable,
    by: Hashable | Sequence[Hashable] | None = None,
    polarity: str | Hashable | None = None,
    *,
    shift_run: int = SHIFT_RUN,
    trend_run: int = TREND_RUN,
    min_points: int = MIN_SPC_POINTS,
    screen_outliers: bool = True,
) -> pd.DataFrame:
    """Making Data Count XmR chart for each series: limits and special-cause flags per point.

    Method: Wheeler & Chambers (1992) XmR limits, mean +/- 2.66 x mean moving range, with moving
    ranges above 3.267 x their mean screened out; rules of NHS England & NHS Improvement (2019)
    *Making Data Count* (see the module docstring).

    Args:
        df: One row per series x period.
        value: Column of values.
        period: Column that orders the points (dates, numbers or sortable text).
        by: Column(s) identifying each series (e.g. ``["area_code", "indicator_id"]``).
        polarity: Polarity column, one polarity for every row, or None (no judgement).
        shift_run: Points on one side of the mean that make a shift (MDC: 7).
        trend_run: Consecutive rising (or falling) points that make a trend (MDC: 7).
        min_points: Fewest non-missing points for limits; shorter series get NaN limits and the
            variation "Not enough data".
        screen_outliers: Drop moving ranges above the upper range limit before setting limits.

    Returns:
        A new frame: the input rows sorted by series and period, plus ``mean,
        mean_moving_range, upper_process_limit, lower_process_limit, outside_limits, shift, trend,
        two_of_three, special_cause`` (``"high"``, ``"low"`` or ``""``), ``variation_code`` and
        ``variation`` (the icon's meaning in words for this point).

    Raises:
        StatisticsInputError: Missing columns, duplicate periods within a series, non-numeric
            values, run lengths below 2 or ``min_points`` below 3.
    """
    by_cols = _as_list(by)
    if shift_run < 2 or trend_run < 2:
        raise StatisticsInputError("shift_run and trend_run must be at least 2 points")
    if min_points < 3:
        raise StatisticsInputError("min_points must be at least 3 for an XmR chart")
    ordered = _check_series(df, by_cols, period, [value], "SPC input").copy()
    values = _numeric(ordered, value, None)
    polarities = _polarity_of(ordered, polarity)
    n = len(ordered)
    columns = {
        "mean": np.full(n, np.nan),
        "mean_moving_range": np.full(n, np.nan),
        "upper_process_limit": np.full(n, np.nan),
        "lower_process_limit": np.full(n, np.nan),
        "outside_limits": np.zeros(n, dtype=bool),
        "shift": np.zeros(n, dtype=bool),
        "trend": np.zeros(n, dtype=bool),
        "two_of_three": np.zeros(n, dtype=bool),
    }
    special = np.full(n, "", dtype=object)
    codes = np.full(n, "not_enough_data", dtype=object)
    words = np.full(n, NOT_ENOUGH, dtype=object)
    groups = _series_positions(ordered, by_cols)
    # series of the same length are worked out together (rows of one array)
    by_length: dict[int, list[np.ndarray]] = {}
    for positions in groups.values():
        positions = np.asarray(positions)
        present = positions[~np.isnan(values[positions])]
        if present.size >= min_points:
            by_length.setdefault(present.size, []).append(present)
    for series in by_length.values():
        where = np.vstack(series)  # row positions: series x period
        result = _batch_rules(values[where], shift_run, trend_run, screen_outliers)
        for name in columns:
            column = result[name]
            columns[name][where] = column if column.ndim == 2 else column[:, None]
        high, low = result["high"], result["low"]
        sides = np.where(high & ~low, "high", np.where(low & ~high, "low", ""))
        # a point flagged on both sides (rare: a trend crossing the mean) takes its side of the mean
        above = values[where] > result["mean"][:, None]
        sides = np.where(high & low, np.where(above, "high", "low"), sides)
        special[where] = sides
    for side in ("high", "low", ""):
        at = np.flatnonzero((special == side) & ~np.isnan(columns["mean"]))
        if not at.size:
            continue
        for polarity in pd.unique(polarities[at]):
            these = at[polarities[at] == polarity]
            code, text = _variation_words(side == "high", side == "low", polarity)
            codes[these], words[these] = code, text
    out = ordered.reset_index(drop=True)
    for name, column in columns.items():
        out[name] = column
    out["special_cause"] = special
    out["variation_code"] = codes
    out["variation"] = words
    return out


def spc_summary(
    chart: pd.DataFrame, by: Hashable | Sequence[Hashable] | None = None
) -> pd.DataFrame:
    """One row per series from :func:`xmr_chart`: the latest point's variation, in words.

    Making Data Count icons describe the most recent point, so the summary is that point's
    ``variation`` plus the limits and which rules fired anywhere in the series.

    Args:
        chart: Output of :func:`xmr_chart`.
        by: The same series columns given to :func:`xmr_chart`.

    Returns:
        ``by`` columns + ``points, mean, upper_process_limit, lower_process_limit, variation_code,
        variation, rules`` (e.g. ``"point beyond limits; shift"``).
    """
    by_cols = _as_list(by)
    _require_columns(chart, [*by_cols, "variation", "mean", "outside_limits"], "SPC chart")
    columns = [*by_cols, "points", "mean", "upper_process_limit", "lower_process_limit"]
    columns += ["variation_code", "variation", "rules"]
    if not len(chart):
        return pd.DataFrame(columns=columns)
    rules = (
        ("outside_limits", "point beyond limits"),
        ("shift", f"shift ({SHIFT_RUN}+ on one side)"),
        ("trend", f"trend ({TREND_RUN}+ rising or falling)"),
        ("two_of_three", "two of three near a limit"),
    )
    flags = [column for column, _ in rules]
    # one pass over all series (a loop per series took minutes for every area of England)
    if by_cols:
        groups = chart.groupby(by_cols, sort=False, dropna=False)
        latest = groups.tail(1).reset_index(drop=True)
        fired = groups[flags].any().reset_index(drop=True)
        points = groups["mean"].count().to_numpy()
    else:
        latest = chart.iloc[[-1]].reset_index(drop=True)
        fired = chart[flags].any().to_frame().T.reset_index(drop=True)
        points = np.array([chart["mean"].notna().sum()])
    words = np.full(len(latest), "", dtype=object)
    for column, label in rules:
        hit = fired[column].to_numpy(dtype=bool)
        words = np.where(hit, np.where(words == "", label, words + "; " + label), words)
    out = latest[[*by_cols, "mean", "upper_process_limit", "lower_process_limit"]].copy()
    out.insert(len(by_cols), "points", points.astype(int))
    out["variation_code"] = latest["variation_code"].to_numpy()
    out["variation"] = latest["variation"].to_numpy()
    out["rules"] = words
    return out[columns]


def recent_trend(
    df: pd.DataFrame,
    numerator: Hashable,
    denominator: Hashable,
    period: Hashable,
    by: Hashable | Sequence[Hashable] | None = None,
    polarity: str | Hashable | None = None,
    *,
    points: int = RECENT_POINTS,
    confidence: float = RECENT_CONFIDENCE,
) -> pd.DataFrame:
    """Fingertips recent trend: chi-squared test for linear trend in a proportion, last ``points``.

    Method: Cochran (1954) and Armitage (1955) test for trend in proportions r_i / n_i at period
    scores x_i = 1..k: T = sum r_i (x_i - x_bar), x_bar = sum n_i x_i / N; Var = p (1 - p)
    (sum n_i x_i^2 - (sum n_i x_i)^2 / N) with p = R / N; X^2 = T^2 / Var on 1 degree of freedom,
    as used by Public Health England's Fingertips for its recent-trend arrows over the most recent
    five data points. The significance level defaults to 99.9% (a strict level because many
    series are tested at once); the sign of T gives the direction.

    Args:
        df: One row per series x period.
        numerator: Column of counts (events).
        denominator: Column of counts (population); numerator <= denominator.
        period: Column ordering the periods.
        by: Column(s) identifying each series.
        polarity: Polarity column, one polarity for all rows, or None.
        points: Most recent periods tested (Fingertips: 5); series with fewer get
            "Not enough data".
        confidence: Confidence level of the test (0.9 to < 1).

    Returns:
        One row per series: ``by`` columns + ``points, chi_squared, p_value, direction``
        (``"increasing"``, ``"decreasing"``, ``"no significant change"``, ``"not enough data"``)
        and ``recent_trend`` in words (e.g. "Increasing and getting better").

    Raises:
        StatisticsInputError: Missing columns, duplicate periods, negative counts, numerator above
            denominator, or a confidence outside 0.9 to 1.
    """
    by_cols = _as_list(by)
    if not 0.9 <= float(confidence) < 1:
        raise StatisticsInputError(f"confidence {confidence!r} must be between 0.9 and 1")
    if points < 3:
        raise StatisticsInputError("a trend test needs at least 3 points")
    ordered = _check_series(df, by_cols, period, [numerator, denominator], "trend input")
    ordered = ordered.reset_index(drop=True)
    num, den = _proportion_counts(ordered, numerator, denominator, None)
    polarities = _polarity_of(ordered, polarity)
    groups = _series_positions(ordered, by_cols)
    records = []
    for key, positions in groups.items():
        positions = np.asarray(positions)
        usable = positions[~np.isnan(num[positions]) & (den[positions] > 0)]
        recent = usable[-points:]
        record = dict(zip(by_cols, key if isinstance(key, tuple) else (key,), strict=False))
        statistic, p_value, direction = np.nan, np.nan, "not enough data"
        if recent.size >= points:
            r, n = num[recent], den[recent]
            scores = np.arange(1, recent.size + 1, dtype=float)
            total, events = n.sum(), r.sum()
            p = events / total
            centre = (n * scores).sum() / total
            t_stat = (r * (scores - centre)).sum()
            variance = p * (1 - p) * ((n * scores**2).sum() - (n * scores).sum() ** 2 / total)
            if variance > 0:
                statistic = t_stat**2 / variance
                p_value = float(sps.chi2.sf(statistic, 1))
                if p_value < 1 - confidence:
                    direction = "increasing" if t_stat > 0 else "decreasing"
                else:
                    direction = "no significant change"
            else:
                direction = "no significant change"
        record.update(
            points=int(min(recent.size, points)),
            chi_squared=statistic,
            p_value=p_value,
            direction=direction,
            recent_trend=_trend_words(direction, polarities[positions[0]]),
        )
        records.append(record)
    return pd.DataFrame(records)


def _trend_words(direction: str, polarity: str) -> str:
    if direction == "not enough data":
        return NOT_ENOUGH
    if direction == "no significant change":
        return "No significant change"
    word = direction.capitalize()
    if polarity == "no judgement":
        return word
    better = (direction == "increasing") == (polarity == "high is good")
    return f"{word} and getting {'better' if better else 'worse'}"


def direction_of_travel(
    df: pd.DataFrame,
    period: Hashable,
    by: Hashable | Sequence[Hashable],
    *,
    value: Hashable = "value",
    numerator: Hashable = "numerator",
    denominator: Hashable = "denominator",
    statistic: Hashable = "statistic",
    polarity: Hashable | None = "polarity",
) -> pd.DataFrame:
    """Words for each series' change over time: SPC when long enough, else the recent trend.

    Series with at least ``MIN_SPC_POINTS`` points get the Making Data Count variation of their
    latest point (:func:`xmr_chart`); shorter proportion series with at least ``RECENT_POINTS``
    get the Fingertips recent trend (:func:`recent_trend`); the rest "Not enough data".

    Args:
        df: Tidy history (one row per series x period).
        period: Column ordering the periods.
        by: Series columns (e.g. ``["area_code", "basis", "indicator_id"]``).
        value: Value column.
        numerator: Count of events (proportions).
        denominator: Count of the population (proportions).
        statistic: Column naming each row's statistic (``proportion`` enables the trend test);
            absent -> no row is treated as a proportion.
        polarity: Polarity column (or None).

    Returns:
        ``by`` + ``points, method`` (``"spc"``, ``"recent trend"``, ``""``) and ``direction``.
    """
    by_cols = _as_list(by)
    _require_columns(df, [*by_cols, period, value], "trend input")
    counts = df.dropna(subset=[value]).groupby(by_cols, dropna=False)[period].nunique()
    keys = df[by_cols].drop_duplicates()
    out = keys.merge(counts.rename("points").reset_index(), on=by_cols, how="left")
    out["points"] = out["points"].fillna(0).astype(int)
    out["method"] = ""
    out["direction"] = NOT_ENOUGH
    long_keys = out.loc[out["points"] >= MIN_SPC_POINTS, by_cols]
    if len(long_keys):
        rows = df.merge(long_keys, on=by_cols).dropna(subset=[value])
        summary = spc_summary(xmr_chart(rows, value, period, by_cols, polarity), by_cols)
        out = _fill(out, summary.rename(columns={"variation": "_words"}), by_cols, "spc")
    is_prop = (
        df[statistic].eq("proportion")
        if statistic in df.columns
        else pd.Series(False, index=df.index)
    )
    short_keys = out.loc[
        (out["points"] >= RECENT_POINTS) & (out["points"] < MIN_SPC_POINTS), by_cols
    ]
    if len(short_keys) and {numerator, denominator} <= set(df.columns):
        rows = df[is_prop].merge(short_keys, on=by_cols).dropna(subset=[value])
        if len(rows):
            trend = recent_trend(rows, numerator, denominator, period, by_cols, polarity)
            out = _fill(
                out, trend.rename(columns={"recent_trend": "_words"}), by_cols, "recent trend"
            )
    return out


def _fill(out: pd.DataFrame, result: pd.DataFrame, by_cols: list, method: str) -> pd.DataFrame:
    merged = out.merge(result[[*by_cols, "_words"]], on=by_cols, how="left")
    hit = merged["_words"].notna()
    merged.loc[hit, "direction"] = merged.loc[hit, "_words"]
    merged.loc[hit, "method"] = method
    return merged.drop(columns="_words")
