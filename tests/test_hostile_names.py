"""Nothing injected: a demo whose every name holds a hostile string, run end to end.

Every name-bearing field of the demo (practice, PCN, sub-ICB location, ICB, region, LAD and LSOA
names) and a custom neighbourhoods YAML (names and codes) carry script tags, attribute
break-outs, ``javascript:`` links and ``../`` paths. The whole pipeline runs (prepare, then
``pophealth run`` for one area per level); headless Chromium opens index.html and each profile
and no payload may run (each would set ``document.title`` to 31337); every written .html and
.ipynb is scanned for an unescaped payload.
"""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from browser_helpers import render_dom, require_chromium

from pophealth import cli
from pophealth.demo.generator import HOSTILE_PAYLOADS, hostile_name

pytestmark = pytest.mark.slow

# What an unescaped payload looks like once it is markup (never text) in a page or notebook.
INJECTED_MARKUP = (
    "<script>document.title",
    "<img src=x",
    "<svg onload",
    'href="javascript:',
    "<b>bold</b>",
    '<a href=\\"javascript:',
    "<img src=x",
)
NEIGHBOURHOOD_CODES = ("INT<b>01", "../../INT02")


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory) -> dict[str, Path]:
    from pophealth.demo import write_demo_dataset
    from pophealth.prepare import prepare

    root = tmp_path_factory.mktemp("hostile")
    write_demo_dataset(root / "raw", seed=42, hostile_names=True)
    prepare(root / "raw", root / "prepared", progress=None)
    site = root / "site"
    areas = "U90001,E38000901,E06000901,E54000999"
    argv = ["run", "--data", str(root / "prepared"), "--system", "QZZ", "--no-progress"]
    assert cli.main([*argv, "--out", str(site), "--areas", areas]) == 0
    groupings = {
        "name": hostile_name("groupings", 0),
        "neighbourhoods": [
            {
                "code": code,
                "name": hostile_name(f"INT {i}", i),
                "practices": [f"Y9{10 * i + k:04d}" for k in range(1, 6)],
            }
            for i, code in enumerate(NEIGHBOURHOOD_CODES)
        ],
    }
    yaml_path = root / "neighbourhoods.yaml"
    yaml_path.write_text(yaml.safe_dump(groupings), encoding="utf-8")
    custom = root / "custom"
    code = cli.main(
        [
            *argv,
            "--out",
            str(custom),
            "--neighbourhoods",
            str(yaml_path),
            "--levels",
            "neighbourhood",
            "--areas",
            NEIGHBOURHOOD_CODES[0],
        ]
    )
    assert code == 0
    return {"site": site, "custom": custom, "root": root}


def test_every_written_page_and_notebook_is_free_of_injected_markup(hostile_site):
    written = [
        p
        for folder in (hostile_site["site"], hostile_site["custom"])
        for p in folder.rglob("*")
        if p.suffix in {".html", ".ipynb"}
    ]
    assert len(written) >= 2 * 5 + 2  # html + ipynb per profile, plus the two indexes
    for path in written:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            # what a notebook viewer renders as HTML: text/html and markdown outputs
            nb = json.loads(text)
            parts = [
                "".join(output.get("data", {}).get(mime, ""))
                for cell in nb["cells"]
                for output in cell.get("outputs", [])
                for mime in ("text/html", "text/markdown")
            ]
            parts += [json.dumps(nb)]
            text = "\n".join(parts)
        for marker in INJECTED_MARKUP:
            assert marker not in text, f"{path}: unescaped {marker!r}"
    # file names come from codes through safe_stem: nothing escaped the run folder
    for folder in (hostile_site["site"], hostile_site["custom"]):
        for path in folder.rglob("*"):
            assert path.resolve().is_relative_to(folder.resolve())
            assert "<" not in path.name and ".." not in path.name
    assert not list(hostile_site["root"].parent.glob("**/pophealth-escape*"))


class _ElementsFromData(HTMLParser):
    """Collects elements whose attributes or script text carry a payload (31337)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if "31337" in (value or "") and (
                name.startswith("on") or (value or "").lstrip().lower().startswith("javascript:")
            ):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in {"autofocus", "onfocus", "onerror", "onload"} and tag in {"img", "svg"}:
                self.found.append(f"<{tag} {name}>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        # a payload as script code (the figure scripts carry escaped names inside JSON strings)
        if self._in_script and data.strip().startswith("document.title=31337"):
            self.found.append(f"<script>{data[:60]}")


def _elements_from_data(dom: str) -> list[str]:
    parser = _ElementsFromData()
    parser.feed(dom)
    return parser.found


def _title(dom: str) -> str:
    found = re.search(r"<title>(.*?)</title>", dom, flags=re.S)
    return found.group(1) if found else ""


@pytest.mark.parametrize(
    "page",
    [
        "site/index.html",
        "site/profiles/neighbourhood/U90001.html",
        "site/profiles/place/E06000901.html",
        "site/profiles/system/E54000999.html",
        "custom/profiles/neighbourhood/*.html",
    ],
)
def test_no_payload_runs_in_chromium_and_names_show_literally(hostile_site, page):
    require_chromium()
    folder, pattern = page.split("/", 1)
    (path,) = sorted(hostile_site[folder].glob(pattern))
    dom, _ = render_dom(path, budget_ms=5000)
    assert _title(dom).strip() != "31337", f"a payload ran in {path}"
    # a name shown as text serialises as ``&lt;a href="javascript:…&gt;`` (the DOM serialiser
    # does not escape quotes in text): drop escaped tags, so only real markup is checked
    markup = re.sub(r"&lt;.*?&gt;", "", dom, flags=re.S)
    for marker in INJECTED_MARKUP:
        assert marker not in markup, f"{path}: {marker!r} became markup"
    assert not _elements_from_data(dom), f"{path}: elements built from data"
    # the names are shown as text: the escaped payloads are in the page
    shown = [p for p in HOSTILE_PAYLOADS if html.escape(p, quote=False) in dom]
    assert len(shown) >= 2, f"{path} shows no hostile name literally"
    if "profiles" in page:
        heading = re.search(r"<h1[^>]*>(.*?)</h1>", dom, flags=re.S)
        assert heading and "needs profile: " in heading.group(1)
        assert (
            "&lt;" in heading.group(1) or "&quot;" in heading.group(1) or "../" in heading.group(1)
        ), heading.group(1)


def test_chart_text_is_escaped_for_html_and_plotly_templates():
    from pophealth.charts import _esc

    assert _esc('<b>x</b> & "%{x}"') == '&lt;b&gt;x&lt;/b&gt; &amp; "%&#123;x}"'
    assert _esc(None) == ""


def test_every_hover_template_shows_names_literally(hostile_site):
    """No plotly hover template in a written notebook holds a name's ``%{x}`` unneutralised."""
    for path in hostile_site["site"].rglob("*.ipynb"):
        for cell in json.loads(path.read_text("utf-8"))["cells"]:
            for output in cell.get("outputs", []):
                figure = output.get("data", {}).get("application/vnd.plotly.v1+json")
                for trace in (figure or {}).get("data", []):
                    template = trace.get("hovertemplate") or ""
                    assert "ampersand %{x}" not in template, (path, template)
