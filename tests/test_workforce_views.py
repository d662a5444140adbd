"""The whole-team views (issue13) drawn in headless Chromium from the demo profiles."""

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly
import pytest
from browser_helpers import render_dom, require_chromium

from pophealth import charts, tables


@pytest.mark.slow
def test_system_heatmap_and_neighbourhood_team_chart_render_in_chromium(demo_data, tmp_path):
    require_chromium()
    system = demo_data.profile(demo_data.areas("system").iloc[0]["area_code"])
    hood = demo_data.profile(demo_data.areas("neighbourhood").iloc[0]["area_code"])
    cells = system.team_heatmap
    assert len(cells) and cells["imd_score"].is_monotonic_decreasing  # sorted by need
    heatmap = charts.workforce_heatmap_spec(cells, "Neighbourhood teams against need")
    team = charts.team_chart_spec(hood.team, "The whole team", area_label=hood.area["area_name"])
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    shutil.copy(plotly_js, tmp_path / "plotly.min.js")
    page = tmp_path / "team.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<script src='plotly.min.js'></script>"
        + tables.css_block()
        + "</head><body>"
        + charts.figure_to_html(heatmap)
        + charts.figure_to_html(team)
        + tables.team_table(hood.team, hood.comparator)
        + tables.workforce_quality_table(system.workforce_quality)
        + "</body></html>",
        encoding="utf-8",
    )
    dom, errors = render_dom(page, budget_ms=8000)
    assert not errors, errors
    assert dom.count('class="main-svg"') >= 4  # both figures drawn
    assert 'class="hm"' in dom  # the heatmap layer
    # every neighbourhood is a row, drawn top to bottom from the most deprived
    ticks = re.findall(
        r'class="ytick"><text[^>]*data-unformatted="([^"]*)"[^>]*translate\(0,([0-9.]+)\)', dom
    )
    drawn = [name for name, y in sorted(ticks, key=lambda t: float(t[1])) if " (IMD " in name]
    names = cells.drop_duplicates("area_code")["area_name"].tolist()
    assert [t.split(" (IMD ")[0] for t in drawn] == names
    # the cell labels (FTE per 10,000 weighted patients) were written into the heatmap
    first = cells.iloc[0]
    assert f">{first['fte_per_10k']:.1f}<" in dom
    # the team chart: practice and PCN bars stacked, comparator diamonds, all five groups
    assert dom.count('class="point"') >= 10
    for label in ("GPs", "Nurses", "Direct patient care", "Admin/non-clinical", "Whole team"):
        assert label in dom
    assert "PCN-employed staff" in dom and "ph-team" in dom and "ph-workforce-quality" in dom


CELLS = pd.DataFrame(
    {
        "area_code": ["N1", "N1", "N2", "N2"],
        "area_name": ["Low <b>need</b>", "Low <b>need</b>", "High need", "High need"],
        "imd_score": [10.0, 10.0, 40.0, 40.0],
        "group_label": ["GPs", "Nurses", "GPs", "Nurses"],
        "fte_per_10k": [6.0, 3.0, 4.0, np.nan],
        "benchmark_per_10k": [5.0, 3.0, 5.0, 3.0],
        "gap_pct": [20.0, 0.0, -80.0, np.nan],
    }
)


def test_heatmap_rows_by_need_cells_clipped_and_names_escaped():
    fig = charts.workforce_heatmap_spec(CELLS, "Teams", comparator="England", limit_pct=50)
    trace = fig.data[0]
    assert trace["type"] == "heatmap" and trace["zmid"] == 0
    assert trace["y"][0].startswith("High need") and "&lt;b&gt;" in trace["y"][1]
    assert trace["z"][0].tolist()[0] == -50  # -80% clipped at the colour limit
    assert np.isnan(trace["z"][0][1]) and trace["text"][0][1] == "n/a"
    assert [stop[1] for stop in trace["colorscale"]] == [c for _, c in charts.GAP_COLOURSCALE]
    assert fig.layout["meta"]["rows"] == ["N2", "N1"]
    charts.workforce_heatmap(CELLS, "Teams")  # validates as a plotly figure


def test_team_chart_stacks_practice_and_pcn_staff_against_the_comparator():
    team = pd.DataFrame(
        {
            "label": ["GPs", "Whole team"],
            "practice_per_10k": [5.0, 25.0],
            "pcn_per_10k": [0.5, 4.0],
            "benchmark_per_10k": [6.0, 30.0],
            "gap_fte": [-1.0, -2.0],
        }
    )
    fig = charts.team_chart(team, "Team", area_label="A & B", comparator="England")
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == [
        "A &amp; B: practice staff",
        "A &amp; B: PCN-employed staff",
        "England rate",
    ]
    with pytest.raises(ValueError, match="benchmark_per_10k"):
        charts.team_chart_spec(team.drop(columns="benchmark_per_10k"), "Team", area_label="A")


def test_team_and_workforce_data_tables_escape_text():
    team = pd.DataFrame(
        [
            {
                "label": "<script>",
                "actual_fte": 1.0,
                "fte_per_10k": 2.0,
                "pcn_share_pct": 3.0,
                "benchmark_per_10k": 4.0,
                "fair_share_fte": 5.0,
                "gap_fte": -4.0,
                "skill_mix_pct": 6.0,
                "england_mix_pct": 7.0,
            }
        ]
    )
    html = tables.team_table(team, "England")
    assert "<script>" not in html and "&lt;script&gt;" in html and "-4.00" in html
    quality = pd.DataFrame(
        [
            {
                "issue": "GPs: no figures",
                "practices": 2,
                "registered_patients": 1234.0,
                "neighbourhoods": 1,
            }
        ]
    )
    assert "1,234" in tables.workforce_quality_table(quality)


def test_every_profile_carries_the_team_views(demo_data):
    system = demo_data.profile(demo_data.areas("system").iloc[0]["area_code"])
    hood = demo_data.profile(demo_data.areas("neighbourhood").iloc[0]["area_code"])
    place = demo_data.profile(demo_data.areas("place").iloc[0]["area_code"])
    assert len(hood.team) == 5 and hood.team_heatmap.empty
    assert len(system.team_heatmap) == 5 * system.team_heatmap["area_code"].nunique()
    assert any("shared among each PCN's practices" in note for note in place.notes)
    # the PCN that made no return is counted and shown, its row left blank, not dropped
    no_return = system.workforce_quality.set_index("issue").loc["PCN made no workforce return"]
    assert no_return["practices"] > 0 and no_return["neighbourhoods"] == 1
    assert system.team_heatmap["fte_per_10k"].isna().any()
    # findings: ranked shortfalls, most short first
    gaps = [f["gap_pct"] for f in hood.workforce_findings]
    assert gaps == sorted(gaps) and all(g < 0 for g in gaps)


def test_custom_neighbourhood_holds_the_registered_share_of_pcn_staff(demo_prepared):
    import pophealth
    from pophealth import staffing

    groupings = Path(__file__).resolve().parents[1] / "docs" / "example_neighbourhoods.yaml"
    data = pophealth.load(demo_prepared, neighbourhoods=groupings, cache=False)
    profile = data.profile("INT01")
    assert any(
        "shared among each PCN's practices by registered patients" in n for n in profile.notes
    )
    members = data.practice_members["INT01"]
    shares, _ = data.pcn_apportionment
    chosen = shares[shares["practice_code"].isin(members)]
    # the PCN indicator's numerator is exactly the members' registered-patient shares of their
    # PCNs' staff (practices whose PCN made no return are left out with their patients)
    counted = chosen[chosen["pcn_status"] != staffing.PCN_STATUS_NO_RETURN]
    expected = counted[[staffing.pcn_fte_column(g) for g in staffing.STAFF_GROUPS]].sum().sum()
    row = profile.indicators.set_index("indicator_id").loc["pcn_fte_per_10k"]
    assert expected > 0 and row["numerator"] == pytest.approx(expected)
    assert len(profile.team) == 5


def test_roles_table_shows_every_published_role_of_the_area(demo_data):
    hood = demo_data.profile(demo_data.areas("neighbourhood").iloc[0]["area_code"])
    roles = hood.roles
    assert {
        "GP registrars ST3",
        "GP locums covering vacancies",
        "Advanced nurse practitioners",
    } <= set(roles["role"])
    assert {"Social prescribing link workers", "Pharmacists", "Receptionists"} <= set(roles["role"])
    # practice roles of a group add back to the group's practice FTE (totals are left out)
    members = demo_data.practices[
        demo_data.practices["practice_code"].isin(
            demo_data.practice_members[hood.area["area_code"]]
        )
    ]
    nurses = roles.loc[roles["group"] == "Nurses", "fte"].sum()
    assert nurses == pytest.approx(members["nurse_fte"].sum(), rel=1e-4)
    html = tables.roles_table(roles, hood.area["area_name"], hood.comparator)
    assert html.count("<tr>") == len(roles) + 1
