"""Similar areas: each area's nearest neighbours on standardised needs variables.

Method (documented in ``docs/peers.md``), following open nearest-neighbour tools for GP practices
and CIPFA's nearest neighbours for local authorities:

1. Needs variables per area (``NEEDS_VARIABLES``): % aged 0-17, % aged 65+, IMD score
   (patient/resident-weighted), % ethnic minority, % rural where a rurality indicator exists, and
   list size (log10, because list size is right-skewed and a 10% difference should count the same
   for a small and a large area).
2. Areas missing any chosen variable are left out of the pool and counted (never silently).
3. Each variable is z-scored over the pool (mean 0, standard deviation 1).
4. Near-collinear variables are dropped: in the order above, a variable whose absolute Pearson
   correlation with one already kept exceeds ``COLLINEAR_THRESHOLD`` = 0.9 is dropped (it would
   count the same need twice), and the drop is reported.
5. Distance = Euclidean distance on the kept z-scores; each area's ``K_PEERS`` = 10 nearest other
   areas are its peers nationally, and again within its region where the register has one.

Everything is df-in / df-out; :func:`similar_area_comparison` turns peers into the profile's
"similar areas" comparator (the peers' average and the area's position among them).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from pophealth.stats import StatisticsInputError, _numeric, _require_columns

__all__ = [
    "COLLINEAR_THRESHOLD",
    "K_PEERS",
    "NEEDS_VARIABLES",
    "nearest_peers",
    "needs_matrix",
    "select_variables",
    "similar_area_comparison",
]

# (indicator id, transform); order = priority when dropping near-collinear variables
NEEDS_VARIABLES: tuple[tuple[str, str], ...] = (
    ("imd_score", "none"),
    ("pct_age_65_plus", "none"),
    ("pct_age_0_17", "none"),
    ("pct_ethnic_minority", "none"),
    ("pct_rural", "none"),
    ("list_size", "log10"),
)
COLLINEAR_THRESHOLD = 0.9
K_PEERS = 10


def needs_matrix(
    table: pd.DataFrame,
    level: str,
    basis: str,
    variables: Sequence[tuple[str, str]] = NEEDS_VARIABLES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wide frame of needs variables per area from the tidy indicator table.

    Args:
        table: Tidy indicator table (``area_code, level, basis, indicator_id, value``; optional
            ``region_code``).
        level: Level to compare (``neighbourhood``, ``place``, ``system``).
        basis: ``registered`` or ``resident``.
        variables: (indicator id, transform) pairs; transform ``none`` or ``log10``. Variables the
            table does not hold for this level are skipped (e.g. rurality).

    Returns:
        (matrix, excluded): ``matrix`` indexed by ``area_code`` with one column per available
        variable (transformed), plus ``region_code`` when present; ``excluded`` lists areas left
        out (``area_code, reason``) because a variable is missing.
    """
    _require_columns(table, ["area_code", "level", "basis", "indicator_id", "value"], "table")
    rows = table[(table["level"] == level) & (table["basis"] == basis)]
    wide = rows.pivot_table(
        index="area_code", columns="indicator_id", values="value", aggfunc="first", dropna=False
    )
    columns = {}
    for indicator, transform in variables:
        if indicator not in wide.columns or wide[indicator].notna().sum() == 0:
            continue
        values = wide[indicator].astype(float)
        if transform == "log10":
            values = np.log10(values.where(values > 0))
        elif transform != "none":
            raise StatisticsInputError(f"unknown transform {transform!r} for {indicator}")
        columns[indicator] = values
    matrix = pd.DataFrame(columns, index=wide.index)
    missing = matrix.isna().any(axis=1)
    excluded = pd.DataFrame(
        {
            "area_code": matrix.index[missing],
            "reason": [
                "missing " + ", ".join(matrix.columns[matrix.loc[code].isna()])
                for code in matrix.index[missing]
            ],
        }
    )
    matrix = matrix[~missing]
    if "region_code" in rows.columns:
        region = rows.drop_duplicates("area_code").set_index("area_code")["region_code"]
        matrix["region_code"] = region.reindex(matrix.index)
    return matrix, excluded


def select_variables(
    matrix: pd.DataFrame, threshold: float = COLLINEAR_THRESHOLD
) -> tuple[list[str], pd.DataFrame]:
    """Keep variables in priority order, dropping those near-collinear with one already kept.

    Args:
        matrix: Areas x numeric variables (columns in priority order); ``region_code`` ignored.
        threshold: Absolute Pearson correlation above which the later variable is dropped.

    Returns:
        (kept, dropped): kept column names and a frame ``variable, correlated_with, correlation``
        (constant variables are dropped too, with ``correlated_with`` "constant").
    """
    if not 0 < threshold < 1:
        raise StatisticsInputError(f"threshold {threshold!r} must be between 0 and 1")
    numeric = [c for c in matrix.columns if c != "region_code"]
    corr = matrix[numeric].corr()
    kept: list[str] = []
    dropped = []
    for variable in numeric:
        if not matrix[variable].std(ddof=0) > 0:
            dropped.append((variable, "constant", np.nan))
            continue
        close = [(k, corr.loc[variable, k]) for k in kept if abs(corr.loc[variable, k]) > threshold]
        if close:
            dropped.append((variable, close[0][0], float(close[0][1])))
        else:
            kept.append(variable)
    return kept, pd.DataFrame(dropped, columns=["variable", "correlated_with", "correlation"])


def _z_scores(matrix: pd.DataFrame, variables: list[str]) -> np.ndarray:
    values = np.column_stack([_numeric(matrix, v, None) for v in variables])
    return (values - values.mean(axis=0)) / values.std(axis=0)


def _k_nearest(z: np.ndarray, codes: np.ndarray, k: int, scope: str) -> pd.DataFrame:
    if len(codes) < 2:
        return pd.DataFrame(columns=["area_code", "scope", "rank", "peer_code", "distance"])
    squared = (z**2).sum(axis=1)
    distance = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * z @ z.T, 0))
    np.fill_diagonal(distance, np.inf)
    take = min(k, len(codes) - 1)
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :take]
    rows = np.repeat(np.arange(len(codes)), take)
    return pd.DataFrame(
        {
            "area_code": codes[rows],
            "scope": scope,
            "rank": np.tile(np.arange(1, take + 1), len(codes)),
            "peer_code": codes[nearest.ravel()],
            "distance": distance[rows, nearest.ravel()],
        }
    )


def nearest_peers(
    matrix: pd.DataFrame,
    variables: Sequence[str] | None = None,
    k: int = K_PEERS,
    threshold: float = COLLINEAR_THRESHOLD,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each area's ``k`` most similar areas by Euclidean distance on z-scored needs variables.

    Method: nearest neighbours on standardised variables after dropping near-collinear ones
    (as CIPFA's nearest-neighbour model and open practice nearest-neighbour tools do); see the
    module docstring and ``docs/peers.md``.

    Args:
        matrix: From :func:`needs_matrix` (areas x variables, optional ``region_code``).
        variables: Variables to use; default all, after :func:`select_variables`.
        k: Peers per area.
        threshold: Collinearity threshold for :func:`select_variables`.

    Returns:
        (peers, method): ``peers`` has ``area_code, scope`` (``national`` or ``region``),
        ``rank, peer_code, distance``; ``method`` has ``variable, status`` (``used`` or
        ``dropped: …``) describing what the distance used.

    Raises:
        StatisticsInputError: Fewer than two areas, k below 1, no usable variable or
            non-numeric values.
    """
    if k < 1:
        raise StatisticsInputError("k must be at least 1 peer")
    if len(matrix) < 2:
        raise StatisticsInputError(
            f"similar areas need at least two areas with every needs variable; got {len(matrix)}"
        )
    if variables is None:
        used, dropped = select_variables(matrix, threshold)
    else:
        _require_columns(matrix, list(variables), "needs matrix")
        used, dropped = list(variables), pd.DataFrame(columns=["variable", "correlated_with"])
    if not used:
        raise StatisticsInputError("no needs variable varies between the areas; cannot rank peers")
    z = _z_scores(matrix, used)
    codes = matrix.index.to_numpy(dtype=object)
    parts = [_k_nearest(z, codes, k, "national")]
    if "region_code" in matrix.columns and matrix["region_code"].notna().any():
        regions = matrix["region_code"].to_numpy(dtype=object)
        for region in pd.unique(regions[pd.notna(regions)]):
            inside = regions == region
            parts.append(_k_nearest(z[inside], codes[inside], k, "region"))
    method = pd.DataFrame(
        [(v, "used") for v in used]
        + [
            (
                r.variable,
                "dropped: constant"
                if r.correlated_with == "constant"
                else f"dropped: |r| > {threshold:g} with {r.correlated_with}",
            )
            for r in dropped.itertuples()
        ],
        columns=["variable", "status"],
    )
    return pd.concat(parts, ignore_index=True), method


def similar_area_comparison(
    table: pd.DataFrame,
    peers: pd.DataFrame,
    area_code: Hashable,
    basis: str,
    scope: str = "national",
) -> pd.DataFrame:
    """The "similar areas" comparator for one area: peers' average and the area's position.

    Args:
        table: Tidy indicator table (``area_code, basis, indicator_id, value``, optional
            ``title, polarity``).
        peers: From :func:`nearest_peers`.
        area_code: The area.
        basis: Its basis.
        scope: ``national`` or ``region``.

    Returns:
        One row per indicator: ``indicator_id, value, peer_mean`` (simple mean of the peers'
        values: each peer counts once), ``peer_min, peer_max, peer_count, rank`` (1 = highest
        value among the area and its peers), ``of`` (how many ranked) and ``position`` in words
        ("3rd highest of 11").
    """
    _require_columns(table, ["area_code", "basis", "indicator_id", "value"], "table")
    _require_columns(peers, ["area_code", "scope", "peer_code"], "peers")
    codes = peers.loc[(peers["area_code"] == area_code) & (peers["scope"] == scope), "peer_code"]
    # arrays, not groupbys: a profile asks for this once per table of ~1,000 rows, where
    # pandas' per-call cost was most of a profile's similar-areas frames
    rows = table[table["basis"] == basis]
    areas = rows["area_code"].to_numpy(dtype=object)
    indicator = rows["indicator_id"].to_numpy(dtype=object)
    value = rows["value"].to_numpy(dtype=float, na_value=np.nan)
    is_own = areas == area_code
    own_ids, own_value = indicator[is_own], value[is_own]
    is_peer = pd.Index(codes.tolist()).get_indexer(areas) >= 0
    is_peer &= ~np.isnan(value)
    at = pd.Index(own_ids).get_indexer(indicator[is_peer])  # each peer row's own indicator
    keep = at >= 0
    at, peer_value = at[keep], value[is_peer][keep]
    n = len(own_ids)
    count = np.bincount(at, minlength=n)
    total = np.bincount(at, weights=peer_value, minlength=n)
    low, high = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(low, at, peer_value)
    np.maximum.at(high, at, peer_value)
    none = count == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(none, np.nan, total / count)
    higher = np.bincount(at, weights=peer_value > own_value[at], minlength=n).astype(int)
    rank = higher + 1
    has = ~np.isnan(own_value) & ~none
    out = pd.DataFrame(
        {
            "indicator_id": own_ids,
            "value": own_value,
            "peer_mean": mean,
            "peer_min": np.where(none, np.nan, low),
            "peer_max": np.where(none, np.nan, high),
            "peer_count": count.astype(int),
            "rank": np.where(has, rank, 0),
            "of": count.astype(int) + 1,
            "position": [
                f"{_ordinal(r)} highest of {c + 1}" if h else ""
                for r, c, h in zip(rank, count, has, strict=True)
            ],
        }
    )
    return out


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
