"""Statistics added for honest comparisons: overdispersed funnels, input checks, SII defaults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from pophealth import stats
from pophealth.stats import StatisticsInputError

N = np.array([500, 1_000, 2_000, 3_000, 5_000, 8_000, 10_000, 15_000, 20_000, 40_000.0])
P = np.array([0.13, 0.08, 0.115, 0.09, 0.125, 0.095, 0.105, 0.087, 0.112, 0.101])


def _worked_dispersion(p, n, target):
    """Spiegelhalter (2005) QSHC 14:347, written out row by row with scipy."""
    y0 = np.arcsin(np.sqrt(target))
    z = []
    for share, size in zip(p, n, strict=True):
        z.append((np.arcsin(np.sqrt(share)) - y0) * 2 * np.sqrt(size))
    z = np.array(z)
    low = sps.scoreatpercentile(z, 10)  # linear interpolation, as R's quantile type 7
    high = sps.scoreatpercentile(z, 90)
    winsorised = [min(max(v, low), high) for v in z]
    count = len(z)
    phi = sum(v * v for v in winsorised) / count
    weights = [4 * size for size in n]  # 1 / se^2 with se = 1 / (2 sqrt(n))
    tau2 = (count * phi - (count - 1)) / (sum(weights) - sum(w * w for w in weights) / sum(weights))
    return phi, max(tau2, 0.0), count * phi > sps.chi2.ppf(0.95, count - 1)


def test_overdispersion_matches_worked_values():
    phi, tau2, overdispersed = _worked_dispersion(P, N, 0.1)
    got = stats.funnel_overdispersion(P * 100, N, 10, "proportion", multiplier=100)
    assert overdispersed and got["overdispersed"]
    assert got["phi"] == pytest.approx(phi, rel=1e-12)
    assert got["tau2"] == pytest.approx(tau2, rel=1e-12)
    assert got["n"] == 10
    # limits at a denominator n: sin^2(y0 +/- z sqrt(1/(4n) + tau2)), transformed back
    limits = stats.funnel_limits_random_effects(
        [10_000], 10, got["tau2"], "proportion", multiplier=100
    )
    spread = 1.959963984540054 * np.sqrt(1 / 40_000 + tau2)
    y0 = np.arcsin(np.sqrt(0.1))
    assert limits["upper_95"].iloc[0] == pytest.approx(np.sin(y0 + spread) ** 2 * 100)
    assert limits["lower_95"].iloc[0] == pytest.approx(np.sin(y0 - spread) ** 2 * 100)
    # the random-effects limits are wider than the exact binomial ones
    exact = stats.funnel_limits_proportion([10_000], 10, multiplier=100)
    assert limits["upper_99_8"].iloc[0] > exact["upper_99_8"].iloc[0]


def test_overdispersion_recovers_a_known_random_effect_and_none_without_one():
    rng = np.random.default_rng(11)
    n = rng.integers(2_000, 50_000, size=400).astype(float)
    y0 = np.arcsin(np.sqrt(0.2))
    tau = 0.02
    true_y = y0 + tau * rng.standard_normal(len(n))
    events = rng.binomial(n.astype(int), np.sin(true_y) ** 2)
    # without Winsorising the moment estimator recovers the random-effect variance
    got = stats.funnel_overdispersion(events / n, n, 0.2, "proportion", winsorise=0.0)
    assert got["overdispersed"]
    assert got["tau2"] == pytest.approx(tau**2, rel=0.25)
    # Winsorising (the default, robust to outliers) shrinks it but still finds it
    robust = stats.funnel_overdispersion(events / n, n, 0.2, "proportion")
    assert robust["overdispersed"] and 0 < robust["tau2"] < got["tau2"]
    plain = rng.binomial(n.astype(int), 0.2) / n
    none = stats.funnel_overdispersion(plain, n, 0.2, "proportion")
    assert not none["overdispersed"] and none["tau2"] == 0.0
    assert none["phi"] < 1.3


def test_overdispersion_of_rates_uses_square_roots():
    rate = np.array([5.0, 6.5, 4.0, 7.5, 6.0, 5.5])  # per 10,000
    n = np.array([20_000, 30_000, 25_000, 40_000, 10_000, 15_000.0])
    got = stats.funnel_overdispersion(rate, n, 6.0, "rate", multiplier=10_000)
    z = (np.sqrt(rate / 10_000) - np.sqrt(6.0 / 10_000)) * 2 * np.sqrt(n)
    low, high = np.quantile(z, [0.1, 0.9])
    assert got["phi"] == pytest.approx(np.mean(np.clip(z, low, high) ** 2))


@pytest.mark.parametrize(
    "call",
    [
        lambda: stats.funnel_overdispersion([1, 2], [10, 10], 1.5),
        lambda: stats.funnel_overdispersion([0.1, 0.2, 0.3], [10, 0, 5], 0.2),
        lambda: stats.funnel_overdispersion([0.1, 0.2, 0.3], [10, 5, 5], 0.2, "ratio"),
        lambda: stats.funnel_limits_random_effects([10], 0.2, -1.0),
    ],
)
def test_overdispersion_input_errors(call):
    with pytest.raises(StatisticsInputError):
        call()


@pytest.mark.parametrize("multiplier", [0, -100, float("nan"), "100", True])
def test_non_positive_multiplier_is_a_clear_error(multiplier):
    frame = pd.DataFrame({"area": ["A"], "x": [5], "n": [100]})
    for function in (stats.proportion_wilson, stats.rate_byar):
        with pytest.raises(StatisticsInputError, match="multiplier must be a positive number"):
            function(frame, "x", "n", multiplier=multiplier)
    with pytest.raises(StatisticsInputError, match="multiplier"):
        stats.funnel_limits_rate([100], 5, multiplier=multiplier)


def test_dsr_count_above_its_band_population_is_a_clear_error():
    esp = stats.european_standard_population_2013()
    bands = esp.iloc[:, 0].tolist() if esp.shape[1] > 1 else esp.index.tolist()
    frame = pd.DataFrame({"area": "A", "band": bands, "events": 5, "people": 1_000})
    frame.loc[3, "events"] = 1_200
    with pytest.raises(StatisticsInputError, match="above its age band's population") as error:
        stats.dsr_dobson(frame, "events", "people", "band", group_by="area", id_col="area")
    assert "events 1200 > people 1000" in str(error.value)


def test_fractional_counts_for_exact_poisson_limits_are_a_clear_error():
    frame = pd.DataFrame({"area": ["A", "B"], "x": [4.6, 12.5], "n": [1_000, 1_000]})
    with pytest.raises(StatisticsInputError, match="fractional counts below 10") as error:
        stats.rate_byar(frame, "x", "n", id_col="area")
    assert "A: x 4.6" in str(error.value) and "B" not in str(error.value).split("(")[1]
    ok = stats.rate_byar(frame.iloc[[1]], "x", "n")  # Byar's approximation takes any count
    assert ok["value"].iloc[0] == pytest.approx(1_250)


def test_sii_uses_100000_seeded_simulations_and_is_fast():
    import time

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "set": np.repeat(np.arange(40), 5),
            "quintile": np.tile(np.arange(1, 6), 40),
            "value": rng.uniform(5, 7, 200),
            "people": 20_000.0,
        }
    )
    frame["lower"] = frame["value"] - 0.3
    frame["upper"] = frame["value"] + 0.3
    started = time.perf_counter()
    out = stats.slope_index_of_inequality(
        frame, "value", "people", "quintile", lower="lower", upper="upper", by="set", rii=True
    )
    assert time.perf_counter() - started < 15
    assert out["method"].str.contains("100000 simulations").all()
    again = stats.slope_index_of_inequality(
        frame, "value", "people", "quintile", lower="lower", upper="upper", by="set", rii=True
    )
    pd.testing.assert_frame_equal(out, again)
    # the block-wise linear path equals simulating each set on its own
    single = stats.slope_index_of_inequality(
        frame[frame["set"] == 7], "value", "people", "quintile", lower="lower", upper="upper"
    )
    assert single["sii_lower_95"].iloc[0] == pytest.approx(out["sii_lower_95"].iloc[7])
