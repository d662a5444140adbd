"""Helpers for loader tests: write a bad file, load it, return the error message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pophealth.sources.common import SourceFormatError


def format_error(loader: Callable[[Path], object], path: Path, text: str) -> str:
    """Write ``text`` to ``path``, load it with ``loader``; the SourceFormatError's message."""
    path.write_text(text)
    with pytest.raises(SourceFormatError) as info:
        loader(path)
    return str(info.value)
