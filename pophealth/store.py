"""The typed hand-off from a loaded prepared store to the profile layer.

:class:`ProfileStore` is what :mod:`pophealth.profile_frames` reads from a store (the tables of
the prepared store, the derived geography and indicator tables, and per-store caches);
:class:`pophealth.api.PopHealthData` implements it. :class:`FrameMemo` is the per-store memo of
frames shared by many areas' profiles (e.g. a system's funnel limits).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from pophealth.releases import ImdRelease

T = TypeVar("T")


@contextlib.contextmanager
def python_strings() -> Iterator[None]:
    """Hold text columns as Python strings (pandas' ``str`` dtype, ``python`` storage).

    The store is read, and profiles are built, inside this context. A profile takes a few
    rows from large tables hundreds of times; with Arrow-backed strings (pandas' default
    storage) each take and each value read goes through pyarrow, a fifth of a profile's
    time. Values and dtype name (``str``) are the same in either storage.
    """
    with pd.option_context("mode.string_storage", "python"):
        yield


def records(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``frame.to_dict("records")``: each row as a dict of Python values, built by column.

    pandas builds the records through ``itertuples``, an ``iloc`` per column and a boxing
    call per cell: milliseconds for an area's indicator rows, asked for several times a
    profile. ``Series.tolist`` gives the same Python values a column at a time.

    Args:
        frame: The table.
        columns: Only these columns (those present), without copying the frame first.
    """
    if columns is not None:
        columns = [column for column in columns if column in frame.columns]
    else:
        columns = list(frame.columns)
    if frame.columns.has_duplicates:
        return frame.to_dict("records")  # a dict keeps one of them, as pandas does
    if not columns:
        return [{} for _ in range(len(frame))]
    values = [frame[column].tolist() for column in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


class RowsByKey:
    """A table's rows of one key, taken when first asked for (a profile asks for a few).

    Splitting a store-wide table into a frame per area up front cost every kernel seconds;
    the row positions of each key are found once and a key's rows taken on demand.
    """

    def __init__(self, table: pd.DataFrame, by: str | list[str]) -> None:
        self._table = table
        self._positions = table.groupby(by, sort=False).indices

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The key's rows (in table order), or ``default`` when it has none."""
        positions = self._positions.get(key)
        return default if positions is None else self._table.iloc[positions]


class FrameMemo:
    """Frames built once per store and shared, read-only, by every profile that needs them."""

    def __init__(self) -> None:
        self._frames: dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The frame for ``key``, built by ``build()`` the first time it is asked for."""
        if key not in self._frames:
            self._frames[key] = build()
        return self._frames[key]

    def __len__(self) -> int:
        return len(self._frames)


class ProfileStore(Protocol):
    """A loaded prepared store as the profile layer sees it."""

    # prepared store tables (docs/architecture.md, "Prepared store")
    lsoa: pd.DataFrame
    practices: pd.DataFrame
    registrations: pd.DataFrame
    age_sex: pd.DataFrame
    pcn_staff: pd.DataFrame | None
    qof: pd.DataFrame  # QOF prevalence rows; empty without QOF
    manifest: dict
    # England's and the regions' measures from the national files (``national.parquet``;
    # empty for stores prepared before it existed)
    national: pd.DataFrame
    # options the store was loaded with
    imd_release: ImdRelease
    groupings: pd.DataFrame | None
    neighbourhoods_file: str | None
    # per-store memo of frames shared by many profiles
    memo: FrameMemo

    # derived tables (cached on first use by the implementation)
    comparator: str
    register: pd.DataFrame
    indicator_table: pd.DataFrame
    indicator_groups: Any  # api.IndicatorGroups: .get((level, area type, system) | ("area", code))
    peers: pd.DataFrame
    practice_indicators: pd.DataFrame
    practice_members: dict[str, np.ndarray]
    practice_membership_table: pd.DataFrame
    # practices plus their share of their PCN's staff; None / the practices without PCN staff
    pcn_apportionment: tuple[pd.DataFrame, pd.DataFrame] | None
    team_practices: pd.DataFrame
    lsoa_members: dict[str, np.ndarray]
    matched_arrays: dict[str, np.ndarray]
    practice_status_counts: pd.DataFrame
    lsoa_geometries: dict[str, str]
    age_sex_matrix: pd.DataFrame
    qof_expected: tuple[pd.DataFrame, pd.DataFrame]  # recorded vs expected, model fit
    unassigned_practices: dict[str, tuple[int, float]]
    # similar areas (pophealth.peers) and the release history (pophealth.history)
    peer_pool_table: pd.DataFrame
    similar_areas: dict[tuple[str, str], tuple]
    periods: list[str]
    qof_periods: dict[str, str]  # QOF period -> QOF year of the history's QOF years
    indicator_history: pd.DataFrame
    membership_changes: pd.DataFrame

    def ready_trend_words(self) -> pd.DataFrame | None:
        """Every area's direction of travel when already at hand (shared by a batch run)."""
