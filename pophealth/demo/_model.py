"""The synthetic world behind the demo files: LSOAs, areas, practices, registrations, staff.

Built once per (seed, scale) as plain numpy arrays and pandas tables; the writers in
``generator.py`` only format it into the publishers' file layouts. Relationships that the
profiles are meant to show are built in on purpose: deprivation is spatially clustered around
urban cores; deprived LSOAs are younger, report worse health and more disability; practices
serving them have fewer GPs per weighted patient (the inverse care law); patients register
mostly at practices near home (distance decay).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.spatial import cKDTree
from scipy.special import expit, ndtr, ndtri

from pophealth.demo import _geo

N_LSOA21_ENGLAND = 33_755  # national denominators for IoD2025 ranks
N_LSOA11_ENGLAND = 32_844  # national denominators for IoD2019 ranks

# Census TS007A five-year bands (0-4 … 80-84, 85+): a young, deprived urban profile and an
# older, affluent profile; each LSOA mixes the two according to its deprivation.
AGE_TEMPLATE_YOUNG = np.array(
    [7.5, 7.5, 7.0, 6.5, 8.0, 8.5, 8.5, 7.5, 6.5, 6.0, 5.8, 5.3, 4.3, 3.2, 2.8, 2.1, 1.6, 1.4]
)
AGE_TEMPLATE_OLD = np.array(
    [4.2, 5.2, 5.8, 5.3, 3.8, 4.2, 4.8, 5.4, 5.8, 6.2, 7.3, 7.8, 7.4, 6.6, 6.8, 5.0, 3.6, 3.5]
)
N_SINGLE_AGES = 96  # 0..94 and 95+


@dataclass(frozen=True)
class ScaleConfig:
    """Size parameters of one demo scale."""

    name: str
    hex_radius_m: float
    n_core_lsoa: int
    lsoa_pop_mean: float
    n_icb: int
    n_sicbl: int
    n_lad: int
    n_practices: int
    practices_per_pcn: float
    candidate_practices: int  # practices each LSOA's residents may register with
    decay_m: float  # distance-decay length of practice choice
    with_neighbour_ring: bool


SCALES: dict[str, ScaleConfig] = {
    "ics": ScaleConfig(
        name="ics",
        hex_radius_m=600.0,
        n_core_lsoa=640,
        lsoa_pop_mean=930.0,
        n_icb=1,
        n_sicbl=2,
        n_lad=4,
        n_practices=72,
        practices_per_pcn=5.0,
        candidate_practices=24,
        decay_m=1500.0,
        with_neighbour_ring=True,
    ),
    "england": ScaleConfig(
        name="england",
        hex_radius_m=1220.0,
        n_core_lsoa=N_LSOA21_ENGLAND,
        lsoa_pop_mean=1790.0,
        n_icb=42,
        n_sicbl=106,
        n_lad=300,
        n_practices=6300,
        practices_per_pcn=5.0,
        candidate_practices=40,
        decay_m=2200.0,
        with_neighbour_ring=False,
    ),
    # a coarse synthetic rest of England written beside the demo ICS, so that demo profiles
    # have an England comparator: 40 ICBs in 7 regions on big cells (one per ~12 real LSOAs)
    "rest": ScaleConfig(
        name="rest",
        hex_radius_m=6000.0,
        n_core_lsoa=1200,
        lsoa_pop_mean=1790.0,
        n_icb=40,
        n_sicbl=40,
        n_lad=80,
        n_practices=160,
        practices_per_pcn=4.0,
        candidate_practices=8,
        decay_m=12000.0,
        with_neighbour_ring=False,
    ),
}

#: ICBs of the demo ICS (the ICS and its neighbouring ring) kept by ``prepare`` in the demo
DEMO_SYSTEMS = ("E54000999", "E54000998")

# the demo practice that moves PCN leaves its old PCN on this date (ePCN yyyymmdd)
MOVE_END_DATE = "20250331"
MOVE_START_DATE = "20250401"

LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O, as in ODS-style codes
DEMO_LAD_NAMES = ["Demoton", "Demoford", "Demobury", "Demoley", "Demochester", "Demowick"]
PCN_WORDS = [
    "CENTRAL",
    "NORTH",
    "SOUTH",
    "EAST",
    "WEST",
    "RIVERSIDE",
    "VALLEY",
    "HILLS",
    "PARK",
    "BRIDGE",
    "MOOR",
    "GATE",
]
PRACTICE_WORDS = [
    "HIGH STREET",
    "PARK VIEW",
    "STATION ROAD",
    "MARKET SQUARE",
    "CHURCH LANE",
    "RIVERSIDE",
    "ELM TREE",
    "OAKWOOD",
    "MILL LANE",
    "VICTORIA",
    "ALBERT ROAD",
    "CASTLE",
    "BROOKSIDE",
    "HILLTOP",
    "MEADOWS",
    "ABBEY",
    "KINGSWAY",
    "QUEENS",
    "NORTHGATE",
    "SOUTHFIELD",
]
PRACTICE_SUFFIXES = [
    "SURGERY",
    "MEDICAL CENTRE",
    "MEDICAL PRACTICE",
    "HEALTH CENTRE",
    "GROUP PRACTICE",
]


@dataclass
class DemoWorld:
    """All synthetic entities, as tables keyed by their codes."""

    config: ScaleConfig
    lsoa: pd.DataFrame  # one row per LSOA 2021 (core + neighbour ring)
    lsoa_geometry: np.ndarray  # shapely polygons aligned with ``lsoa``
    age_bands: np.ndarray  # (n_lsoa, 18) census residents by five-year band
    practices: pd.DataFrame
    pcns: pd.DataFrame
    memberships: pd.DataFrame  # ePCN core partner rows (current and ended)
    registrations: pd.DataFrame  # practice_code, lsoa_code, patients (incl. CLOSED, W01, outside)
    single_age: np.ndarray  # (n_practices, 2, 96) registered patients, sex 0=male 1=female
    areas: dict[str, pd.DataFrame] = field(default_factory=dict)


def _codes(prefix: str, start: int, n: int, width: int) -> np.ndarray:
    return np.array([f"{prefix}{start + i:0{width}d}" for i in range(n)], dtype=object)


def _sicbl_ods_codes(n: int) -> list[str]:
    if n <= 3:
        return ["99X", "99Y", "99W"][:n]
    return [f"{90 + i // len(LETTERS)}{LETTERS[i % len(LETTERS)]}" for i in range(n)]


def _icb_ods_codes(n: int) -> list[str]:
    return [f"Q{a}{b}" for a in "ZYX" for b in reversed(LETTERS)][:n]


def _unique_ranks(q: np.ndarray, n_national: int) -> np.ndarray:
    """National ranks (1 = most deprived) from national deprivation quantiles, no ties."""
    order = np.argsort(q, kind="stable")
    raw = np.clip(np.ceil(q[order] * n_national), 1, n_national).astype(np.int64)
    # strictly increasing along the sorted order, then pulled back under the ceiling
    raw = np.maximum.accumulate(raw - np.arange(len(raw))) + np.arange(len(raw))
    overflow = max(0, int(raw[-1]) - n_national)
    raw = raw - overflow
    ranks = np.empty_like(raw)
    ranks[order] = raw
    return ranks


def national_rank_decile(
    z_national: np.ndarray, n_national: int, exact: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Rank and decile among all LSOAs in England for a standard-normal deprivation latent.

    Args:
        z_national: deprivation on the national standard-normal scale (higher = more deprived).
        n_national: number of LSOAs nationally (the rank denominator).
        exact: True when ``z_national`` covers every LSOA in England (ranks are then an exact
            ordering); False for a subset (ranks come from the national normal quantile).
    """
    if exact:
        order = np.argsort(-z_national, kind="stable")
        ranks = np.empty(len(z_national), dtype=np.int64)
        ranks[order] = np.arange(1, len(z_national) + 1)
        n_national = len(z_national)
    else:
        ranks = _unique_ranks(ndtr(-z_national), n_national)
    deciles = np.ceil(ranks * 10.0 / n_national).astype(np.int64).clip(1, 10)
    return ranks, deciles


def _build_lsoas(cfg: ScaleConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """LSOA cells, areas (LAD, sub-ICB, ICB, region) and the deprivation latent."""
    r = cfg.hex_radius_m
    if cfg.name == "ics":
        cx, cy = 445_000.0, 335_000.0
        half = 19_000.0
        pts = _geo.hex_centres(cx - half, cy - half, cx + half, cy + half, r)
        rel = pts - [cx, cy]
        theta = np.arctan2(rel[:, 1], rel[:, 0])
        phase = rng.uniform(0, 2 * np.pi)
        wobble = 1.0 + 0.10 * np.sin(3 * theta + phase) + 0.05 * np.cos(5 * theta)
        dist_scaled = np.hypot(rel[:, 0], rel[:, 1]) / wobble
        order = np.argsort(dist_scaled, kind="stable")
        core_r = dist_scaled[order[cfg.n_core_lsoa - 1]] + 1e-6
        in_core = dist_scaled <= core_r
        in_ring = (~in_core) & (dist_scaled <= core_r + 2.2 * r * 1.5)
        keep = in_core | in_ring
        pts, in_core, dist_out = pts[keep], in_core[keep], (dist_scaled - core_r)[keep]
    else:
        outline = shapely.Polygon(_geo.ENGLAND_OUTLINE_BNG)
        x0, y0, x1, y1 = outline.bounds
        pts = _geo.hex_centres(x0, y0, x1, y1, r)
        inside = shapely.contains_xy(outline, pts[:, 0], pts[:, 1])
        pts = pts[inside]
        if len(pts) < cfg.n_core_lsoa:
            raise RuntimeError("hexagon radius too large for the England outline")
        # trim the cells nearest the coast so exactly n_core_lsoa remain and still tile
        depth = shapely.distance(outline.exterior, shapely.points(pts))
        keep = np.sort(np.argsort(-depth, kind="stable")[: cfg.n_core_lsoa])
        pts = pts[keep]
        in_core = np.ones(len(pts), dtype=bool)
        dist_out = np.zeros(len(pts))

    n = len(pts)
    core_idx = np.flatnonzero(in_core)
    core_pts = pts[core_idx]

    # nested areas inside the core: LAD ⊂ sub-ICB ⊂ ICB ⊂ region
    lad_core = _geo.kmeans_labels(core_pts, cfg.n_lad, rng)
    n_lad = lad_core.max() + 1
    lad_centres = np.array([core_pts[lad_core == k].mean(axis=0) for k in range(n_lad)])
    if cfg.name == "ics":
        sicbl_of_lad = (lad_centres[:, 0] > np.median(lad_centres[:, 0])).astype(np.int64)
        icb_of_sicbl = np.zeros(2, dtype=np.int64)
        region_of_icb = np.zeros(1, dtype=np.int64)
    else:
        sicbl_of_lad = _geo.kmeans_labels(lad_centres, cfg.n_sicbl, rng)
        sicbl_centres = np.array(
            [lad_centres[sicbl_of_lad == k].mean(axis=0) for k in range(sicbl_of_lad.max() + 1)]
        )
        icb_of_sicbl = _geo.kmeans_labels(sicbl_centres, cfg.n_icb, rng)
        icb_centres = np.array(
            [sicbl_centres[icb_of_sicbl == k].mean(axis=0) for k in range(icb_of_sicbl.max() + 1)]
        )
        region_of_icb = _geo.kmeans_labels(icb_centres, 7, rng)

    lad = np.full(n, -1, dtype=np.int64)
    lad[core_idx] = lad_core
    if cfg.with_neighbour_ring:
        lad[~in_core] = n_lad  # the neighbouring ICB's single LAD
        sicbl_of_lad = np.append(sicbl_of_lad, sicbl_of_lad.max() + 1)
        icb_of_sicbl = np.append(icb_of_sicbl, icb_of_sicbl.max() + 1)
        region_of_icb = np.append(region_of_icb, 0)
    sicbl = sicbl_of_lad[lad]
    icb = icb_of_sicbl[sicbl]
    region = region_of_icb[icb]

    # deprivation: urban cores + smooth field + noise, then put on the national normal scale
    if cfg.name == "ics":
        lad_pts = np.array([pts[lad == k].mean(axis=0) for k in range(2)])
        bump_centres = np.vstack([pts[core_idx].mean(axis=0) * 0.7 + lad_pts[0] * 0.3, lad_pts[1]])
        urban = _geo.gaussian_bumps(
            pts, bump_centres, np.array([5000.0, 3000.0]), np.array([1.0, 0.6])
        )
        length = 6000.0
    else:
        n_cities = 70
        city_idx = rng.choice(n, size=n_cities, replace=False)
        widths = rng.uniform(4000.0, 15000.0, size=n_cities)
        urban = _geo.gaussian_bumps(pts, pts[city_idx], widths, rng.uniform(0.4, 1.0, n_cities))
        length = 60000.0
    urban = np.clip(urban, 0.0, 1.2)
    latent = 1.6 * urban + 0.6 * _geo.smooth_field(pts, rng, length) + 0.45 * rng.normal(size=n)
    z = ndtri((np.argsort(np.argsort(latent, kind="stable"), kind="stable") + 0.5) / n)
    # The demo ICS leans deprived (~30% of LSOAs in national deciles 1-2); England is the nation.
    z_national = 1.1 * z + 0.25 if cfg.name == "ics" else z

    lsoa = pd.DataFrame(
        {
            "x": pts[:, 0],
            "y": pts[:, 1],
            "in_core": in_core,
            "dist_out": dist_out,
            "lad": lad,
            "sicbl": sicbl,
            "icb": icb,
            "region": region,
            "urban": urban,
            "z": z_national,
        }
    )
    # codes in spatial order within LAD, named "<LAD name> <MSOA number><letter>"
    lsoa = lsoa.sort_values(["lad", "y", "x"], kind="stable").reset_index(drop=True)
    lsoa["lsoa_code"] = _codes("E01", 100001, len(lsoa), 6)
    within = lsoa.groupby("lad").cumcount().to_numpy()
    lsoa["msoa_no"] = within // 5 + 1
    lsoa["lsoa_letter"] = np.array(list("ABCDE"))[within % 5]
    return lsoa, _geo.hex_polygons(lsoa[["x", "y"]].to_numpy(), r)


def _area_tables(cfg: ScaleConfig, lsoa: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Names and codes of LADs, sub-ICB locations, ICBs and regions."""
    n_lad = int(lsoa["lad"].max()) + 1
    n_sicbl = int(lsoa["sicbl"].max()) + 1
    n_icb = int(lsoa["icb"].max()) + 1
    n_region = int(lsoa["region"].max()) + 1
    if cfg.name == "ics":
        lad_names = DEMO_LAD_NAMES[: n_lad - 1] + ["Demo Neighbourshire"]
        icb_names = ["Demo", "Demo Neighbour"]
        icb_ons = ["E54000999", "E54000998"]
        sicbl_ods = _sicbl_ods_codes(n_sicbl)
        region_names = ["Demo Region"]
    else:
        lad_names = [f"Demo District {i + 1:03d}" for i in range(n_lad)]
        icb_names = [f"Demo Area {i + 1:02d}" for i in range(n_icb)]
        icb_ons = list(_codes("E54000", 901, n_icb, 3))
        sicbl_ods = _sicbl_ods_codes(n_sicbl)
        region_names = [f"Demo Region {i + 1}" for i in range(n_region)]
    lad_first = lsoa.drop_duplicates("lad").set_index("lad").sort_index()
    lads = pd.DataFrame(
        {
            "lad_code": _codes("E06000", 901, n_lad, 3),
            "lad_name": lad_names,
            "sicbl": lad_first["sicbl"].to_numpy(),
        }
    )
    sicbl_first = lsoa.drop_duplicates("sicbl").set_index("sicbl").sort_index()
    icb_ods = _icb_ods_codes(n_icb)
    sicbls = pd.DataFrame(
        {
            "sicbl_code": _codes("E38000", 901, n_sicbl, 3),
            "sicbl_ods": sicbl_ods,
            "icb": sicbl_first["icb"].to_numpy(),
        }
    )
    sicbls["sicbl_name"] = [
        f"NHS {icb_names[i]} ICB - {ods}"
        for i, ods in zip(sicbls["icb"], sicbls["sicbl_ods"], strict=True)
    ]
    icb_first = lsoa.drop_duplicates("icb").set_index("icb").sort_index()
    icbs = pd.DataFrame(
        {
            "icb_code": icb_ons,
            "icb_ods": icb_ods,
            "icb_name": [f"NHS {nm} Integrated Care Board" for nm in icb_names],
            "region": icb_first["region"].to_numpy(),
        }
    )
    regions = pd.DataFrame(
        {
            "region_code": _codes("E40000", 901, n_region, 3),
            "region_ods": [f"Y9{i + 1}" if n_region > 1 else "Y99" for i in range(n_region)],
            "region_name": region_names,
        }
    )
    return {"lad": lads, "sicbl": sicbls, "icb": icbs, "region": regions}


def _lsoa_population(lsoa: pd.DataFrame, cfg: ScaleConfig, rng: np.random.Generator) -> np.ndarray:
    """Residents by census five-year band; deprived LSOAs are younger."""
    n = len(lsoa)
    pop = np.clip(
        rng.normal(cfg.lsoa_pop_mean, 0.15 * cfg.lsoa_pop_mean, n), 0.55 * cfg.lsoa_pop_mean, None
    )
    mix = ndtr(0.8 * lsoa["z"].to_numpy() + 0.45 * rng.normal(size=n))[:, None]
    young = AGE_TEMPLATE_YOUNG / AGE_TEMPLATE_YOUNG.sum()
    old = AGE_TEMPLATE_OLD / AGE_TEMPLATE_OLD.sum()
    probs = mix * young + (1 - mix) * old
    probs *= rng.gamma(150.0, 1.0 / 150.0, size=probs.shape)  # local idiosyncrasy
    probs /= probs.sum(axis=1, keepdims=True)
    return rng.multinomial(np.round(pop).astype(np.int64), probs)


def _place_practices(
    lsoa: pd.DataFrame, cfg: ScaleConfig, rng: np.random.Generator
) -> pd.DataFrame:
    core = lsoa.index[lsoa["in_core"]].to_numpy()
    weight = 1.0 + 1.5 * lsoa.loc[core, "urban"].to_numpy()
    site = np.sort(rng.choice(core, size=cfg.n_practices, replace=False, p=weight / weight.sum()))
    jitter = rng.uniform(-0.4, 0.4, size=(cfg.n_practices, 2)) * cfg.hex_radius_m
    prac = pd.DataFrame(
        {
            "x": lsoa.loc[site, "x"].to_numpy() + jitter[:, 0],
            "y": lsoa.loc[site, "y"].to_numpy() + jitter[:, 1],
            "home_lsoa": site,
            "lad": lsoa.loc[site, "lad"].to_numpy(),
            "sicbl": lsoa.loc[site, "sicbl"].to_numpy(),
            "icb": lsoa.loc[site, "icb"].to_numpy(),
            "region": lsoa.loc[site, "region"].to_numpy(),
            "attract": rng.lognormal(0.0, 0.55, size=cfg.n_practices),
        }
    )
    prac = prac.sort_values(["sicbl", "y", "x"], kind="stable").reset_index(drop=True)
    prac["practice_code"] = _codes("Y9", 1, len(prac), 4)
    word = rng.integers(len(PRACTICE_WORDS), size=len(prac))
    suffix = rng.integers(len(PRACTICE_SUFFIXES), size=len(prac))
    prac["practice_name"] = [
        f"DEMO {PRACTICE_WORDS[w]} {PRACTICE_SUFFIXES[s]}"
        for w, s in zip(word, suffix, strict=True)
    ]
    inward = rng.integers(0, 10, len(prac)), rng.integers(len(LETTERS), size=(len(prac), 2))
    prac["postcode"] = [
        f"DM{lad + 1} {d}{LETTERS[a]}{LETTERS[b]}"
        for lad, d, (a, b) in zip(prac["lad"], inward[0], inward[1], strict=True)
    ]
    return prac


def _assign_pcns(
    prac: pd.DataFrame, cfg: ScaleConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """PCNs as compact clusters of practices within each sub-ICB, plus ePCN history rows."""
    labels = np.full(len(prac), -1, dtype=np.int64)
    next_label = 0
    for s in sorted(prac["sicbl"].unique()):
        idx = np.flatnonzero(prac["sicbl"].to_numpy() == s)
        k = max(1, int(round(len(idx) / cfg.practices_per_pcn)))
        local = _geo.kmeans_labels(prac.loc[idx, ["x", "y"]].to_numpy(), k, rng)
        labels[idx] = local + next_label
        next_label += local.max() + 1
    n_pcn = next_label
    prac = prac.copy()
    prac["pcn"] = labels

    pcns = pd.DataFrame({"pcn": np.arange(n_pcn)})
    first = prac.drop_duplicates("pcn").set_index("pcn").sort_index()
    pcns["sicbl"] = first["sicbl"].to_numpy()
    pcns["lad"] = first["lad"].to_numpy()
    pcns["pcn_code"] = _codes("U9", 1, n_pcn, 4)
    names = []
    used: set[str] = set()
    lad_counter: dict[int, int] = {}
    for lad in pcns["lad"]:
        k = lad_counter.get(lad, 0)
        lad_counter[lad] = k + 1
        stem = DEMO_LAD_NAMES[lad].upper() if cfg.name == "ics" else f"DISTRICT {lad + 1:03d}"
        name = f"DEMO {stem} {PCN_WORDS[k % len(PCN_WORDS)]} PCN"
        if name in used:
            name = f"DEMO {stem} {PCN_WORDS[k % len(PCN_WORDS)]} {k + 1} PCN"
        used.add(name)
        names.append(name)
    pcns["pcn_name"] = names
    pcns["close_date"] = ""

    # current memberships, with a few practices unaligned (no PCN)
    n_unaligned = 1 if cfg.name == "ics" else max(1, len(prac) // 300)
    unaligned = rng.choice(len(prac), size=n_unaligned, replace=False)
    prac["pcn"] = prac["pcn"].where(~np.isin(np.arange(len(prac)), unaligned), -1)
    start = np.where(rng.random(len(prac)) < 0.85, "20190701", "20200401").astype(object)
    rows = [
        pd.DataFrame({"practice": np.flatnonzero(prac["pcn"] >= 0)}).assign(
            pcn=lambda d: prac["pcn"].to_numpy()[d["practice"]],
            start_date=lambda d: start[d["practice"]],
            end_date=None,
        )
    ]
    members = rows[0]

    # closed PCNs: their former practices now sit in another PCN (ended row + current row)
    n_closed = 1 if cfg.name == "ics" else max(1, n_pcn // 30)
    aligned = np.flatnonzero(prac["pcn"].to_numpy() >= 0)
    movers = rng.choice(aligned, size=2 * n_closed + n_closed, replace=False)
    closed_rows = []
    history = []
    for i in range(n_closed):
        code = n_pcn + i
        p0 = int(prac.loc[movers[2 * i], "pcn"])
        closed_rows.append(
            {
                "pcn": code,
                "sicbl": pcns.loc[p0, "sicbl"],
                "lad": pcns.loc[p0, "lad"],
                "pcn_code": f"U9{n_pcn + i + 1:04d}",
                "pcn_name": f"DEMO FORMER {pcns.loc[p0, 'pcn_name'].removeprefix('DEMO ')}",
                "close_date": "20230331",
            }
        )
        for m in movers[2 * i : 2 * i + 2]:
            history.append(
                {"practice": m, "pcn": code, "start_date": "20190701", "end_date": "20230331"}
            )
            members.loc[members["practice"] == m, "start_date"] = "20230401"
    # a practice that moved between two open PCNs in April 2025, inside the demo's 12 monthly
    # releases, so the history shows a membership change
    for m in movers[2 * n_closed :]:
        current = int(prac.loc[m, "pcn"])
        same_sicbl = pcns.index[
            (pcns["sicbl"] == pcns.loc[current, "sicbl"]) & (pcns.index != current)
        ]
        old = int(same_sicbl[0]) if len(same_sicbl) else (current + 1) % n_pcn
        history.append(
            {"practice": m, "pcn": old, "start_date": "20190701", "end_date": MOVE_END_DATE}
        )
        members.loc[members["practice"] == m, "start_date"] = MOVE_START_DATE
    # unaligned practices left their PCN in 2024
    for m in unaligned:
        history.append(
            {"practice": m, "pcn": int(labels[m]), "start_date": "20190701", "end_date": "20240930"}
        )
    pcns = pd.concat([pcns, pd.DataFrame(closed_rows)], ignore_index=True)
    memberships = pd.concat([members, pd.DataFrame(history)], ignore_index=True)
    memberships = memberships.sort_values(["practice", "start_date"], kind="stable").reset_index(
        drop=True
    )
    return prac, pcns, memberships


def _register_patients(
    lsoa: pd.DataFrame,
    residents: np.ndarray,
    prac: pd.DataFrame,
    cfg: ScaleConfig,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Practice × LSOA registrations by a gravity model with distance decay."""
    n_lsoa = len(lsoa)
    k = min(cfg.candidate_practices, len(prac))
    dist, cand = cKDTree(prac[["x", "y"]].to_numpy()).query(lsoa[["x", "y"]].to_numpy(), k=k)
    weights = prac["attract"].to_numpy()[cand] * np.exp(-dist / cfg.decay_m)
    weights /= weights.sum(axis=1, keepdims=True)
    # ghost patients and list inflation: registered lists exceed residents by a few percent
    registered = np.round(residents.sum(axis=1) * rng.uniform(1.0, 1.08, n_lsoa)).astype(np.int64)
    # the neighbouring ICB's residents mostly register with their own practices (not in the demo)
    share_here = np.where(
        lsoa["in_core"].to_numpy(), 1.0, 0.35 * np.exp(-lsoa["dist_out"].to_numpy() / 1200.0)
    )
    registered = rng.binomial(registered, share_here)
    counts = rng.multinomial(registered, weights)
    rows, cols = np.nonzero(counts)
    return pd.DataFrame(
        {
            "practice": cand[rows, cols],
            "lsoa": rows,
            "patients": counts[rows, cols],
        }
    ).sort_values(["practice", "lsoa"], kind="stable", ignore_index=True)


def _odd_registrations(
    reg: pd.DataFrame, prac: pd.DataFrame, cfg: ScaleConfig, rng: np.random.Generator
) -> pd.DataFrame:
    """CLOSED (invalid postcode), Welsh and outside-the-loaded-data LSOA rows."""
    totals = np.bincount(reg["practice"], weights=reg["patients"], minlength=len(prac))
    extra = []
    has_closed = rng.random(len(prac)) < 0.9
    closed_n = np.maximum(1, rng.binomial(totals.astype(np.int64), 0.004))
    for p in np.flatnonzero(has_closed):
        extra.append((p, "CLOSED", int(closed_n[p])))
    # border practices in the west register a few Welsh residents
    n_border = 2 if cfg.name == "ics" else 12
    for p in np.argsort(prac["x"].to_numpy(), kind="stable")[:n_border]:
        for j in rng.choice(900, size=int(rng.integers(2, 6)), replace=False):
            extra.append((p, f"W0190{j + 1:04d}", int(rng.integers(1, 40))))
    if cfg.name == "ics":
        # people who moved away: valid-format English LSOAs absent from every other file
        for p in np.flatnonzero(rng.random(len(prac)) < 0.3):
            for j in rng.choice(50, size=int(rng.integers(1, 3)), replace=False):
                extra.append((p, f"E0119{9000 + j + 1:04d}", int(rng.integers(1, 6))))
    odd = pd.DataFrame(extra, columns=["practice", "lsoa_code", "patients"])
    return odd


def _single_age(
    reg: pd.DataFrame, age_bands: np.ndarray, totals: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Registered patients by sex and single year of age, consistent with the list totals."""
    n_prac = len(totals)
    mat = coo_matrix(
        (
            reg["patients"].to_numpy(dtype=float),
            (reg["practice"].to_numpy(), reg["lsoa"].to_numpy()),
        ),
        shape=(n_prac, age_bands.shape[0]),
    ).tocsr()
    band_share = age_bands / np.maximum(age_bands.sum(axis=1, keepdims=True), 1)
    prac_bands = np.asarray(mat @ band_share)
    prac_bands /= np.maximum(prac_bands.sum(axis=1, keepdims=True), 1e-12)
    # five-year band -> single years: flat within 0-84, 85+ spread 85..94 and 95+ declining
    single = np.repeat(prac_bands[:, :17] / 5.0, 5, axis=1)
    tail = np.array([0.16, 0.145, 0.13, 0.115, 0.1, 0.085, 0.07, 0.055, 0.045, 0.035, 0.06])
    single = np.hstack([single, prac_bands[:, 17:18] * tail / tail.sum()])
    ages = np.arange(N_SINGLE_AGES)
    male_share = np.clip(
        0.512 - 0.0006 * ages - 0.00004 * np.maximum(ages - 60, 0) ** 2, 0.22, None
    )
    probs = np.stack([single * male_share, single * (1 - male_share)], axis=1).reshape(n_prac, -1)
    probs *= rng.gamma(400.0, 1.0 / 400.0, size=probs.shape)
    probs /= probs.sum(axis=1, keepdims=True)
    return rng.multinomial(totals.astype(np.int64), probs).reshape(n_prac, 2, N_SINGLE_AGES)


# Carr-Hill style age-sex workload weights by single year (relative to a man aged 15-44).
def _carr_hill_weights() -> np.ndarray:
    ages = np.arange(N_SINGLE_AGES)
    male = np.select(
        [ages < 5, ages < 15, ages < 45, ages < 65, ages < 75, ages < 85],
        [2.35, 0.95, 1.0, 1.55, 2.45, 3.15],
        3.65,
    )
    female = np.select(
        [ages < 5, ages < 15, ages < 45, ages < 65, ages < 75, ages < 85],
        [2.25, 0.95, 1.75, 1.85, 2.5, 3.3],
        3.85,
    )
    return np.stack([male, female])


def build_world(seed: int, scale: str, overrides: dict | None = None) -> DemoWorld:
    """Build the synthetic world for ``seed`` and ``scale`` (``"ics"`` or ``"england"``).

    Args:
        seed: random seed.
        scale: a key of ``SCALES``.
        overrides: replacement ``ScaleConfig`` fields (used by tests to shrink a scale).
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    cfg = dataclasses.replace(SCALES[scale], **(overrides or {}))
    rng = np.random.default_rng(seed)
    lsoa, geometry = _build_lsoas(cfg, rng)
    areas = _area_tables(cfg, lsoa)
    age_bands = _lsoa_population(lsoa, cfg, rng)
    prac = _place_practices(lsoa, cfg, rng)
    prac, pcns, memberships = _assign_pcns(prac, cfg, rng)

    reg = _register_patients(lsoa, age_bands, prac, cfg, rng)
    totals_lsoa = np.bincount(reg["practice"], weights=reg["patients"], minlength=len(prac))
    if (totals_lsoa == 0).any():
        raise RuntimeError("a demo practice has no patients; adjust the scale parameters")
    odd = _odd_registrations(reg, prac, cfg, rng)
    totals = totals_lsoa + np.bincount(
        odd["practice"], weights=odd["patients"], minlength=len(prac)
    )
    totals = totals.astype(np.int64)
    single = _single_age(reg, age_bands, totals, rng)

    # practice deprivation and age mix, as its patients' LSOAs give them
    z_prac = (
        np.bincount(
            reg["practice"],
            weights=reg["patients"] * lsoa["z"].to_numpy()[reg["lsoa"]],
            minlength=len(prac),
        )
        / totals_lsoa
    )
    prac["z"] = z_prac
    prac["registered"] = totals
    prac["male"] = single[:, 0, :].sum(axis=1)
    prac["female"] = single[:, 1, :].sum(axis=1)
    need = (single * _carr_hill_weights()[None]).sum(axis=(1, 2)) / totals
    # morbidity and list-turnover adjustments rise with deprivation
    need *= np.exp(0.07 * z_prac + 0.03 * rng.normal(size=len(prac)))
    prac["weighted"] = totals * need / need.mean() * 1.0

    # inverse care law: fewer GPs per weighted patient where need is greatest
    gp_per_1000w = 0.60 * np.exp(-0.13 * z_prac + 0.14 * rng.normal(size=len(prac)))
    prac["gp_fte"] = prac["weighted"] / 1000.0 * gp_per_1000w
    prac["nurse_fte"] = (
        prac["weighted"] / 1000.0 * 0.27 * np.exp(-0.06 * z_prac + 0.2 * rng.normal(size=len(prac)))
    )
    prac["dpc_fte"] = (
        prac["weighted"] / 1000.0 * 0.36 * np.exp(0.03 * z_prac + 0.25 * rng.normal(size=len(prac)))
    )
    prac["admin_fte"] = (
        prac["weighted"]
        / 1000.0
        * 1.15
        * np.exp(-0.04 * z_prac + 0.15 * rng.normal(size=len(prac)))
    )
    prac["trainee_share"] = rng.beta(1.2, 8.0, len(prac)) * (rng.random(len(prac)) < 0.6)
    prac["locum_share"] = rng.beta(1.3, 14.0, len(prac))

    lsoa_codes = lsoa["lsoa_code"].to_numpy()
    registrations = pd.concat(
        [
            pd.DataFrame(
                {
                    "practice": reg["practice"],
                    "lsoa_code": lsoa_codes[reg["lsoa"].to_numpy()],
                    "patients": reg["patients"],
                }
            ),
            odd,
        ],
        ignore_index=True,
    )
    # each practice's rows: LSOAs in code order, CLOSED last (as extracts list them)
    registrations["sort_key"] = registrations["lsoa_code"].replace({"CLOSED": "ZZZZZZZZZ"})
    registrations = registrations.sort_values(
        ["practice", "sort_key"], kind="stable", ignore_index=True
    )
    registrations = registrations.drop(columns="sort_key")
    registrations["practice_code"] = prac["practice_code"].to_numpy()[registrations["practice"]]

    return DemoWorld(
        config=cfg,
        lsoa=lsoa,
        lsoa_geometry=geometry,
        age_bands=age_bands,
        practices=prac,
        pcns=pcns,
        memberships=memberships,
        registrations=registrations,
        single_age=single,
        areas=areas,
    )


def domain_scores(
    z: np.ndarray, rng: np.random.Generator
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """IoD domain latents (national normal scale) and scores, correlated with the IMD latent."""
    specs = {
        # name: (correlation with IMD, score transform)
        "imd": (1.0, lambda v: 17.0 * np.exp(0.58 * v - 0.03 * v**2)),
        "income": (0.95, lambda v: expit(-2.1 + 0.75 * v)),
        "employment": (0.9, lambda v: expit(-2.4 + 0.6 * v)),
        "education": (0.8, lambda v: 16.0 * np.exp(0.7 * v - 0.05 * v**2)),
        "health": (0.85, lambda v: 0.95 * v),
        "crime": (0.6, lambda v: 0.9 * v),
        "barriers": (0.2, lambda v: 22.0 + 9.0 * v),
        "living_env": (0.5, lambda v: 20.0 * np.exp(0.5 * v)),
        "idaci": (0.9, lambda v: expit(-1.7 + 0.8 * v)),
        "idaopi": (0.85, lambda v: expit(-1.8 + 0.7 * v)),
        "cyp": (0.75, lambda v: 0.9 * v),
        "adult_skills": (0.75, lambda v: 0.9 * v),
        "geo_barriers": (-0.3, lambda v: 0.8 * v),
        "wider_barriers": (0.5, lambda v: 0.9 * v),
        "indoors": (0.4, lambda v: 0.9 * v),
        "outdoors": (0.5, lambda v: 0.9 * v),
    }
    out = {}
    for name, (rho, transform) in specs.items():
        latent = z if rho == 1.0 else rho * z + np.sqrt(1 - rho**2) * rng.normal(size=len(z))
        out[name] = (latent, np.round(transform(latent), 3))
    return out


def census_tables(
    world: DemoWorld, rng: np.random.Generator
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Census 2021 LSOA counts per table: (total, categories) with cell-key-like noise on totals."""
    lsoa = world.lsoa
    n = len(lsoa)
    z = lsoa["z"].to_numpy()
    urban = lsoa["urban"].to_numpy()
    ages = world.age_bands
    pop = ages.sum(axis=1)
    share65 = ages[:, 13:].sum(axis=1) / pop

    def perturbed(total: np.ndarray) -> np.ndarray:
        return np.maximum(total + rng.integers(-3, 4, size=len(total)), 0)

    def split(total: np.ndarray, probs: np.ndarray) -> np.ndarray:
        probs = np.clip(probs, 1e-4, None)
        return rng.multinomial(total, probs / probs.sum(axis=1, keepdims=True))

    tables = {}
    t_age = perturbed(pop)
    tables["ts007a"] = (t_age, split(t_age, ages / pop[:, None]))

    h = 0.6 * z + 5.0 * (share65 - 0.18) + 0.15 * rng.normal(size=n)
    health = np.column_stack(
        [0.50 - 0.09 * h, 0.33 - 0.01 * h, 0.12 + 0.05 * h, 0.04 + 0.035 * h, 0.012 + 0.012 * h]
    )
    t = perturbed(pop)
    tables["ts037"] = (t, split(t, np.clip(health, 0.003, None)))

    disabled = np.clip(
        0.17 + 0.035 * z + 0.5 * (share65 - 0.18) + 0.015 * rng.normal(size=n), 0.06, 0.4
    )
    lot = np.clip(0.45 + 0.04 * z, 0.3, 0.65)
    ltc = 0.085 + 0.01 * rng.normal(size=n)
    t = perturbed(pop)
    dis = split(
        t,
        np.column_stack(
            [disabled * lot, disabled * (1 - lot), (1 - disabled) * ltc, (1 - disabled) * (1 - ltc)]
        ),
    )
    tables["ts038"] = (t, dis)

    nonwhite = np.clip(0.03 + 0.30 * urban + 0.05 * z + 0.04 * rng.normal(size=n), 0.01, 0.85)
    # detailed groups in Nomis order: Asian (5), Black (3), Mixed (4), White (5), Other (2)
    minority_mix = np.array(
        [0.06, 0.03, 0.16, 0.13, 0.07, 0.12, 0.04, 0.03, 0.035, 0.025, 0.04, 0.03, 0.06, 0.12]
    )
    white_mix = np.array([0.88, 0.01, 0.002, 0.003, 0.105])
    mm = minority_mix[None, :] * rng.gamma(30.0, 1.0 / 30.0, size=(n, len(minority_mix)))
    mm /= mm.sum(axis=1, keepdims=True)
    probs = np.hstack(
        [
            nonwhite[:, None] * mm[:, :12],
            (1 - nonwhite)[:, None] * white_mix,
            nonwhite[:, None] * mm[:, 12:],
        ]
    )
    t = perturbed(pop)
    tables["ts021"] = (t, split(t, probs))

    households = np.round(pop / rng.uniform(2.2, 2.5, n)).astype(np.int64)
    k = np.arange(5)
    dep = np.array([0.48, 0.33, 0.15, 0.035, 0.005])[None, :] * np.exp(0.35 * z[:, None] * k)
    t = perturbed(households)
    tables["ts011"] = (t, split(t, dep))

    owned_out = np.clip(0.33 - 0.06 * z + 0.8 * (share65 - 0.18), 0.05, 0.7)
    mortgage = np.clip(0.30 - 0.05 * z, 0.05, 0.5)
    social = np.clip(0.17 + 0.09 * z, 0.01, 0.7)
    private = np.clip(0.20 + 0.03 * z + 0.1 * urban, 0.03, 0.6)
    tenure = np.column_stack(
        [
            owned_out,
            mortgage,
            np.full(n, 0.006),
            social * 0.45,
            social * 0.55,
            private * 0.92,
            private * 0.08,
            np.full(n, 0.006),
        ]
    )
    t = perturbed(households)
    tables["ts054"] = (t, split(t, tenure))
    return tables


def _with_prefix(codes: pd.Series | np.ndarray, old: str, new: str) -> np.ndarray:
    """Replace the leading ``old`` of every code by ``new`` (other codes unchanged)."""
    values = np.asarray(codes, dtype=object)
    return np.array(
        [new + c[len(old) :] if isinstance(c, str) and c.startswith(old) else c for c in values],
        dtype=object,
    )


def build_rest_of_england(seed: int, ics_world: DemoWorld) -> DemoWorld:
    """A coarse synthetic rest of England whose codes do not collide with the demo ICS's.

    The demo ICS's region (``ics_world``'s only region) becomes one of the seven regions here,
    so the demo ICB's parent region holds other ICBs too, and England holds them all.

    Args:
        seed: the demo seed (the rest of England uses its own stream derived from it).
        ics_world: the demo ICS world, whose region code, ODS code and name are reused.
    """
    world = build_world(seed + 7919, "rest")
    lsoa = world.lsoa.copy()
    lsoa["lsoa_code"] = _with_prefix(lsoa["lsoa_code"], "E011", "E013")
    areas = {name: frame.copy() for name, frame in world.areas.items()}
    areas["lad"]["lad_code"] = _with_prefix(areas["lad"]["lad_code"], "E06", "E07")
    areas["sicbl"]["sicbl_code"] = _with_prefix(areas["sicbl"]["sicbl_code"], "E38000", "E38001")
    n_icb = len(areas["icb"])
    taken = set(ics_world.areas["icb"]["icb_ods"])
    areas["icb"]["icb_ods"] = [c for c in _icb_ods_codes(n_icb + len(taken)) if c not in taken][
        :n_icb
    ]
    regions = areas["region"]
    regions["region_code"] = _with_prefix(regions["region_code"], "E40000", "E40001")
    own = ics_world.areas["region"].iloc[0]
    for column in ("region_code", "region_ods", "region_name"):
        regions.loc[0, column] = own[column]
    # letters, not numbers: each region's QOF achievement file is named from its name's letters
    regions.loc[1:, "region_name"] = [
        f"Demo Region {chr(ord('B') + i)}" for i in range(len(regions) - 1)
    ]
    practices = world.practices.copy()
    practices["practice_code"] = _with_prefix(practices["practice_code"], "Y9", "Y8")
    pcns = world.pcns.copy()
    pcns["pcn_code"] = _with_prefix(pcns["pcn_code"], "U9", "U8")
    registrations = world.registrations.copy()
    registrations["practice_code"] = _with_prefix(registrations["practice_code"], "Y9", "Y8")
    registrations["lsoa_code"] = _with_prefix(registrations["lsoa_code"], "E011", "E013")
    return dataclasses.replace(
        world,
        lsoa=lsoa,
        practices=practices,
        pcns=pcns,
        registrations=registrations,
        areas=areas,
    )
