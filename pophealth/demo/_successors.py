"""The demo's ODS successor file and its planted practice merger.

One demo practice (the last practice code of a PCN with three or more practices) closes
:data:`MERGER_MONTHS_BACK` months before the current release and its list moves to the largest
other practice of the same PCN: from that month on, the registrations files and the practice
workforce file of every release carry the predecessor's patients and staff under its successor
(the predecessor's rows are gone). ePCN, payments 2024-25 and both QOF years (2023-24 and
2024-25, which end before the closure) keep the predecessor, as the publishers' files do for a
practice that closed after the year. Being the last code,
its closure moves none of the planted QOF under-recording practices (chosen by position in the
sorted codes) and none of the example neighbourhood groupings.

``succ.csv`` is written in the official layout (no header; predecessor, successor, reason,
effective date ``CCYYMMDD``, further-succession indicator): the planted merger, an older
succession into the predecessor (a chain: resolved to the successor), and two rows of other
organisation types that the practice rule ignores.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pophealth.demo._model import MOVE_END_DATE, DemoWorld

#: The predecessor closes this many months before the current release.
MERGER_MONTHS_BACK = 4
#: An older, closed practice whose list the predecessor took over (a chain in succ.csv).
OLDER_PREDECESSOR = "Y99999"
_OTHER_ORGANISATIONS = (  # (predecessor, successor, reason, date, indicator): not practices
    ("Y9T01", "Y9T02", "R", "20230401", ""),  # a synthetic trust-shaped code
    ("U99901", "U99902", "R", "20240401", ""),  # PCN codes are U + five digits: not practices
)
_REGISTRATION_FILES = {  # file -> (practice code column, key columns besides it)
    "gp-reg-pat-prac-lsoa-all.csv": ("PRACTICE_CODE", ("LSOA_CODE", "SEX")),
    "gp-reg-pat-prac-all.csv": ("CODE", ("SEX", "AGE")),
    "gp-reg-pat-prac-quin-age.csv": ("ORG_CODE", ("ORG_TYPE", "SEX", "AGE_GROUP_5")),
    "gp-reg-pat-prac-sing-age-male.csv": ("ORG_CODE", ("SEX", "AGE")),
    "gp-reg-pat-prac-sing-age-female.csv": ("ORG_CODE", ("SEX", "AGE")),
}


def merger_pair(world: DemoWorld) -> tuple[str, str]:
    """(predecessor, successor) practice codes of the planted merger (deterministic).

    The predecessor is the highest practice code among practices in PCNs with three or more
    practices (not the practice that moved PCN); the successor the largest other practice of its
    PCN in the same sub-ICB location.
    """
    prac = world.practices
    moved = set(world.memberships.loc[world.memberships["end_date"] == MOVE_END_DATE, "practice"])
    candidates = prac[(prac["pcn"] >= 0) & ~prac.index.isin(list(moved))]
    sizes = candidates.groupby("pcn")["registered"].transform("size")
    candidates = candidates[sizes >= 3]
    predecessor = candidates.sort_values("practice_code", kind="stable").iloc[-1]
    members = candidates[
        (candidates["pcn"] == predecessor["pcn"])
        & (candidates["sicbl"] == predecessor["sicbl"])
        & (candidates["practice_code"] != predecessor["practice_code"])
    ]
    successor = members.sort_values("registered", kind="stable").iloc[-1]
    return str(predecessor["practice_code"]), str(successor["practice_code"])


def closure_date(extract_date: str) -> pd.Timestamp:
    """The succession's effective date: the first extract without the predecessor."""
    return pd.Timestamp(extract_date) - pd.DateOffset(months=MERGER_MONTHS_BACK)


def write_successor_file(out: Path, pair: tuple[str, str] | None, effective: pd.Timestamp) -> Path:
    """``succ.csv`` in the official layout (no header, five fields, dates ``CCYYMMDD``)."""
    rows = list(_OTHER_ORGANISATIONS)
    if pair is not None:
        predecessor, successor = pair
        rows.insert(0, (OLDER_PREDECESSOR, predecessor, "R", "20190401", "F"))
        rows.insert(1, (predecessor, successor, "R", effective.strftime("%Y%m%d"), ""))
    path = out / "succ.csv"
    path.write_text("".join(",".join(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _write(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n")


def _as_number(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.where(values != "NA"), errors="coerce")


def _merge_counts(
    frame: pd.DataFrame, code: str, keys: tuple[str, ...], pair: tuple[str, str]
) -> pd.DataFrame:
    """Add the predecessor's patient counts to its successor's rows (same keys); drop its rows."""
    predecessor, successor = pair
    old = frame[frame[code] == predecessor]
    if old.empty:
        return frame
    frame = frame[frame[code] != predecessor].copy()
    mine = frame[code] == successor
    index = pd.MultiIndex.from_frame(frame.loc[mine, list(keys)])
    added = old.set_index(list(keys))["NUMBER_OF_PATIENTS"].astype(np.int64)
    matched = added[added.index.isin(index)]
    current = frame.loc[mine, "NUMBER_OF_PATIENTS"].astype(np.int64).to_numpy()
    extra = matched.reindex(index).fillna(0).astype(np.int64).to_numpy()
    frame.loc[mine, "NUMBER_OF_PATIENTS"] = (current + extra).astype(str)
    # the predecessor's rows for keys the successor lacks (LSOAs) move to it as they are
    moved = old[~old.set_index(list(keys)).index.isin(index)].copy()
    if len(moved):
        template = frame.loc[mine].iloc[0]
        moved[code] = successor
        for column in ("PRACTICE_NAME", "POSTCODE", "ONS_CODE"):
            if column in moved:
                moved[column] = template[column]
        last = np.flatnonzero(mine.to_numpy())[-1]
        frame = pd.concat([frame.iloc[: last + 1], moved, frame.iloc[last + 1 :]])
    return frame


def _merge_workforce(frame: pd.DataFrame, pair: tuple[str, str]) -> pd.DataFrame:
    """Add the predecessor's patient counts, FTE and headcounts to its successor's; drop its row."""
    predecessor, successor = pair
    old = frame[frame["PRAC_CODE"] == predecessor]
    if old.empty:
        return frame
    frame = frame[frame["PRAC_CODE"] != predecessor].copy()
    mine = frame["PRAC_CODE"] == successor
    numeric = [c for c in frame.columns if c.startswith(("TOTAL_", "MALE_", "FEMALE_"))]
    for column in numeric:
        a = _as_number(frame.loc[mine, column]).to_numpy()
        b = _as_number(old[column]).to_numpy()
        if np.isnan(a).all():
            continue  # the successor's "NA" (no data) stays
        total = a + np.nan_to_num(b)
        # FTE as the writer prints it (6 decimals); headcounts and patient counts whole
        text = (
            np.round(total, 6).astype(str)
            if column.endswith("_FTE")
            else total.astype(np.int64).astype(str)
        )
        frame.loc[mine, column] = text
    return frame


def merge_release_files(folder: Path, pair: tuple[str, str]) -> None:
    """Rewrite one release's registrations and workforce files with the merger applied."""
    for name, (code, keys) in _REGISTRATION_FILES.items():
        path = folder / name
        if path.exists():
            _write(_merge_counts(_read(path), code, keys, pair), path)
    path = folder / "gp-reg-pat-prac-map.csv"
    if path.exists():
        frame = _read(path)
        _write(frame[frame["PRACTICE_CODE"] != pair[0]], path)
    for path in sorted(folder.glob("*Practice Level - Detailed.csv")):
        _write(_merge_workforce(_read(path), pair), path)


def plant_merger(world: DemoWorld, out: Path, extract_date: str, *, merge: bool = True) -> Path:
    """Write ``succ.csv`` and apply its practice merger to the releases from the closure on.

    Args:
        world: The demo world (the ICS).
        out: The demo raw folder (current release at the top, earlier ones in ``releases/``).
        extract_date: The current release's extract date (``YYYY-MM-DD``).
        merge: Plant the practice merger (the ICS demo); ``False`` writes only the rows of other
            organisation types (the England-scale data stay as they are).

    Returns:
        The ``succ.csv`` written.
    """
    effective = closure_date(extract_date)
    pair = merger_pair(world) if merge else None
    path = write_successor_file(out, pair, effective)
    if pair is None:
        return path
    folders = [out]
    releases = out / "releases"
    if releases.is_dir():
        folders += [
            f
            for f in sorted(releases.iterdir())
            # monthly releases (YYYY-MM) from the closure on; the QOF year's folder has no lists
            if f.is_dir()
            and re.fullmatch(r"\d{4}-\d{2}", f.name)
            and f.name >= f"{effective:%Y-%m}"
        ]
    for folder in folders:
        merge_release_files(folder, pair)
    # the QOF years end before the closure: they list the predecessor, as published
    return path
