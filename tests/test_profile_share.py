"""Profiles people can read and share: page layout, links, one-file HTML, PDF, workbooks, index,
accessibility (axe-core) and the CLI's rough edges, on the demo run in real headless Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from browser_helpers import render_dom, require_chromium

from pophealth import cli
from pophealth.runner.workbook import INDICATOR_HEADERS

REPO = Path(__file__).resolve().parents[1]
PLOTLY_MIME = "application/vnd.plotly.v1+json"
SCREEN = (1400, 1000)  # a 1,400 px wide screen, 1,000 px of page visible at a time
REQUIRE = os.environ.get("POPHEALTH_REQUIRE_BROWSER") == "1"


def _need(tool_found: bool, what: str) -> None:
    if not tool_found:
        if REQUIRE:
            pytest.fail(f"{what} is required (POPHEALTH_REQUIRE_BROWSER=1) but not installed")
        pytest.skip(f"{what} not installed")


def _probe(
    page: Path, script: str, *, budget_ms: int = 8000, before: str = ""
) -> tuple[dict, list[str]]:
    """Load a copy of ``page`` (same folder, so links resolve) with ``script`` run after load.

    ``before`` runs at load, 1.5 s before ``script`` (e.g. opening collapsed detail).

    The script must assign a JSON-serialisable value to ``window.__probe``; it is written into
    the DOM, which Chromium dumps. Returns the value and the page's console errors.
    """
    text = page.read_text(encoding="utf-8")
    runner = (
        "<script>window.addEventListener('load', function () {"
        f"{before}\n"
        "setTimeout(function () {"
        f"{script}\n"
        "var out = document.createElement('pre'); out.id = '__probe';"
        "out.textContent = JSON.stringify(window.__probe); document.body.appendChild(out);"
        "}, 1500); });</script>"
    )
    probe = page.with_name(f"_probe_{page.name}")
    probe.write_text(text.replace("</body>", runner + "</body>"), encoding="utf-8")
    try:
        dom, errors = render_dom(probe, budget_ms=budget_ms, window_size=SCREEN)
    finally:
        probe.unlink()
    match = re.search(r'<pre id="__probe">(.*?)</pre>', dom, flags=re.DOTALL)
    assert match, "the probe script did not run"
    return json.loads(html.unescape(match.group(1))), errors


def _profile(site: Path, level: str, code: str | None = None) -> Path:
    pages = sorted((site / "profiles" / level).glob("*.html"))
    return next(p for p in pages if code is None or p.stem == code)


# --------------------------------------------------------------------------- story-first page
def test_neighbourhood_profile_fits_about_five_screens(demo_site):
    require_chromium()
    result, errors = _probe(
        _profile(demo_site, "neighbourhood"),
        "window.__probe = {height: document.documentElement.scrollHeight,"
        " drawn: document.querySelectorAll('.main-svg').length};",
    )
    assert not errors, errors
    assert result["drawn"] >= 8
    screens = result["height"] / SCREEN[1]
    # About five screens with thirteen sections: each opens with a sentence and one compact
    # figure, paired short sections side by side, detail (tables, funnel plots) collapsed;
    # measured 5,815 px. A new section or taller chart must pay for itself elsewhere.
    assert screens <= 6.0, f"{result['height']} px is {screens:.1f} screens"


def test_page_reads_story_first_with_one_benchmark_table(demo_site):
    page = _profile(demo_site, "neighbourhood").read_text(encoding="utf-8")
    order = [
        page.index('class="ph-title"'),
        page.index('class="ph-headline"'),
        page.index('class="ph-tiles"'),
        page.index('class="ph-toc"'),
        page.index('id="population"'),
    ]
    assert order == sorted(order)
    for tile in ("Population", "Deprivation (IMD score)", "Largest need", "GP workforce"):
        assert f'<p class="ph-tile-label">{tile}' in page
    assert page.count('class="ph-table ph-sortable ph-benchmark"') == 1
    # every section opens with a heading and one sentence; detail is collapsed
    assert page.count('class="ph-lead"') == page.count('<h2 class="ph-section')
    # collapsed: notes, provenance, definitions, the benchmark table, the register table, and
    # the whole team's, change over time's and similar areas' tables (merged from main)
    summaries = re.findall(r'<details class="ph-details"><summary>([^<]*)', page)
    optional = ("Practice membership changes",)  # only where membership changed over time
    assert 12 <= len(summaries) <= 12 + len(optional), summaries
    # the run's one definitions page replaces each profile's copy of the table
    assert page.count('href="../../definitions.html"') == 1
    assert "ph-definitions-details" not in page
    definitions = (demo_site / "definitions.html").read_text(encoding="utf-8")
    assert definitions.count("<tr>") > 80 and 'class="ph-code">imd_score<' in definitions
    for start in ("The team by staff group", "Practices with missing", "Practice staff by role",
                  "Every indicator&#x27;s trend", "What changed since", "Each indicator against",
                  "The similar areas", "The most similar areas within"):  # fmt: skip
        assert any(s.startswith(start) for s in summaries), (start, summaries)
    for start in ("Notes on sources", "Sources and checksums",
                  "Every indicator:", "Every register:"):  # fmt: skip
        assert any(s.startswith(start) for s in summaries), (start, summaries)
    # numbers formatted, no internal column names shown
    assert "651,403" in page or re.search(r">\d{1,3}(,\d{3})+<", page)
    assert not re.search(r">\d{4,}\.0<", page)
    assert ">indicator_id<" not in page and ">registered<" not in page


@pytest.mark.parametrize("level", ["neighbourhood", "place", "system"])
def test_contents_anchors_and_parent_child_links_resolve(demo_site, demo_data, level):
    require_chromium()
    code = {"neighbourhood": None, "place": "E38000901", "system": None}[level]
    page = _profile(demo_site, level, code)
    result, errors = _probe(
        page,
        "var anchors = Array.from(document.querySelectorAll('nav.ph-toc a')).map(function (a) {"
        " var id = a.getAttribute('href').slice(1); return [id, !!document.getElementById(id)]; });"
        "var links = Array.from(document.querySelectorAll('nav.ph-nav a')).map(function (a) {"
        " return [a.textContent, a.getAttribute('href')]; });"
        "window.__probe = {anchors: anchors, links: links};",
    )
    assert not errors, errors
    assert len(result["anchors"]) >= 7 and all(found for _, found in result["anchors"])
    links = dict(result["links"])
    assert (page.parent / links["All profiles (index)"]).resolve() == demo_site / "index.html"
    for text, href in result["links"]:
        assert (page.parent / href).is_file(), f"{text}: {href} does not exist"
    profile = demo_data.profile(page.stem)
    children = profile.related[profile.related["relation"] == "child"]
    linked = {Path(href).stem for _, href in result["links"]}
    assert set(children["area_code"]) <= linked
    if level == "neighbourhood":
        assert any(text.startswith("Part of:") for text in links)
    elif level == "place":
        assert len(children) >= 3  # a sub-ICB place lists its neighbourhoods
    else:
        assert set(children["level"]) == {"place", "neighbourhood"}


def test_every_chart_has_a_text_alternative(demo_site):
    page = _profile(demo_site, "place").read_text(encoding="utf-8")
    charts = re.findall(r'<figure class="ph-chart ph-chart-\w+"(.*?)</figure>', page, re.S)
    assert len(charts) >= 8
    for chart in charts:
        assert re.match(r' aria-label="[^"]{10,}">', chart)
        assert re.search(r'<figcaption class="ph-caption">[^<]{20,}</figcaption>$', chart)


def test_executed_notebooks_keep_figures_once(demo_site):
    import nbformat

    page = _profile(demo_site, "neighbourhood")
    nb = nbformat.read(page.with_suffix(".ipynb"), as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", []) if "data" in o]
    figures = [o for o in outputs if PLOTLY_MIME in o["data"]]
    assert len(figures) >= 8
    assert not [o for o in figures if "text/html" in o["data"]]
    # about the page's size (they were 2-3x): the page links the run's definitions page where
    # the notebook keeps its own table, and the notebook holds the JSON of each figure once
    assert page.with_suffix(".ipynb").stat().st_size < 1.25 * page.stat().st_size


# --------------------------------------------------------------------------- sharing
@pytest.fixture(scope="module")
def exported(demo_prepared, tmp_path_factory):
    require_chromium()
    _need(shutil.which("pdftotext") is not None, "pdftotext (poppler-utils)")
    out = tmp_path_factory.mktemp("export") / "demoford-central.html"
    argv = ["export", "--data", str(demo_prepared), "--area", "U90001", "--out", str(out)]
    assert cli.main([*argv, "--pdf"]) == 0
    return out


def test_self_contained_profile_draws_alone_offline(exported, tmp_path):
    alone = tmp_path / "alone" / "profile.html"
    alone.parent.mkdir()
    shutil.copyfile(exported, alone)  # nothing else in the folder
    text = alone.read_text(encoding="utf-8")
    assert not re.search(r'<(script|link)[^>]+(src|href)="(?!data:)[^"#]', text)
    assert "ph-definitions-details" in text  # a page on its own keeps its definitions
    result, errors = _probe(
        alone,
        # collapsed charts (funnel plots) draw when opened
        before="document.querySelectorAll('details').forEach(function (d) { d.open = true; });",
        script="window.__probe = {drawn: document.querySelectorAll('.main-svg').length,"
        " graphs: document.querySelectorAll('.plotly-graph-div').length,"
        " empty: Array.from(document.querySelectorAll('.plotly-graph-div'))"
        ".filter(function (d) { return !d.querySelector('.main-svg'); }).length};",
    )
    assert not errors, errors
    assert result["graphs"] >= 8 and result["empty"] == 0
    # its downloads sit beside it under the same name
    assert 'href="demoford-central.xlsx"' in text and 'href="demoford-central.pdf"' in text
    assert exported.with_suffix(".xlsx").is_file()


def test_pdf_is_a4_with_every_section_and_drawn_charts(exported):
    pdf = exported.with_suffix(".pdf")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    pages = int(re.search(r"Pages:\s+(\d+)", info.stdout).group(1))
    assert "(A4)" in info.stdout
    # print opens every <details>: the team, roles (67 rows), trend (with the QOF indicators'
    # two years, 45 rows more), similar-area (83 rows), peer and definition tables, and the
    # funnel plots as one figure: measured 37 pages.
    assert 8 <= pages <= 39
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for heading in ("Population", "Deprivation", "Workforce against need", "Benchmarking"):
        assert heading in text
    assert "DEMO DEMOFORD CENTRAL PCN" in text and "SYNTHETIC" in text
    assert "Percentage of the total population" in text  # chart axis text: charts drawn
    assert "Contents" not in text  # navigation is not printed
    # page breaks: the benchmarking section starts a page
    page_texts = text.split("\f")
    assert any(t.lstrip().startswith("Benchmarking") for t in page_texts)


# --------------------------------------------------------------------------- workbooks
def test_workbooks_match_the_tidy_table(demo_site, demo_data):
    from openpyxl import load_workbook

    comparator = demo_data.comparator
    page = _profile(demo_site, "neighbourhood")
    assert f'href="{page.stem}.xlsx"' in page.read_text(encoding="utf-8")
    book = load_workbook(page.with_suffix(".xlsx"), read_only=True)
    assert book.sheetnames == ["Indicators", "Definitions", "Provenance", "About"]
    sheet = pd.read_excel(page.with_suffix(".xlsx"), sheet_name="Indicators")
    table = demo_data.indicator_table
    tidy = table[(table["area_code"] == page.stem)].reset_index(drop=True)
    assert f"Compared to {comparator} value or percentiles" in sheet.columns
    assert len(sheet) == len(tidy) > 10
    assert list(sheet["Indicator ID"]) == list(tidy["indicator_id"])
    pd.testing.assert_series_equal(
        sheet["Value"], tidy["value"].astype(float), check_names=False, rtol=1e-9
    )
    pd.testing.assert_series_equal(
        sheet["Lower CI 95.0 limit"], tidy["lower_ci"], check_names=False, rtol=1e-9
    )
    assert list(sheet[f"Compared to {comparator} value or percentiles"]) == list(
        tidy["comparison_95"]
    )
    definitions = pd.read_excel(page.with_suffix(".xlsx"), sheet_name="Definitions")
    assert set(definitions["Indicator ID"]) == set(tidy["indicator_id"])
    # the run's workbook and CSV hold every area of the run
    everything = pd.read_excel(demo_site / "indicators.xlsx", sheet_name="Indicators")
    manifest = json.loads((demo_site / "manifest.json").read_text())
    assert set(everything["Area Code"]) == {job["area_code"] for job in manifest["jobs"]}
    csv = pd.read_csv(demo_site / "indicators.csv")
    assert len(csv) == len(everything)
    assert set(INDICATOR_HEADERS.values()) >= {c for c in everything.columns if "{" not in c} - {
        f"{comparator} value",
        f"Compared to {comparator} value or percentiles",
        f"Compared to {comparator} (99.8% limits)",
    }


# --------------------------------------------------------------------------- index
def test_index_sorts_filters_and_links_downloads(demo_site):
    require_chromium()
    index = (demo_site / "index.html").read_text(encoding="utf-8")
    assert 'href="indicators.xlsx"' in index and 'href="indicators.csv"' in index
    assert index.count(">Excel</a>") >= 21
    # text left, numbers right: the basis is text, list sizes are numbers
    assert "<td>registered</td>" in index and re.search(
        r'<td class="num">\d{2,3},\d{3}</td>', index
    )
    result, errors = _probe(
        demo_site / "index.html",
        "function visible() { return Array.from(document.querySelectorAll('tr.area-row'))"
        ".filter(function (r) { return !r.hidden && !r.closest('section').hidden; }).length; }"
        "var all = visible();"
        "var level = document.getElementById('level-filter'); level.value = 'place';"
        "level.dispatchEvent(new Event('change')); var places = visible();"
        "level.value = ''; level.dispatchEvent(new Event('change'));"
        "var text = document.getElementById('filter'); text.value = 'demoford';"
        "text.dispatchEvent(new Event('input')); var named = visible();"
        "text.value = ''; text.dispatchEvent(new Event('input'));"
        "var table = document.querySelector('section[data-level=neighbourhood] table');"
        "var heads = Array.from(table.tHead.rows[0].cells);"
        "var col = heads.findIndex(function (th) {"
        " return /Registered patients/.test(th.textContent); });"
        "heads[col].querySelector('button').click();"
        "var values = Array.from(table.tBodies[0].rows).map(function (r) {"
        " return parseFloat(r.cells[col].textContent.replace(/,/g, '')); });"
        "window.__probe = {all: all, places: places, named: named, values: values,"
        " sort: heads[col].getAttribute('aria-sort')};",
    )
    assert not errors, errors
    assert result["all"] == 21
    assert result["places"] == 6
    assert 0 < result["named"] < result["all"]
    assert result["values"] == sorted(result["values"]) and result["sort"] == "ascending"


# --------------------------------------------------------------------------- accessibility
def _axe_script() -> Path | None:
    env = os.environ.get("POPHEALTH_AXE")
    path = Path(env) if env else REPO / ".ci" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
    return path if path.is_file() else None


@pytest.mark.parametrize("page", ["index", "neighbourhood", "place", "system"])
def test_axe_core_finds_no_serious_or_critical_violations(demo_site, page):
    require_chromium()
    axe = _axe_script()
    _need(axe is not None, "axe-core (npm install --prefix .ci/axe axe-core)")
    target = demo_site / "index.html" if page == "index" else _profile(demo_site, page)
    script = axe.read_text(encoding="utf-8").replace("</script", "<\\/script")
    text = target.read_text(encoding="utf-8")
    probe = target.with_name(f"_axe_{target.name}")
    runner = (
        f"<script>{script}</script><script>window.addEventListener('load', function () {{"
        "axe.run(document, {resultTypes: ['violations']}).then(function (r) {"
        "var out = document.createElement('pre'); out.id = '__axe';"
        "out.textContent = JSON.stringify(r.violations.map(function (v) {"
        " return {id: v.id, impact: v.impact, nodes: v.nodes.length,"
        " target: v.nodes[0] && v.nodes[0].target}; }));"
        "document.body.appendChild(out); }); });</script>"
    )
    probe.write_text(text.replace("</body>", runner + "</body>"), encoding="utf-8")
    try:
        dom, _ = render_dom(probe, budget_ms=20000, window_size=SCREEN)
    finally:
        probe.unlink()
    match = re.search(r'<pre id="__axe">(.*?)</pre>', dom, flags=re.DOTALL)
    assert match, "axe-core did not finish"
    violations = json.loads(html.unescape(match.group(1)))
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not serious, serious


# --------------------------------------------------------------------------- CLI rough edges
def test_indicators_for_an_area_of_another_level_is_a_clear_error(demo_prepared, tmp_path, capsys):
    out = tmp_path / "x.csv"
    argv = ["indicators", "--data", str(demo_prepared), "--out", str(out)]
    assert cli.main([*argv, "--level", "place", "--area", "U90001"]) == 2
    err = capsys.readouterr().err
    assert "U90001" in err and "is a neighbourhood, not a place" in err
    assert not out.exists()


def test_unknown_codes_suggest_codes_of_the_same_kind(demo_prepared, capsys):
    argv = ["indicators", "--data", str(demo_prepared), "--out", "unused.csv"]
    assert cli.main([*argv, "--area", "E38000991"]) == 2
    err = capsys.readouterr().err
    suggested = re.search(r"Closest valid codes: (.*)\.", err).group(1).split(", ")
    assert suggested and all(code.startswith("E38") for code in suggested)


def test_areas_prints_formatted_headline_values(demo_prepared, capsys):
    assert cli.main(["areas", "--data", str(demo_prepared), "--level", "neighbourhood"]) == 0
    out = capsys.readouterr().out
    assert "Registered patients" in out and "Core20 %" in out
    assert re.search(r"\b\d{1,3},\d{3}\b", out)  # list sizes with thousands separators
    assert not re.search(r"\d{4,}\.0\b", out)  # no list size printed as a float


def test_levels_option_has_help():
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    flat = " ".join(help_text.split())
    assert "--levels LEVELS" in flat and "neighbourhood, place, system" in flat


def test_run_with_a_relative_neighbourhoods_file_prints_each_failure(
    demo_prepared, demo_data, tmp_path, monkeypatch, capsys
):
    """One real run: an analyst neighbourhood given by a relative YAML path (the kernels run in
    the notebooks' folder, so it must be made absolute first) and notebooks whose last cell
    fails on purpose. Reaching that cell proves the data and groupings loaded; the terminal
    then names the failed area and its error."""
    practices = demo_data.practices["practice_code"].tolist()[:4]
    (tmp_path / "groups.yaml").write_text(
        "neighbourhoods:\n"
        "  - code: INT01\n    name: Test neighbourhood\n    practices: ["
        + ", ".join(practices)
        + "]\n"
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in cli.LEVEL_NOTEBOOKS.values():
        nb = json.loads((REPO / "notebooks" / name).read_text())
        nb["cells"].append(
            {
                "cell_type": "code",
                "metadata": {},
                "outputs": [],
                "execution_count": None,
                "source": ["raise RuntimeError('broken on purpose')"],
            }
        )
        (bad / name).write_text(json.dumps(nb))
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--data", str(demo_prepared), "--system", "QZZ", "--out", "site"]
    argv += ["--neighbourhoods", "groups.yaml", "--levels", "neighbourhood", "--no-progress"]
    capsys.readouterr()
    assert cli.main([*argv, "--notebooks", str(bad), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "FAILED neighbourhood INT01 Test neighbourhood (cell " in err
    assert "RuntimeError: broken on purpose" in err
    assert "debug notebook:" in err
    failed = tmp_path / "site" / "profiles" / "neighbourhood" / "INT01.failed.ipynb"
    import nbformat

    nb = nbformat.read(failed, as_version=4)
    shown = "".join(
        o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", [])
    )
    assert "Test neighbourhood" in shown and "Workforce against need" in shown


# --------------------------------------------------------------------------- units
EVIL = '<script>alert("x")</script> & "quoted"'


def test_page_furniture_escapes_every_data_text():
    from pophealth import tables

    pieces = [
        tables.page_title(EVIL, EVIL),
        tables.link_list([(EVIL, f"../x/{EVIL}.html")], EVIL),
        tables.contents([(EVIL, EVIL)]),
        tables.key_figure_tiles([(EVIL, EVIL, EVIL)]),
        tables.section_opening(EVIL, EVIL, EVIL),
        tables.collapsible(EVIL, "<table></table>"),
        tables.bullet_list([EVIL]),
        tables.basis_table(
            pd.DataFrame({"title": [EVIL], "unit": ["%"], "registered": [1.0], "resident": [2]})
        ),
    ]
    for piece in pieces:
        assert "<script>" not in piece and 'alert("x")' not in piece
        assert "&lt;script&gt;" in piece
    assert tables.link_list([], "Related") == ""


def test_basis_table_formats_numbers_and_hides_column_names():
    from pophealth import tables

    frame = pd.DataFrame(
        {
            "indicator_id": ["list_size"],
            "title": ["Registered patients"],
            "unit": ["patients"],
            "registered": [651403.0],
            "resident": [649000.0],
        }
    )
    table = tables.basis_table(frame)
    assert "651,403" in table and "651403.0" not in table and "list_size" not in table
    assert "Registered patients basis" in table and 'class="ph-num"' in table


def test_chart_fragment_is_a_named_figure_with_an_escaped_caption():
    from pophealth import charts

    fig = charts.FigureSpec().add_trace({"type": "bar", "x": [1], "y": [2]})
    fig.update_layout(title={"text": "Bars <b>bold</b>"})
    bundle = charts.figure_bundle(fig, width="half", caption=EVIL)
    text = bundle["text/html"]
    assert text.startswith('<figure class="ph-chart ph-chart-half" aria-label="Bars bold">')
    assert '<figcaption class="ph-caption">&lt;script&gt;' in text
    assert EVIL not in text


def test_legend_is_kept_clear_of_a_wrapped_title():
    from pophealth import charts

    fig = charts.FigureSpec()
    for name in ("First series with a long name", "Second series", "Third", "Fourth one"):
        fig.add_trace({"type": "bar", "x": [1], "y": [2], "name": name})
    fig.update_layout(
        title={"text": "A title long enough to need wrapping onto a second line here"},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom"},
        margin={"t": 40},
    )

    def drawn_layout(width: str) -> dict:
        bundle = charts.figure_bundle(fig, width=width)["text/html"]
        return json.loads(bundle.split("], ", 1)[1].split(", {")[0])

    layout = drawn_layout("third")
    assert layout["title"]["text"].count("<br>") == 1
    assert layout["title"]["yref"] == "container" and layout["title"]["yanchor"] == "top"
    assert layout["legend"]["yanchor"] == "bottom" and layout["legend"]["y"] == 1.0
    # at a third of the page: two title lines and two legend rows fit in the top margin
    assert layout["margin"]["t"] >= 14 + 2 * 22 + 2 * 21
    # full width: one title line and one legend row, so no wasted space above the plot
    full = drawn_layout("full")
    assert "<br>" not in full["title"]["text"]
    assert 14 + 22 + 21 <= full["margin"]["t"] < layout["margin"]["t"]
    assert fig.layout["margin"]["t"] == 40  # the figure itself is not changed


def test_related_areas_list_parent_and_children(demo_data):
    from pophealth.profile_frames import related_areas

    register = demo_data.register
    neighbourhood = demo_data.resolve_area("U90001")
    related = related_areas(register, neighbourhood)
    assert related[["relation", "level"]].values.tolist() == [["parent", "place"]]
    place = demo_data.resolve_area(related["area_code"].iloc[0])
    related = related_areas(register, place)
    children = related[related["relation"] == "child"]
    assert "U90001" in set(children["area_code"]) and set(children["level"]) == {"neighbourhood"}
    assert related.loc[related["relation"] == "parent", "level"].tolist() == ["system"]
    system = demo_data.resolve_area(place["system_code"])
    assert not (related_areas(register, system)["relation"] == "parent").any()


def test_inline_assets_makes_a_page_need_nothing_else():
    from pophealth.runner.html import profile_css_text
    from pophealth.runner.share import ShareError, inline_assets
    from pophealth.tables import PROFILE_CSS

    page = (
        '<html><head><script src="../../assets/plotly.min.js"></script>'
        '<link rel="stylesheet" href="../../assets/jupyterlab.css">\n'
        '<link rel="stylesheet" href="../../assets/profile.css"></head><body></body></html>'
    )
    alone = inline_assets(page)
    assert '<script src="' not in alone and '<link rel="stylesheet"' not in alone
    assert len(alone) > 3_000_000 and alone.count("<script>") == 1
    # the page CSS inline after the JupyterLab CSS, as the links were
    styles = re.findall(r'<style type="text/css">(.*?)</style>', alone, flags=re.DOTALL)
    assert len(styles) == 2 and styles[1] == profile_css_text() and PROFILE_CSS in styles[1]
    # a page from before profile.css (its page CSS inline) needs only its JupyterLab CSS
    older = page.replace('\n<link rel="stylesheet" href="../../assets/profile.css">', "")
    assert inline_assets(older).count("<style") == 1
    with pytest.raises(ShareError, match="plotly.min.js"):
        inline_assets("<html></html>")


def test_drop_duplicate_figure_html_keeps_the_plotly_json():
    import nbformat

    from pophealth.runner.executor import drop_duplicate_figure_html

    bundle = {PLOTLY_MIME: {"data": []}, "text/html": "<div>fig</div>", "text/plain": "x"}
    table = {"text/html": "<table></table>", "text/plain": "t"}
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                outputs=[
                    nbformat.v4.new_output("display_data", data=bundle),
                    nbformat.v4.new_output("display_data", data=table),
                ]
            )
        ]
    )
    assert drop_duplicate_figure_html(nb) == 1
    first, second = nb.cells[0].outputs
    assert set(first.data) == {PLOTLY_MIME, "text/plain"} and "text/html" in second.data
