"""Honest comparisons on the demo: England on every profile, a real parent chain, kinds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pophealth import indicators

LEVEL_OF_PARENT = {"neighbourhood": "place", "place": "system", "system": "region"}


def test_demo_profiles_compare_with_synthetic_england(demo_data):
    assert demo_data.comparator == "England (synthetic)"
    england = demo_data.register[demo_data.register["level"] == "england"]
    assert set(england["area_name"]) == {"England (synthetic)"}
    # England's values come from the whole (synthetic) national files, not the demo ICS
    table = demo_data.indicator_table
    size = table[(table["indicator_id"] == "list_size") & (table["basis"] == "registered")]
    ics = size.loc[size["level"] == "system", "value"].sum()
    assert size.loc[size["area_code"] == "ALL", "value"].iloc[0] > 3 * ics
    # every level's profile names England (synthetic) and a real parent that is not itself
    for code, basis in (
        ("U90003", "registered"),
        ("E06000901", "resident"),
        ("E38000901", "registered"),
        ("E54000999", "registered"),
        ("E54000999", "resident"),
    ):
        profile = demo_data.profile(code, basis)
        assert profile.comparator == "England (synthetic)"
        assert profile.area["parent_code"] not in (code, "ALL")
        assert profile.indicators["parent_value"].notna().any()
        assert profile.indicators["comparator_value"].notna().all()


def test_no_area_is_compared_with_itself(demo_data):
    register = demo_data.register
    table = demo_data.indicator_table
    areas = register[register["level"].isin(["neighbourhood", "place", "system"])]
    assert len(areas) > 20
    keys = set(zip(register["area_code"], register["basis"], strict=True))
    for row in areas.itertuples():
        assert row.parent_code != row.area_code, row
        assert row.area_code != "ALL"
        assert (row.parent_code, row.basis) in keys, row
    # values: a comparator or parent column never repeats the area's own row for every indicator
    for (code, basis), rows in table[table["level"] != "england"].groupby(["area_code", "basis"]):
        rows = rows.dropna(subset=["value"])
        rows = rows[rows["indicator_id"] != "list_size"]
        assert not np.allclose(rows["value"], rows["comparator_value"]), (code, basis)
        assert not np.allclose(rows["value"], rows["parent_value"]), (code, basis)


def test_parent_chain_runs_to_region_and_england(demo_data):
    register = demo_data.register
    by_key = {(r.area_code, r.basis): r for r in register.itertuples()}
    for row in register[register["level"] == "neighbourhood"].itertuples():
        chain = [row.level]
        current = row
        while isinstance(current.parent_code, str):
            current = by_key[(current.parent_code, current.basis)]
            chain.append(current.level)
        assert chain == ["neighbourhood", "place", "system", "region", "england"]
    region = register[register["level"] == "region"]
    assert set(region["area_name"]) == {"Demo Region"}
    # the region holds other ICBs of the rest of England: its values are not the ICB's
    table = demo_data.indicator_table
    bad_health = table[
        (table["indicator_id"] == "pct_bad_health") & (table["basis"] == "registered")
    ]
    values = bad_health.set_index("level")["value"]
    assert values["region"] != pytest.approx(values["system"])
    assert values["region"] != pytest.approx(values["england"])


def test_prepare_keeps_national_values_when_systems_are_cut(demo_prepared):
    national = pd.read_parquet(demo_prepared / "national.parquet")
    assert {"england", "region"} == set(national["level"])
    practices = pd.read_parquet(demo_prepared / "practices.parquet")
    assert set(practices["icb_code"]) == {"E54000999"}
    england = national[(national["area_code"] == "ALL") & (national["basis"] == "registered")]
    assert england["list_size__num"].iloc[0] > 3 * practices["registered_patients"].sum()


def test_unknown_system_to_keep_is_a_clear_error(demo_raw, tmp_path):
    from pophealth.prepare import PrepareError, prepare

    with pytest.raises(PrepareError, match="E54000123"):
        prepare(demo_raw, tmp_path / "p", progress=None, systems=["E54000123"])


def test_ratings_by_kind_on_the_demo(demo_data):
    table = demo_data.indicator_table
    areas = table[table["level"] != "england"]
    for kind, allowed in indicators.RATINGS.items():
        assert set(areas.loc[areas["kind"] == kind, "rating"]) <= set(allowed), kind
    supply = areas[areas["kind"] == "supply"]
    assert supply["lower_ci"].isna().all()  # no Poisson intervals on FTE
    assert (supply["rating"] == "fewer than fair share").any()
    need = areas[areas["need"]]
    assert set(need["indicator_id"]) == {
        "imd_score",
        "pct_core20",
        "pct_hh_deprived_2plus",
        "pct_lsoas_most_deprived_10",
    }
    assert (need["rating"] == "higher need").any()
    plain = areas[(areas["kind"] == "context") & ~areas["need"]]
    assert (plain["rating"] == "not rated").all()
    assert plain["peer_rank"].notna().any() and plain["peer_quintile"].between(1, 5).any()


@pytest.mark.parametrize("code", ["U90003", "E06000901", "E38000901", "E54000999"])
def test_funnels_only_for_outcomes_with_fitted_axes(demo_data, code):
    from pophealth import charts

    profile = demo_data.profile(code)
    kinds = indicators.load_catalogue().set_index("id")["kind"]
    assert profile.funnels, code
    assert {kinds[k] for k in profile.funnels} == {"outcome"}
    # 40+ outcomes since QOF: funnels only for the catalogue's short list (`funnel: true`)
    catalogue = indicators.load_catalogue().set_index("id")
    flagged = set(catalogue.index[catalogue["funnel"].fillna(False).astype(bool)])
    assert set(profile.funnels) <= flagged and len(flagged) <= 12
    assert (kinds[sorted(flagged)] == "outcome").all()
    assert (kinds == "outcome").sum() > 40
    for funnel in profile.funnels.values():
        fig = charts.funnel_plot_spec(
            funnel["points"], funnel["limits"], funnel["target"], "F", code, "Value (%)"
        )
        x_low, x_high = fig.layout["xaxis"]["range"]
        y_low, y_high = fig.layout["yaxis"]["range"]
        points = funnel["points"]
        assert points["denominator"].between(x_low, x_high).all()
        assert points["value"].between(y_low, y_high).all()
        assert y_low <= funnel["target"] <= y_high
        limits = funnel["limits"]
        shown = limits[limits["denominator"].between(x_low, x_high)]
        assert len(shown) > 10
        for column in ("lower_95", "upper_95", "lower_99_8", "upper_99_8"):
            assert shown[column].between(y_low, y_high).all(), column
        # fitted: the axis spans about the data, not 0 to 100% or a denominator of 1
        assert x_low > 0.5 * points["denominator"].min()
        assert (y_high - y_low) < 3 * (points["value"].max() - points["value"].min()) + 5


def test_funnels_are_one_figure_of_small_multiples(demo_data):
    """Every funnel in one figure: each panel on its own axes with its own ranges, one legend,
    a heading per panel, and the page shows it collapsed with the outliers counted."""
    from pophealth import sections

    code = demo_data.register.query("level == 'neighbourhood'")["area_code"].iloc[0]
    profile = demo_data.profile(code)
    fig = sections._funnel_grid(profile)
    layout = fig.layout
    panels = len(profile.funnels)
    assert layout["meta"]["panels"] == panels
    for n in range(panels):
        axis = "" if n == 0 else str(n + 1)
        x, y = layout[f"xaxis{axis}"], layout[f"yaxis{axis}"]
        assert 0 <= x["domain"][0] < x["domain"][1] <= 1
        assert 0 <= y["domain"][0] < y["domain"][1] <= 1
        assert x["anchor"] == f"y{axis}" and len(x["range"]) == 2
    # panels do not overlap
    boxes = [
        (layout[f"xaxis{a}"]["domain"], layout[f"yaxis{a}"]["domain"])
        for a in [""] + [str(n + 1) for n in range(1, panels)]
    ]
    for i, (xa, ya) in enumerate(boxes):
        for xb, yb in boxes[i + 1 :]:
            assert xa[1] <= xb[0] or xb[1] <= xa[0] or ya[1] <= yb[0] or yb[1] <= ya[0]
    shown = [t for t in fig.data if t.get("showlegend")]
    assert shown and all(t["xaxis"] == "x" for t in shown)
    assert len(layout["annotations"]) == panels
    assert f"{panels} outcomes among peer areas" in sections._funnel_summary(
        sections._funnel_positions(profile)
    )


def test_deprivation_as_mhclg_summarises_it(demo_data):
    table = demo_data.indicator_table
    rows = table.set_index(["area_code", "basis", "indicator_id"])
    lad = rows.loc[("E06000901", "resident")]
    assert lad.loc["imd_score", "method"] == (
        "resident-weighted mean of LSOA scores (IoD2025 population denominators)"
    )
    assert "resident-weighted: IoD2025 population denominators" in lad.loc["pct_core20", "method"]
    assert lad.loc["list_size", "title"] == "Registered patients living in the area"
    pcn = rows.loc[("U90003", "registered")]
    assert pcn.loc["imd_score", "method"].startswith("patient-weighted mean")
    assert pcn.loc["list_size", "title"] == "Registered patients"
    # resident IMD weighted by the IoD's own population denominators, recomputed here
    lsoa = demo_data.lsoa[demo_data.lsoa["lad_code"] == "E06000901"]
    weights = lsoa["population"]
    expected = (lsoa["imd2025_score"] * weights).sum() / weights.sum()
    assert lad.loc["imd_score", "value"] == pytest.approx(expected)
    # share of LSOAs in the most deprived 10% nationally: places and systems (resident)
    share = table[table["indicator_id"] == "pct_lsoas_most_deprived_10"]
    assert set(share["level"]) == {"place", "system", "region", "england"}
    assert set(share["basis"]) == {"resident"}
    assert lad.loc["pct_lsoas_most_deprived_10", "value"] == pytest.approx(
        (lsoa["imd2025_decile"] == 1).mean() * 100
    )
    assert np.isnan(lad.loc["pct_lsoas_most_deprived_10", "lower_ci"])


def test_england_pyramid_and_deciles_come_from_the_national_files(demo_data):
    profile = demo_data.profile("U90003")
    national = demo_data.national
    england = national[(national["area_code"] == "ALL") & (national["basis"] == "registered")]
    ages = england.filter(regex="^age_(male|female)_").iloc[0]
    pyramid = profile.pyramid
    assert pyramid["england_pct"].sum() == pytest.approx(100)
    first = pyramid[(pyramid["sex"] == "male") & (pyramid["age_band"] == "0-4")]
    assert first["england_pct"].iloc[0] == pytest.approx(ages["age_male_0_4"] / ages.sum() * 100)
    # not the demo ICS's own age structure
    ics = demo_data.profile("E54000999").pyramid
    assert not np.allclose(ics["area_pct"], ics["england_pct"])
    deciles = profile.deciles
    assert deciles["england_pct"].sum() == pytest.approx(100)
    assert deciles["england_pct"].between(5, 16).all()  # England is spread over every decile
    system = demo_data.profile("E54000999")
    assert system.deciles["parent_pct"].notna().all()  # the region, from the national files
