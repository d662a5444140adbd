"""Render a local HTML file in headless Chromium and return the DOM after scripts ran.

Used by tests to prove that profiles actually draw their plotly figures offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Headless, sandbox-free and quiet (no network side traffic): every test browser starts so.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# Chromium's stderr log line for page console messages, e.g.
# [..:INFO:CONSOLE(12)] "Uncaught ReferenceError: Plotly is not defined", source: file:///...
_CONSOLE_LINE = re.compile(
    r':(INFO|WARNING|ERROR):CONSOLE[^\]]*\]\s*"(?P<msg>.*)", source: (?P<src>.*)'
)
_ERROR_WORDS = ("error", "uncaught", "failed", "refused", "not defined")


def find_chromium() -> str | None:
    """Return the path of a Chromium/Chrome executable (env ``POPHEALTH_CHROMIUM`` first)."""
    override = os.environ.get("POPHEALTH_CHROMIUM")
    if override:
        return override if Path(override).exists() else None
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    """The Chromium to test with; skip without one (fail if POPHEALTH_REQUIRE_BROWSER=1)."""
    import pytest

    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("POPHEALTH_REQUIRE_BROWSER") == "1":
            pytest.fail("POPHEALTH_REQUIRE_BROWSER=1 but Chromium is not installed")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    return chromium


def render_dom(
    path: Path | str,
    *,
    budget_ms: int = 5000,
    timeout: float = 90.0,
    window_size: tuple[int, int] | None = None,
) -> tuple[str, list[str]]:
    """Load ``path`` in headless Chromium and return ``(dom_after_scripts, console_errors)``.

    Args:
        path: Local HTML file.
        budget_ms: Chromium virtual-time budget for scripts to run.
        timeout: Seconds before giving up on the browser process.
        window_size: ``(width, height)`` of the browser window in CSS px (Chromium's default
            when None).

    Returns:
        The serialised DOM and the console messages that look like errors (uncaught
        exceptions, failed resource loads), plus any Chromium-level ERROR lines about the page.

    Raises:
        FileNotFoundError: If no Chromium is installed.
        RuntimeError: If Chromium fails or prints no DOM.
    """
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError(
            "Chromium not found (install the 'chromium' package or set POPHEALTH_CHROMIUM)."
        )
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="ph-chromium-") as profile_dir:
        command = [
            chromium,
            *HEADLESS_FLAGS,
            f"--user-data-dir={profile_dir}",
            "--enable-logging=stderr",
            "--v=0",
            f"--virtual-time-budget={budget_ms}",
            *([f"--window-size={window_size[0]},{window_size[1]}"] if window_size else []),
            "--dump-dom",
            url,
        ]
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    dom = completed.stdout
    if completed.returncode != 0 or not dom.strip():
        raise RuntimeError(
            f"Chromium exited with {completed.returncode} rendering {url}:\n"
            f"{completed.stderr[-2000:]}"
        )
    errors = []
    for line in completed.stderr.splitlines():
        match = _CONSOLE_LINE.search(line)
        if match:
            message = match.group("msg")
            if match.group(1) == "ERROR" or any(w in message.lower() for w in _ERROR_WORDS):
                errors.append(f"{message} ({match.group('src')})")
        elif "net::ERR_" in line and "file://" in line:
            errors.append(line.strip())
    return dom, errors
