"""Profiles to share: one self-contained HTML file, and an A4 PDF printed by headless Chromium.

A run folder's pages link ``assets/plotly.min.js``, ``assets/jupyterlab.css`` and
``assets/profile.css`` once per run (small pages at national scale). A page to email must work
alone: :func:`inline_assets` puts the files inside the page. :func:`print_pdf` prints a page
to an A4 PDF with the page's print stylesheet (page breaks between sections, no navigation or
chart toolbars), with the collapsed detail (definitions, provenance) opened so the PDF carries
it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from pophealth.errors import PopHealthError
from pophealth.files import atomic_write_bytes
from pophealth.runner.html import jupyterlab_css_text, plotly_js_source, profile_css_text

#: Chromium executables looked for on PATH (``POPHEALTH_CHROMIUM`` overrides).
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# CSS px the page is laid out at before printing: charts are drawn to this width, and the print
# stylesheet's 80% zoom fits it to an A4 page's printable width (~718 px at 12 mm margins).
PDF_WINDOW_WIDTH = 900
PDF_TIMEOUT_SECONDS = 120


class ShareError(PopHealthError, RuntimeError):
    """A profile could not be made self-contained or printed to PDF."""


def chromium_executable() -> str | None:
    """The Chromium used to print PDFs: ``POPHEALTH_CHROMIUM``, else the first on PATH."""
    override = os.environ.get("POPHEALTH_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def _script_safe(text: str, tag: str) -> str:
    # A literal "</script" (or "</style") would end the inline element early.
    return re.sub(f"</({tag})", r"<\\/\1", text, flags=re.IGNORECASE)


def inline_assets(page: str) -> str:
    """Return ``page`` with the run folder's plotly.js and stylesheets inlined.

    Args:
        page: A profile page from :func:`pophealth.runner.html.export_html`.

    Returns:
        The same page needing no other file: it draws its charts offline on its own.

    Raises:
        ShareError: If the page has no linked plotly.js or JupyterLab stylesheet to replace.
    """
    script = re.search(r'<script src="[^"]*plotly\.min\.js"></script>', page)
    link = re.search(r'<link rel="stylesheet" href="[^"]*jupyterlab\.css">', page)
    if script is None or link is None:
        raise ShareError(
            "The profile page has no <script src=…plotly.min.js> or <link …jupyterlab.css> to "
            "inline: was it exported by pophealth.runner.html.export_html?"
        )
    plotly_js = _script_safe(plotly_js_source().read_text(encoding="utf-8"), "script")
    css = _script_safe(jupyterlab_css_text(), "style")
    pieces = [
        (script.start(), script.end(), f"<script>{plotly_js}</script>"),
        (link.start(), link.end(), f'<style type="text/css">{css}</style>'),
    ]
    # the page CSS (a page exported before it was linked has it inline already)
    profile_link = re.search(r'<link rel="stylesheet" href="[^"]*profile\.css">', page)
    if profile_link is not None:
        profile_css = _script_safe(profile_css_text(), "style")
        pieces.append(
            (
                profile_link.start(),
                profile_link.end(),
                f'<style type="text/css">{profile_css}</style>',
            )
        )
    pieces.sort()
    out, done = [], 0
    for start, end, replacement in pieces:
        out.append(page[done:start])
        out.append(replacement)
        done = end
    out.append(page[done:])
    return "".join(out)


def print_pdf(html_path: Path, pdf_path: Path, *, budget_ms: int = 8000) -> Path:
    """Print a profile page to an A4 PDF with headless Chromium.

    The page is copied beside itself (so its relative assets resolve) with every
    ``<details>`` opened, printed with the page's print stylesheet, and the copy removed.

    Args:
        html_path: The profile page.
        pdf_path: The PDF to write (atomically).
        budget_ms: Virtual time for scripts (chart drawing) before printing.

    Returns:
        ``pdf_path``.

    Raises:
        ShareError: If Chromium is missing or prints nothing.
    """
    chromium = chromium_executable()
    if chromium is None:
        raise ShareError(
            "--pdf needs Chromium (Debian: apt-get install chromium; or set POPHEALTH_CHROMIUM)."
        )
    html_path, pdf_path = Path(html_path), Path(pdf_path)
    page = html_path.read_text(encoding="utf-8")
    printable = re.sub(r"<details(?![^>]*\bopen\b)", "<details open", page)
    fd, print_copy = tempfile.mkstemp(prefix=".print-", suffix=".html", dir=html_path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(printable)
    with tempfile.TemporaryDirectory(prefix="ph-pdf-") as work:
        target = Path(work) / "out.pdf"
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={work}/profile",
            f"--window-size={PDF_WINDOW_WIDTH},1100",
            f"--virtual-time-budget={budget_ms}",
            "--run-all-compositor-stages-before-draw",
            "--no-pdf-header-footer",
            f"--print-to-pdf={target}",
            Path(print_copy).resolve().as_uri(),
        ]
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, timeout=PDF_TIMEOUT_SECONDS, check=False
            )
        finally:
            Path(print_copy).unlink(missing_ok=True)
        if completed.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
            raise ShareError(
                f"Chromium could not print {html_path} to PDF (exit {completed.returncode}): "
                f"{completed.stderr[-1000:]}"
            )
        atomic_write_bytes(pdf_path, target.read_bytes())
    return pdf_path


__all__ = ["ShareError", "chromium_executable", "inline_assets", "print_pdf"]


#: The run folder's one page of indicator definitions, which its profiles link to.
DEFINITIONS_PAGE = "definitions.html"
_DEFINITIONS_BLOCK = re.compile(
    r'<details class="ph-details ph-definitions-details">.*?</details>', re.DOTALL
)


def link_definitions(page: str, href: str) -> str:
    """Replace a profile's collapsed definitions with a link to the run's definitions page.

    Every profile of a run carried the same definitions table (a tenth of a page); a page
    exported on its own (``--self-contained``, ``export``) keeps its copy.
    """
    link = (
        f'<p class="ph-text"><a href="{href}" style="text-decoration: underline">Indicator '
        "definitions</a>: what each indicator "
        "measures, its sources, polarity and statistic (one page for the run).</p>"
    )
    return _DEFINITIONS_BLOCK.sub(lambda _m: link, page, count=1)
