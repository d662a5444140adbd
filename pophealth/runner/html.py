"""HTML export of executed profile notebooks and the run folder's shared plotly.js asset."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pophealth.runner.jobs import atomic_write_bytes

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
PROFILE_TEMPLATE = "profile.html.j2"
PLOTLY_ASSET = Path("assets") / "plotly.min.js"


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


def install_plotly_asset(out_dir: Path) -> Path:
    """Copy plotly.min.js to ``out_dir/assets/`` once (skipped if an identical copy exists).

    Args:
        out_dir: The run folder.

    Returns:
        The asset path inside ``out_dir``.
    """
    source = plotly_js_source().read_bytes()
    target = out_dir / PLOTLY_ASSET
    if target.is_file() and target.stat().st_size == len(source):
        existing = target.read_bytes()
        if hashlib.sha256(existing).digest() == hashlib.sha256(source).digest():
            return target
    atomic_write_bytes(target, source)
    return target


def make_html_exporter() -> Any:
    """Create the HTML exporter once per worker (building it costs ~0.7 s).

    Code cells' inputs and prompts are hidden; cells tagged ``remove_cell`` are dropped.

    Returns:
        A configured ``nbconvert.HTMLExporter``.
    """
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.remove_cell_tags = {"remove_cell"}
    config.TagRemovePreprocessor.enabled = True
    exporter = HTMLExporter(
        config=config,
        template_name="lab",
        template_file=str(TEMPLATES_DIR / PROFILE_TEMPLATE),
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    return exporter


def export_html(exporter: Any, nb: Any, title: str, plotly_src: str) -> str:
    """Render an executed notebook to a standalone HTML page.

    Args:
        exporter: From :func:`make_html_exporter`.
        nb: The executed notebook (``nbformat.NotebookNode``).
        title: Page title (escaped by the template).
        plotly_src: URL of plotly.min.js relative to the HTML file.

    Returns:
        The HTML text.
    """
    resources = {"metadata": {"name": title}, "plotly_js_url": plotly_src}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    if plotly_src not in body.split("</head>", 1)[0]:
        # Guard against a template change silently dropping the script (figures would be blank).
        raise RuntimeError(f"HTML export lost the <script src={plotly_src!r}> tag in <head>")
    return body
