"""Tests for pophealth.stats: worked examples, independent computations and properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from pophealth import stats
from pophealth.stats import StatisticsInputError

# --------------------------------------------------------------------------------------
# Independent reference formulae (written from the papers, not from the module)
# --------------------------------------------------------------------------------------


def wilson_reference(x: float, n: float, level: float) -> tuple[float, float]:
    """Wilson (1927) score interval: roots of (p - phat)^2 = z^2 p (1 - p) / n."""
    z = sps.norm.ppf(1 - (1 - level) / 2)
    phat = x / n
    # Solve the quadratic (1 + z^2/n) p^2 - (2 phat + z^2/n) p + phat^2 = 0.
    a = 1 + z**2 / n
    b = -(2 * phat + z**2 / n)
    c = phat**2
    root = np.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


def exact_poisson_reference(count: float, level: float) -> tuple[float, float]:
    """Garwood (1936) limits from chi-square quantiles."""
    alpha = 1 - level
    lower = 0.0 if count == 0 else sps.chi2.ppf(alpha / 2, 2 * count) / 2
    return lower, sps.chi2.ppf(1 - alpha / 2, 2 * (count + 1)) / 2


def byar_reference(count: float, level: float) -> tuple[float, float]:
    """Byar's approximation (Breslow & Day 1987, p. 69)."""
    z = sps.norm.ppf(1 - (1 - level) / 2)
    o = count
    lower = o * (1 - 1 / (9 * o) - z / (3 * o**0.5)) ** 3
    o1 = o + 1
    upper = o1 * (1 - 1 / (9 * o1) + z / (3 * o1**0.5)) ** 3
    return lower, upper


def count_limits_reference(count: float, level: float) -> tuple[float, float]:
    return exact_poisson_reference(count, level) if count < 10 else byar_reference(count, level)


# --------------------------------------------------------------------------------------
# ci_label and confidence handling
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "label"), [(0.95, "95"), (0.998, "99_8"), (0.999, "99_9"), (0.9, "90"), (0.99, "99")]
)
def test_ci_label(level: float, label: str) -> None:
    assert stats.ci_label(level) == label


def test_confidence_text_and_columns() -> None:
    df = pd.DataFrame({"x": [5], "n": [10]})
    out = stats.proportion_wilson(df, "x", "n", confidence=(0.95, 0.998))
    assert out.loc[0, "confidence"] == "95%, 99.8%"
    assert list(out.columns) == [
        "x",
        "n",
        "value",
        "lower_95",
        "upper_95",
        "lower_99_8",
        "upper_99_8",
        "confidence",
        "method",
        "reason",
    ]


@pytest.mark.parametrize("bad", [0.5, 1.0, 95, -0.95, (0.95, 1.2)])
def test_confidence_out_of_range_raises(bad: object) -> None:
    df = pd.DataFrame({"x": [5], "n": [10]})
    with pytest.raises(StatisticsInputError, match="confidence level"):
        stats.proportion_wilson(df, "x", "n", confidence=bad)


def test_confidence_given_as_percentage_suggests_fraction() -> None:
    df = pd.DataFrame({"x": [5], "n": [10]})
    with pytest.raises(StatisticsInputError, match=r"0\.95, not 95"):
        stats.rate_byar(df, "x", "n", confidence=95)


# --------------------------------------------------------------------------------------
# 1. Wilson proportions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "n", "lower", "upper"),
    # Newcombe (1998) Stat Med 17:857, table I, method 3 (score, no continuity correction).
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_newcombe_table_1(x: int, n: int, lower: float, upper: float) -> None:
    out = stats.proportion_wilson(pd.DataFrame({"x": [x], "n": [n]}), "x", "n")
    assert round(out.loc[0, "lower_95"], 4) == lower
    assert round(out.loc[0, "upper_95"], 4) == upper
    assert out.loc[0, "value"] == pytest.approx(x / n)
    assert out.loc[0, "method"] == "Wilson"
    assert out.loc[0, "reason"] == ""


def test_wilson_matches_independent_quadratic_and_multiplier() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(1, 5000, 200)
    x = rng.integers(0, n + 1)
    df = pd.DataFrame({"x": x, "n": n})
    out = stats.proportion_wilson(df, "x", "n", confidence=(0.95, 0.998), multiplier=100)
    for level, label in ((0.95, "95"), (0.998, "99_8")):
        expected = np.array([wilson_reference(a, b, level) for a, b in zip(x, n, strict=True)])
        np.testing.assert_allclose(out[f"lower_{label}"], expected[:, 0] * 100, atol=1e-6)
        np.testing.assert_allclose(out[f"upper_{label}"], expected[:, 1] * 100, atol=1e-6)
    np.testing.assert_allclose(out["value"], x / n * 100)


def test_wilson_zero_denominator_gives_nan_with_reason_and_input_untouched() -> None:
    df = pd.DataFrame({"area_code": ["A", "B"], "x": [0, 3], "n": [0, 10]})
    before = df.copy()
    out = stats.proportion_wilson(df, "x", "n", id_col="area_code")
    pd.testing.assert_frame_equal(df, before)
    assert out is not df
    assert np.isnan(out.loc[0, ["value", "lower_95", "upper_95"]].astype(float)).all()
    assert out.loc[0, "reason"] == "denominator is zero"
    assert out.loc[1, "reason"] == ""


def test_wilson_missing_values_give_nan_with_reason() -> None:
    df = pd.DataFrame({"x": [np.nan, 2.0], "n": [10.0, np.nan]})
    out = stats.proportion_wilson(df, "x", "n")
    assert out["value"].isna().all()
    assert (out["reason"] == "numerator or denominator is missing").all()


def test_wilson_one_million_rows_vectorised() -> None:
    rng = np.random.default_rng(0)
    n = rng.integers(0, 20_000, 1_000_000)
    df = pd.DataFrame({"x": rng.integers(0, n + 1), "n": n})
    out = stats.proportion_wilson(df, "x", "n")
    assert len(out) == 1_000_000
    inside = (out["lower_95"] <= out["value"]) & (out["value"] <= out["upper_95"])
    assert inside[df["n"] > 0].all()
    # Speed is measured by benchmarks/bench_national.py (all indicators), never in a timed test.


# --------------------------------------------------------------------------------------
# 2. Rates and ratios
# --------------------------------------------------------------------------------------


def test_rate_exact_below_10_and_byar_from_10() -> None:
    counts = np.array([0, 1, 3, 9, 10, 11, 57, 250, 4321])
    pops = np.array([1000, 2500, 800, 12000, 5000, 7000, 20000, 100000, 900000])
    df = pd.DataFrame({"deaths": counts, "population": pops})
    out = stats.rate_byar(df, "deaths", "population", confidence=(0.95, 0.998))
    for i, (count, pop) in enumerate(zip(counts, pops, strict=True)):
        assert out.loc[i, "value"] == pytest.approx(count / pop * 100_000, abs=1e-9)
        for level, label in ((0.95, "95"), (0.998, "99_8")):
            lower, upper = count_limits_reference(count, level)
            assert out.loc[i, f"lower_{label}"] == pytest.approx(lower / pop * 1e5, abs=1e-6)
            assert out.loc[i, f"upper_{label}"] == pytest.approx(upper / pop * 1e5, abs=1e-6)
        assert out.loc[i, "method"] == ("Exact Poisson" if count < 10 else "Byar")


def test_rate_zero_denominator_reason() -> None:
    out = stats.rate_byar(pd.DataFrame({"c": [4], "p": [0]}), "c", "p")
    assert np.isnan(out.loc[0, "value"]) and np.isnan(out.loc[0, "upper_95"])
    assert out.loc[0, "reason"] == "denominator is zero"


def test_ratio_of_counts_standardised_ratio() -> None:
    df = pd.DataFrame({"obs": [7, 120], "exp": [5.2, 100.0]})
    out = stats.ratio_of_counts(df, "obs", "exp", multiplier=100)
    for i, (obs, exp) in enumerate(zip(df["obs"], df["exp"], strict=True)):
        lower, upper = count_limits_reference(obs, 0.95)
        assert out.loc[i, "value"] == pytest.approx(obs / exp * 100)
        assert out.loc[i, "lower_95"] == pytest.approx(lower / exp * 100, abs=1e-6)
        assert out.loc[i, "upper_95"] == pytest.approx(upper / exp * 100, abs=1e-6)
    assert list(out["method"]) == ["Exact Poisson", "Byar"]
    zero = stats.ratio_of_counts(pd.DataFrame({"o": [3], "e": [0.0]}), "o", "e")
    assert zero.loc[0, "reason"] == "expected count is zero"


# --------------------------------------------------------------------------------------
# 3. Means
# --------------------------------------------------------------------------------------


def test_mean_t_matches_scipy_t() -> None:
    rng = np.random.default_rng(5)
    df = pd.DataFrame(
        {"icb": np.repeat(["Q1", "Q2", "Q3"], [12, 30, 1]), "fte": rng.gamma(4, 2, 43)}
    )
    out = stats.mean_t(df, "fte", "icb", confidence=(0.95, 0.998)).set_index("icb")
    for icb, values in df.groupby("icb")["fte"]:
        if len(values) < 2:
            continue
        for level, label in ((0.95, "95"), (0.998, "99_8")):
            lower, upper = sps.t.interval(
                level, len(values) - 1, loc=values.mean(), scale=sps.sem(values)
            )
            assert out.loc[icb, f"lower_{label}"] == pytest.approx(lower, abs=1e-6)
            assert out.loc[icb, f"upper_{label}"] == pytest.approx(upper, abs=1e-6)
        assert out.loc[icb, "value"] == pytest.approx(values.mean())
        assert out.loc[icb, "value_count"] == len(values)
    assert out.loc["Q3", "reason"] == "fewer than 2 values in group"
    assert np.isnan(out.loc["Q3", "lower_95"])
    assert (out["method"] == "Student's t").all()


# --------------------------------------------------------------------------------------
# 4. DSRs
# --------------------------------------------------------------------------------------


def test_esp2013_file() -> None:
    esp = stats.european_standard_population_2013()
    assert list(esp.columns) == ["age_band", "esp2013"]
    assert list(esp["age_band"]) == stats.ESP2013_BANDS
    assert len(esp) == 19 and esp["esp2013"].sum() == 100_000
    # Eurostat 2013: 5,000 aged 0-4, 1,000 aged 90+ (800 + 200).
    assert esp["esp2013"].iloc[0] == 5000 and esp["esp2013"].iloc[-1] == 1000


def _dsr_input(seed: int, areas: list[str], max_deaths: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        (area, band, int(rng.integers(0, max_deaths + 1)), int(rng.integers(200, 6000)))
        for area in areas
        for band in reversed(stats.ESP2013_BANDS)  # order must not matter
    ]
    return pd.DataFrame(rows, columns=["area", "age", "deaths", "pop"])


def dobson_reference(group: pd.DataFrame, level: float, multiplier: float) -> tuple[float, ...]:
    esp = dict(zip(stats.ESP2013_BANDS, [5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000,
                                         7000, 7000, 7000, 6500, 6000, 5500, 5000, 4000,
                                         2500, 1500, 1000], strict=True))  # fmt: skip
    total_w = sum(esp.values())
    dsr = sum(esp[b] * d / p for b, d, p in zip(group.age, group.deaths, group["pop"], strict=True))
    var = sum(
        esp[b] ** 2 * d / p**2
        for b, d, p in zip(group.age, group.deaths, group["pop"], strict=True)
    )
    dsr, var = dsr / total_w, var / total_w**2
    o = group.deaths.sum()
    o_low, o_high = count_limits_reference(o, level)
    lower = dsr + (var / o) ** 0.5 * (o_low - o)
    upper = dsr + (var / o) ** 0.5 * (o_high - o)
    return dsr * multiplier, lower * multiplier, upper * multiplier


@pytest.mark.parametrize(("max_deaths", "min_count"), [(40, 10), (1, 0)])
def test_dsr_dobson_matches_independent_computation(max_deaths: int, min_count: int) -> None:
    df = _dsr_input(11, ["E06000001", "E06000002", "E06000003"], max_deaths)
    if max_deaths == 1:
        # Totals of 1 to 7 events: Dobson limits from exact Poisson limits of the count.
        df.loc[df["age"].isin(stats.ESP2013_BANDS[:12]), "deaths"] = 0
        df.loc[df["age"] == "90+", "deaths"] = 1
    out = stats.dsr_dobson(
        df, "deaths", "pop", "age", "area", confidence=(0.95, 0.998), min_count=min_count
    ).set_index("area")
    for area, group in df.groupby("area"):
        assert out.loc[area, "total_count"] == group.deaths.sum()
        if max_deaths == 1:
            assert 0 < group.deaths.sum() < 10
        for level, label in ((0.95, "95"), (0.998, "99_8")):
            value, lower, upper = dobson_reference(group, level, 100_000)
            assert out.loc[area, "value"] == pytest.approx(value, abs=1e-6)
            assert out.loc[area, f"lower_{label}"] == pytest.approx(lower, abs=1e-6)
            assert out.loc[area, f"upper_{label}"] == pytest.approx(upper, abs=1e-6)
    assert (out["method"] == "Dobson").all()


def test_dsr_small_counts_suppressed_with_reason() -> None:
    df = _dsr_input(2, ["A"], 0)
    df.loc[0, "deaths"] = 4
    out = stats.dsr_dobson(df, "deaths", "pop", "age", "area")
    assert np.isnan(out.loc[0, "value"])
    assert "below 10" in out.loc[0, "reason"]


def test_dsr_rejects_mismatched_age_bands() -> None:
    df = _dsr_input(2, ["A", "B"], 5)
    renamed = df.replace({"age": {"90+": "90-94"}})
    with pytest.raises(
        StatisticsInputError,
        match=r"not in the standard population: '90-94' \(did you mean '90\+'\?\)",
    ):
        stats.dsr_dobson(renamed, "deaths", "pop", "age", "area")
    dropped = df[~((df.area == "B") & (df.age == "85-89"))]
    with pytest.raises(StatisticsInputError, match=r"'area': 'B'.*missing 85-89"):
        stats.dsr_dobson(dropped, "deaths", "pop", "age", "area")


def test_dsr_custom_standard_gives_crude_rate_for_uniform_weights() -> None:
    # With weights proportional to the area's own population a DSR is the crude rate.
    df = _dsr_input(4, ["A"], 30)
    standard = pd.DataFrame({"age_band": df["age"], "weight": df["pop"]})
    out = stats.dsr_dobson(df, "deaths", "pop", "age", "area", standard=standard)
    assert out.loc[0, "value"] == pytest.approx(df.deaths.sum() / df["pop"].sum() * 1e5)


# --------------------------------------------------------------------------------------
# 5. Weighted quantile groups
# --------------------------------------------------------------------------------------


def test_weighted_quantiles_use_population_weights() -> None:
    # One big practice holds 40% of patients: it alone fills the top two quintiles' worth.
    df = pd.DataFrame(
        {
            "practice": list("ABCDEFG"),
            "imd": [50.0, 40, 30, 20, 15, 10, 5],
            "patients": [40, 10, 10, 10, 10, 10, 10],
        }
    )
    cuts = stats.weighted_cut_points(df["imd"], df["patients"], 5)
    np.testing.assert_array_equal(cuts, [10, 20, 40, 50])
    np.testing.assert_array_equal(
        stats.weighted_cut_points(df["imd"], df["patients"], 5, descending=True), [50, 50, 30, 15]
    )
    out = stats.weighted_quantile_groups(df, "imd", "patients", n_groups=5)
    # Practice A (40% of patients) fills quintiles 1 and 2, so none is assigned 2.
    assert out["quantile_group"].tolist() == [1, 3, 3, 4, 4, 5, 5]
    reverse = stats.weighted_quantile_groups(
        df, "imd", "patients", n_groups=5, higher_is_more_deprived=False
    )
    assert reverse["quantile_group"].tolist() == [4, 3, 3, 2, 2, 1, 1]
    assert "quantile_group" not in df.columns


def test_weighted_quantiles_from_reference_population() -> None:
    england = pd.DataFrame({"imd": np.arange(1.0, 101.0), "patients": np.ones(100)})
    local = pd.DataFrame({"imd": [3.0, 55.0, 99.0, np.nan], "patients": [5, 5, 5, 5]})
    out = stats.weighted_quantile_groups(local, "imd", "patients", reference=england)
    assert out["quantile_group"].tolist()[:3] == [5, 3, 1]
    assert out["quantile_group"].isna().tolist() == [False, False, False, True]


def test_weighted_quantiles_equal_weights_match_deciles() -> None:
    values = np.arange(1000.0)
    out = stats.weighted_quantile_groups(
        pd.DataFrame({"v": values, "w": 1.0}), "v", "w", n_groups=10, higher_is_more_deprived=False
    )
    assert (out["quantile_group"].value_counts() == 100).all()


# --------------------------------------------------------------------------------------
# 6. SII / RII
# --------------------------------------------------------------------------------------


def test_sii_perfect_gradient_equals_slope() -> None:
    # Value rises by exactly 3 per unit of relative rank; unequal group populations.
    pops = np.array([900.0, 1400, 1100, 700, 1900])
    share = pops / pops.sum()
    midpoint = np.cumsum(share) - share / 2
    values = 20 + 3 * midpoint
    df = pd.DataFrame({"quintile": [1, 2, 3, 4, 5], "value": values, "pop": pops, "se": 0.4})
    first = stats.slope_index_of_inequality(df, "value", "pop", "quintile", se="se")
    assert first.loc[0, "sii"] == pytest.approx(3.0, abs=1e-12)
    assert first.loc[0, "rii"] == pytest.approx(23 / 20, abs=1e-12)
    assert first.loc[0, "sii_lower_95"] < 3 < first.loc[0, "sii_upper_95"]
    assert first.loc[0, "rii_lower_95"] < 23 / 20 < first.loc[0, "rii_upper_95"]
    again = stats.slope_index_of_inequality(df, "value", "pop", "quintile", se="se")
    pd.testing.assert_frame_equal(first, again)
    other_seed = stats.slope_index_of_inequality(df, "value", "pop", "quintile", se="se", seed=7)
    assert other_seed.loc[0, "sii_lower_95"] != first.loc[0, "sii_lower_95"]


def test_sii_matches_weighted_polyfit_and_analytic_limits() -> None:
    rng = np.random.default_rng(8)
    pops = rng.integers(5000, 20000, 10).astype(float)
    values = rng.normal(75, 3, 10)
    se = rng.uniform(0.2, 1.5, 10)
    z = sps.norm.ppf(0.975)
    df = pd.DataFrame(
        {
            "decile": np.arange(1, 11),
            "le": values,
            "pop": pops,
            "lo": values - z * se,
            "hi": values + z * se,
        }
    )
    out = stats.slope_index_of_inequality(
        df, "le", "pop", "decile", lower="lo", upper="hi", confidence=(0.95, 0.998), n_sims=20_000
    )
    share = pops / pops.sum()
    midpoint = np.cumsum(share) - share / 2
    slope, intercept = np.polyfit(midpoint, values, 1, w=np.sqrt(share))
    assert out.loc[0, "sii"] == pytest.approx(slope, rel=1e-10)
    assert out.loc[0, "rii"] == pytest.approx((intercept + slope) / intercept, rel=1e-10)
    # The SII is linear in the group values, so its sampling sd is known exactly.
    weights = share * (midpoint - share @ midpoint) / (share @ (midpoint - share @ midpoint) ** 2)
    sd = np.sqrt(np.sum(weights**2 * se**2))
    for level, label in ((0.95, "95"), (0.998, "99_8")):
        half = sps.norm.ppf(0.5 + level / 2) * sd
        tolerance = 0.04 if level == 0.95 else 0.1  # Monte Carlo error in the tails
        assert out.loc[0, f"sii_lower_{label}"] == pytest.approx(slope - half, abs=tolerance * half)
        assert out.loc[0, f"sii_upper_{label}"] == pytest.approx(slope + half, abs=tolerance * half)
    assert out.loc[0, "sii_lower_99_8"] < out.loc[0, "sii_lower_95"]


def test_sii_by_sets_independent_of_other_sets_and_incomplete_set() -> None:
    base = pd.DataFrame(
        {
            "q": [1, 2, 3, 4, 5],
            "v": [10.0, 11, 13, 12, 16],
            "p": [100.0, 120, 90, 110, 95],
            "se": 0.8,
        }
    )
    both = pd.concat([base.assign(icb="Q1"), base.assign(icb="Q2", v=base.v * 2)])
    partial = base.assign(icb="Q3").iloc[:4]
    out = stats.slope_index_of_inequality(
        pd.concat([both, partial]), "v", "p", "q", se="se", by="icb"
    ).set_index("icb")
    alone = stats.slope_index_of_inequality(base, "v", "p", "q", se="se")
    assert out.loc["Q1", "sii"] == pytest.approx(alone.loc[0, "sii"])
    assert out.loc["Q1", "sii_upper_95"] == pytest.approx(alone.loc[0, "sii_upper_95"])
    assert out.loc["Q2", "sii"] == pytest.approx(2 * alone.loc[0, "sii"])
    assert np.isnan(out.loc["Q3", "sii"])
    assert out.loc["Q3", "reason"] == "missing quantile groups 5"


def test_sii_log_transform_for_rates() -> None:
    rates = np.array([820.0, 700, 610, 540, 450])
    df = pd.DataFrame(
        {"q": [1, 2, 3, 4, 5], "rate": rates, "pop": 1e4, "lo": rates * 0.9, "hi": rates * 1.1}
    )
    plain = stats.slope_index_of_inequality(df, "rate", "pop", "q", lower="lo", upper="hi")
    logged = stats.slope_index_of_inequality(
        df, "rate", "pop", "q", lower="lo", upper="hi", transform="log"
    )
    # The point estimate is on the natural scale either way; only the simulation differs.
    assert logged.loc[0, "sii"] == pytest.approx(plain.loc[0, "sii"])
    assert logged.loc[0, "sii_lower_95"] < logged.loc[0, "sii"] < logged.loc[0, "sii_upper_95"]
    assert logged.loc[0, "sii_lower_95"] != plain.loc[0, "sii_lower_95"]
    with pytest.raises(StatisticsInputError, match=r"'rate' must be above 0.*q 2: rate 0"):
        stats.slope_index_of_inequality(
            df.assign(rate=[5.0, 0, 3, 2, 1]), "rate", "pop", "q", se="lo", transform="log"
        )


def test_sii_rejects_zero_population() -> None:
    df = pd.DataFrame({"q": [1, 2, 3, 4, 5], "v": [1.0] * 5, "p": [10, 0, 10, 10, 10], "se": 1.0})
    with pytest.raises(StatisticsInputError, match=r"population column 'p'.*q 2: p 0"):
        stats.slope_index_of_inequality(df, "v", "p", "q", se="se")


# --------------------------------------------------------------------------------------
# 7. Funnel limits
# --------------------------------------------------------------------------------------


def test_funnel_proportion_close_to_normal_at_large_denominator() -> None:
    out = stats.funnel_limits_proportion([2_000_000], 30, multiplier=100)
    for level, label in ((0.95, "95"), (0.998, "99_8")):
        half = sps.norm.ppf(0.5 + level / 2) * np.sqrt(0.3 * 0.7 / 2_000_000) * 100
        assert out.loc[0, f"lower_{label}"] == pytest.approx(30 - half, abs=2e-4)
        assert out.loc[0, f"upper_{label}"] == pytest.approx(30 + half, abs=2e-4)


def test_funnel_rate_close_to_normal_at_large_denominator() -> None:
    out = stats.funnel_limits_rate([5_000_000], 250, multiplier=100_000)
    expected = 5_000_000 * 250 / 100_000
    half = sps.norm.ppf(0.975) * np.sqrt(expected) / 5_000_000 * 100_000
    assert out.loc[0, "lower_95"] == pytest.approx(250 - half, rel=2e-3)
    assert out.loc[0, "upper_95"] == pytest.approx(250 + half, rel=2e-3)


def test_funnel_limits_bracket_exact_quantiles_and_narrow() -> None:
    grid = stats.funnel_plot_points(200, 50_000)
    assert grid[0] == 1 and grid[-1] == 50_000 and np.all(np.diff(grid) > 0)
    out = stats.funnel_limits_proportion(grid, 0.2)
    for level, label in ((0.95, "95"), (0.998, "99_8")):
        r_upper = sps.binom.ppf(0.5 + level / 2, grid, 0.2)
        count = out[f"upper_{label}"].to_numpy() * grid
        assert np.all((count <= r_upper + 1e-9) & (count >= r_upper - 1 - 1e-9))
    large = grid >= 100
    width = (out["upper_95"] - out["lower_95"]).to_numpy()[large]
    assert np.all(np.diff(width) < 0)
    assert np.all(out["upper_99_8"] >= out["upper_95"]) and np.all(
        out["lower_99_8"] <= out["lower_95"]
    )
    rates = stats.funnel_limits_rate(grid, 500)
    # Poisson limits are only smooth once the expected count is about 5 or more.
    rate_width = (rates["upper_99_8"] - rates["lower_99_8"]).to_numpy()[grid * 500 / 1e5 >= 5]
    assert np.all(np.diff(rate_width) < 0)


def test_funnel_rate_for_ratios_uses_expected_counts() -> None:
    out = stats.funnel_limits_rate([50.0], 1, multiplier=1, confidence=0.95)
    r_p = sps.poisson.ppf(0.975, 50)
    a = (sps.poisson.cdf(r_p, 50) - 0.975) / (sps.poisson.pmf(r_p, 50))
    assert out.loc[0, "upper_95"] == pytest.approx((r_p - a) / 50, abs=1e-12)


# --------------------------------------------------------------------------------------
# 8. Benchmark comparison
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lower", "upper", "benchmark", "polarity", "expected"),
    [
        (11.0, 12.0, 10.0, "no judgement", "higher"),
        (8.0, 9.0, 10.0, "no judgement", "lower"),
        (9.0, 11.0, 10.0, "no judgement", "similar"),
        (10.0, 12.0, 10.0, "no judgement", "similar"),  # benchmark on the lower limit
        (8.0, 10.0, 10.0, "high is good", "similar"),  # benchmark on the upper limit
        (11.0, 12.0, 10.0, "high is good", "better"),
        (8.0, 9.0, 10.0, "high is good", "worse"),
        (11.0, 12.0, 10.0, "low is good", "worse"),
        (8.0, 9.0, 10.0, "low is good", "better"),
        (np.nan, 9.0, 10.0, "low is good", "not compared"),
        (8.0, 9.0, np.nan, "no judgement", "not compared"),
    ],
)
def test_compare_to_benchmark_cases(
    lower: float, upper: float, benchmark: float, polarity: str, expected: str
) -> None:
    df = pd.DataFrame(
        {"lower_95": [lower], "upper_95": [upper], "england": [benchmark], "pol": [polarity]}
    )
    by_columns = stats.compare_to_benchmark(df, "lower_95", "upper_95", "england", "pol", "95")
    assert by_columns.loc[0, "comparison_95"] == expected
    if not np.isnan(benchmark):
        constants = stats.compare_to_benchmark(
            df, "lower_95", "upper_95", benchmark, polarity, 0.95
        )
        assert constants.loc[0, "comparison_95"] == expected


def test_compare_to_benchmark_rejects_unknown_polarity() -> None:
    df = pd.DataFrame(
        {"area_code": ["E1", "E2"], "lo": [1.0, 2], "hi": [3.0, 4], "pol": ["high is good", "up"]}
    )
    with pytest.raises(
        StatisticsInputError, match=r"polarity column 'pol'.*area_code E2: pol 'up'"
    ):
        stats.compare_to_benchmark(df, "lo", "hi", 2.0, "pol", "95", id_col="area_code")
    with pytest.raises(StatisticsInputError, match="did you mean 'high is good'"):
        stats.compare_to_benchmark(df, "lo", "hi", 2.0, "high is goood", "95")
    assert stats.POLARITIES == ("no judgement", "high is good", "low is good")


# --------------------------------------------------------------------------------------
# Input errors name the column and the rows
# --------------------------------------------------------------------------------------


def test_numerator_exceeds_denominator_message() -> None:
    df = pd.DataFrame(
        {"area_code": ["E38000001", "E38000002", "E38000003"], "num": [12, 3, 7], "den": [10, 5, 6]}
    )
    with pytest.raises(StatisticsInputError) as error:
        stats.proportion_wilson(df, "num", "den", id_col="area_code")
    message = str(error.value)
    assert "numerator 'num' exceeds denominator 'den' in 2 rows" in message
    assert "area_code E38000001: num 12 > den 10" in message
    assert "area_code E38000003: num 7 > den 6" in message


@pytest.mark.parametrize(
    ("function", "kwargs"),
    [
        (stats.proportion_wilson, {"numerator": "count", "denominator": "pop"}),
        (stats.rate_byar, {"count": "count", "denominator": "pop"}),
        (stats.ratio_of_counts, {"observed": "count", "expected": "pop"}),
    ],
)
def test_negative_counts_named(function, kwargs) -> None:
    df = pd.DataFrame({"area_code": ["E1", "E2"], "count": [4, -1], "pop": [10, 10]})
    with pytest.raises(
        StatisticsInputError,
        match=r"column 'count' has negative values in 1 row \(area_code E2: count -1\)",
    ):
        function(df, id_col="area_code", **kwargs)


def test_negative_population_without_id_col_names_row_index() -> None:
    df = pd.DataFrame({"count": [4, 1], "pop": [10, -5]}, index=[7, 8])
    with pytest.raises(
        StatisticsInputError, match=r"'pop' has negative values in 1 row \(row 8: pop -5\)"
    ):
        stats.rate_byar(df, "count", "pop")


def test_non_numeric_column_named() -> None:
    df = pd.DataFrame({"area_code": ["E1", "E2"], "count": ["4", "*"], "pop": [10, 10]})
    with pytest.raises(
        StatisticsInputError,
        match=r"column 'count' is not numeric.*area_code E1: '4'.*area_code E2: '\*'",
    ):
        stats.proportion_wilson(df, "count", "pop", id_col="area_code")


def test_missing_column_suggests_close_match() -> None:
    df = pd.DataFrame({"deaths": [1], "population": [10]})
    with pytest.raises(
        StatisticsInputError, match=r"column 'populaton' not found.*did you mean 'population'"
    ):
        stats.rate_byar(df, "deaths", "populaton")


def test_mean_t_non_numeric_named() -> None:
    df = pd.DataFrame({"g": ["a", "a"], "v": [1.0, "x"]})
    with pytest.raises(StatisticsInputError, match="column 'v' is not numeric"):
        stats.mean_t(df, "v", "g")


def test_dsr_negative_population_named() -> None:
    df = _dsr_input(1, ["E06000001"], 5)
    df.loc[3, "pop"] = -10
    with pytest.raises(
        StatisticsInputError,
        match=r"'pop' has negative values in 1 row \(area E06000001: pop -10\)",
    ):
        stats.dsr_dobson(df, "deaths", "pop", "age", "area", id_col="area")


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------

counts_and_sizes = st.integers(min_value=1, max_value=100_000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)


@settings(max_examples=200, deadline=None)
@given(counts_and_sizes)
def test_wilson_limits_contain_value_and_nest(pair: tuple[int, int]) -> None:
    x, n = pair
    out = stats.proportion_wilson(
        pd.DataFrame({"x": [x], "n": [n]}), "x", "n", confidence=(0.95, 0.998)
    )
    row = out.iloc[0]
    assert 0 <= row.lower_99_8 <= row.lower_95 <= row.value <= row.upper_95 <= row.upper_99_8 <= 1


@settings(max_examples=100, deadline=None)
@given(counts_and_sizes, st.integers(min_value=2, max_value=50))
def test_wilson_narrows_with_bigger_denominator(pair: tuple[int, int], factor: int) -> None:
    x, n = pair
    df = pd.DataFrame({"x": [x, x * factor], "n": [n, n * factor]})
    out = stats.proportion_wilson(df, "x", "n")
    width = (out["upper_95"] - out["lower_95"]).to_numpy()
    assert width[1] < width[0]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=1_000_000), st.floats(min_value=1, max_value=1e7))
def test_rate_limits_contain_value_and_nest(count: int, population: float) -> None:
    out = stats.rate_byar(
        pd.DataFrame({"c": [count], "p": [population]}), "c", "p", confidence=(0.95, 0.998)
    )
    row = out.iloc[0]
    assert row.lower_99_8 <= row.lower_95 <= row.value <= row.upper_95 <= row.upper_99_8
    assert row.lower_99_8 >= 0


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=5000), st.integers(min_value=2, max_value=50))
def test_rate_narrows_with_bigger_denominator(count: int, factor: int) -> None:
    df = pd.DataFrame({"c": [count, count * factor], "p": [10_000.0, 10_000.0 * factor]})
    out = stats.rate_byar(df, "c", "p")
    width = (out["upper_95"] - out["lower_95"]).to_numpy()
    assert width[1] < width[0]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
        min_size=2,
        max_size=40,
    )
)
def test_t_limits_contain_mean_and_nest(values: list[float]) -> None:
    out = stats.mean_t(pd.DataFrame({"g": 1, "v": values}), "v", "g", confidence=(0.95, 0.998))
    row = out.iloc[0]
    slack = 1e-9 * max(1.0, abs(row.value))
    assert row.lower_99_8 <= row.lower_95 + slack
    assert row.lower_95 <= row.value + slack <= row.upper_95 + 2 * slack
    assert row.upper_95 <= row.upper_99_8 + slack
