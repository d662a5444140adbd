"""The headline: ranked findings -> plain-English sentences (pure functions), and on the demo."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pophealth import headline, indicators

CATALOGUE = indicators.load_catalogue()


def _table(measures: dict[str, dict[str, tuple[float, float]]]) -> pd.DataFrame:
    """The tidy table for England (ALL) and neighbourhoods, from numerators/denominators."""
    codes = list(measures)
    register = pd.DataFrame(
        {
            "area_code": codes,
            "area_name": ["England" if c == "ALL" else f"Test {c} PCN" for c in codes],
            "level": ["england" if c == "ALL" else "neighbourhood" for c in codes],
            "area_type": ["all" if c == "ALL" else "pcn" for c in codes],
            "basis": "registered",
            "parent_code": [pd.NA if c == "ALL" else "ALL" for c in codes],
            "parent_name": [pd.NA if c == "ALL" else "England" for c in codes],
            "system_code": pd.NA,
        }
    )
    wide = {"area_code": codes}
    for indicator in next(iter(measures.values())):
        wide[f"{indicator}__num"] = [measures[c][indicator][0] for c in codes]
        wide[f"{indicator}__den"] = [measures[c][indicator][1] for c in codes]
    return indicators.compute_indicator_table(register, pd.DataFrame(wide), None)


def _rows(table: pd.DataFrame, code: str) -> pd.DataFrame:
    return table[table["area_code"] == code].reset_index(drop=True)


def _headline(table: pd.DataFrame, area_name: str) -> tuple[str, list]:
    """The headline of area U1 (registered population) compared with England."""
    return headline.profile_headline(
        {"area_name": area_name, "basis": "registered"}, _rows(table, "U1"), "England"
    )


def test_known_gp_gap_is_rated_and_named():
    # England: 6.0 GP FTE per 10,000 weighted patients; the PCN: 15 FTE for 30,000 = 5.0,
    # so its fair share is 18.0 FTE, 3.0 FTE (16.7%) short
    table = _table(
        {
            "ALL": {"gp_fte_per_10k_weighted": (600.0, 1_000_000.0), "list_size": (9e5, np.nan)},
            "U1": {"gp_fte_per_10k_weighted": (15.0, 30_000.0), "list_size": (28_000, np.nan)},
        }
    )
    row = (
        table[(table["area_code"] == "U1")].set_index("indicator_id").loc["gp_fte_per_10k_weighted"]
    )
    assert row["fair_share"] == pytest.approx(18.0)
    assert row["fair_share_gap"] == pytest.approx(-3.0)
    assert row["fair_share_gap_pct"] == pytest.approx(-100 / 6)
    assert row["rating"] == "fewer than fair share"
    assert np.isnan(row["lower_ci"])  # no Poisson interval on FTE
    text, findings = _headline(table, "Test U1 PCN")
    assert text == (
        "Test U1 PCN (registered population, 28,000 people). The area has fewer GPs than its "
        "fair share at England's rate per weighted patient: 15.0 FTE against 18.0 FTE "
        "(17% fewer)."
    )
    assert [f.rating for f in findings] == ["fewer than fair share"]


def test_fair_share_threshold_is_ten_percent():
    table = _table(
        {
            "ALL": {"gp_fte_per_10k_weighted": (600.0, 1_000_000.0)},
            "U1": {"gp_fte_per_10k_weighted": (16.3, 30_000.0)},  # 9.4% short
            "U2": {"gp_fte_per_10k_weighted": (19.9, 30_000.0)},  # 10.6% over
        }
    )
    ratings = table.set_index("area_code")["rating"]
    assert ratings["U1"] == "about fair share"
    assert ratings["U2"] == "more than fair share"


def test_outcome_and_need_sentences_with_values():
    table = _table(
        {
            "ALL": {"pct_bad_health": (56_000, 1_000_000), "pct_core20": (200_000, 1_000_000)},
            "U1": {"pct_bad_health": (2_310, 30_000), "pct_core20": (20_700, 30_000)},
        }
    )
    text, findings = _headline(table, "Test U1 PCN")
    assert "More people report bad or very bad health than in England: 7.7% against 5.6%." in text
    assert (
        "More people live in the most deprived fifth of neighbourhoods (Core20) than in "
        "England: 69.0% against 20.0%." in text
    )
    # ranked by size: Core20 (3.45x) before bad health (1.38x)
    assert [f.indicator_id for f in findings] == ["pct_core20", "pct_bad_health"]
    assert text.index("Core20") < text.index("bad or very bad")


def test_nothing_notable():
    table = _table(
        {
            "ALL": {"pct_bad_health": (56_000, 1_000_000), "pct_ethnic_minority": (2e5, 1e6)},
            "U1": {"pct_bad_health": (56, 1_000), "pct_ethnic_minority": (400, 1_000)},
        }
    )
    text, findings = _headline(table, "Quiet PCN")
    assert findings == []  # ethnicity is context without a judgement: never "higher need"
    assert (
        text
        == "Quiet PCN (registered population) is similar to England on every indicator compared."
    )


def test_every_kind_gets_a_place_and_adverse_first():
    findings = [
        headline.Finding("need", "a", "higher need", 3.0, "A."),
        headline.Finding("need", "b", "higher need", 2.0, "B."),
        headline.Finding("outcome", "c", "worse", 1.5, "C."),
        headline.Finding("need", "d", "higher need", 1.2, "D."),
        headline.Finding("supply", "e", "more than fair share", 0.5, "E."),
        headline.Finding("supply", "f", "fewer than fair share", 0.2, "F."),
    ]
    chosen = headline.select_findings(findings, limit=4)
    assert [f.indicator_id for f in chosen] == ["a", "b", "c", "f"]
    text = headline.headline_sentence("X", findings, "England", limit=4)
    assert text == "X. A. B. C. F."


ROW_IDS = ["pct_bad_health", "pct_disabled", "pct_core20", "pct_hh_deprived_2plus", "imd_score"]


@settings(max_examples=60, deadline=None)
@given(
    shares=st.lists(st.floats(0.01, 0.6), min_size=len(ROW_IDS), max_size=len(ROW_IDS)),
    england=st.lists(st.floats(0.02, 0.4), min_size=len(ROW_IDS), max_size=len(ROW_IDS)),
    size=st.integers(500, 80_000),
    fte=st.floats(1, 60),
)
def test_headlines_of_many_synthetic_profiles(shares, england, size, fte):
    measures = {"ALL": {}, "U1": {}}
    for indicator, share, share_all in zip(ROW_IDS, shares, england, strict=True):
        if indicator == "imd_score":
            measures["ALL"][indicator] = (share_all * 100 * 1e6, 1e6)
            measures["U1"][indicator] = (share * 100 * size, size)
        else:
            measures["ALL"][indicator] = (round(share_all * 1e6), 1e6)
            measures["U1"][indicator] = (round(share * size), size)
    measures["ALL"]["gp_fte_per_10k_weighted"] = (600.0, 1e6)
    measures["U1"]["gp_fte_per_10k_weighted"] = (fte, size * 1.0)
    table = _table(measures)
    rows = _rows(table, "U1")
    text, findings = _headline(table, "Test PCN")
    assert text.startswith("Test PCN (registered population")
    assert text.endswith(".") and "  " not in text and " on from " not in text
    shown = headline.select_findings(findings)
    assert len(shown) <= headline.MAX_FINDINGS
    for f in shown:
        assert f.sentence in text
        assert (
            f.sentence[0].isupper()
            and f.sentence.endswith(").")
            or f.sentence.endswith("%.")
            or re.search(r"\d\.$", f.sentence)
        )
    # every notable rating is a finding, and nothing else is
    notable = rows[rows["rating"].isin(["better", "worse", "higher need", "lower need"])]
    gap = rows[rows["rating"].isin(["fewer than fair share", "more than fair share"])]
    assert {f.indicator_id for f in findings} == set(notable["indicator_id"]) | set(
        gap["indicator_id"]
    )
    sizes = [f.size for f in findings]
    assert sizes == sorted(sizes, reverse=True)
    if not findings:
        assert text.endswith("is similar to England on every indicator compared.")


def test_demo_neighbourhoods_with_largest_gp_gaps_are_named(demo_data):
    table = demo_data.indicator_table
    gp = table[
        (table["indicator_id"] == "gp_fte_per_10k_weighted") & (table["level"] == "neighbourhood")
    ].sort_values("fair_share_gap_pct")
    worst = gp.head(3)
    assert (worst["rating"] == "fewer than fair share").all()
    for row in worst.itertuples():
        profile = demo_data.profile(row.area_code)
        assert "fewer GPs than its fair share" in profile.headline, profile.headline
        assert f"{row.numerator:,.1f} FTE against {row.fair_share:,.1f} FTE" in profile.headline
        assert "England (synthetic)" in profile.headline


@settings(max_examples=100, deadline=None)
@given(
    fte=st.floats(0.1, 500),
    patients=st.floats(1_000, 500_000),
    england=st.floats(1, 20),
)
def test_fair_share_gap_is_the_rate_gap(fte, patients, england):
    fair, gap, pct = indicators.fair_share(
        np.array([fte]), np.array([patients]), np.array([england]), np.array(["rate"]), 10_000.0
    )
    rate = fte / patients * 10_000
    assert fair[0] == pytest.approx(patients * england / 10_000)
    assert gap[0] == pytest.approx(fte - fair[0], abs=1e-9)
    assert pct[0] == pytest.approx((rate / england - 1) * 100, rel=1e-9, abs=1e-9)
    # a ratio (patients per FTE) gives the same fair share for the same staff
    ratio = indicators.fair_share(
        np.array([patients]),
        np.array([fte]),
        np.array([10_000 / england]),
        np.array(["ratio"]),
        1.0,
    )
    assert ratio[0][0] == pytest.approx(fair[0])
