"""HTML export: linked JupyterLab CSS, fast export equivalent to nbconvert's stock HTMLExporter."""

from __future__ import annotations

import functools
import re

import nbformat
import pytest
from nbformat import v4

from pophealth.runner import html as html_module
from pophealth.runner.html import (
    JUPYTERLAB_CSS_ASSET,
    MISSING_ALT_TEXT,
    PLOTLY_ASSET,
    PROFILE_CSS_ASSET,
    add_accessibility_attributes,
    export_html,
    install_plotly_asset,
    make_html_exporter,
    stylesheet_href,
)

PLOTLY_SRC = "../../assets/plotly.min.js"
CSS_HREF = "../../assets/jupyterlab.css"
PROFILE_CSS_HREF = "../../assets/profile.css"
# A 1x1 transparent PNG.
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"
    "AAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
MARKDOWN_TEXT = "Neighbourhood profile for Testshire"
HTML_OUTPUT_TEXT = "Registered population table"
STREAM_TEXT = "stream says hello"
HIDDEN_SOURCE = "hidden_input_marker = 1"
REMOVED_TEXT = "this cell is tagged remove_cell"
# A <script> inside an HTML output whose text looks like tags: it must be left alone.
SCRIPT_WITH_TAGS = (
    '<script>var s = \'<img src="x.png"><div class="jp-OutputArea-output">\';</script>'
)


def _notebook() -> nbformat.NotebookNode:
    """A fresh copy of the same test notebook (same cell ids) on every call."""
    return nbformat.reads(_notebook_text(), as_version=4)  # as the executor reads it


@functools.cache
def _notebook_text() -> str:
    import plotly.graph_objects as go

    from pophealth.charts import figure_bundle

    figure = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout={"title": {"text": "Bars"}})
    cells = [
        v4.new_markdown_cell(f"# {MARKDOWN_TEXT}\n\nSome **bold** text."),
        v4.new_code_cell(
            "show_html(table)",
            outputs=[
                v4.new_output(
                    "display_data",
                    data={
                        "text/html": (
                            f"<table><tr><td>{HTML_OUTPUT_TEXT}</td></tr></table>"
                            '<img src="logo.png"><img src="nhs.png" alt="NHS logo">'
                            f"{SCRIPT_WITH_TAGS}"
                        ),
                        "text/plain": "<HTML output>",
                    },
                )
            ],
        ),
        v4.new_code_cell(
            HIDDEN_SOURCE,
            outputs=[v4.new_output("display_data", data={"image/png": PNG_B64, "text/plain": "x"})],
        ),
        v4.new_code_cell(
            "print('stream says hello')",
            outputs=[v4.new_output("stream", name="stdout", text=STREAM_TEXT + "\n")],
        ),
        v4.new_code_cell(
            "show(fig)", outputs=[v4.new_output("display_data", data=figure_bundle(figure))]
        ),
        v4.new_code_cell(
            "x = 1",
            metadata={"tags": ["remove_cell"]},
            outputs=[v4.new_output("stream", name="stdout", text=REMOVED_TEXT)],
        ),
    ]
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    return nbformat.writes(nb)


@pytest.fixture(scope="module")
def exporter():
    return make_html_exporter()


@pytest.fixture(scope="module")
def stock_page() -> str:
    """The page as nbconvert's stock lab HTMLExporter renders it (CSS inlined, bs4 pass)."""
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.remove_cell_tags = {"remove_cell"}
    config.TagRemovePreprocessor.enabled = True
    stock = HTMLExporter(
        config=config,
        template_name="lab",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    page, _ = stock.from_notebook_node(_notebook(), resources={"metadata": {"name": "Profile"}})
    return page


@pytest.fixture(scope="module")
def page(exporter) -> str:
    return export_html(exporter, _notebook(), "Profile", PLOTLY_SRC)


def _styles(page: str) -> list[str]:
    return re.findall(r'<style type="text/css">\n(.*?)</style>', page, flags=re.DOTALL)


def _head(page: str) -> str:
    return page.split("</head>", 1)[0]


def _soup(page: str):
    from bs4 import BeautifulSoup

    return BeautifulSoup(page, features="html.parser")


def test_css_is_linked_not_inlined(page, stock_page):
    head = _head(page)
    profile_link = f'<link rel="stylesheet" href="{PROFILE_CSS_HREF}">'
    assert f'<link rel="stylesheet" href="{CSS_HREF}">\n{profile_link}' in head
    assert f'<script src="{PLOTLY_SRC}"></script>' in head
    assert "<style" not in page  # every stylesheet linked
    assert max(len(style) for style in _styles(stock_page)) > 200_000
    assert len(page) < len(stock_page) - 200_000


def test_linked_css_is_what_nbconvert_inlines(page, stock_page, exporter, tmp_path):
    from pophealth.tables import PROFILE_CSS

    install_plotly_asset(tmp_path)
    asset = (tmp_path / JUPYTERLAB_CSS_ASSET).read_text(encoding="utf-8")
    profile_asset = (tmp_path / PROFILE_CSS_ASSET).read_text(encoding="utf-8")
    assert (tmp_path / PLOTLY_ASSET).is_file()
    stock = _styles(stock_page)
    # the JupyterLab base and theme: what nbconvert inlines, in page order
    lab = [style for style in stock if style in asset]
    assert sum(len(style) for style in lab) > 200_000
    assert asset == "\n".join(lab)
    # every other stock stylesheet (pygments, nbconvert's page rules), in page order, then
    # the profile page layout and the profile CSS: in profile.css
    rest = [style for style in stock if style not in lab]
    assert len(rest) == 2 and all(len(style) < 20_000 for style in rest)
    at = [profile_asset.index(style) for style in rest]
    assert at == sorted(at)
    assert profile_asset.index("Profile page layout") > at[-1]
    assert profile_asset.endswith(PROFILE_CSS)
    assert profile_asset == html_module.profile_css_text()


def test_profile_css_output_is_linked_and_its_output_stays(exporter):
    """The profile CSS a notebook displays (for JupyterLab) is in profile.css, not the page."""
    from pophealth.tables import css_block

    nb = _notebook()
    nb.cells.insert(
        0,
        v4.new_code_cell(
            "inject_css()",
            outputs=[
                v4.new_output("display_data", data={"text/html": css_block(), "text/plain": ""})
            ],
        ),
    )
    page = export_html(exporter, nb, "Profile", PLOTLY_SRC)
    assert "<style" not in page and "ph-profile-css" not in page
    outputs = _soup(page).select("div.jp-OutputArea-output")
    assert len(outputs) == 5 and outputs[0].get_text(strip=True) == ""  # an empty output
    # a stylesheet that is not the profile CSS stays where it is
    nb.cells[0].outputs[0].data["text/html"] = "<style>.mine { color: red; }</style>"
    assert "<style>.mine { color: red; }</style>" in export_html(exporter, nb, "P", PLOTLY_SRC)


def test_body_equals_stock_exporter(page, stock_page):
    # Same document body as nbconvert's own export once both are parsed the same way.
    assert str(_soup(page).body) == str(_soup(stock_page).body)


def test_outputs_shown_inputs_hidden(page, stock_page):
    for text in (MARKDOWN_TEXT, HTML_OUTPUT_TEXT, STREAM_TEXT, "Plotly.newPlot", PNG_B64):
        assert text in stock_page
        assert text in page
    for text in (HIDDEN_SOURCE, REMOVED_TEXT):
        assert text not in page
    assert "jp-InputPrompt" not in page


def test_accessibility_attributes(page):
    soup = _soup(page)
    images = {img["src"]: img.get("alt") for img in soup.find_all("img")}
    assert images["logo.png"] == MISSING_ALT_TEXT
    assert images[f"data:image/png;base64,{PNG_B64}"] == MISSING_ALT_TEXT
    assert images["nhs.png"] == "NHS logo"
    outputs = soup.select("div.jp-OutputArea-output")
    assert len(outputs) == 4
    assert all(div.get("tabindex") == "0" for div in outputs)
    assert SCRIPT_WITH_TAGS in page  # script text untouched


def test_input_notebook_unchanged(exporter):
    nb = _notebook()
    before = nbformat.writes(nb)
    export_html(exporter, nb, "Profile", PLOTLY_SRC)
    export_html(exporter, nb, "Profile", PLOTLY_SRC)
    assert nbformat.writes(nb) == before


def test_install_assets_is_idempotent(tmp_path):
    install_plotly_asset(tmp_path)
    paths = [tmp_path / PLOTLY_ASSET, tmp_path / JUPYTERLAB_CSS_ASSET, tmp_path / PROFILE_CSS_ASSET]
    stats = [(path.stat().st_mtime_ns, path.stat().st_ino) for path in paths]
    install_plotly_asset(tmp_path)
    assert [(path.stat().st_mtime_ns, path.stat().st_ino) for path in paths] == stats
    # A damaged asset is rewritten.
    paths[1].write_text("broken")
    install_plotly_asset(tmp_path)
    assert len(paths[1].read_bytes()) > 200_000


def test_stylesheet_href():
    assert stylesheet_href(PLOTLY_SRC) == CSS_HREF
    assert stylesheet_href("plotly.min.js") == "jupyterlab.css"
    assert stylesheet_href(PLOTLY_SRC, PROFILE_CSS_ASSET) == PROFILE_CSS_HREF


def test_export_guards_the_stylesheet_link(tmp_path, monkeypatch):
    template = tmp_path / "no_link.html.j2"
    template.write_text(
        "{%- extends 'lab/index.html.j2' -%}\n"
        "{%- block html_head_js_requirejs -%}"
        '<script src="{{ resources.plotly_js_url | e }}"></script>'
        "{%- endblock html_head_js_requirejs -%}\n"
    )
    monkeypatch.setattr(html_module, "TEMPLATES_DIR", tmp_path)
    monkeypatch.setattr(html_module, "PROFILE_TEMPLATE", template.name)
    exporter = make_html_exporter()
    with pytest.raises(RuntimeError, match="jupyterlab.css"):
        export_html(exporter, _notebook(), "Profile", PLOTLY_SRC)


def _nbconvert_bs4_pass(page: str) -> str:
    """What nbconvert's HTMLExporter.from_notebook_node does after rendering (nbconvert 7)."""
    soup = _soup(page)
    for elem in soup.select("img:not([alt])"):
        elem.attrs["alt"] = MISSING_ALT_TEXT
    for elem in soup.select(".jp-Notebook div.jp-Cell-inputWrapper"):
        elem.attrs["tabindex"] = "0"
    for elem in soup.select(".jp-Notebook div.jp-OutputArea-output"):
        elem.attrs["tabindex"] = "0"
    return str(soup)


def test_accessibility_pass_matches_beautifulsoup():
    page = (
        '<html><head><style>div.x::before { content: "<img src=a>"; }</style></head>'
        '<body class="jp-Notebook">'
        '<IMG SRC="a.png"/><img src=b.png alt><img src="c.png" alt="">'
        "<img\nsrc='d.png'\nwidth=3 >"
        '<img src=h.png/><img src="i.png"/><img/><div class=jp-OutputArea-output/>x</div>'
        '<a title="<img src=e.png>">link</a>'
        "<!-- <img src=f.png> -->"
        '<div class="jp-Cell-inputWrapper">in</div>'
        '<div class="a jp-OutputArea-output b" tabindex="-1">out</div>'
        '<div class="jp-OutputArea-output" tabindex="0">already</div>'
        '<div class="jp-OutputArea-outputs">not this one</div>'
        "<script type=\"text/javascript\">Plotly.newPlot('<img src=g.png>', "
        '{"a": "\\u003cdiv class=\\"jp-OutputArea-output\\"\\u003e"});</script>'
        "<p>1 &lt; 2</p></body></html>"
    )
    fixed, missing = add_accessibility_attributes(page)
    assert missing == 5
    assert str(_soup(fixed)) == _nbconvert_bs4_pass(page)
    # Raw text kept byte for byte.
    for raw in ("<!-- <img src=f.png> -->", "Plotly.newPlot('<img src=g.png>'", "<a title="):
        assert raw in fixed


# --- the batch executor's notebook handling ----------------------------------------------------


def _message(msg_type: str, content: dict) -> dict:
    return {"header": {"msg_type": msg_type}, "msg_type": msg_type, "content": content}


@pytest.mark.parametrize(
    ("msg_type", "content"),
    [
        (
            "display_data",
            {
                "data": {
                    "application/vnd.plotly.v1+json": {"data": [{"x": [[1, 2], [3]]}]},
                    "text/plain": "<Figure>",
                },
                "metadata": {"pophealth": {"width": "half"}},
            },
        ),
        ("execute_result", {"data": {"text/plain": "3"}, "metadata": {}, "execution_count": 4}),
        ("stream", {"name": "stdout", "text": "hello\n"}),
        ("error", {"ename": "ValueError", "evalue": "bad", "traceback": ["line"]}),
    ],
)
def test_fast_outputs_equal_nbformats(msg_type, content):
    """The runner's output builder gives nbformat's output, as JSON and as a valid notebook."""
    import json as json_module

    from pophealth.runner.executor import output_from_display_msg

    ours = output_from_display_msg(_message(msg_type, content))
    theirs = v4.output_from_msg(_message(msg_type, content))
    assert json_module.dumps(ours, sort_keys=True) == json_module.dumps(theirs, sort_keys=True)
    assert ours.output_type == msg_type
    nb = v4.new_notebook(cells=[v4.new_code_cell("x", outputs=[ours])])
    nbformat.validate(nb)


def test_compact_notebook_text_is_the_notebook_nbformat_writes():
    from pophealth.runner.executor import compact_notebook_text

    nb = _notebook()
    nb.metadata["orig_nbformat"] = 3  # transient: nbformat leaves it out, so must we
    expected = nbformat.reads(nbformat.writes(nb), as_version=4)
    text = compact_notebook_text(nb)
    assert "\n " not in text  # no indentation
    assert "orig_nbformat" not in text
    assert nbformat.reads(text, as_version=4) == expected
    nbformat.validate(nbformat.reads(text, as_version=4))
