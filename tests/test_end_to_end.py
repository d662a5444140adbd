"""End to end on the demo ICS: papermill per level, the batch runner, HTML in Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from browser_helpers import render_dom, require_chromium

from pophealth import cli

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PLOTLY_MIME = "application/vnd.plotly.v1+json"

pytestmark = pytest.mark.slow


def _need_browser():
    require_chromium()


@pytest.fixture(scope="module")
def demo_site(demo_prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    data = demo_prepared
    code = cli.main(
        ["run", "--data", str(data), "--system", "QZZ", "--out", str(out), "--no-progress"]
    )
    assert code == 0
    return out


@pytest.mark.parametrize(
    "notebook, level",
    [
        ("neighbourhood_profile.ipynb", "neighbourhood"),
        ("place_profile.ipynb", "place"),
        ("system_profile.ipynb", "system"),
    ],
)
def test_papermill_runs_each_level_notebook(demo_data, demo_prepared, tmp_path, notebook, level):
    import papermill as pm

    area = demo_data.areas(level).iloc[0]
    out = tmp_path / notebook
    pm.execute_notebook(
        str(NOTEBOOKS / notebook),
        str(out),
        parameters={"area_code": area["area_code"], "data_path": str(demo_prepared)},
        kernel_name="python3",
        progress_bar=False,
    )
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if PLOTLY_MIME in o.get("data", {})]
    assert len(figures) >= 6, f"{notebook}: only {len(figures)} plotly figures"
    html = "".join(o["data"].get("text/html", "") for o in outputs if "data" in o)
    assert area["area_name"] in html
    assert "SYNTHETIC" in html
    assert "Spine" in html or "compared with" in html


def test_run_builds_every_profile_with_index_and_manifest(demo_site, demo_data):
    index = (demo_site / "index.html").read_text()
    htmls = {p.parent.name: [] for p in demo_site.glob("profiles/*/*.html")}
    for p in demo_site.glob("profiles/*/*.html"):
        htmls[p.parent.name].append(p)
    assert len(htmls["neighbourhood"]) >= 12
    assert len(htmls["place"]) >= 3
    assert len(htmls["system"]) == 1
    assert "SYNTHETIC" in index and "Data sources" in index
    assert (demo_site / "assets" / "plotly.min.js").exists()
    manifest = json.loads((demo_site / "manifest.json").read_text())
    assert manifest["system_code"] == "E54000999"
    assert manifest["prepared_manifest"]["sources"]["registrations_lsoa"]["files"][0]["sha256"]
    assert all(j["status"] == "ok" for j in manifest["jobs"]) if "jobs" in manifest else True
    # plotly.js shipped once, not inside each page
    page = htmls["neighbourhood"][0].read_text()
    assert "assets/plotly.min.js" in page
    assert len(page) < 1_500_000
    assert 'class="input_area"' not in page and "sections.population(profile)" not in page


def test_rerun_skips_unchanged_profiles(demo_site, demo_prepared, capsys):
    code = cli.main(
        [
            "run",
            "--data",
            str(demo_prepared),
            "--system",
            "E54000999",
            "--out",
            str(demo_site),
            "--no-progress",
        ]
    )
    assert code == 0
    assert re.search(r"0 ok, (\d+) unchanged, 0 failed", capsys.readouterr().out)


def test_index_renders_in_chromium(demo_site):
    _need_browser()
    dom, errors = render_dom(demo_site / "index.html")
    assert not errors, errors
    assert dom.count("<a href=") >= 16


@pytest.mark.parametrize("level", ["neighbourhood", "place", "system"])
def test_each_level_profile_renders_in_chromium_with_its_views(demo_site, level):
    _need_browser()
    profile = sorted(demo_site.glob(f"profiles/{level}/*.html"))[0]
    dom, errors = render_dom(profile, budget_ms=10000)
    assert not errors, errors
    # every plotly figure was drawn: the SVG roots exist once scripts ran
    drawn = len(re.findall(r'class="main-svg"', dom))
    assert drawn >= 8, f"only {drawn} plotly SVG layers drawn"
    # the benchmarking views (issue 3): spine chart, sortable benchmark table, funnel plot,
    # inverse care law with SII and fair share, all drawn as figure titles / tables
    for text in (
        "compared with",
        "Funnel plot",
        "Inverse care law",
        "Slope index of inequality",
        "Fair share of GP FTE",
        "Age and sex",
        "Where the population lives",
    ):
        assert text in dom, f"{level} profile lacks {text!r}"
    assert "ph-sortable" in dom
    assert "Data quality and provenance" in dom
    assert "SHA-256" in dom  # provenance table of source files


def test_national_run_covers_every_system_and_partial_rerun_keeps_the_rest(
    demo_prepared, tmp_path, capsys
):
    """`--system all` runs every system; a later `--areas` re-run keeps the others listed."""
    out = tmp_path / "national"
    argv = ["run", "--data", str(demo_prepared), "--system", "all", "--out", str(out)]
    assert cli.main([*argv, "--levels", "system,place", "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    systems = {j["area_code"] for j in manifest["jobs"] if j["level"] == "system"}
    assert len(systems) == 2  # the demo ICS and its resident-only neighbour
    assert manifest["system_code"] == "all" and manifest["counts"]["failed"] == 0
    groups = {j["group"] for j in manifest["jobs"]}
    assert len(groups) == 2 and all(groups)
    index = (out / "index.html").read_text()
    assert "<th>System</th>" in index
    place = next(j for j in manifest["jobs"] if j["level"] == "place")

    # Re-run one place only: every other profile stays on the index as "earlier".
    capsys.readouterr()
    assert cli.main([*argv, "--areas", place["area_code"], "--no-progress", "--force"]) == 0
    assert "1 ok, 0 unchanged, 0 failed" in capsys.readouterr().out
    again = json.loads((out / "manifest.json").read_text())
    statuses = {j["key"]: j["status"] for j in again["jobs"]}
    assert statuses.pop(place["key"]) == "ok"
    assert set(statuses) == {j["key"] for j in manifest["jobs"]} - {place["key"]}
    assert set(statuses.values()) == {"earlier"}
    assert again["counts"]["total"] == 1 and again["counts"]["earlier"] == len(statuses)
    index = (out / "index.html").read_text()
    assert index.count('class="area-row"') == len(manifest["jobs"])
    assert "earlier run" in index and f"plus {len(statuses)} from earlier runs" in index
    for job in manifest["jobs"]:
        assert f'href="{job["html"]}"' in index
