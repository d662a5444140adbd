"""Tests for pophealth.peers: nearest neighbours on z-scored needs variables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pophealth import peers
from pophealth.stats import StatisticsInputError


def tidy(values: pd.DataFrame, level="neighbourhood", basis="registered") -> pd.DataFrame:
    """Wide area x indicator values to the tidy table's long shape."""
    long = values.reset_index().melt(
        id_vars="area_code", var_name="indicator_id", value_name="value"
    )
    return long.assign(level=level, basis=basis)


def random_areas(n=60, seed=3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "imd_score": rng.uniform(5, 60, n),
            "pct_age_65_plus": rng.uniform(8, 30, n),
            "pct_age_0_17": rng.uniform(12, 28, n),
            "pct_ethnic_minority": rng.uniform(2, 70, n),
            "list_size": rng.uniform(20_000, 120_000, n),
        },
        index=pd.Index([f"U{i:05d}" for i in range(n)], name="area_code"),
    )


def test_planted_near_copy_is_the_first_peer():
    areas = random_areas()
    copy = areas.loc["U00007"] * 1.001  # within 0.1% on every variable
    areas.loc["COPY1"] = copy
    matrix, excluded = peers.needs_matrix(tidy(areas), "neighbourhood", "registered")
    assert excluded.empty
    found, method = peers.nearest_peers(matrix)
    first = found[(found["area_code"] == "U00007") & (found["rank"] == 1)]
    assert first["peer_code"].tolist() == ["COPY1"]
    back = found[(found["area_code"] == "COPY1") & (found["rank"] == 1)]
    assert back["peer_code"].tolist() == ["U00007"]
    assert (found.groupby("area_code").size() == 10).all()
    assert set(method["status"]) == {"used"}


def test_distance_is_euclidean_on_z_scores_and_list_size_is_logged():
    areas = random_areas(12)
    matrix, _ = peers.needs_matrix(tidy(areas), "neighbourhood", "registered")
    assert matrix["list_size"].to_numpy() == pytest.approx(np.log10(areas["list_size"]).to_numpy())
    found, _ = peers.nearest_peers(matrix, k=3)
    z = (matrix - matrix.mean()) / matrix.std(ddof=0)
    row = found.iloc[0]
    expected = np.sqrt(((z.loc[row["area_code"]] - z.loc[row["peer_code"]]) ** 2).sum())
    assert row["distance"] == pytest.approx(expected)
    # rank 1 is really the nearest
    all_distances = np.sqrt(((z - z.loc[row["area_code"]]) ** 2).sum(axis=1)).drop(row["area_code"])
    assert row["peer_code"] == all_distances.idxmin()


def test_near_collinear_variables_are_dropped_and_reported():
    areas = random_areas()
    areas["pct_age_0_17"] = 40 - areas["pct_age_65_plus"] + np.linspace(0, 0.1, len(areas))
    matrix, _ = peers.needs_matrix(tidy(areas), "neighbourhood", "registered")
    kept, dropped = peers.select_variables(matrix)
    assert "pct_age_0_17" not in kept
    assert dropped.iloc[0]["correlated_with"] == "pct_age_65_plus"
    assert dropped.iloc[0]["correlation"] < -0.9
    _, method = peers.nearest_peers(matrix)
    status = method.set_index("variable")["status"]
    assert status["pct_age_0_17"].startswith("dropped: |r| > 0.9 with pct_age_65_plus")


def test_areas_missing_a_variable_are_counted_not_dropped_silently():
    areas = random_areas(15)
    areas.loc["U00003", "imd_score"] = np.nan
    matrix, excluded = peers.needs_matrix(tidy(areas), "neighbourhood", "registered")
    assert "U00003" not in matrix.index
    assert excluded.to_dict("records") == [{"area_code": "U00003", "reason": "missing imd_score"}]


def test_region_scope_only_finds_peers_in_the_same_region():
    areas = random_areas(30)
    table = tidy(areas)
    region = {code: ("R1" if i % 2 else "R2") for i, code in enumerate(areas.index)}
    table["region_code"] = table["area_code"].map(region)
    matrix, _ = peers.needs_matrix(table, "neighbourhood", "registered")
    found, _ = peers.nearest_peers(matrix, k=5)
    regional = found[found["scope"] == "region"]
    assert len(regional) == 30 * 5
    assert (regional["area_code"].map(region) == regional["peer_code"].map(region)).all()


def test_similar_area_comparison_gives_peer_mean_and_position():
    table = pd.DataFrame(
        {
            "area_code": ["A", "B", "C", "D"],
            "basis": "registered",
            "indicator_id": "gp_fte_per_10k",
            "value": [5.0, 7.0, 3.0, 100.0],
        }
    )
    found = pd.DataFrame(
        {"area_code": "A", "scope": "national", "rank": [1, 2], "peer_code": ["B", "C"]}
    )
    out = peers.similar_area_comparison(table, found, "A", "registered").iloc[0]
    assert out["peer_mean"] == pytest.approx(5.0)
    assert out["rank"] == 2 and out["of"] == 3
    assert out["position"] == "2nd highest of 3"


def test_peer_input_errors():
    areas = random_areas(1)
    matrix, _ = peers.needs_matrix(tidy(areas), "neighbourhood", "registered")
    with pytest.raises(StatisticsInputError, match="at least two areas"):
        peers.nearest_peers(matrix)
    with pytest.raises(StatisticsInputError, match="k must be"):
        peers.nearest_peers(random_areas(5), k=0)
    with pytest.raises(StatisticsInputError, match="between 0 and 1"):
        peers.select_variables(random_areas(5), threshold=1.5)


# --------------------------------------------------------------------------------------
# In the profile (demo store)
# --------------------------------------------------------------------------------------


def test_profile_similar_areas_for_a_neighbourhood(demo_data):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from pophealth import sections

    InteractiveShell.instance()
    code = demo_data.areas("neighbourhood")["area_code"].iloc[0]
    p = demo_data.profile(code)
    assert len(p.similar_list) == 10
    assert code not in set(p.similar_list["peer_code"])
    assert p.similar_list["distance"].is_monotonic_increasing
    row = p.similar.set_index("indicator_id").loc["imd_score"]
    table = demo_data.indicator_table
    peer_values = table[
        table["area_code"].isin(p.similar_list["peer_code"])
        & (table["indicator_id"] == "imd_score")
    ]["value"]
    assert row["peer_mean"] == pytest.approx(peer_values.mean())
    assert row["rank"] == 1 + (peer_values > row["value"]).sum()
    with capture_output() as shown:
        sections.similar_areas(p)
    html = "".join(o.data.get("text/html", "") for o in shown.outputs)
    assert "Similar areas&#x27; average" in html
    # the similar areas, their list and the within-region list (each with a header row)
    region = len(p.similar_region_list)
    assert html.count("<tr>") == len(p.similar) + len(p.similar_list) + region + 2 + (region > 0)


def test_within_region_peers_are_in_the_area_s_region(demo_data):
    """Peers within region: only areas whose system is in the same NHS England region, nearest
    first by the same distance; the profile names the region."""
    regions = demo_data.icb_regions.set_index("icb_code")
    areas = demo_data.areas("neighbourhood")
    in_region = areas[areas["system_code"].isin(regions.index)]
    assert len(in_region), "the demo ICS has a region with national figures"
    p = demo_data.profile(in_region["area_code"].iloc[0])
    region_code = regions.loc[p.area["system_code"], "region_code"]
    assert p.similar_region == regions.loc[p.area["system_code"], "region_name"]
    assert len(p.similar_region_list) == 10
    assert p.similar_region_list["distance"].is_monotonic_increasing
    systems = p.similar_region_list["peer_system"]
    assert (systems.map(regions["region_code"]) == region_code).all()
    # nearest within region can be no nearer than nearest anywhere
    assert p.similar_region_list["distance"].iloc[0] >= p.similar_list["distance"].iloc[0] - 1e-12
    # a system outside any region with national figures has no within-region list
    outside = areas[~areas["system_code"].isin(regions.index)]
    if len(outside):
        other = demo_data.profile(outside["area_code"].iloc[0])
        assert other.similar_region == "" and other.similar_region_list.empty


def test_custom_neighbourhoods_find_national_pcn_peers(demo_prepared):
    from pathlib import Path

    import pophealth

    groupings = Path(__file__).resolve().parents[1] / "docs" / "example_neighbourhoods.yaml"
    data = pophealth.load(demo_prepared, neighbourhoods=groupings, cache=False)
    p = data.profile("INT01")
    assert len(p.similar_list) == 10
    # pool: the other custom neighbourhood plus PCNs sharing no practice with a custom one
    grouped = set(data.groupings["practice_code"])
    shared = set(data.practices.loc[data.practices["practice_code"].isin(grouped), "pcn_code"])
    assert not shared & set(p.similar_list["peer_code"])
    assert set(p.similar_list["peer_code"]) - {"INT02"} <= set(data.practices["pcn_code"])


@settings(max_examples=20, deadline=None)
@given(
    st.integers(min_value=2, max_value=25),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=1, max_value=12),
)
def test_peer_properties(n, seed, k):
    matrix, _ = peers.needs_matrix(tidy(random_areas(n, seed)), "neighbourhood", "registered")
    found, _ = peers.nearest_peers(matrix, k=k)
    assert (found["area_code"] != found["peer_code"]).all()  # never its own peer
    assert (found.groupby("area_code").size() == min(k, n - 1)).all()
    for _, rows in found.groupby("area_code"):
        assert rows["distance"].is_monotonic_increasing
        assert rows["rank"].tolist() == list(range(1, len(rows) + 1))


def _comparison_reference(table, found, area_code, basis, scope="national"):
    """The comparison as first written with pandas groupbys (kept to check the array version)."""
    codes = found.loc[(found["area_code"] == area_code) & (found["scope"] == scope), "peer_code"]
    rows = table[table["basis"] == basis]
    own = rows[rows["area_code"] == area_code].set_index("indicator_id")["value"]
    peer_rows = rows[rows["area_code"].isin(codes.tolist())].dropna(subset=["value"])
    grouped = peer_rows.groupby("indicator_id")["value"]
    out = pd.DataFrame(
        {
            "value": own,
            "peer_mean": grouped.mean(),
            "peer_min": grouped.min(),
            "peer_max": grouped.max(),
            "peer_count": grouped.count(),
        }
    ).reindex(own.index)
    out["peer_count"] = out["peer_count"].fillna(0).astype(int)
    higher = peer_rows.merge(own.rename("own"), left_on="indicator_id", right_index=True)
    n_higher = (higher["value"] > higher["own"]).groupby(higher["indicator_id"]).sum()
    out["rank"] = (n_higher.reindex(out.index).fillna(0) + 1).astype(int)
    out["of"] = out["peer_count"] + 1
    has = out["value"].notna() & (out["peer_count"] > 0)
    out["position"] = [
        f"{peers._ordinal(r)} highest of {n}" if h else ""
        for r, n, h in zip(out["rank"], out["of"], has, strict=True)
    ]
    out.loc[~has, "rank"] = 0
    return out.reset_index().rename(columns={"index": "indicator_id"})


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.none(), st.floats(-50, 50, allow_nan=False)), min_size=24, max_size=24
    ),
    present=st.lists(st.booleans(), min_size=24, max_size=24),
    n_peers=st.integers(0, 5),
)
def test_similar_area_comparison_matches_the_groupby_reference(values, present, n_peers):
    """Peers' mean, min, max, count, rank and position as the pandas groupbys give them, with
    missing values, indicators a peer lacks and ties (property test)."""
    areas = ["A", "B", "C", "D", "E", "F"]
    indicators = ["i1", "i2", "i3", "i4"]
    cells = [(a, i) for a in areas for i in indicators]
    table = pd.DataFrame(
        [
            {"area_code": a, "basis": "registered", "indicator_id": i, "value": v}
            for (a, i), v, p in zip(cells, values, present, strict=True)
            if p or a == "A"
        ]
        + [{"area_code": "B", "basis": "resident", "indicator_id": "i1", "value": 99.0}]
    )
    table["value"] = table["value"].astype(float)
    found = pd.DataFrame(
        {
            "area_code": "A",
            "scope": "national",
            "rank": range(1, n_peers + 1),
            "peer_code": areas[1 : n_peers + 1],
        }
    )
    got = peers.similar_area_comparison(table, found, "A", "registered")
    want = _comparison_reference(table, found, "A", "registered")
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_index_type=False)
