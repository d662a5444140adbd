"""Tests for pophealth.trends: SPC rules and the recent-trend test on series with known signals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from pophealth import indicators, trends
from pophealth.stats import StatisticsInputError

# A stable base series: alternating small wiggles around 50 (mean 50, moving range 2).
STABLE = [49.0, 51.0] * 10


def series(values, polarity="no judgement", code="A"):
    return pd.DataFrame(
        {
            "area_code": code,
            "period": pd.date_range("2024-01-01", periods=len(values), freq="MS"),
            "value": values,
            "polarity": polarity,
        }
    )


def chart(values, **kwargs):
    polarity = kwargs.pop("polarity", "no judgement")
    return trends.xmr_chart(
        series(values, polarity), "value", "period", "area_code", "polarity", **kwargs
    )


def test_limits_are_mean_plus_minus_2_66_mean_moving_range():
    values = [10.0, 12.0, 11.0, 13.0, 12.0, 10.0, 11.0, 12.0, 13.0, 11.0, 12.0, 10.0]
    out = chart(values)
    mean = np.mean(values)
    mr = np.mean(np.abs(np.diff(values)))
    assert out["mean"].iloc[0] == pytest.approx(mean)
    assert out["mean_moving_range"].iloc[0] == pytest.approx(mr)
    assert out["upper_process_limit"].iloc[0] == pytest.approx(mean + 2.66 * mr)
    assert out["lower_process_limit"].iloc[0] == pytest.approx(mean - 2.66 * mr)
    assert not out[["outside_limits", "shift", "trend", "two_of_three"]].to_numpy().any()
    assert set(out["variation"]) == {"Common cause variation"}


def test_a_point_beyond_the_limits_is_special_cause_with_polarity_words():
    values = STABLE + [70.0]
    out = chart(values, polarity="low is good")
    assert out["outside_limits"].tolist() == [False] * 20 + [True]
    assert out["special_cause"].iloc[-1] == "high"
    assert out["variation"].iloc[-1] == "Special cause concern (higher)"
    good = chart(values, polarity="high is good")
    assert good["variation"].iloc[-1] == "Special cause improvement (higher)"
    neutral = chart(values)
    assert neutral["variation"].iloc[-1] == "Special cause variation (higher), no judgement"


def test_outlying_moving_ranges_are_screened_from_the_limits():
    values = STABLE + [90.0]
    screened = chart(values)
    raw = chart(values, screen_outliers=False)
    assert screened["mean_moving_range"].iloc[0] == pytest.approx(2.0)
    assert raw["mean_moving_range"].iloc[0] > screened["mean_moving_range"].iloc[0]


def test_shift_needs_seven_points_on_one_side_of_the_mean():
    six_low = STABLE[:12] + [49.5] * 0 + [48.5, 48.0, 48.5, 48.0, 48.5, 48.0] + [51.0, 49.0]
    out6 = chart(six_low)
    assert not out6["shift"].any()
    seven_low = STABLE[:12] + [48.5, 48.0, 48.5, 48.0, 48.5, 48.0, 48.5]
    out7 = chart(seven_low)
    assert out7["shift"].tolist() == [False] * 12 + [True] * 7
    assert out7["special_cause"].iloc[-1] == "low"
    # the documented count is a parameter
    assert chart(six_low, shift_run=6)["shift"].sum() == 6


def test_trend_needs_seven_consecutive_rising_points():
    rising6 = STABLE[:12] + [49.0, 49.2, 49.4, 49.6, 49.8, 50.0]
    assert not chart(rising6)["trend"].any()
    rising7 = STABLE[:12] + [48.0, 48.5, 49.0, 49.5, 50.0, 50.5, 51.0]
    out = chart(rising7, polarity="high is good")
    assert out["trend"].tolist() == [False] * 12 + [True] * 7
    assert out["variation"].iloc[-1] == "Special cause improvement (higher)"
    falling = chart(
        STABLE[:12] + [52.0, 51.5, 51.0, 50.5, 50.0, 49.5, 49.0], polarity="high is good"
    )
    assert falling["trend"].iloc[-7:].all()
    assert falling["variation"].iloc[-1] == "Special cause concern (lower)"


def test_two_of_three_beyond_two_thirds_of_the_way_to_a_limit():
    # mean ~50, mR ~2 -> limits ~ +/-5.3, 2/3 zone ~ +/-3.5
    values = STABLE[:14] + [55.2, 50.5, 55.1]
    out = chart(values)
    assert not out["outside_limits"].any()
    assert out["two_of_three"].tolist()[-3:] == [True, False, True]
    assert not out["two_of_three"].iloc[:-3].any()


def test_short_series_have_no_limits_and_say_not_enough_data():
    out = chart([1.0, 2.0, 3.0])
    assert out["mean"].isna().all()
    assert set(out["variation"]) == {trends.NOT_ENOUGH}


def test_series_are_independent_and_summary_reads_latest_point():
    frame = pd.concat([series(STABLE + [70.0], code="A"), series(STABLE + [50.0], code="B")])
    out = trends.xmr_chart(frame, "value", "period", "area_code", "polarity")
    summary = trends.spc_summary(out, "area_code").set_index("area_code")
    assert summary.loc["A", "variation_code"] == "neither_higher"
    assert "point beyond limits" in summary.loc["A", "rules"]
    assert summary.loc["B", "variation"] == "Common cause variation"
    assert summary.loc["B", "points"] == 21


def test_xmr_input_errors_name_the_problem():
    frame = pd.concat([series(STABLE), series(STABLE[:1])])
    with pytest.raises(StatisticsInputError, match="more than one row"):
        trends.xmr_chart(frame, "value", "period", "area_code")
    with pytest.raises(StatisticsInputError, match="not found"):
        trends.xmr_chart(series(STABLE), "valu", "period", "area_code")
    with pytest.raises(StatisticsInputError, match="unknown polarities"):
        trends.xmr_chart(series(STABLE, polarity="up"), "value", "period", "area_code", "polarity")


def armitage_reference(r, n):
    """Chi-squared test for trend as N x r^2 (correlation of outcome and score, expanded)."""
    outcome, score = [], []
    for i, (events, total) in enumerate(zip(r, n, strict=True), start=1):
        outcome += [1] * events + [0] * (total - events)
        score += [i] * total
    corr = np.corrcoef(outcome, score)[0, 1]
    return len(outcome) * corr**2


def proportions(r, n, polarity="no judgement"):
    return pd.DataFrame(
        {"area_code": "A", "period": range(len(r)), "num": r, "den": n, "polarity": polarity}
    )


def test_recent_trend_matches_the_correlation_form_of_armitage():
    r, n = [30, 35, 41, 44, 52], [200, 210, 205, 198, 202]
    out = trends.recent_trend(proportions(r, n), "num", "den", "period", "area_code")
    assert out["chi_squared"].iloc[0] == pytest.approx(armitage_reference(r, n), rel=1e-9)
    assert out["p_value"].iloc[0] == pytest.approx(sps.chi2.sf(out["chi_squared"].iloc[0], 1))


def test_recent_trend_directions_and_words():
    rising = proportions([100, 140, 180, 220, 260], [1000] * 5, "low is good")
    out = trends.recent_trend(rising, "num", "den", "period", "area_code", "polarity")
    assert out["direction"].iloc[0] == "increasing"
    assert out["recent_trend"].iloc[0] == "Increasing and getting worse"
    flat = proportions([100, 102, 99, 101, 100], [1000] * 5)
    assert trends.recent_trend(flat, "num", "den", "period")["recent_trend"].iloc[0] == (
        "No significant change"
    )
    falling = proportions([260, 220, 180, 140, 100], [1000] * 5, "low is good")
    assert trends.recent_trend(falling, "num", "den", "period", polarity="polarity")[
        "recent_trend"
    ].iloc[0] == ("Decreasing and getting better")


def test_recent_trend_uses_only_the_last_five_points():
    # an old fall then five flat points: no significant recent change
    r = [500, 400, 300, 100, 101, 99, 100, 100]
    out = trends.recent_trend(proportions(r, [1000] * 8), "num", "den", "period")
    assert out["points"].iloc[0] == 5
    assert out["direction"].iloc[0] == "no significant change"
    short = trends.recent_trend(proportions([1, 2, 3, 4], [10] * 4), "num", "den", "period")
    assert short["recent_trend"].iloc[0] == "Not enough data"


def test_recent_trend_input_errors():
    with pytest.raises(StatisticsInputError, match="exceeds denominator"):
        trends.recent_trend(proportions([5, 20], [10, 10]), "num", "den", "period")
    with pytest.raises(StatisticsInputError, match="negative"):
        trends.recent_trend(proportions([-1, 2], [10, 10]), "num", "den", "period")
    with pytest.raises(StatisticsInputError, match="between 0.9 and 1"):
        trends.recent_trend(proportions([1, 2], [10, 10]), "num", "den", "period", confidence=95)


def test_direction_of_travel_chooses_the_method_by_length():
    long = series(STABLE + [70.0], "no judgement", "L").assign(
        numerator=np.nan, denominator=np.nan, statistic="mean"
    )
    medium = proportions([100, 140, 180, 220, 260, 300], [1000] * 6, "high is good")
    medium = medium.rename(columns={"num": "numerator", "den": "denominator"}).assign(
        area_code="M", value=lambda d: d["numerator"] / d["denominator"], statistic="proportion"
    )
    short = medium.iloc[:3].assign(area_code="S")
    frame = pd.concat([long, medium, short], ignore_index=True)
    frame["period"] = frame["period"].astype(str)
    out = trends.direction_of_travel(frame, "period", "area_code").set_index("area_code")
    assert out.loc["L", "method"] == "spc"
    assert out.loc["L", "direction"] == "Special cause variation (higher), no judgement"
    assert out.loc["M", "direction"] == "Increasing and getting better"
    assert out.loc["S", "direction"] == trends.NOT_ENOUGH


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=12, max_size=40))
def test_spc_properties(values):
    out = chart(values)
    assert (out["upper_process_limit"] >= out["lower_process_limit"]).all()
    beyond = (out["value"] > out["upper_process_limit"]) | (
        out["value"] < out["lower_process_limit"]
    )
    assert (beyond == out["outside_limits"]).all()
    assert set(out["special_cause"]) <= {"", "high", "low"}


# --------------------------------------------------------------------------------------
# In the profile (demo store with 12 monthly releases)
# --------------------------------------------------------------------------------------


def test_profile_trends_of_the_pcn_that_gained_a_practice(demo_data):
    changes = demo_data.membership_changes
    moved = changes[changes["change"] == "moved PCN"].iloc[0]
    new_pcn = moved["detail"].split(" now")[0].split(", ")[-1]
    p = demo_data.profile(new_pcn)
    tr = p.trends
    assert len(tr["periods"]) == 12
    summary = tr["summary"].set_index("indicator_id")
    monthly = summary[~summary.index.isin(indicators.needing("qof"))]
    assert (monthly["points"] == 12).all()
    assert set(monthly["method"]) == {"spc"}
    assert (summary.drop(monthly.index)["points"] == 2).all()  # the two QOF years
    # the moved practice counts in its current PCN throughout: no step in its list size
    history = demo_data.indicator_history
    sizes = history[(history["area_code"] == new_pcn) & (history["indicator_id"] == "list_size")]
    assert sizes["value"].pct_change().abs().max() < 0.02
    assert summary.loc["list_size", "values"] == sizes.sort_values("period")["value"].tolist()
    # the move is listed for the months before it and for each QOF year (its own row each)
    membership = tr["membership"]
    assert set(membership["practice_code"]) == {moved["practice_code"]}
    assert sorted(membership["detail"].str.extract(r"^(QOF \d{4}-\d{2})")[0].dropna()) == [
        "QOF 2023-24",
        "QOF 2024-25",
    ]
    assert len(membership) == 3
    changes_now = tr["changes"].set_index("what")
    size_row = changes_now.loc["Registered patients"]
    assert size_row["change"] == pytest.approx(size_row["latest"] - size_row["previous"])
    series = tr["series"]
    assert set(series["indicator_id"]) >= {"list_size", "gp_fte_per_10k_weighted"}
    assert series["england_value"].notna().all()


def test_change_over_time_section_renders_table_charts_and_changes(demo_data):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from pophealth import sections

    InteractiveShell.instance()
    code = demo_data.areas("place")["area_code"].iloc[0]
    p = demo_data.profile(code)
    with capture_output() as shown:
        sections.change_over_time(p)
    html = "".join(o.data.get("text/html", "") for o in shown.outputs)
    summary = p.trends["summary"]
    # a sparkline where there are enough values for a trend; two QOF years show both values
    assert html.count('<svg class="ph-spark"') == (summary["points"] >= 3).sum()
    assert "Not enough data for a trend (2 QOF years)" in html
    assert "QOF 2023-24 to 2024-25" in html
    assert "and 2 QOF years (2023-24, 2024-25)" in html
    assert f"{p.comparator}: change over time" in html
    plots = [o for o in shown.outputs if "application/vnd.plotly.v1+json" in o.data]
    assert len(plots) == p.trends["series"]["indicator_id"].nunique()
    # text is shown as escaped HTML (issue10's one escaping place), not markdown
    assert "What changed since the last release (2025-09 to 2025-10)" in html
    with capture_output() as shown:
        sections.benchmarking(p)
    table = next(
        o.data["text/html"] for o in shown.outputs if "ph-benchmark" in o.data.get("text/html", "")
    )
    assert ">Trend</th>" in table
    assert table.count('<svg class="ph-spark"') == p.indicators["trend"].notna().sum() > 10


def test_sparkline_and_trend_chart_escape_and_scale():
    from pophealth import charts, tables

    svg = tables.sparkline_svg([1.0, 2.0, float("nan"), 4.0])
    assert svg.count(",") == 3 and "circle" in svg  # three finite points
    assert tables.sparkline_svg([5.0]) == ""
    series = pd.DataFrame(
        {
            "period": ["2025-01", "2025-02", "2025-03"],
            "value": [100.0, 110.0, 120.0],
            "lower_ci": np.nan,
            "upper_ci": np.nan,
            "england_value": [1e6, 1.01e6, 1.02e6],
        }
    )
    fig = charts.trend_chart(series, "List <b>size</b>", "<script>x</script>", "England")
    assert fig.data[1].yaxis == "y2"  # a count's comparator has its own axis
    assert "<script>" not in fig.layout.title.text and "<script>" not in fig.data[0].hovertemplate
    assert "&lt;script&gt;x&lt;/script&gt;: " in fig.data[0].hovertemplate
    assert list(fig.data[0].x) == ["2025-01", "2025-02", "2025-03"]


def test_trend_chart_draws_process_limits_and_colours_special_causes():
    from pophealth import charts

    spc = chart(STABLE + [70.0], polarity="low is good")
    rows = spc.assign(
        period=spc["period"].dt.strftime("%Y-%m"),
        lower_ci=np.nan,
        upper_ci=np.nan,
        england_value=np.nan,
    )
    fig = charts.trend_chart_spec(rows, "T", "Area", "England")
    by_name = {t["name"]: t for t in fig.data}
    np.testing.assert_allclose(by_name["Mean"]["y"], spc["mean"])
    limits = np.asarray(by_name["Process limits"]["y"], dtype=float)
    np.testing.assert_allclose(limits[: len(spc)], spc["upper_process_limit"])
    np.testing.assert_allclose(limits[len(spc) + 1 :], spc["lower_process_limit"])
    concern = by_name["Special cause concern"]
    assert concern["x"] == [rows["period"].iloc[-1]] and list(concern["y"]) == [70.0]
    assert concern["marker"]["color"] == charts.SPC_COLOURS["concern"]
    assert "Special cause improvement" not in by_name
    # too few points: no limits drawn, and the plain chart has no SPC traces
    short = chart([1.0, 2.0, 3.0]).assign(
        period=lambda d: d["period"].dt.strftime("%Y-%m"),
        lower_ci=np.nan,
        upper_ci=np.nan,
        england_value=np.nan,
    )
    names = {t["name"] for t in charts.trend_chart_spec(short, "T", "Area", "England").data}
    assert names == {"Area"}


def test_significance_changes_compare_each_indicators_last_two_releases():
    from pophealth.profile_frames import significance_changes

    def rows(indicator, periods, comparisons):
        return pd.DataFrame(
            {
                "indicator_id": indicator,
                "title": f"<b>{indicator}</b>",
                "period": periods,
                "value": 1.0,
                "comparison_95": comparisons,
            }
        )

    own = pd.concat(
        [
            rows("list_size", ["2025-08", "2025-09", "2025-10"], ["higher", "similar", "lower"]),
            rows("pct_age_0_17", ["2025-09", "2025-10"], ["similar", "similar"]),
            # a QOF indicator: its own periods, the last two QOF years
            rows("qof_prev_dm", ["2024-03", "2025-03"], ["similar", "higher"]),
            rows("qof_prev_hyp", ["2024-03", "2025-03"], ["lower", "lower"]),
            rows("qof_prev_ast", ["2025-03"], ["higher"]),  # one year: nothing to compare
            # latest value older than the latest month: not a change since the last release
            rows("gp_fte_per_10k", ["2025-08", "2025-09"], ["similar", "lower"]),
        ],
        ignore_index=True,
    )
    out = significance_changes(own, {False: "2025-10", True: "2025-03"}).set_index("indicator_id")
    assert sorted(out.index) == ["list_size", "qof_prev_dm"]
    assert out.loc["list_size", ["previous", "latest"]].tolist() == ["similar", "lower"]
    assert out.loc["list_size", ["previous_period", "latest_period"]].tolist() == [
        "2025-09",
        "2025-10",
    ]
    assert out.loc["qof_prev_dm", ["previous_period", "latest_period"]].tolist() == [
        "2024-03",
        "2025-03",
    ]
    assert out["qof"].to_dict() == {"list_size": False, "qof_prev_dm": True}
    # a missing value is not a comparison: the row before it is compared instead
    gap = own.assign(value=np.where(own["period"].eq("2025-09"), np.nan, own["value"]))
    out = significance_changes(gap, {False: "2025-10", True: "2025-03"}).set_index("indicator_id")
    assert out.loc["list_size", ["previous", "previous_period"]].tolist() == ["higher", "2025-08"]
    assert "pct_age_0_17" not in out.index


def test_two_qof_years_show_both_values_with_not_enough_data(demo_data):
    code = demo_data.areas("neighbourhood")["area_code"].iloc[0]
    p = demo_data.profile(code)
    summary = p.trends["summary"].set_index("indicator_id")
    history = demo_data.indicator_history
    own = history[(history["area_code"] == code) & (history["basis"] == "registered")]
    for indicator in ("qof_prev_dm", "qof_oe_hyp", "qof_registers_per_100"):
        row = summary.loc[indicator]
        series = own[own["indicator_id"] == indicator].sort_values("period")
        assert series["period"].tolist() == ["2024-03", "2025-03"]
        assert row["points"] == 2 and row["values"] == series["value"].tolist()
        assert row["direction"] == "Not enough data for a trend (2 QOF years)"
        assert row["england_direction"] == "Not enough data for a trend (2 QOF years)"
        assert row["period_label"] == "QOF 2023-24 to 2024-25"
    # no sparkline in the benchmark table for two values; monthly indicators keep theirs
    trend = p.indicators.set_index("indicator_id")["trend"]
    assert trend[trend.index.str.startswith("qof_")].isna().all()
    assert trend.notna().sum() > 10
    # what changed: exactly the QOF indicators whose comparison with England changed between
    # the two QOF years (each compared with that year's England)
    qof = own[own["indicator_id"].isin(indicators.needing("qof"))]
    wide = qof.pivot_table(
        index="indicator_id", columns="period", values="comparison_95", aggfunc="first"
    ).dropna()
    moved = set(wide.index[wide["2024-03"] != wide["2025-03"]])
    significance = p.trends["significance"]
    listed = significance[significance["qof"]]
    assert moved and set(listed["indicator_id"]) == moved
    assert set(listed["period_label"]) == {"QOF 2023-24 to 2024-25"}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.one_of(
                st.integers(-5, 5).map(float),
                st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
            ),
            min_size=3,
            max_size=24,
        ),
        min_size=1,
        max_size=6,
    ).filter(lambda rows: len({len(r) for r in rows}) == 1)
)
def test_series_worked_out_together_match_one_at_a_time(rows):
    """The batched XmR rules (many series of one length as one array) give each series the
    flags and limits of the one-series rules (limits to the last bit of the mean range)."""
    from pophealth.trends import _batch_rules

    values = np.array(rows, dtype=float)
    batch = _batch_rules(values, 7, 7, True)
    for i, row in enumerate(values):
        one = _reference_series_rules(row, 7, 7, True)
        for name, expected in one.items():
            got = batch[name][i]
            if np.ndim(expected):
                np.testing.assert_array_equal(got, expected, err_msg=name)
            else:
                np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9, err_msg=name)


def _reference_runs(flags: np.ndarray) -> np.ndarray:
    """Length of the run of consecutive True values each element belongs to (0 where False)."""
    out = np.zeros(flags.size, dtype=int)
    start = 0
    while start < flags.size:
        if not flags[start]:
            start += 1
            continue
        end = start
        while end + 1 < flags.size and flags[end + 1]:
            end += 1
        out[start : end + 1] = end - start + 1
        start = end + 1
    return out


def _reference_series_rules(
    values: np.ndarray, shift_run: int, trend_run: int, screen_outliers: bool
) -> dict[str, np.ndarray | float]:
    """The XmR rules for one series, read plainly from Making Data Count, point by point: the
    reference the batched rules are checked against."""
    mean = float(np.mean(values))
    moving = np.abs(np.diff(values))
    mean_range = float(np.mean(moving)) if moving.size else np.nan
    if screen_outliers and moving.size:
        kept = moving[moving <= trends.MOVING_RANGE_SCREEN * mean_range]
        mean_range = float(np.mean(kept)) if kept.size else mean_range
    upper = mean + trends.XMR_LIMIT_FACTOR * mean_range
    lower = mean - trends.XMR_LIMIT_FACTOR * mean_range
    outside_high = values > upper
    outside_low = values < lower
    above, below = values > mean, values < mean
    shift_high = _reference_runs(above) >= shift_run
    shift_low = _reference_runs(below) >= shift_run
    # a trend point is any point in a run of strictly rising (or falling) steps of length trend_run
    steps_up = np.diff(values) > 0
    steps_down = np.diff(values) < 0
    trend_high = np.zeros(values.size, dtype=bool)
    trend_low = np.zeros(values.size, dtype=bool)
    for steps, target in ((steps_up, trend_high), (steps_down, trend_low)):
        run = _reference_runs(steps)  # run of steps; trend_run points need trend_run - 1 steps
        hit = np.flatnonzero(run >= trend_run - 1)
        target[hit] = True
        target[hit + 1] = True
    zone = 2 / 3 * trends.XMR_LIMIT_FACTOR * mean_range
    near_high = values > mean + zone
    near_low = values < mean - zone
    two_high = np.zeros(values.size, dtype=bool)
    two_low = np.zeros(values.size, dtype=bool)
    for i in range(values.size - 2):
        for near, target in ((near_high, two_high), (near_low, two_low)):
            window = slice(i, i + 3)
            if near[window].sum() >= 2:
                target[window] |= near[window]
    # each rule's points on either side, then the sides (the rules' union)
    rules = {
        "outside_limits": (outside_high, outside_low),
        "shift": (shift_high, shift_low),
        "trend": (trend_high, trend_low),
        "two_of_three": (two_high, two_low),
    }
    limits = {"upper_process_limit": upper, "lower_process_limit": lower}
    return {
        "mean": mean,
        "mean_moving_range": mean_range,
        **limits,
        **{name: high | low for name, (high, low) in rules.items()},
        "high": np.logical_or.reduce([high for high, _ in rules.values()]),
        "low": np.logical_or.reduce([low for _, low in rules.values()]),
    }


def test_xmr_columns_are_what_xmr_chart_adds():
    """``XMR_COLUMNS`` (what profiles select from a store-wide chart) is what xmr_chart adds."""
    frame = pd.DataFrame({"period": range(1, 9), "value": [3.0, 4, 3, 5, 4, 6, 5, 4]})
    out = trends.xmr_chart(frame, "value", "period")
    assert list(out.columns) == ["period", "value", *trends.XMR_COLUMNS]
