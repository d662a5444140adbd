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
    rows = table[table["basis"] == basis]
    own = rows[rows["area_code"] == area_code].set_index("indicator_id")["value"]
    peer_rows = rows[rows["area_code"].isin(codes.tolist())].dropna(subset=["value"])
    grouped = peer_rows.groupby("indicator_id")["value"]
    out = pd.DataFrame(
        {
            "value": own,
            "peer_mean": grouped.mean(),
            "peer_min": grouped.min(),
            "peer_max": grouped.max(),
            "peer_count": grouped.count(),
        }
    ).reindex(own.index)
    out["peer_count"] = out["peer_count"].fillna(0).astype(int)
    higher = peer_rows.merge(own.rename("own"), left_on="indicator_id", right_index=True)
    n_higher = (higher["value"] > higher["own"]).groupby(higher["indicator_id"]).sum()
    out["rank"] = (n_higher.reindex(out.index).fillna(0) + 1).astype(int)
    out["of"] = out["peer_count"] + 1
    has = out["value"].notna() & (out["peer_count"] > 0)
    out["position"] = np.where(
        has,
        [f"{_ordinal(r)} highest of {n}" for r, n in zip(out["rank"], out["of"], strict=True)],
        "",
    )
    out.loc[~has, "rank"] = 0
    return out.reset_index().rename(columns={"index": "indicator_id"})


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
