"""Synthetic geography for the demo dataset: hexagonal LSOAs and nested areas.

Everything works on numpy arrays so that the England-scale dataset (33,755 LSOAs) builds in
seconds. Coordinates are British National Grid metres (EPSG:27700).
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.spatial import cKDTree

# A rough outline of England in British National Grid metres: enough to give the England-scale
# demo a familiar footprint, deliberately not a real boundary.
ENGLAND_OUTLINE_BNG: tuple[tuple[float, float], ...] = (
    (135000, 25000),
    (250000, 50000),
    (370000, 75000),
    (530000, 100000),
    (635000, 140000),
    (600000, 180000),
    (620000, 210000),
    (655000, 300000),
    (600000, 345000),
    (550000, 340000),
    (560000, 390000),
    (540000, 420000),
    (510000, 470000),
    (460000, 530000),
    (420000, 620000),
    (400000, 655000),
    (330000, 570000),
    (320000, 560000),
    (300000, 510000),
    (335000, 460000),
    (330000, 390000),
    (335000, 365000),
    (320000, 300000),
    (330000, 240000),
    (350000, 190000),
    (320000, 145000),
    (240000, 140000),
    (170000, 60000),
)


def hex_centres(x0: float, y0: float, x1: float, y1: float, radius: float) -> np.ndarray:
    """Centres of pointy-top hexagons (circumradius ``radius``) covering a rectangle.

    Returns:
        Array of shape (n, 2), ordered row by row from the south-west corner.
    """
    dx = np.sqrt(3.0) * radius
    dy = 1.5 * radius
    n_cols = int(np.ceil((x1 - x0) / dx)) + 1
    n_rows = int(np.ceil((y1 - y0) / dy)) + 1
    row, col = np.divmod(np.arange(n_rows * n_cols), n_cols)
    x = x0 + col * dx + (row % 2) * dx / 2.0
    y = y0 + row * dy
    return np.column_stack([x, y])


def hex_polygons(centres: np.ndarray, radius: float) -> np.ndarray:
    """Hexagon polygons around ``centres``; neighbours share vertices, so they tile exactly."""
    angles = np.deg2rad(30.0 + 60.0 * np.arange(7))  # 7th vertex closes the ring
    offsets = np.column_stack([np.cos(angles), np.sin(angles)]) * radius
    rings = np.round(centres[:, None, :] + offsets[None, :, :], 2)
    return shapely.polygons(rings)


def farthest_point_seeds(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` well-spread points (farthest-point sampling from a random start)."""
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = rng.integers(len(points))
    min_d2 = ((points - points[chosen[0]]) ** 2).sum(axis=1)
    for i in range(1, k):
        chosen[i] = int(np.argmax(min_d2))
        min_d2 = np.minimum(min_d2, ((points - points[chosen[i]]) ** 2).sum(axis=1))
    return chosen


def kmeans_labels(
    points: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 6
) -> np.ndarray:
    """Compact, roughly equal clusters: farthest-point seeds then a few Lloyd iterations.

    Returns:
        Labels 0..k'-1 (k' <= k; empty clusters are dropped and labels renumbered), ordered so
        that cluster 0 is the one whose centre is furthest south-west, for stable naming.
    """
    k = min(k, len(points))
    centres = points[farthest_point_seeds(points, k, rng)]
    labels = np.zeros(len(points), dtype=np.int64)
    for _ in range(iterations):
        labels = cKDTree(centres).query(points)[1]
        counts = np.bincount(labels, minlength=len(centres))
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, points)
        keep = counts > 0
        centres = sums[keep] / counts[keep, None]
        labels = cKDTree(centres).query(points)[1]
    order = np.lexsort((centres[:, 0], centres[:, 1]))  # south to north, then west to east
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[labels]


def smooth_field(points: np.ndarray, rng: np.random.Generator, length_scale: float) -> np.ndarray:
    """A smooth random surface (sum of random Fourier features), standardised to mean 0, sd 1."""
    n_features = 48
    freqs = rng.normal(0.0, 1.0 / length_scale, size=(n_features, 2))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=n_features)
    field = np.cos(points @ freqs.T + phases).sum(axis=1)
    return (field - field.mean()) / field.std()


def gaussian_bumps(
    points: np.ndarray, centres: np.ndarray, widths: np.ndarray, heights: np.ndarray
) -> np.ndarray:
    """Sum of isotropic Gaussian bumps (urban cores) evaluated at ``points``."""
    out = np.zeros(len(points))
    tree = cKDTree(points)
    for centre, width, height in zip(centres, widths, heights, strict=True):
        idx = tree.query_ball_point(centre, 4.0 * width)
        if idx:
            idx = np.asarray(idx)
            d2 = ((points[idx] - centre) ** 2).sum(axis=1)
            out[idx] += height * np.exp(-d2 / (2.0 * width**2))
    return out
