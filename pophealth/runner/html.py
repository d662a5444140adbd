"""HTML export of executed profile notebooks and the run folder's shared assets.

Every profile page uses nbconvert's JupyterLab (``lab``) template, so it looks exactly like an
nbconvert export, with three changes that matter at England scale (~1,250 pages per run):

* The JupyterLab base and theme stylesheets (~256 KB, the bulk of each page) are written once
  per run folder to ``assets/jupyterlab.css`` and linked, instead of inlined into every page.
  The file's text is taken from nbconvert at run time, so it is whatever nbconvert would have
  inlined. The page's other stylesheets (the template's small inline ones and the profile CSS
  the notebook displays, ~12 KB a page) go to ``assets/profile.css``, linked right after it
  (:func:`profile_css_text`).
* nbconvert deep-copies the notebook three times per export (plotly figure JSON makes that
  slow); :class:`_ExportNotebook` makes those copies share the output mime-bundle values, which
  no preprocessor changes, while still copying every cell, output, list and metadata dict.
* The notebook is validated once (nbconvert's ``optimistic_validation``) rather than after each
  preprocessor, and the BeautifulSoup re-parse that adds ``alt`` text and ``tabindex`` is
  replaced by :func:`add_accessibility_attributes`, a tag scan that skips ``<script>``,
  ``<style>`` and comments exactly where Python's ``html.parser`` (bs4's parser) does.
"""

from __future__ import annotations

import functools
import hashlib
import html as html_lib
import re
from pathlib import Path
from typing import Any

from pophealth.files import atomic_write_bytes

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
PROFILE_TEMPLATE = "profile.html.j2"
PLOTLY_ASSET = Path("assets") / "plotly.min.js"
JUPYTERLAB_CSS_ASSET = Path("assets") / "jupyterlab.css"
PROFILE_CSS_ASSET = Path("assets") / "profile.css"

# What nbconvert's HTMLExporter adds to images without alt text and which divs it makes focusable.
MISSING_ALT_TEXT = "No description has been provided for this image"
FOCUSABLE_DIV_CLASSES = frozenset({"jp-Cell-inputWrapper", "jp-OutputArea-output"})

# nbconvert's resources functions whose stylesheets go into the linked asset, and how they wrap
# a stylesheet (HTMLExporter._init_resources: resources_include_css / resources_include_lab_theme).
_LINKABLE_INCLUDES = ("include_css", "include_lab_theme")
_STYLE_OPEN = '<style type="text/css">\n'
_STYLE_CLOSE = "</style>"


def plotly_js_source() -> Path:
    """Return the path of ``plotly.min.js`` shipped inside the installed plotly package."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the installed plotly package has no bundled plotly.min.js. "
            "Reinstall plotly (pip install --force-reinstall plotly)."
        )
    return path


@functools.cache
def jupyterlab_css_text() -> str:
    """Return the stylesheet text that nbconvert's lab template would inline into each page.

    It is the JupyterLab base CSS then the theme CSS (light by default), exactly as nbconvert
    reads them (a non-built-in lab theme has its fonts and images embedded as data URLs by
    nbconvert), joined by a newline. Cached per process: it needs an exporter (~1 s to build).
    """
    return make_html_exporter().linked_stylesheet_text


@functools.cache
def profile_css_text() -> str:
    """Return the page CSS that ``assets/profile.css`` holds, which every page links.

    In page order: the stylesheets the profile template still inlines once the JupyterLab ones
    are linked (pygments' code colours, nbconvert's print and prompt rules, the profile page
    layout), then :data:`pophealth.tables.PROFILE_CSS` (which the notebook displays so
    JupyterLab has it, and a page drops: :func:`export_html`). No JupyterLab rule uses the
    selectors of the pygments rules that used to come before it, so the cascade is unchanged.
    Cached per process.
    """
    from pophealth.tables import PROFILE_CSS

    styles = make_html_exporter().page_stylesheets
    return "\n".join([*(_element_text(markup) for markup in styles), PROFILE_CSS])


def stylesheet_href(plotly_src: str, asset: Path = JUPYTERLAB_CSS_ASSET) -> str:
    """Return the URL of a stylesheet asset relative to a page, given its plotly URL.

    The stylesheets live next to ``plotly.min.js``, so a URL is ``plotly_src`` with the file
    name replaced, e.g. ``../../assets/plotly.min.js`` -> ``../../assets/jupyterlab.css``.

    Args:
        plotly_src: URL of ``assets/plotly.min.js`` relative to the page.
        asset: :data:`JUPYTERLAB_CSS_ASSET` (default) or :data:`PROFILE_CSS_ASSET`.
    """
    folder, _, _ = plotly_src.rpartition("/")
    name = asset.name
    return f"{folder}/{name}" if folder else name


def _install_asset(target: Path, content: bytes) -> Path:
    """Write ``content`` to ``target`` atomically unless an identical file is already there."""
    if target.is_file() and target.stat().st_size == len(content):
        if hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(content).digest():
            return target
    atomic_write_bytes(target, content)
    return target


def install_plotly_js(out_dir: Path) -> Path:
    """Install ``assets/plotly.min.js`` alone (the largest asset; no exporter needed).

    A batch run writes it first, before any kernel work, so a folder that cannot hold it (a
    full disk) fails the run before anything else is written, and the stylesheets later
    (:func:`install_page_stylesheets`).
    """
    return _install_asset(out_dir / PLOTLY_ASSET, plotly_js_source().read_bytes())


def install_page_stylesheets(out_dir: Path) -> None:
    """Install ``assets/jupyterlab.css`` and ``assets/profile.css`` (they need an exporter)."""
    _install_asset(out_dir / JUPYTERLAB_CSS_ASSET, jupyterlab_css_text().encode("utf-8"))
    _install_asset(out_dir / PROFILE_CSS_ASSET, profile_css_text().encode("utf-8"))


def install_plotly_asset(out_dir: Path) -> Path:
    """Install the run folder's shared page assets in ``out_dir/assets/`` (once per run).

    Writes ``plotly.min.js`` (from the installed plotly package), ``jupyterlab.css`` (see
    :func:`jupyterlab_css_text`) and ``profile.css`` (:func:`profile_css_text`), which every
    profile page links instead of inlining. Each file is written atomically and skipped when an
    identical copy already exists, so calling this again (e.g. when resuming a run) rewrites
    nothing.

    Args:
        out_dir: The run folder.

    Returns:
        The path of ``plotly.min.js`` inside ``out_dir`` (``jupyterlab.css`` is beside it).
    """
    plotly_path = install_plotly_js(out_dir)
    install_page_stylesheets(out_dir)
    return plotly_path


def make_html_exporter() -> Any:
    """Create the HTML exporter once per worker (building it costs ~1 s).

    Code cells' inputs and prompts are hidden; cells tagged ``remove_cell`` are dropped. The
    exporter renders one empty notebook while being built to learn which stylesheets its
    template inlines; pages link those (``assets/jupyterlab.css``) instead.

    Returns:
        A configured ``ProfileHTMLExporter`` (an ``nbconvert.HTMLExporter`` subclass).
    """
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.remove_cell_tags = {"remove_cell"}
    config.TagRemovePreprocessor.enabled = True
    exporter = _profile_exporter_class()(
        config=config,
        template_name="lab",
        template_file=str(TEMPLATES_DIR / PROFILE_TEMPLATE),
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        # Validate the notebook once after all preprocessors, not after each one.
        optimistic_validation=True,
    )
    exporter.record_linked_stylesheets()
    return exporter


def export_html(exporter: Any, nb: Any, title: str, plotly_src: str) -> str:
    """Render an executed notebook to an HTML page using the run folder's shared assets.

    ``nb`` is not modified: the exporter works on copies that share only the outputs' mime
    data values (strings and figure JSON), which nothing in the export changes.

    The page's inline stylesheets that ``assets/profile.css`` holds are replaced by one link to
    it, right after the ``assets/jupyterlab.css`` link: the template's (in ``<head>``) and the
    profile CSS the notebook displays (:func:`pophealth.tables.css_block`, its output then
    empty, as a ``<style>`` draws nothing). :func:`pophealth.runner.share.inline_assets` puts
    both files back inline for a page that must stand alone.

    Args:
        exporter: From :func:`make_html_exporter`.
        nb: The executed notebook (``nbformat.NotebookNode``).
        title: Page title (escaped by the template).
        plotly_src: URL of ``assets/plotly.min.js`` relative to the HTML file;
            ``assets/jupyterlab.css`` and ``assets/profile.css`` are linked from the same
            folder.

    Returns:
        The HTML text.

    Raises:
        RuntimeError: If the page lost the plotly ``<script>`` or the stylesheet ``<link>``.
    """
    css_href = stylesheet_href(plotly_src)
    resources = {
        "metadata": {"name": title},
        "plotly_js_url": plotly_src,
        "jupyterlab_css_url": css_href,
    }
    page, _ = exporter.from_notebook_node(_export_notebook(nb), resources=resources)
    head, _, body = page.partition("</head>")
    # Guard against a template change silently dropping an asset (blank figures, unstyled page).
    if plotly_src not in head:
        raise RuntimeError(f"HTML export lost the <script src={plotly_src!r}> tag in <head>")
    link = f'<link rel="stylesheet" href="{html_lib.escape(css_href)}">'
    if link not in head:
        raise RuntimeError(
            f"HTML export lost the <link rel='stylesheet' href={css_href!r}> tag in <head>"
        )
    head, body = _link_page_styles(exporter, head, body, plotly_src, link)
    return f"{head}</head>{body}"


def _link_page_styles(
    exporter: Any, head: str, body: str, plotly_src: str, link: str
) -> tuple[str, str]:
    """``head`` and ``body`` with the stylesheets ``assets/profile.css`` holds linked."""
    from pophealth.tables import css_block

    for markup in exporter.page_stylesheets:
        head = head.replace(markup, "", 1)
    profile_href = html_lib.escape(stylesheet_href(plotly_src, PROFILE_CSS_ASSET))
    head = head.replace(link, f'{link}\n<link rel="stylesheet" href="{profile_href}">', 1)
    return head, body.replace(css_block(), "", 1)


# --- accessibility pass (replaces nbconvert's BeautifulSoup re-parse) -------------------------

# One token of the page, in the order html.parser tries them: a comment, a raw-text element
# (<script>/<style>: its content is not HTML, e.g. plotly JSON), an <img>/<div> start tag, or any
# other tag (consumed whole, so a "<img" inside another tag's quoted attribute is not a tag).
_TAG_ATTRS = r"""(?:[^>"']|"[^"]*"|'[^']*')*"""
_TOKEN = re.compile(
    rf"""<!--.*?(?:-->|\Z)
    | <(?P<raw>script|style)(?=[\s/>]){_TAG_ATTRS}>.*?(?:</\s*(?P=raw)\s*>|\Z)
    | <(?P<tag>img|div)(?=[\s/>])(?P<attrs>{_TAG_ATTRS})>
    | </?[a-zA-Z][^\s/>]*{_TAG_ATTRS}>
    """,
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
_ATTR = re.compile(
    r"""(?P<name>[^\s"'>/=]+)(?:\s*=\s*(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"'=<>`]+)))?"""
)


def _with_attribute(attrs: str, name: str, value: str) -> str:
    """Return a start tag's attribute text with ``name`` set to ``value`` (added at the end)."""
    for match in _ATTR.finditer(attrs):
        if match.group("name").lower() == name:
            return f'{attrs[: match.start()]}{name}="{value}"{attrs[match.end() :]}'
    stripped = attrs.rstrip()
    # A self-closing <img ... />: keep the slash last (but in <img src=x/> it is part of x).
    if stripped.endswith("/") and (len(stripped) == 1 or stripped[-2] in " \t\n\r\f\"'"):
        return f'{stripped[:-1].rstrip()} {name}="{value}" /'
    return f'{stripped} {name}="{value}"'


def add_accessibility_attributes(page: str) -> tuple[str, int]:
    """Add what nbconvert's HTMLExporter adds with BeautifulSoup, without re-serialising.

    Every ``<img>`` without an ``alt`` attribute gets ``alt="No description has been
    provided for this image"``, and every ``div.jp-Cell-inputWrapper`` and
    ``div.jp-OutputArea-output`` gets ``tabindex="0"`` (nbconvert selects them under
    ``.jp-Notebook``, which is the page's ``<body>``). Text inside ``<script>``, ``<style>``
    and comments is never touched.

    Args:
        page: The rendered HTML.

    Returns:
        The HTML and the number of images that lacked alt text.
    """
    pieces: list[str] = []
    done = 0
    missing_alt = 0
    for match in _TOKEN.finditer(page):
        tag = match.group("tag")
        if tag is None:
            continue
        attrs = match.group("attrs")
        values = {
            found.group("name").lower(): html_lib.unescape(
                found.group("dq") or found.group("sq") or found.group("bare") or ""
            )
            for found in _ATTR.finditer(attrs)
        }
        if tag.lower() == "img":
            if "alt" in values:
                continue
            missing_alt += 1
            new_attrs = _with_attribute(attrs, "alt", MISSING_ALT_TEXT)
        else:
            if FOCUSABLE_DIV_CLASSES.isdisjoint(values.get("class", "").split()):
                continue
            if values.get("tabindex") == "0":
                continue
            new_attrs = _with_attribute(attrs, "tabindex", "0")
        pieces.append(page[done : match.start("attrs")])
        pieces.append(new_attrs)
        done = match.end("attrs")
    pieces.append(page[done:])
    return "".join(pieces), missing_alt


# --- cheap notebook copies ----------------------------------------------------------------------


def _copy_json(value: Any) -> Any:
    """Copy dicts (keeping NotebookNode-ness) and lists recursively; share immutable leaves."""
    from nbformat import NotebookNode

    if isinstance(value, dict):
        new = NotebookNode() if isinstance(value, NotebookNode) else {}
        for key, item in value.items():
            dict.__setitem__(new, key, _copy_json(item))
        return new
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value


def _copy_bundle(bundle: Any) -> Any:
    """Copy a mime bundle's dict but share its values (text, base64, figure JSON)."""
    from nbformat import NotebookNode

    new = NotebookNode()
    dict.update(new, bundle)
    return new


def _copy_cell(cell: Any) -> Any:
    from nbformat import NotebookNode

    new = NotebookNode()
    for key, value in cell.items():
        if key == "outputs":
            outputs = []
            for output in value:
                copied = NotebookNode()
                for output_key, output_value in output.items():
                    dict.__setitem__(
                        copied,
                        output_key,
                        _copy_bundle(output_value)
                        if output_key == "data"
                        else _copy_json(output_value),
                    )
                _add_figure_html(copied)
                outputs.append(copied)
            dict.__setitem__(new, key, outputs)
        elif key == "attachments":
            attachments = NotebookNode()
            for name, bundle in value.items():
                dict.__setitem__(attachments, name, _copy_bundle(bundle))
            dict.__setitem__(new, key, attachments)
        else:
            dict.__setitem__(new, key, _copy_json(value))
    return new


def _add_figure_html(output: Any) -> None:
    """Give a figure output from the batch kernel its page fragment (export copy only).

    The batch kernel sends figures as Plotly JSON plus layout metadata
    (:data:`pophealth.charts.FIGURE_HTML_ENV`); the page needs the ``text/html`` fragment
    :func:`pophealth.charts.figure_output` would have written, so it is written here, into the
    copy being exported. The saved notebook keeps the JSON only.
    """
    from pophealth.charts import figure_html_from_output

    data = output.get("data")
    if not data or "text/html" in data:
        return
    fragment = figure_html_from_output(data, output.get("metadata") or {})
    if fragment is not None:
        dict.__setitem__(data, "text/html", fragment)


def _export_notebook(nb: Any) -> Any:
    """Return a copy of ``nb`` whose deep copies (nbconvert makes three) are cheap.

    Every dict and list is copied, except that the values inside output ``data`` and cell
    ``attachments`` mime bundles are shared: nbconvert's preprocessors used here (tag removal,
    magics highlighting, CSS header) and the template only read them. Figure outputs sent
    without their HTML fragment get it in the copy (:func:`_add_figure_html`).
    """
    new = _export_notebook_class()()
    for key, value in nb.items():
        copied = [_copy_cell(cell) for cell in value] if key == "cells" else _copy_json(value)
        dict.__setitem__(new, key, copied)
    return new


@functools.cache
def _export_notebook_class() -> type:
    """Build the NotebookNode subclass lazily (keeps nbformat out of the CLI's import time)."""
    from nbformat import NotebookNode

    class _ExportNotebook(NotebookNode):
        """A notebook whose ``copy.deepcopy`` is :func:`_export_notebook`."""

        def __deepcopy__(self, memo: dict) -> Any:
            return _export_notebook(self)

    return _ExportNotebook


@functools.cache
def _profile_exporter_class() -> type:
    """Build the exporter class lazily (importing nbconvert takes ~0.4 s)."""
    import markupsafe
    from nbconvert import HTMLExporter
    from nbconvert.exporters.templateexporter import TemplateExporter
    from nbconvert.filters.highlight import Highlight2HTML
    from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
    from nbformat import v4

    class ProfileHTMLExporter(HTMLExporter):
        """nbconvert's HTMLExporter with linked stylesheets and no BeautifulSoup pass."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            # (resources function, file or theme name) -> stylesheet text, in inlining order.
            self.linked_stylesheets: dict[tuple[str, str], str] = {}
            self._recording: dict[tuple[str, str], str] | None = None
            # the <style> elements the template still inlines in <head>, in page order
            self.page_stylesheets: list[str] = []

        @property
        def linked_stylesheet_text(self) -> str:
            """The text of ``assets/jupyterlab.css``: the linked stylesheets in page order."""
            return "\n".join(self.linked_stylesheets.values())

        def record_linked_stylesheets(self) -> None:
            """Render an empty notebook to record which stylesheets the template inlines."""
            self._recording = {}
            try:
                page, _ = self.from_notebook_node(
                    v4.new_notebook(),
                    resources={
                        "metadata": {"name": ""},
                        "plotly_js_url": "",
                        "jupyterlab_css_url": "",
                    },
                )
                self.linked_stylesheets = self._recording
            finally:
                self._recording = None
            head = page.partition("</head>")[0]
            self.page_stylesheets = re.findall(r"<style\b[^>]*>.*?</style>", head, re.DOTALL)
            if not self.linked_stylesheets:
                raise RuntimeError(
                    "nbconvert's lab template inlined no stylesheet through "
                    f"{' / '.join(_LINKABLE_INCLUDES)}: the installed nbconvert changed; "
                    "check pophealth/templates/profile.html.j2 against it."
                )

        def _init_resources(self, resources: Any) -> Any:
            # The template calls these functions to inline the lab CSS; the recorded ones are
            # linked instead (the template emits the <link>), so they render as nothing.
            resources = super()._init_resources(resources)
            for key in _LINKABLE_INCLUDES:
                resources[key] = self._link_recorded(key, resources[key])
            return resources

        def _link_recorded(self, key: str, include: Any) -> Any:
            def include_or_link(name: str) -> Any:
                if self._recording is not None:
                    self._recording[(key, name)] = _style_text(include(name), key, name)
                    return markupsafe.Markup("")
                if (key, name) in self.linked_stylesheets:
                    return markupsafe.Markup("")
                return include(name)

            return include_or_link

        def from_notebook_node(  # type: ignore[override]
            self, nb: Any, resources: dict[str, Any] | None = None, **kw: Any
        ) -> tuple[str, dict[str, Any]]:
            # Same steps as HTMLExporter.from_notebook_node (nbconvert 7), except that its
            # BeautifulSoup re-parse + re-serialise of the whole page (a third of the export
            # time) is replaced by add_accessibility_attributes. tests/test_runner_html.py
            # checks the <body> still equals a stock HTMLExporter's.
            langinfo = nb.metadata.get("language_info", {})
            lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
            highlight_code = self.filters.get(
                "highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self)
            )
            resources = self._init_resources(resources)
            filter_data_type = WidgetsDataTypeFilter(
                notebook_metadata=self._nb_metadata, parent=self, resources=resources
            )
            self.register_filter("highlight_code", highlight_code)
            self.register_filter("filter_data_type", filter_data_type)
            page, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
            # nbconvert keeps each exported notebook's metadata by name; a worker exports
            # thousands of differently named profiles, so drop it once rendered.
            self._nb_metadata.clear()
            page, missing_alt = add_accessibility_attributes(page)
            if missing_alt:
                self.log.warning("Alternative text is missing on %s image(s).", missing_alt)
            return page, resources

    return ProfileHTMLExporter


def _element_text(markup: str) -> str:
    """The text inside one ``<style ...>...</style>`` element."""
    return markup[markup.index(">") + 1 : -len(_STYLE_CLOSE)]


def _style_text(markup: str, key: str, name: str) -> str:
    """Return the stylesheet inside nbconvert's ``<style type="text/css">`` wrapper."""
    if not (markup.startswith(_STYLE_OPEN) and markup.endswith(_STYLE_CLOSE)):
        raise RuntimeError(
            f"nbconvert's {key}({name!r}) no longer returns "
            f"'{_STYLE_OPEN.strip()}...{_STYLE_CLOSE}' (got {markup[:60]!r}): the installed "
            "nbconvert changed; update pophealth/runner/html.py."
        )
    return str(markup)[len(_STYLE_OPEN) : -len(_STYLE_CLOSE)]
