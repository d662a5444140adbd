"""Input checks and escaping shared by the stages: column checks with hints, HTML escaping."""

from __future__ import annotations

import difflib
import html
from collections.abc import Hashable, Sequence
from typing import Any

import pandas as pd

from pophealth.errors import InputError, PopHealthError


def is_missing(value: Any) -> bool:
    """True for None, NaN, pd.NA and NaT."""
    if value is None:
        return True
    if isinstance(value, str):  # most values asked about (page text): answered at once
        return False
    if isinstance(value, float):
        return value != value
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def escape_html(value: Any, *, quote: bool = True) -> str:
    """Escape a data-derived value for HTML ('' for missing); ``quote`` also escapes quotes."""
    if isinstance(value, str):
        return html.escape(value, quote=quote)
    return html.escape("" if is_missing(value) else str(value), quote=quote)


def require_columns(
    frame: pd.DataFrame,
    required: Sequence[Hashable],
    where: str,
    *,
    error: type[PopHealthError] = InputError,
    fix: str | None = None,
    examples: bool = False,
) -> None:
    """Raise ``error`` naming the missing columns of ``frame``, with did-you-mean hints.

    Args:
        frame: The table to check.
        required: Columns it must have.
        where: What the table is, for the message (e.g. ``"the proportions table"``).
        error: The :class:`PopHealthError` subclass to raise.
        fix: A suggested fix appended to the message.
        examples: Whether to show the first rows of the frame.
    """
    if not isinstance(frame, pd.DataFrame):
        raise error(f"{where} must be a pandas DataFrame, not {type(frame).__name__}")
    missing = [c for c in required if c not in frame.columns]
    if not missing:
        return
    present = [str(c) for c in frame.columns]
    hints = []
    for column in missing:
        close = difflib.get_close_matches(str(column), present, n=3)
        if close:
            hints.append(f"{column!r}: did you mean {', '.join(repr(c) for c in close)}?")
    label = "column" if len(missing) == 1 else "columns"
    message = (
        f"{label} {', '.join(repr(c) for c in missing)} not found in {where} (columns: "
        f"{', '.join(repr(c) for c in present[:20])})"
    )
    if hints:
        message += "; " + " ".join(hints)
    if fix:
        message += f". {fix}"
    if examples:
        message += "\nExample rows:\n" + (frame.head(3).to_string() if len(frame) else "(empty)")
    raise error(message)
