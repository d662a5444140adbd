"""The membership rule's succession step: a closed practice carried by its successor.

One rule for every practice-keyed table (``docs/history.md``): an ODS succession applies when the
successor is in today's list of practices and the predecessor is not; the predecessor's rows are
then renamed to the successor and added to its rows (patients, staff, registrations, QOF
registers and list sizes), so totals are conserved. :func:`pophealth.history.apply_membership_rule`
uses it for every period of the release history (monthly releases and QOF years) and
:func:`pophealth.prepare.prepare` for the current QOF year (recorded-vs-expected model, England's
values), so the two never disagree. Pure functions; no other pophealth module is imported.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

#: Columns that identify a row of a practice-keyed table besides the practice (a predecessor's
#: row is added to the successor's row with the same values of these).
ROW_KEYS = ("practice_code", "lsoa_code", "lsoa_status", "sex", "age_band", "group_code", "imd")


def successor_mapping(successors: pd.DataFrame | None, current_codes: Iterable[str]) -> dict:
    """Predecessor -> successor for the successions the rule applies.

    Args:
        successors: ``predecessor_code, successor_code`` (ODS GP practice successions, chains
            resolved), or ``None``.
        current_codes: Today's practice codes.

    Returns:
        ``{predecessor: successor}`` for every succession whose successor is in today's list and
        whose predecessor is not (empty without successions).
    """
    if successors is None or not len(successors):
        return {}
    known = {str(code) for code in current_codes}
    return {
        str(a): str(b)
        for a, b in zip(successors["predecessor_code"], successors["successor_code"], strict=True)
        if str(b) in known and str(a) not in known
    }


def carry_to_successors(frame: pd.DataFrame, successors: dict[str, str]) -> pd.DataFrame:
    """Rename predecessor practices to their successor and add their rows together.

    Numeric columns are summed (missing only where every row is missing); text columns keep the
    successor's own value first, so its name and other text fields win over its predecessor's.

    Args:
        frame: A table with ``practice_code`` (and any of :data:`ROW_KEYS`).
        successors: :func:`successor_mapping`.

    Returns:
        The table with one row per key, predecessors carried (unchanged without successions).
    """
    if frame.empty or not successors:
        return frame
    carried = frame["practice_code"].isin(list(successors))
    if not carried.any():
        return frame
    renamed = frame.assign(practice_code=frame["practice_code"].replace(successors))
    renamed = pd.concat([renamed[~carried], renamed[carried]])
    keys = [c for c in ROW_KEYS if c in frame]
    numeric = [
        c for c in renamed.columns if c not in keys and pd.api.types.is_numeric_dtype(renamed[c])
    ]
    others = [c for c in renamed.columns if c not in keys and c not in numeric]
    grouped = renamed.groupby(keys, sort=False, dropna=False)
    parts = [grouped[numeric].sum(min_count=1)] if numeric else []
    parts += [grouped[others].first()] if others else []
    if not parts:
        return grouped.size().reset_index()[frame.columns]
    return pd.concat(parts, axis=1).reset_index()[frame.columns]
