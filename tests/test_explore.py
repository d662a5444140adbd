"""Explorer and neighbourhood designer: the Python API and widget callbacks, without a browser."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
import yaml
from plotly.callbacks import Points

from pophealth import cli, designer, explore
from pophealth.config import ConfigError, load_neighbourhood_groupings
from pophealth.geography import UnknownAreaError


def _quiet(action):
    # Output widgets print to stdout outside a kernel
    with contextlib.redirect_stdout(io.StringIO()):
        return action()


def _pcn_practices(data, pcn: str) -> list[str]:
    return data.practices.loc[data.practices["pcn_code"] == pcn, "practice_code"].tolist()


# -- API -----------------------------------------------------------------------------------


def test_profile_of_a_pcns_practices_equals_the_pcn_profile(demo_data):
    pcn = demo_data.areas("neighbourhood").iloc[2]
    group = demo_data.profile_of_practices(
        _pcn_practices(demo_data, pcn["area_code"]), name="Same practices", code="INT99"
    )
    table = demo_data.indicator_table
    expected = table[table["area_code"] == pcn["area_code"]].set_index("indicator_id")
    got = group.indicators.set_index("indicator_id")
    assert sorted(got.index) == sorted(expected.index)
    for column in ("value", "lower_ci", "upper_ci", "parent_value", "comparator_value"):
        np.testing.assert_allclose(got[column], expected.loc[got.index, column], rtol=1e-9)
    assert (got["comparison_95"] == expected.loc[got.index, "comparison_95"]).all()
    assert group.area["parent_code"] == pcn["parent_code"]
    assert group.population == pytest.approx(pcn["list_size"])
    assert group.headline.startswith("Same practices (registered population, ")
    fte = expected.loc["gp_fte_per_10k_weighted"]
    fair = group.fair_share.set_index("benchmark")
    assert fair.loc["Comparator rate", "fair_share_fte"] == pytest.approx(
        fte["denominator"] * fte["comparator_value"] / 10_000
    )


def test_profile_of_practices_rejects_unknown_codes_and_taken_codes(demo_data):
    with pytest.raises(UnknownAreaError, match="Y9999X"):
        demo_data.profile_of_practices(["Y90001", "Y9999X"])
    pcn = demo_data.areas("neighbourhood")["area_code"].iloc[0]
    with pytest.raises(ConfigError, match="already area codes"):
        demo_data.profile_of_practices(["Y90001"], code=pcn)
    with pytest.raises(ConfigError, match="one neighbourhood only"):
        designer.groupings_frame({"A1": ("A", ["Y90001"]), "B1": ("B", ["Y90001"])})


def test_practices_sit_at_the_patient_weighted_centre_of_their_lsoas(demo_data):
    centres = designer.practice_centres(demo_data).set_index("practice_code")
    lsoa = designer.lsoa_centres(demo_data).set_index("lsoa21_code")
    regs = demo_data.registrations
    code = "Y90005"
    rows = regs[(regs["practice_code"] == code) & regs["lsoa_code"].isin(lsoa.index)]
    rows = rows[rows["lsoa_status"] == "matched"]
    weights = rows["patients"].to_numpy(dtype=float)
    expected_lon = np.average(lsoa.loc[rows["lsoa_code"], "lon"], weights=weights)
    expected_lat = np.average(lsoa.loc[rows["lsoa_code"], "lat"], weights=weights)
    assert centres.loc[code, "lon"] == pytest.approx(expected_lon)
    assert centres.loc[code, "lat"] == pytest.approx(expected_lat)
    assert centres["lon"].notna().all() and centres["lat"].between(49, 56).all()


def test_saved_groupings_load_back_unchanged(demo_data, tmp_path):
    frame = designer.groupings_frame(
        {"INT01": ("North: A & B", ["Y90001", "Y90002"]), "INT02": ("South", ["Y90003"])}
    )
    path = designer.save_groupings(frame, tmp_path / "n.yaml", name="Test groupings")
    doc = yaml.safe_load(path.read_text())
    assert doc["name"] == "Test groupings"
    pd.testing.assert_frame_equal(load_neighbourhood_groupings(path), frame)


# -- explorer callbacks --------------------------------------------------------------------


@pytest.fixture
def explorer(demo_data):
    return _quiet(lambda: explore.Explorer(demo_data))


def test_explorer_starts_on_the_first_neighbourhood_with_map_and_rank(explorer, demo_data):
    areas = demo_data.areas("neighbourhood")
    assert len(explorer.area.options) == len(areas)
    assert explorer.selected == (areas["area_code"].iloc[0], "registered")
    assert areas["area_name"].iloc[0] in explorer.headline.value
    values = explorer._values
    table = demo_data.indicator_table
    imd = table[(table["level"] == "neighbourhood") & (table["indicator_id"] == "imd_score")]
    assert sorted(values["area_code"]) == sorted(imd["area_code"])
    np.testing.assert_allclose(explorer.map.data[0].marker.color, values["value"])
    assert list(explorer.ranked.data[0].y) == sorted(values["value"], reverse=True)
    assert "rank" in explorer.status.value


def test_typing_an_area_selects_it_and_moves_the_highlight(explorer, demo_data):
    row = demo_data.areas("neighbourhood").iloc[5]
    _quiet(lambda: setattr(explorer.area, "value", explore.area_label(row)))
    assert explorer.selected == (row["area_code"], "registered")
    assert row["area_name"] in explorer.headline.value
    hit = explorer._values[explorer._values["area_code"] == row["area_code"]].iloc[0]
    assert explorer.ranked.data[1].x == (hit["rank"],)
    assert explorer.map.data[1].x == (pytest.approx(hit["lon"]),)


def test_clicking_a_point_selects_that_area(explorer):
    target = explorer._values.iloc[3]
    points = Points(point_inds=[3], xs=[target["lon"]], ys=[target["lat"]], trace_name="areas")
    _quiet(lambda: explorer._on_click(explorer.map.data[0], points, None))
    assert explorer.selected == (target["area_code"], target["basis"])
    assert explorer.area.value == explore.area_label(target)


def test_changing_level_and_indicator_redraws(explorer, demo_data):
    _quiet(lambda: setattr(explorer.level, "value", "place"))
    places = demo_data.areas("place")
    assert len(explorer.area.options) == len(places)
    assert set(explorer._values["level"]) == {"place"}
    _quiet(lambda: setattr(explorer.indicator, "value", "pct_core20"))
    assert set(explorer._values["indicator_id"]) == {"pct_core20"}
    assert "Core20" in explorer.map.layout.title.text


def test_comparing_areas_shows_formatted_values_side_by_side(explorer, demo_data):
    explorer.compare.value = explorer.compare.options[:1]
    assert "Pick two to four" in explorer.comparison.value
    explorer.compare.value = explorer.compare.options[:3]
    html_text = explorer.comparison.value
    areas = demo_data.areas("neighbourhood").head(3)
    for name, size in zip(areas["area_name"], areas["list_size"], strict=True):
        assert name in html_text and f"{size:,.0f}" in html_text
    assert "list_size" not in html_text and "Registered patients" in html_text
    explorer.compare.value = explorer.compare.options[:5]
    assert len(explorer.compare.value) == explore.MAX_COMPARE


# -- designer callbacks --------------------------------------------------------------------


@pytest.fixture
def tool(demo_data, tmp_path):
    return designer.NeighbourhoodDesigner(demo_data, path=tmp_path / "ints.yaml")


def test_designer_lists_every_practice_unassigned_at_first(tool, demo_data):
    assert len(tool.practice_list.options) == len(demo_data.practices)
    assert f"<b>{len(demo_data.practices)}</b> practice(s)" in tool.unassigned.value
    assert "No neighbourhood has practices yet" in tool.summary.value


def test_designer_from_pcns_leaves_unaligned_practices_visible(tool, demo_data):
    tool.start_from_pcns()
    pcns = demo_data.areas("neighbourhood")
    assert len(tool.profiles) == len(pcns)
    loose = demo_data.practices[demo_data.practices["pcn_code"].isna()]
    for name in loose["practice_name"]:
        assert name in tool.unassigned.value
    assert tool.summary.value.count("<tr>") == len(pcns) + 1


def test_designer_moves_practices_from_the_list_and_the_map(tool, demo_data):
    first = tool.new_group("North")
    tool.practice_list.value = ("Y90001", "Y90002")
    tool.add_practices.click()
    assert tool.groups[first][1] == ["Y90001", "Y90002"]
    north = tool.profiles[first]
    expected = demo_data.profile_of_practices(["Y90001", "Y90002"], name="North", code=first)
    assert north.value("imd_score") == pytest.approx(expected.value("imd_score"))
    assert f"{expected.population:,.0f}" in tool.summary.value
    assert "North" in tool.headlines.value
    second = tool.new_group("South")
    index = tool.practices.index[tool.practices["practice_code"] == "Y90002"][0]
    tool._on_map_points(tool.map.data[0], Points(point_inds=[int(index)], xs=[0], ys=[0]))
    assert tool.groups[first][1] == ["Y90001"] and tool.groups[second][1] == ["Y90002"]
    colours = tool.map.data[0].marker.color
    assert colours[int(index)] == designer.PALETTE[1]
    assert "South" in tool.practice_list.options[int(index)][0]
    tool.practice_list.value = ("Y90002",)
    tool.remove_practices.click()
    assert tool.groups[second][1] == []
    assert second not in tool.profiles


def test_designer_saves_and_loads_yaml(tool, tmp_path):
    tool.start_from_pcns()
    tool.set_name.value = "Trial INTs"
    tool.save.click()
    saved = load_neighbourhood_groupings(tmp_path / "ints.yaml")
    assert len(saved) == sum(len(m) for _, m in tool.groups.values())
    assert "Saved" in tool.status.value
    before = dict(tool.groups)
    tool._reset()
    assert not tool.groups
    tool.load.click()
    assert tool.groups == before
    (tmp_path / "bad.yaml").write_text("neighbourhoods: [{code: X, name: Y, practices: [NOPE1]}]")
    tool.path.value = str(tmp_path / "bad.yaml")
    tool.load.click()
    assert "NOPE1" in tool.status.value and tool.groups == before


# -- pophealth lab -------------------------------------------------------------------------


def test_lab_refuses_a_folder_that_is_not_a_store(tmp_path, capsys):
    assert cli.main(["lab", "--data", str(tmp_path), "--no-browser"]) == 2
    assert "not a prepared store" in capsys.readouterr().err


def test_lab_command_opens_the_explorer_with_a_token(tmp_path):
    command = cli.lab_command(tmp_path / "explore.ipynb", 8899, "abc", browser=False)
    assert "--ServerApp.default_url=/lab/tree/explore.ipynb" in command
    assert "--IdentityProvider.token=abc" in command and "--no-browser" in command


def test_store_path_comes_from_the_environment(monkeypatch, demo_prepared, tmp_path):
    monkeypatch.setenv(explore.STORE_ENV, str(demo_prepared))
    assert explore.store_path() == demo_prepared
    monkeypatch.setenv(explore.STORE_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pophealth lab"):
        explore.store_path()
