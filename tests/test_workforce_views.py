"""The whole-team views (issue13) drawn in headless Chromium from the demo profiles."""

import os
import re
import shutil
from pathlib import Path

import plotly
import pytest

from pophealth import charts, tables
from pophealth.runner.browser import find_chromium, render_dom

pytestmark = pytest.mark.slow


def _need_browser():
    if find_chromium() is None:
        if os.environ.get("POPHEALTH_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required (POPHEALTH_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("Chromium not installed (apt-get install chromium)")


def test_system_heatmap_and_neighbourhood_team_chart_render_in_chromium(demo_data, tmp_path):
    _need_browser()
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
