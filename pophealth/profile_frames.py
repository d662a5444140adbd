"""Chart-ready frames for one area's profile (pure functions of a loaded store).

Each area is described by *practice weights*: for a registered-basis area, 1 for each member
practice; for a resident-basis area, each practice's share of its list living in the area's
LSOAs. Age-sex pyramids, practice highlights and coverage all follow from those weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import orjson
import pandas as pd

from pophealth import (
    attribution,
    charts,
    geography,
    headline,
    indicators,
    prevalence,
    staffing,
    stats,
    trends,
)
from pophealth import peers as peer_areas
from pophealth._version import __version__
from pophealth.ages import AGE_BANDS
from pophealth.sources import workforce as src_workforce
from pophealth.store import ProfileStore, RowsByKey, records

SEX_LABEL = {"male": "male", "female": "female"}


@dataclass
class Profile:
    """Everything one area's profile shows: the indicator table and chart-ready frames."""

    area: dict
    indicators: pd.DataFrame
    spine: pd.DataFrame
    pyramid: pd.DataFrame
    deciles: pd.DataFrame
    map_values: pd.DataFrame
    map_geojson: dict | None
    practices: pd.DataFrame
    funnels: dict[str, dict]
    inverse_care: dict
    coverage: pd.DataFrame
    provenance: pd.DataFrame
    definitions: pd.DataFrame
    basis_comparison: pd.DataFrame
    headline: str
    notes: list[str] = field(default_factory=list)
    findings: list = field(default_factory=list)  # pophealth.headline.Finding, largest first
    synthetic: bool = False
    imd_release: str = "IoD2025"
    comparator: str = "England"
    # the whole team: staff groups vs fair share, system heatmap, data gaps, findings, roles
    team: pd.DataFrame = field(default_factory=pd.DataFrame)
    team_heatmap: pd.DataFrame = field(default_factory=pd.DataFrame)
    workforce_quality: pd.DataFrame = field(default_factory=pd.DataFrame)
    workforce_findings: list[dict] = field(default_factory=list)
    roles: pd.DataFrame = field(default_factory=pd.DataFrame)
    long_term_conditions: dict = field(default_factory=dict)
    #: Parent and child areas (``relation, level, area_code, area_name``) for page links.
    related: pd.DataFrame = field(default_factory=pd.DataFrame)
    similar: pd.DataFrame = field(default_factory=pd.DataFrame)
    similar_list: pd.DataFrame = field(default_factory=pd.DataFrame)
    similar_method: pd.DataFrame = field(default_factory=pd.DataFrame)
    similar_region_list: pd.DataFrame = field(default_factory=pd.DataFrame)
    similar_region: str = ""
    trends: dict = field(default_factory=dict)


def practice_weights(data: ProfileStore, area: dict) -> pd.Series:
    """Weight of each practice in the area (index practice_code)."""
    code = area["area_code"]
    if area["basis"] == "registered" or area["level"] == "england":
        codes = data.practice_members.get(code, np.array([], dtype=object))
        return pd.Series(1.0, index=pd.Index(codes, name="practice_code"))
    if not len(data.registrations):
        return pd.Series(dtype=float)
    return _sum_matched_rows(data, area, by="practice", weights="share")


def _sum_matched_rows(data: ProfileStore, area: dict, by: str, weights: str) -> pd.Series:
    """Sum a per-row weight of the area's matched registrations by practice or LSOA.

    Returns:
        Non-zero sums indexed by practice or LSOA code.
    """
    arrays = data.matched_arrays
    rows = _area_rows(data, area)
    codes = arrays[f"{by}_codes"]
    sums = np.bincount(arrays[by][rows], weights=arrays[weights][rows], minlength=len(codes))
    keep = sums > 0
    return pd.Series(sums[keep], index=codes[keep])


def area_lsoas(data: ProfileStore, area: dict) -> np.ndarray:
    """LSOAs of a resident-basis area."""
    return data.lsoa_members.get(area["area_code"], np.array([], dtype=object))


def _age_sex_shares(matrix: pd.DataFrame, weights: pd.Series) -> pd.Series:
    if not len(weights) or not len(matrix):
        return pd.Series(dtype=float)
    # the area's practices' rows only (a reindex to every practice cost more than the sum)
    at = matrix.index.get_indexer(weights.index)
    found = at >= 0
    w = np.nan_to_num(weights.to_numpy(dtype=float)[found])
    counts = pd.Series(w @ matrix.to_numpy(dtype=float)[at[found]], index=matrix.columns)
    total = counts.sum()
    return counts / total * 100 if total > 0 else counts * np.nan


def pyramid_frame(data: ProfileStore, area: dict, parent: dict | None) -> pd.DataFrame:
    """Age-sex pyramid: percent of the population in each band and sex (area/parent/all)."""
    matrix = data.age_sex_matrix
    present = set(matrix.columns.get_level_values("age_band"))
    bands = [b for b in AGE_BANDS if b in present]
    index = pd.MultiIndex.from_product([["male", "female"], bands], names=["sex", "age_band"])
    area_pct = _age_sex_shares(matrix, practice_weights(data, area)).reindex(index)
    parent_pct = (
        _age_sex_shares(matrix, practice_weights(data, parent)).reindex(index)
        if parent
        else pd.Series(np.nan, index=index)
    )
    # England's shares are the same for every profile
    all_pct = data.memo.get(("pyramid_england",), lambda: _england_age_sex(data, matrix, index))
    if parent and parent["level"] == "region":
        region = _national_row(data, parent["area_code"], "registered")
        if region is not None:
            counts = pd.Series(
                [region.get(f"age_{sex}_{band}", np.nan) for sex, band in index], index=index
            ).astype(float)
            parent_pct = counts / counts.sum() * 100
    frame = pd.DataFrame(
        {
            "area_pct": area_pct.to_numpy(),
            "parent_pct": parent_pct.to_numpy(),
            "england_pct": all_pct.to_numpy(),
        },
        index=index,
    ).reset_index()
    frame["age_band"] = frame["age_band"].str.replace("_", "-", regex=False)
    return frame[["age_band", "sex", "area_pct", "parent_pct", "england_pct"]]


def _england_age_sex(data: ProfileStore, matrix: pd.DataFrame, index: pd.MultiIndex) -> pd.Series:
    """England's percent in each sex and age band: the national files', else all loaded."""
    national = _national_row(data, geography.ALL_LOADED_CODE, "registered")
    if national is not None and any(c.startswith("age_") for c in national.index):
        # England from the national files (the store may hold only some ICBs)
        counts = pd.Series(
            [national.get(f"age_{sex}_{band}", np.nan) for sex, band in index], index=index
        ).astype(float)
        return counts / counts.sum() * 100
    every = pd.Series(1.0, index=matrix.index)
    return _age_sex_shares(matrix, every).reindex(index)


def _national_row(data: ProfileStore, code: str, basis: str) -> pd.Series | None:
    """England's or a region's row of the national table (from the national files)."""
    national = data.national
    if not len(national):
        return None
    rows = national[
        (national["area_code"] == code)
        & (national["basis"] == basis)
        & (national["imd"] == data.imd_release.year)
    ]
    return rows.iloc[0] if len(rows) else None


def _area_rows(data: ProfileStore, area: dict) -> np.ndarray | slice:
    """The matched registration rows belonging to the area's population, in row order.

    An index array (a slice for England): the rows of the area's practices (registered basis)
    or LSOAs (resident basis), looked up in a per-store index of rows by practice and by LSOA
    instead of testing all ~1.2 million rows for every area.
    """
    arrays = data.matched_arrays
    if area["level"] == "england":
        return slice(None)
    if area["basis"] == "registered":
        by, members = "practice", data.practice_members.get(area["area_code"], [])
    else:
        by, members = "lsoa", area_lsoas(data, area)
    wanted = arrays[f"{by}_codes"].get_indexer(members)
    order, starts = data.memo.get(
        ("matched_rows_by", by), lambda: _rows_by(arrays[by], len(arrays[f"{by}_codes"]))
    )
    wanted = wanted[wanted >= 0]
    if not len(wanted):
        return np.array([], dtype=np.intp)
    rows = np.concatenate([order[starts[i] : starts[i + 1]] for i in wanted])
    rows.sort()  # row order: sums add up exactly as over the whole table
    return rows


def _rows_by(codes: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers grouped by code number, and where each code's rows start (CSR layout)."""
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=n_codes))])
    return order, starts


def _lsoa_population(data: ProfileStore, area: dict) -> pd.Series:
    """Population of the area by LSOA: registered patients, or residents without registrations."""
    if len(data.registrations):
        return _sum_matched_rows(data, area, by="lsoa", weights="patients")
    lsoa = data.lsoa
    if area["level"] != "england":
        lsoa = lsoa[lsoa["lsoa21_code"].isin(area_lsoas(data, area))]
    weight = attribution._resident_population(lsoa)
    return pd.Series(weight, index=lsoa["lsoa21_code"].to_numpy())


def decile_frame(
    data: ProfileStore, area: dict, parent: dict | None, everyone: dict
) -> pd.DataFrame:
    """Percent of the population by national IMD decile for the area, parent and all."""
    lsoa = data.memo.get(("lsoa_by_code",), lambda: data.lsoa.set_index("lsoa21_code"))
    decile = lsoa[data.imd_release.column("decile")]

    def shares(a: dict | None) -> pd.Series:
        if a is None:
            return pd.Series(np.nan, index=range(1, 11))
        national = (
            _national_row(data, a["area_code"], a["basis"])
            if a["level"] in ("england", "region")
            else None
        )
        if national is not None and "decile_1" in national.index:
            by = pd.Series([national[f"decile_{d}"] for d in range(1, 11)], index=range(1, 11))
            total = by.sum()
            return by / total * 100 if total > 0 else by * np.nan
        if len(data.registrations):
            arrays = data.matched_arrays
            rows = _area_rows(data, a)
            counts = np.bincount(
                arrays["decile"][rows], weights=arrays["patients"][rows], minlength=11
            )
            by = pd.Series(counts[1:11], index=range(1, 11))
        else:
            pop = _lsoa_population(data, a)
            by = pop.groupby(pop.index.map(decile)).sum().reindex(range(1, 11), fill_value=0.0)
        total = by.sum()
        return by / total * 100 if total > 0 else by * np.nan

    return pd.DataFrame(
        {
            "imd_decile": range(1, 11),
            "area_pct": shares(area).to_numpy(),
            "parent_pct": shares(parent).to_numpy(),
            "england_pct": shares(everyone).to_numpy(),
        }
    )


def map_frames(data: ProfileStore, area: dict) -> tuple[pd.DataFrame, dict | None]:
    """LSOAs where the area's population lives, with IMD, and their boundaries as GeoJSON."""
    pop = _lsoa_population(data, area)
    total = pop.sum()
    if area["basis"] == "registered" and total > 0:
        # leave out a long tail of LSOAs with a handful of patients (kept in every count)
        keep = pop[(pop >= 5) & (pop >= 0.0005 * total)]
    else:
        keep = pop
    lsoa = data.memo.get(("lsoa_by_code",), lambda: data.lsoa.set_index("lsoa21_code"))
    geometries = data.lsoa_geometries
    codes = (
        [c for c in keep.index.astype(str) if c in geometries] if geometries else list(keep.index)
    )
    keep = keep.reindex(codes)
    values = pd.DataFrame(
        {
            "lsoa21_code": codes,
            "imd_decile": keep.index.map(lsoa[data.imd_release.column("decile")]),
            "imd_score": keep.index.map(lsoa[data.imd_release.column("score")]),
            "patients": keep.to_numpy(),
        }
    )
    if not geometries:
        return values, None
    features = ",".join(
        f'{{"type":"Feature","properties":{{"lsoa21_code":"{code}"}},'
        f'"geometry":{geometries[code]}}}'
        for code in codes
    )
    collection = orjson.loads('{"type":"FeatureCollection","features":[' + features + "]}")
    collection[charts.DISPLAY_READY] = True  # data.lsoa_geometries are in display form
    return values, collection


def workforce_frame(data: ProfileStore, area: dict) -> pd.DataFrame:
    """Every practice in the area's system (all practices for a system), area highlighted."""
    practices = data.practice_indicators
    scope = practices
    system = area.get("system_code")
    if area["level"] != "system" and isinstance(system, str):
        in_system = data.practices.loc[data.practices["icb_code"] == system, "practice_code"]
        scope = practices[practices["practice_code"].isin(in_system)]
    weights = practice_weights(data, area)
    threshold = 0.999 if area["basis"] == "registered" else 0.25
    highlight = set(weights[weights >= threshold].index)
    out = scope.dropna(subset=["imd_score", "gp_fte_per_10k_weighted"])
    out = out.assign(in_area=out["practice_code"].isin(highlight))
    return out[list(charts.WORKFORCE_VS_NEED_COLUMNS)].reset_index(drop=True)


def funnel_frames(data: ProfileStore, area: dict) -> dict[str, dict]:
    """Funnel plots: peers in the system (neighbourhoods, or places of the same type)."""
    system = area["area_code"] if area["level"] == "system" else area.get("system_code")
    place_type = area["area_type"] if area["level"] == "place" else None
    return data.memo.get(("funnels", system, place_type), lambda: _system_funnels(data, area))


def _system_funnels(data: ProfileStore, area: dict) -> dict[str, dict]:
    groups = data.indicator_groups
    empty = data.indicator_table.iloc[:0]
    system = area["area_code"] if area["level"] == "system" else area.get("system_code")
    peers = groups.get(("neighbourhood", None, system), empty)
    place_type = area["area_type"] if area["level"] == "place" else "lad"
    places = groups.get(("place", place_type, system), empty)
    # a place is compared with its peer places when there are enough to make a funnel; a
    # system without neighbourhoods (resident-only data) shows its places
    if places["area_code"].nunique() >= 3 and (area["level"] == "place" or peers.empty):
        peers = places
    system_rows = groups.get(("area", system), empty)
    if len(peers):
        system_rows = system_rows[system_rows["basis"] == peers["basis"].iloc[0]]
    # only the columns a funnel uses: each indicator's rows are taken ten times over
    peers = peers[["indicator_id", "area_code", "area_name", "denominator", "value"]]
    system_rows = system_rows[["indicator_id", "comparator_value", "value"]]
    meta = indicators.load_catalogue().set_index("id")
    out: dict[str, dict] = {}
    for indicator in funnel_indicators(meta):
        points = peers[peers["indicator_id"] == indicator].dropna(subset=["value"])
        points = points[points["denominator"] > 0]
        target_row = system_rows[system_rows["indicator_id"] == indicator]
        if len(points) < 3 or target_row.empty:
            continue
        # the target is England's value (the comparator every profile names), else the system's
        england = target_row["comparator_value"].iloc[0]
        target = float(england if pd.notna(england) else target_row["value"].iloc[0])
        spec = meta.loc[indicator]
        out[indicator] = funnel(points, target, spec)
    return out


def funnel_indicators(catalogue: pd.DataFrame) -> list[str]:
    """Indicators drawn as funnel plots: key outcomes with an interval (``funnel: true``).

    Only outcomes (not context, not supply), and of the 40+ outcomes only the short list the
    catalogue flags (``funnel: true``: Census health, the Core20PLUS5 registers' prevalence and
    recorded vs expected, the multimorbidity burden), so a profile stays readable and quick.
    """
    fits = (catalogue["kind"] == "outcome") & catalogue["statistic"].isin(["proportion", "rate"])
    if "funnel" in catalogue:
        fits &= catalogue["funnel"].fillna(False).astype(bool)
    return catalogue.index[fits].tolist()


def funnel(points: pd.DataFrame, target: float, spec: pd.Series) -> dict:
    """One funnel: peers, the target and control limits over the peers' denominators.

    Limits are drawn from just below the smallest to just above the largest denominator, so
    the axes fit the data. When the peers are overdispersed (Spiegelhalter 2005) the limits
    are the random-effects ones and the funnel says so.
    """
    multiplier = float(spec["multiplier"])
    statistic = "proportion" if spec["statistic"] == "proportion" else "rate"
    low = max(1.0, float(points["denominator"].min()) * 0.8)
    # 40 points draw the limits as smooth curves at a panel's size (100 doubled the JSON)
    grid = stats.funnel_plot_points(
        40, float(points["denominator"].max()) * 1.1, min_denominator=np.floor(low)
    )
    dispersion = stats.funnel_overdispersion(
        points["value"], points["denominator"], target, statistic, multiplier
    )
    if dispersion["overdispersed"]:
        limits = stats.funnel_limits_random_effects(
            grid, target, dispersion["tau2"], statistic, multiplier=multiplier
        )
        method = (
            f"Peers overdispersed (phi {dispersion['phi']:.1f} over {dispersion['n']} areas): "
            "limits widened by a random-effects variance (Spiegelhalter 2005)."
        )
    elif statistic == "proportion":
        limits = stats.funnel_limits_proportion(grid, target, multiplier=multiplier)
        method = "Exact binomial limits (Spiegelhalter 2005); peers not overdispersed."
    else:
        limits = stats.funnel_limits_rate(grid, target, multiplier=multiplier)
        method = "Exact Poisson limits (Spiegelhalter 2005); peers not overdispersed."
    return {
        "title": spec["title"],
        "unit": spec["unit"],
        "target": target,
        "points": points[["area_code", "area_name", "denominator", "value"]].reset_index(drop=True),
        "limits": limits,
        "dispersion": dispersion,
        "method": method,
    }


def inverse_care_frames(data: ProfileStore, area: dict, rows: pd.DataFrame) -> dict:
    """Inverse care law view and fair share of GP FTE.

    GP FTE per 10,000 weighted patients by practice IMD quintile (the area's system), SII,
    and the area's fair share of GP FTE at its parent's and England's rates.
    """
    system = area["area_code"] if area["level"] == "system" else area.get("system_code")
    if area["level"] == "england":
        system = None
    result = dict(data.memo.get(("inverse_care", system), lambda: _quintile_view(data, system)))
    result["fair_share"] = fair_share_frame(rows)
    return result


def fair_share_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """An area's GP FTE against its fair share at its parent's and the comparator's rates.

    Args:
        rows: The area's indicator rows (``indicator_id, numerator, denominator,
            parent_value, comparator_value``).

    Returns:
        ``benchmark, actual_fte, fair_share_fte, gap_fte`` (empty without weighted GP FTE);
        computed by :func:`pophealth.staffing.fair_share`, as the supply ratings are.
    """
    columns = ["benchmark", "actual_fte", "fair_share_fte", "gap_fte"]
    fte = rows[rows["indicator_id"] == "gp_fte_per_10k_weighted"]
    if not len(fte) or not fte["denominator"].iloc[0] > 0:
        return pd.DataFrame(columns=columns)
    r = fte.iloc[0]
    shares = []
    for label, rate in (
        ("Parent rate", r["parent_value"]),
        ("Comparator rate", r["comparator_value"]),
    ):
        if pd.notna(rate):
            fair, gap, _ = staffing.fair_share(
                [r["numerator"]], [r["denominator"]], [rate], "rate", 10_000
            )
            shares.append((label, float(r["numerator"]), float(fair[0]), float(gap[0])))
    return pd.DataFrame(shares, columns=columns)


#: Staff group -> the practice-staff supply indicators whose headline finding speaks for it.
PRACTICE_STAFF_IDS: dict[str, frozenset[str]] = {
    "gp": frozenset({"gp_fte_per_10k", "gp_fte_per_10k_weighted"}),
    "nurse": frozenset({"nurse_fte_per_10k"}),
    "dpc": frozenset({"dpc_fte_per_10k"}),
}


def team_findings(
    area: dict, team: pd.DataFrame, comparator: str, covered: frozenset[str] = frozenset()
) -> list[headline.Finding]:
    """The whole team's fair-share shortfalls beyond the supply threshold, as headline findings.

    From :func:`pophealth.staffing.largest_gap_findings` (practice + PCN-employed staff by
    group). A shortfall smaller than :data:`pophealth.indicators.FAIR_SHARE_THRESHOLD_PCT` is
    "about fair share" (as in the ratings) and stays out; so does a group whose practice-staff
    indicator (:data:`PRACTICE_STAFF_IDS`) is among ``covered`` (already a finding), so a
    headline never says the same shortage twice.
    """
    found = []
    for f in workforce_findings(area, team, comparator):
        if abs(f["gap_pct"]) < indicators.FAIR_SHARE_THRESHOLD_PCT:
            continue
        if PRACTICE_STAFF_IDS.get(f["group"], frozenset()) & covered:
            continue
        found.append(
            headline.Finding(
                "supply",
                f"team_{f['group']}_fte_per_10k_weighted",
                "fewer than fair share",
                abs(f["gap_pct"]) / 100,
                f["text"][0].upper() + f["text"][1:] + ".",
            )
        )
    return found


def profile_headline(
    area: dict, rows: pd.DataFrame, comparator: str, team: pd.DataFrame | None = None
) -> tuple[str, list[headline.Finding]]:
    """The area's headline and findings: indicators, recorded-vs-expected gaps and the team.

    Recorded-vs-expected gaps are their own findings (condition, ratio and missing patients);
    with the whole team loaded, its fair-share shortfalls by staff group (practice + PCN
    staff, :func:`team_findings`) join the practice-staff findings.
    """
    replaced = frozenset(prevalence.oe_indicator_ids())
    extra = list(prevalence.gap_findings(rows, area["area_name"]))
    if team is not None and len(team):
        covered = frozenset(
            f.indicator_id
            for f in headline.findings_from_indicators(rows, comparator)
            if f.kind == "supply"
        )
        extra += team_findings(area, team, comparator, covered)
    return headline.profile_headline(area, rows, comparator, extra=extra, replaced=replaced)


def headline_text(area: dict, rows: pd.DataFrame, comparator: str) -> str:
    """The plain-English headline of an area from its indicator rows (see profile_headline)."""
    return profile_headline(area, rows, comparator)[0]


def _quintile_view(data: ProfileStore, system: str | None) -> dict:
    """GP FTE per 10,000 weighted patients by practice IMD quintile in a system, with SII."""
    practices = data.practice_indicators
    in_system = data.practices.loc[data.practices["icb_code"] == system, "practice_code"]
    scope = practices[practices["practice_code"].isin(in_system)]
    if system is None or scope.empty:
        scope = practices
    scope = scope.dropna(subset=["imd_quintile", "gp_fte", "weighted_patients"])
    result: dict = {"quintiles": pd.DataFrame(), "sii_text": "", "fair_share": pd.DataFrame()}
    if len(scope):
        q = scope.groupby("imd_quintile", as_index=False)[["gp_fte", "weighted_patients"]].sum()
        try:
            q = stats.rate_byar(
                q, "gp_fte", "weighted_patients", multiplier=10_000, confidence=(0.95,)
            )
        except stats.StatisticsInputError:
            # a quintile with under 10 FTE has no exact Poisson interval (FTE is not a
            # whole count): rates without limits, and the SII says it has none
            rates = q["gp_fte"] / q["weighted_patients"].where(q["weighted_patients"] > 0)
            q = q.assign(value=rates * 10_000, lower_95=np.nan, upper_95=np.nan)
        q = q.rename(
            columns={"imd_quintile": "quintile", "lower_95": "lower_ci", "upper_95": "upper_ci"}
        )
        q["quintile"] = q["quintile"].astype(int)
        result["quintiles"] = q[
            ["quintile", "value", "lower_ci", "upper_ci", "weighted_patients", "gp_fte"]
        ]
        if len(q) >= 3:
            sii = stats.slope_index_of_inequality(
                q,
                value="value",
                population="weighted_patients",
                group="quintile",
                lower="lower_ci",
                upper="upper_ci",
                confidence=0.95,
                seed=1,
            )
            r = sii.iloc[0]
            result["sii"] = r.to_dict()
            interval = (
                f"95% CI {r['sii_lower_95']:+.2f} to {r['sii_upper_95']:+.2f}"
                if pd.notna(r["sii_lower_95"])
                else "no interval: a quintile has under 10 GP FTE"
            )
            result["sii_text"] = (
                f"Slope index of inequality: {r['sii']:+.2f} GP FTE per 10,000 weighted patients "
                f"from most to least deprived ({interval})."
            )
    return result


def coverage_frame(data: ProfileStore, area: dict) -> pd.DataFrame:
    """Where the area's registered patients live: matched LSOAs, CLOSED, unknown, outside."""
    regs = data.registrations
    if not len(regs):
        return pd.DataFrame(columns=["category", "patients", "pct"])
    if area["basis"] == "registered" or area["level"] == "england":
        by_practice = data.practice_status_counts
        if area["level"] != "england":
            by_practice = by_practice.reindex(practice_weights(data, area).index).fillna(0)
        counts = by_practice.sum()
    else:
        counts = pd.Series({"matched": _lsoa_population(data, area).sum()}, dtype=float)
    counts = counts.reindex(list(attribution.LSOA_STATUS_LABELS), fill_value=0)
    total = counts.sum()
    return pd.DataFrame(
        {
            "category": [attribution.LSOA_STATUS_LABELS[k] for k in counts.index],
            "patients": counts.to_numpy().astype(int),
            "pct": (counts / total * 100).to_numpy() if total else np.nan,
        }
    )


def provenance_frame(data: ProfileStore) -> pd.DataFrame:
    """Every source file used: release, checksum and rows."""
    rows = []
    for source, info in sorted(data.manifest.get("sources", {}).items()):
        for f in info.get("files", []):
            rows.append((source, f["name"], info.get("release", ""), f["sha256"], info.get("rows")))
    return pd.DataFrame(rows, columns=["source", "file", "release", "sha256", "rows"])


def definitions_frame(ids) -> pd.DataFrame:
    """Catalogue definitions of the indicators shown."""
    cat = indicators.load_catalogue()
    cat = cat[cat["id"].isin(set(ids))].rename(columns={"id": "indicator_id"})
    return cat[
        [
            "indicator_id",
            "title",
            "definition",
            "numerator_source",
            "denominator_source",
            "polarity",
            "statistic",
            "unit",
        ]
    ].reset_index(drop=True)


def workforce_coverage_notes(data: ProfileStore, area: dict) -> list[str]:
    """Practices of a registered-basis area left out of the workforce rates, and why.

    Practices without a workforce record (or with ``NA`` FTE) drop out of both the numerator
    and the denominator of every FTE rate; practices without a weighted list drop out of the
    weighted rates. Profiles say how many and how many patients, so nothing is silently lost.
    """
    practices = data.practices
    if area["basis"] != "registered" or not len(practices) or "gp_fte" not in practices:
        return []
    members = practices[practices["practice_code"].isin(practice_weights(data, area).index)]
    notes = []
    release = (data.manifest.get("sources", {}).get("workforce") or {}).get("release", "")
    no_fte = members["gp_fte"].isna()
    in_release = f" in the {release} release" if release else ""
    if no_fte.any():
        notes.append(
            f"{int(no_fte.sum())} of the area's {len(members)} practices "
            f"({members.loc[no_fte, 'registered_patients'].sum():,.0f} registered patients) "
            f"{'has' if no_fte.sum() == 1 else 'have'} no GP workforce figures{in_release}; "
            "they are left out of the workforce rates (numerator and denominator)."
        )
    if "weighted_patients" in members:
        no_weighted = members["weighted_patients"].isna() & ~no_fte
        if no_weighted.any():
            notes.append(
                f"{int(no_weighted.sum())} practice(s) with workforce figures "
                f"({members.loc[no_weighted, 'registered_patients'].sum():,.0f} registered "
                f"patients) {'has' if no_weighted.sum() == 1 else 'have'} no weighted list; they "
                "are left out of the per-weighted-patient rates."
            )
    return notes


def related_areas(register: pd.DataFrame, area: dict) -> pd.DataFrame:
    """The area's parent and children (``relation, level, area_code, area_name``).

    A neighbourhood's parent is its place; a place's children are the neighbourhoods whose
    parent it is; a system's children are its places and neighbourhoods. The England row
    (all loaded areas) is nobody's linked parent: it has no profile page.
    """
    columns = ["relation", "level", "area_code", "area_name"]
    frames = []
    parent = register[
        (register["area_code"] == area.get("parent_code"))
        & register["level"].isin(["neighbourhood", "place", "system"])
    ]
    if len(parent):
        frames.append(parent.head(1).assign(relation="parent"))
    if area["level"] == "place":
        children = register[
            (register["level"] == "neighbourhood") & (register["parent_code"] == area["area_code"])
        ]
        frames.append(children.assign(relation="child"))
    elif area["level"] == "system":
        children = register[
            register["level"].isin(["place", "neighbourhood"])
            & (register["system_code"] == area["area_code"])
        ]
        frames.append(children.assign(relation="child"))
    if not frames:
        return pd.DataFrame(columns=columns)
    related = pd.concat(frames, ignore_index=True)[columns]
    return related.drop_duplicates(["relation", "level", "area_code"]).reset_index(drop=True)


# -- the whole team (issue13) ------------------------------------------------------------
def _team_gaps(data: ProfileStore, rows: pd.DataFrame, basis: str) -> pd.DataFrame:
    """Fair-share gaps by staff group for the given indicator rows against England.

    England's team rows (area ``ALL``) hold the national files' values (``national.parquet``,
    the synthetic rest of England in the demo); only stores without it fall back to the sum of
    what was loaded, and :attr:`ProfileStore.comparator` then says so.
    """
    everyone = data.indicator_groups.get(("area", geography.ALL_LOADED_CODE))
    if everyone is None or rows.empty:
        return pd.DataFrame()
    area_fte = staffing.group_fte_from_indicators(rows[rows["basis"] == basis])
    # England's team is the same for every profile
    bench = data.memo.get(
        ("team_benchmark", basis),
        lambda: staffing.group_fte_from_indicators(everyone[everyone["basis"] == basis]),
    )
    if area_fte.empty or bench.empty:
        return pd.DataFrame()
    return staffing.fair_share_gaps(area_fte, bench[["group", "fte", "weighted_patients"]])


def team_frame(data: ProfileStore, area: dict, rows: pd.DataFrame) -> pd.DataFrame:
    """The area's team by staff group against the comparator's rate and its fair share.

    FTE per 10,000 weighted patients (practice and PCN parts), the comparator's rate, the fair
    share and gap, and the skill mix against the comparator's. Empty when the store has no PCN
    workforce (the team indicators are not built).
    """
    gaps = _team_gaps(data, rows, area["basis"])
    if gaps.empty:
        return pd.DataFrame()
    gaps = gaps.set_index("group")
    by_code = data.memo.get(
        ("team_practices_by_code",), lambda: data.team_practices.set_index("practice_code")
    )
    weights = practice_weights(data, area)
    members = by_code.reindex(weights.index)
    w = weights.to_numpy(dtype=float)
    by = rows.set_index("indicator_id")
    out = []
    for group, label in [*staffing.STAFF_GROUPS.items(), (staffing.WHOLE_TEAM, "Whole team")]:
        if group not in gaps.index:
            continue
        g = gaps.loc[group]
        groups = list(staffing.STAFF_GROUPS) if group == staffing.WHOLE_TEAM else [group]
        own = sum(
            np.nansum(members[staffing.PRACTICE_GROUP_FTE[x]].to_numpy(dtype=float) * w)
            for x in groups
        )
        pcn = sum(
            np.nansum(members[staffing.pcn_fte_column(x)].to_numpy(dtype=float) * w) for x in groups
        )
        pcn_fraction = pcn / (own + pcn) if own + pcn > 0 else np.nan
        mix_id = f"skill_mix_{group}"
        out.append(
            {
                "group": group,
                "label": label,
                "actual_fte": g["actual_fte"],
                "fte_per_10k": g["fte_per_10k"],
                "practice_per_10k": g["fte_per_10k"] * (1 - pcn_fraction),
                "pcn_per_10k": g["fte_per_10k"] * pcn_fraction,
                "pcn_share_pct": pcn_fraction * 100,
                "benchmark_per_10k": g["benchmark_per_10k"],
                "fair_share_fte": g["fair_share_fte"],
                "gap_fte": g["gap_fte"],
                "gap_pct": g["gap_pct"],
                "skill_mix_pct": by.loc[mix_id, "value"] if mix_id in by.index else np.nan,
                "england_mix_pct": by.loc[mix_id, "comparator_value"]
                if mix_id in by.index
                else np.nan,
            }
        )
    return pd.DataFrame(out)


def team_heatmap_frame(data: ProfileStore, area: dict) -> pd.DataFrame:
    """System profiles: every neighbourhood of the system x staff group, sorted by need.

    Returns:
        ``area_code, area_name, imd_score, group, group_label, fte_per_10k,
        benchmark_per_10k, gap_fte, gap_pct`` (FTE per 10,000 weighted patients, gap to the fair
        share at the comparator's rate), most deprived neighbourhood first; empty without PCN
        workforce or neighbourhoods.
    """
    if area["level"] != "system":
        return pd.DataFrame()
    peers = data.indicator_groups.get(("neighbourhood", None, area["area_code"]))
    if peers is None or peers.empty:
        return pd.DataFrame()
    gaps = _team_gaps(data, peers, "registered")
    if gaps.empty:
        return gaps
    names = peers.drop_duplicates("area_code").set_index("area_code")["area_name"]
    imd = peers[peers["indicator_id"] == "imd_score"].set_index("area_code")["value"]
    labels = {**staffing.STAFF_GROUPS, staffing.WHOLE_TEAM: "Whole team"}
    out = gaps.assign(
        area_name=gaps["area_code"].map(names),
        imd_score=gaps["area_code"].map(imd).astype(float),
        group_label=gaps["group"].map(labels),
    )
    out["group_order"] = out["group"].map({g: i for i, g in enumerate(labels)})
    out = out.sort_values(["imd_score", "area_code", "group_order"], ascending=[False, True, True])
    return out[
        [
            "area_code",
            "area_name",
            "imd_score",
            "group",
            "group_label",
            "fte_per_10k",
            "benchmark_per_10k",
            "gap_fte",
            "gap_pct",
        ]
    ].reset_index(drop=True)


def workforce_quality_frame(data: ProfileStore, area: dict) -> pd.DataFrame:
    """Practices (and neighbourhoods) of the area whose workforce data are missing or estimated.

    Returns:
        ``issue, practices, registered_patients, neighbourhoods`` - per staff group, practices
        with no figures and practices whose figures include publisher estimates (the
        ``*_SOURCE`` flags), practices whose PCN made no workforce return, and PCN staff that no
        practice in the data could take (``practices`` then counts PCNs, patients 0).
    """
    practices = data.team_practices
    if not len(practices) or "gp_fte" not in practices:
        return pd.DataFrame(columns=["issue", "practices", "registered_patients", "neighbourhoods"])
    codes = practice_weights(data, area).index
    members = practices[practices["practice_code"].isin(codes)]
    hood_of = data.memo.get(("neighbourhood_of_practice",), lambda: _neighbourhood_of(data))
    # each practice's neighbourhood and patients once, then a mask per issue
    hoods = members["practice_code"].map(hood_of).to_numpy(dtype=object)
    patients = members["registered_patients"].to_numpy(dtype=float, na_value=np.nan)
    rows = []

    def add(issue: str, mask: pd.Series) -> None:
        chosen = mask.to_numpy(dtype=bool)
        named = [h for h in hoods[chosen] if not pd.isna(h)]
        rows.append(
            {
                "issue": issue,
                "practices": int(chosen.sum()),
                "registered_patients": float(np.nansum(patients[chosen])),
                "neighbourhoods": len(set(named)),
            }
        )

    for group, column in staffing.PRACTICE_GROUP_FTE.items():
        label = staffing.STAFF_GROUPS[group]
        add(f"{label}: no figures", members[column].isna())
        source = f"{group}_source"
        if source in members:
            estimated = members[source].isin(src_workforce.ESTIMATED_SOURCES)
            add(f"{label}: figures include publisher estimates", estimated)
    if "pcn_status" in members:
        add("PCN made no workforce return", members["pcn_status"] == staffing.PCN_STATUS_NO_RETURN)
    if data.pcn_apportionment is not None:
        left = data.pcn_apportionment[1]
        if area["level"] in ("system", "england") and len(left):
            rows.append(
                {
                    "issue": f"PCN staff with no practice in the data ({left['fte'].sum():,.1f} "
                    "FTE, left out)",
                    "practices": int(len(left)),
                    "registered_patients": 0.0,
                    "neighbourhoods": 0,
                }
            )
    return pd.DataFrame(rows)


def _neighbourhood_of(data: ProfileStore) -> pd.Series:
    """Neighbourhood code by practice code (one store-wide look-up shared by every profile)."""
    hood_of = data.practice_membership_table
    hoods = set(
        data.register.loc[data.register["level"] == "neighbourhood", "area_code"].astype(str)
    )
    return hood_of[hood_of["area_code"].isin(hoods)].set_index("practice_code")["area_code"]


def _role_measures(data: ProfileStore) -> pd.DataFrame:
    """Every practice's role measures (store-wide, built once; see roles_frame)."""
    practices = data.practices
    return staffing.role_measures(practices) if len(practices) else pd.DataFrame()


def roles_frame(data: ProfileStore, area: dict) -> pd.DataFrame:
    """Practice staff by role (every role the detailed workforce file gives) against England.

    Rates are over practices with figures for the role's staff group; a practice-based area
    counts its member practices, a resident-basis area its practices' shares of residents.
    England's rates come from the national files (``national.parquet``); a store without them
    compares with every loaded practice (the comparator then says "all loaded areas").

    Returns:
        ``group, role, fte, fte_per_10k, comparator_per_10k`` (per 10,000 registered patients),
        in the publisher's order, for roles with any FTE in the comparator; empty without the
        detailed columns.
    """
    roles = staffing.detailed_roles()
    measures = data.memo.get(("role_measures",), lambda: _role_measures(data))
    if len(measures.columns) <= 1:
        return pd.DataFrame()
    weights = practice_weights(data, area)
    by_practice = data.memo.get(
        ("role_measures_by_practice",), lambda: measures.set_index("practice_code")
    )
    members = by_practice.reindex(weights.index)
    w = weights.to_numpy(dtype=float)[:, None]
    area_sums = (members * w).sum()
    national = data.national if isinstance(data.national, pd.DataFrame) else pd.DataFrame()
    england = (
        national[
            (national.get("area_code") == geography.ALL_LOADED_CODE)
            & (national.get("basis") == "registered")
            & (national.get("imd") == data.imd)
        ]
        if len(national)
        else national
    )
    ids = [staffing.role_measure_id(r) for r in roles]
    if len(england) and f"{ids[0]}__num" in england:
        every = england.iloc[0]
    else:
        every = measures.drop(columns="practice_code").sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pd.DataFrame(
            {
                "group": [staffing.STAFF_GROUPS[r.group] for r in roles],
                "role": [r.label for r in roles],
                "fte": [float(area_sums[f"{i}__num"]) for i in ids],
                "fte_per_10k": [
                    area_sums[f"{i}__num"] / area_sums[f"{i}__den"] * 10_000
                    if area_sums[f"{i}__den"] > 0
                    else np.nan
                    for i in ids
                ],
                "comparator_per_10k": [
                    float(every[f"{i}__num"]) / float(every[f"{i}__den"]) * 10_000
                    if float(every[f"{i}__den"]) > 0
                    else np.nan
                    for i in ids
                ],
            }
        )
    return out[out["comparator_per_10k"] > 0].reset_index(drop=True)


def workforce_findings(area: dict, team: pd.DataFrame, comparator: str) -> list[dict]:
    """The area's largest workforce gaps relative to need (ranked findings for the headline)."""
    if team.empty:
        return []
    return staffing.largest_gap_findings(team, area["area_name"], comparator)


def reconciliation_notes(data: ProfileStore, area: dict) -> list[str]:
    """What prepare's reconciliation found that concerns this area, as plain sentences.

    Practices of the area whose LSOA or age-file totals differ (within tolerance) from the
    practice totals, practices of the area missing from a practice-level source, LSOAs where its
    population lives that have no boundary (counted, not drawn), and codes prepare had to fix.
    """
    reconciliation = data.manifest.get("reconciliation") or {}
    notes: list[str] = []
    members: set[str] = set()
    if area["basis"] == "registered" or area["level"] == "england":
        members = set(practice_weights(data, area).index.astype(str))
    for source, entry in (reconciliation.get("practice_totals") or {}).items():
        if not isinstance(entry, dict):
            continue
        differing = {c: v for c, v in (entry.get("within_tolerance") or {}).items() if c in members}
        if differing:
            shown = ", ".join(
                f"{code} ({v['source']:,} vs {v['total']:,})"
                for code, v in list(differing.items())[:5]
            )
            notes.append(
                f"{len(differing)} of the area's practices differ slightly between the {source} "
                f"file and the practice totals, within the tolerance "
                f"{reconciliation['practice_totals'].get('tolerance', '')}: {shown}."
            )
    for source, codes in ((reconciliation.get("practices") or {}).get("missing") or {}).items():
        missing = sorted(members & set(codes))
        if missing and source not in ("workforce", "payments"):  # those have their own notes
            notes.append(
                f"{len(missing)} of the area's practices are missing from the {source} file: "
                + ", ".join(missing[:8])
                + "."
            )
    geometries = data.lsoa_geometries
    if geometries:
        population = _lsoa_population(data, area)
        # a dict look-up per LSOA: Index.isin would box every one of England's geometries
        drawn = np.array([str(code) in geometries for code in population.index], dtype=bool)
        undrawn = population[(population > 0).to_numpy() & ~drawn]
        if len(undrawn):
            notes.append(
                f"{len(undrawn)} LSOA(s) where {undrawn.sum():,.0f} of the area's population "
                "live have no usable boundary in the store: counted in every figure, not drawn "
                "on the map."
            )
    fixes = sum((reconciliation.get("code_fixes") or {}).values())
    if fixes:
        notes.append(
            f"{fixes:,} practice, LSOA or area code(s) in the source files had spaces or lower "
            "case; prepare trimmed and upper-cased them so they join."
        )
    return notes


def similar_area_frames(
    data: ProfileStore, area: dict
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The "similar areas" comparator, peer list and method for one area.

    Returns:
        ``(comparison, peer_list, method)``: per indicator the peers' average and the area's
        position (:func:`pophealth.peers.similar_area_comparison`); the peers with rank, name,
        system and distance; the needs variables used or dropped. Empty frames when the area has
        no peers (too few comparable areas, or a needs variable missing for it).
    """
    found = data.similar_areas.get((area["level"], area["basis"]))
    if found is None:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    own, peer_list = _peer_list(data, area, "national")
    method = found[1]
    if not len(own):
        return pd.DataFrame(), pd.DataFrame(), method
    pool = data.peer_pool_table
    comparison = peer_areas.similar_area_comparison(
        _pool_rows(data, [area["area_code"], *own["peer_code"]]),
        own,  # the area's own peer rows: the whole peer table would only be filtered again
        area["area_code"],
        area["basis"],
    )
    meta = data.memo.get(
        ("peer_pool_meta",),
        lambda: pool[["indicator_id", "title", "unit", "polarity"]].drop_duplicates("indicator_id"),
    )
    comparison = meta.merge(comparison, on="indicator_id", how="inner")
    return comparison, peer_list, method


def _peer_list(data: ProfileStore, area: dict, scope: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An area's peer rows in one scope, and its peer list (rank, code, name, system, distance).

    The area's level and basis must have peers (``data.similar_areas``).
    """
    level, basis = area["level"], area["basis"]
    by_area = data.memo.get(
        ("peer_rows", level, basis),
        lambda: RowsByKey(data.similar_areas[(level, basis)][0], ["area_code", "scope"]),
    )
    peer_table = data.similar_areas[(level, basis)][0]
    own = by_area.get((area["area_code"], scope), peer_table.iloc[:0])
    pool = data.peer_pool_table
    names = data.memo.get(
        ("peer_pool_names",), lambda: pool.drop_duplicates("area_code").set_index("area_code")
    )
    peer_list = own.assign(
        peer_name=own["peer_code"].map(names["area_name"]),
        peer_system=own["peer_code"].map(names["system_code"]),
    )[["rank", "peer_code", "peer_name", "peer_system", "distance"]]
    return own, peer_list.reset_index(drop=True)


def region_peer_frames(data: ProfileStore, area: dict) -> tuple[pd.DataFrame, str]:
    """The area's most similar peers within its NHS England region, and the region's name.

    Returns:
        ``(peer_list, region_name)`` with the columns of :func:`similar_area_frames`' list;
        an empty list and ``""`` when the area's region is unknown (no national figures for
        it) or it has no peers there.
    """
    found = data.similar_areas.get((area["level"], area["basis"]))
    regions = data.icb_regions
    match = regions[regions["icb_code"] == area.get("system_code")]
    if found is None or not len(match):
        return pd.DataFrame(), ""
    _, peer_list = _peer_list(data, area, "region")
    return peer_list, str(match["region_name"].iloc[0])


def _pool_rows(data: ProfileStore, codes: list) -> pd.DataFrame:
    """The peer pool's rows of some areas, in the pool's order (not a filter of the whole pool)."""
    by_area = data.memo.get(
        ("peer_pool_rows",),
        lambda: data.peer_pool_table.groupby("area_code", sort=False).indices,
    )
    found = [by_area[c] for c in dict.fromkeys(codes) if c in by_area]
    rows = np.sort(np.concatenate(found)) if found else np.array([], dtype=int)
    return data.peer_pool_table.iloc[rows]


TREND_CHART_INDICATORS = ("list_size", "gp_fte_per_10k_weighted", "nurse_fte_per_10k")
# what "what changed since the last release" reports, from the indicator history
CHANGE_INDICATORS = ("list_size", "gp_fte_per_10k", "nurse_fte_per_10k", "dpc_fte_per_10k")


_TREND_SERIES_INPUT = [
    "indicator_id",
    "title",
    "unit",
    "polarity",
    "period",
    "value",
    "lower_ci",
    "upper_ci",
]
_TREND_SERIES_COLUMNS = [
    *[c for c in _TREND_SERIES_INPUT if c != "polarity"],
    "england_value",
    *trends.XMR_COLUMNS,
]
_EMPTY_TREND_SERIES = pd.DataFrame(
    columns=[c for c in _TREND_SERIES_COLUMNS if c != "england_value"]
)


def _trend_chart_series(data: ProfileStore, basis: str) -> RowsByKey:
    """Every area's key series (:data:`TREND_CHART_INDICATORS`) with its XmR limits, by area.

    One :func:`pophealth.trends.xmr_chart` over all areas' series of one basis, worked out
    the first time a profile asks (each series' limits depend on its own values only, so they
    are the ones a chart of the area alone gets); a profile takes its area's rows.
    """
    history = data.indicator_history
    rows = history[
        (history["basis"] == basis).to_numpy()
        & history["indicator_id"].isin(TREND_CHART_INDICATORS).to_numpy()
    ]
    rows = rows[["area_code", *_TREND_SERIES_INPUT]]
    if not len(rows):
        return RowsByKey(rows.assign(**{c: [] for c in trends.XMR_COLUMNS}), "area_code")
    charted = trends.xmr_chart(
        rows, "value", "period", by=["area_code", "indicator_id"], polarity="polarity"
    ).drop(columns=["polarity"])
    return RowsByKey(charted, "area_code")


def _history_by_area(data: ProfileStore) -> RowsByKey:
    return data.memo.get(
        ("history_by_area",), lambda: RowsByKey(data.indicator_history, "area_code")
    )


def _words_by_indicator(words: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Indicator -> (direction of travel in words, method), from direction_of_travel rows."""
    return dict(
        zip(
            words["indicator_id"],
            zip(words["direction"], words["method"], strict=True),
            strict=True,
        )
    )


def _direction_words(series: pd.DataFrame, catalogue: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Indicator -> (direction of travel in words, method) for one area's history."""
    if not len(series):
        return {}
    words = trends.direction_of_travel(
        series.assign(statistic=series["indicator_id"].map(catalogue["statistic"])),
        "period",
        ["indicator_id"],
    )
    return _words_by_indicator(words)


def _period_label(first: str, latest: str, qof_years: dict[str, str]) -> str:
    """``"2024-11 to 2025-10"``, or ``"QOF 2023-24 to 2024-25"`` for QOF years' periods."""
    if first in qof_years and latest in qof_years:
        if first == latest:
            return f"QOF {qof_years[first]}"
        return f"QOF {qof_years[first]} to {qof_years[latest]}"
    return first if first == latest else f"{first} to {latest}"


def _not_enough_words(points: int, qof: bool) -> str:
    """An honest direction for a short series: how many values there are and that it is too few."""
    what = "QOF years" if qof else "releases"
    return f"Not enough data for a trend ({points} {what})"


def significance_changes(own: pd.DataFrame, latest: dict[bool, str]) -> pd.DataFrame:
    """Indicators whose 95% comparison with the comparator changed at their latest release.

    Each indicator's last two periods with a value are compared: for monthly indicators the
    previous and latest month, for QOF indicators the previous and latest QOF year (their own
    periods, see ``docs/history.md``). An indicator whose latest value is older than the latest
    release of its kind (``latest``) is not listed, and one with a single value neither.

    Args:
        own: The area's indicator history (one basis): ``indicator_id, title, period, value,
            comparison_95``.
        latest: Latest period of the monthly (``False``) and QOF (``True``) releases.

    Returns:
        ``indicator_id, title, previous, latest, previous_period, latest_period, qof`` (one row
        per indicator whose comparison changed).
    """
    columns = ["indicator_id", "title", "previous", "latest", "previous_period", "latest_period"]
    present = own[own["value"].notna().to_numpy()]
    periods = present["period"].to_numpy(dtype=object)
    by_period = np.argsort(periods, kind="stable")
    ids = present["indicator_id"].to_numpy(dtype=object)[by_period]
    # each indicator's rows in period order; indicators in order of their first period
    rank = pd.Index(pd.unique(ids)).get_indexer(ids)
    order = by_period[np.argsort(rank, kind="stable")]
    ids = present["indicator_id"].to_numpy(dtype=object)[order]
    last = np.flatnonzero(np.append(ids[1:] != ids[:-1], True)) if len(ids) else np.array([], int)
    has_two = last > 0
    if len(last):
        has_two &= ids[np.maximum(last - 1, 0)] == ids[last]
    after_at, before_at = order[last[has_two]], order[last[has_two] - 1]
    if not len(after_at):
        return pd.DataFrame(columns=[*columns, "qof"])
    comparisons = present["comparison_95"].fillna("").to_numpy(dtype=object)
    after_ids = ids[last[has_two]]
    qof = np.isin(after_ids, list(indicators.needing("qof")))
    out = pd.DataFrame(
        {
            "indicator_id": after_ids,
            "title": present["title"].to_numpy(dtype=object)[after_at],
            "previous": comparisons[before_at],
            "latest": comparisons[after_at],
            "previous_period": periods[before_at],
            "latest_period": periods[after_at],
            "qof": qof,
        }
    )
    current = np.array([latest.get(bool(q), "") for q in qof], dtype=object)
    changed = (out["previous"] != out["latest"]) & (out["latest_period"].to_numpy() == current)
    return out[changed].reset_index(drop=True)


def trend_frames(data: ProfileStore, area: dict) -> dict:
    """Change over time for one area: per-indicator trend words, chart series, what changed.

    Monthly indicators have a period per release; QOF indicators one per QOF year (its end
    month, ``docs/history.md``), so each series has its own periods.

    Returns:
        ``summary`` (one row per indicator with at least two values: ``indicator_id, title,
        unit, points, values`` (list, oldest first), ``first_period, latest_period,
        period_label, direction, method, england_direction``; fewer than
        ``trends.MIN_TREND_POINTS`` values read "Not enough data for a trend"); ``series`` (key
        indicators: ``indicator_id, title, unit, period, value, lower_ci, upper_ci,
        england_value``); ``changes`` (``what, previous, latest, change``) between the last two
        monthly releases and ``significance`` (:func:`significance_changes`); ``membership``
        (practice changes touching the area); ``periods`` (the monthly releases) and
        ``qof_years`` (QOF period -> year).
    """
    qof_years = dict(data.qof_periods)
    empty = {
        "summary": pd.DataFrame(),
        "series": pd.DataFrame(),
        "changes": pd.DataFrame(),
        "significance": pd.DataFrame(),
        "membership": pd.DataFrame(),
        "periods": data.periods,
        "qof_years": qof_years,
    }
    by_area = _history_by_area(data)
    own = by_area.get(area["area_code"])
    if own is None or own["period"].nunique() < 2:
        return empty
    basis = area["basis"]
    own = own[own["basis"] == basis]
    # England's rows, and its values by indicator and period, are the same for every profile
    england, england_value = data.memo.get(
        ("england_history", basis), lambda: _england_history(by_area, own.iloc[:0], basis)
    )
    catalogue = data.memo.get(
        ("catalogue_by_id",), lambda: indicators.load_catalogue().set_index("id")
    )
    qof_ids = indicators.needing("qof")
    shared = data.ready_trend_words()
    if shared is not None:  # a batch run worked out every area's words once
        words_of = data.memo.get(
            ("trend_words_by_area",), lambda: RowsByKey(shared, ["area_code", "basis"])
        )
        own_words = _words_by_indicator(words_of.get((area["area_code"], basis), shared.iloc[:0]))
    else:
        own_words = _direction_words(own, catalogue)
    # England's series are the same for every profile: their words are worked out once
    england_words, england_points = data.memo.get(
        ("england_trend_words", basis),
        lambda: (
            _direction_words(england, catalogue),
            england.dropna(subset=["value"]).groupby("indicator_id")["period"].nunique().to_dict(),
        ),
    )
    ordered = own.sort_values("period", kind="stable")
    values = ordered["value"].to_numpy(dtype=float)
    periods_of = ordered["period"].to_numpy(dtype=object)
    titles, units = ordered["title"].to_numpy(dtype=object), ordered["unit"].to_numpy(dtype=object)
    positions = ordered.groupby("indicator_id", sort=False).indices
    rows = []
    for indicator, where in sorted(positions.items(), key=lambda item: item[1][0]):
        present = where[~np.isnan(values[where])]
        points, qof = len(present), indicator in qof_ids
        direction, method = own_words.get(indicator, ("", ""))
        england_direction = england_words.get(indicator, ("", ""))[0]
        if points < trends.MIN_TREND_POINTS:
            direction = _not_enough_words(points, qof)
        if (
            indicator in england_words
            and england_points.get(indicator, 0) < trends.MIN_TREND_POINTS
        ):
            england_direction = _not_enough_words(int(england_points.get(indicator, 0)), qof)
        first = periods_of[present[0]] if points else ""
        latest = periods_of[present[-1]] if points else ""
        rows.append(
            {
                "indicator_id": indicator,
                "title": titles[where[-1]],
                "unit": units[where[-1]],
                "points": points,
                "values": values[present].tolist(),
                "first_period": first,
                "latest_period": latest,
                "period_label": _period_label(first, latest, qof_years),
                "direction": direction,
                "method": method,
                "england_direction": england_direction,
            }
        )
    summary = pd.DataFrame(rows)
    # two values (e.g. two QOF years) are shown with "not enough data for a trend"; one is not
    summary = summary[summary["points"] >= 2]
    # in catalogue order (monthly and QOF series start in different periods)
    order = summary["indicator_id"].map(catalogue["order"])
    summary = summary.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)
    charts_of = data.memo.get(
        ("trend_chart_series", basis), lambda: _trend_chart_series(data, basis)
    )
    series = charts_of.get(area["area_code"], _EMPTY_TREND_SERIES)
    series = series.assign(
        england_value=england_value.reindex(
            pd.MultiIndex.from_arrays([series["indicator_id"], series["period"]])
        ).to_numpy()
    )
    series = series[_TREND_SERIES_COLUMNS]
    # monthly releases (QOF years have periods of their own, which need not be months here)
    monthly = own[~own["indicator_id"].isin(qof_ids)]
    periods = sorted(monthly["period"].unique()) or sorted(own["period"].unique())
    changes = []
    if len(periods) >= 2:
        previous, latest = periods[-2], periods[-1]
        # the last two releases' rows of the indicators reported, by (indicator, period)
        wanted = monthly[
            monthly["indicator_id"].isin(CHANGE_INDICATORS)
            & monthly["period"].isin([previous, latest])
        ]
        by_period = {
            (row["indicator_id"], row["period"]): row
            for row in records(wanted, ["indicator_id", "period", "value", "title", "unit"])
        }
        for indicator in CHANGE_INDICATORS:
            now, then = by_period.get((indicator, latest)), by_period.get((indicator, previous))
            if now is not None and then is not None:
                changes.append(
                    {
                        "what": now["title"],
                        "unit": now["unit"],
                        "previous": then["value"],
                        "latest": now["value"],
                        "change": now["value"] - then["value"],
                    }
                )
    latest_qof = sorted(own.loc[own["indicator_id"].isin(qof_ids), "period"].unique())
    significance = significance_changes(
        own, {False: periods[-1], True: latest_qof[-1] if latest_qof else ""}
    )
    if len(significance):
        significance = significance.assign(
            period_label=[
                _period_label(a, b, qof_years)
                for a, b in zip(
                    significance["previous_period"], significance["latest_period"], strict=True
                )
            ]
        )
    return {
        "summary": summary,
        "series": series.reset_index(drop=True),
        "changes": pd.DataFrame(changes),
        "significance": significance,
        "membership": _membership_changes_for(data, area),
        "periods": periods,
        "qof_years": qof_years,
    }


def _england_history(by_area: RowsByKey, empty: pd.DataFrame, basis: str) -> tuple:
    """England's (all loaded areas') history rows of one basis; its values by indicator, period."""
    england = by_area.get(geography.ALL_LOADED_CODE, empty)
    england = england[england["basis"] == basis]
    return england, england.set_index(["indicator_id", "period"])["value"]


def _membership_changes_for(data: ProfileStore, area: dict) -> pd.DataFrame:
    """Practice membership changes over the history that touch this area (registered basis)."""
    changes = data.membership_changes
    if area["basis"] != "registered" or not len(changes):
        return pd.DataFrame(columns=["practice_code", "change", "periods", "detail"])
    members = set(data.practice_members.get(area["area_code"], ()))
    code = str(area["area_code"])
    touches = changes["practice_code"].isin(members) | changes["detail"].str.contains(
        code, regex=False
    )
    if area["level"] != "neighbourhood":
        touches = changes["practice_code"].isin(members) & (changes["change"] != "moved PCN")
    rows = changes[touches]
    if not len(rows):
        return pd.DataFrame(columns=["practice_code", "change", "periods", "detail"])
    grouped = rows.groupby(["practice_code", "change", "detail"], as_index=False)["period"].agg(
        lambda p: f"{min(p)} to {max(p)}" if len(p) > 1 else p.iloc[0]
    )
    return grouped.rename(columns={"period": "periods"})[
        ["practice_code", "change", "periods", "detail"]
    ]


def build_profile(data: ProfileStore, area: dict) -> Profile:
    """Assemble the :class:`Profile` of one register row."""
    table = data.indicator_table
    register = data.register
    own = data.indicator_groups.get(("area", area["area_code"]), table.iloc[:0])
    rows = own[own["basis"] == area["basis"]]
    # "comparison" is the rating the tables colour by: by kind (see indicators.rate_by_kind)
    rows = rows.reset_index(drop=True).assign(comparison=lambda r: r["rating"])
    parent = _register_row(register, area.get("parent_code"), area["basis"])
    everyone = _register_row(register, geography.ALL_LOADED_CODE, area["basis"])
    peers = data.peers
    spine = rows.merge(
        peers[(peers["level"] == area["level"]) & (peers["basis"] == area["basis"])].drop(
            columns=["level", "basis"]
        ),
        on="indicator_id",
        how="left",
    )
    spine = spine[spine["indicator_id"] != "list_size"].reset_index(drop=True)
    # long-term conditions have their own section and spine
    ltc = prevalence.long_term_conditions_frames(
        rows,
        spine,
        data.qof_expected[1],
        year=data.manifest.get("notes", {}).get("qof_year", ""),
        area_name=area["area_name"],
    )
    spine = spine[~spine["indicator_id"].isin(prevalence.indicator_ids())].reset_index(drop=True)
    map_values, geojson = map_frames(data, area)
    basis_comparison = pd.DataFrame()
    if area["level"] == "system":
        both = own
        basis_comparison = both.pivot_table(
            index=["indicator_id", "title", "unit"],
            columns="basis",
            values="value",
            aggfunc="first",
        ).reset_index()
    notes = []
    manifest = data.manifest
    if manifest.get("synthetic"):
        notes.append("These data are SYNTHETIC demo data, not real patients or places.")
    imd_release = data.imd_release.label
    notes.append(f"Deprivation: English Indices of Deprivation {imd_release}, national deciles.")
    notes.append(
        f"Population basis: {area['basis']} "
        + (
            "(patients registered at the area's practices)."
            if area["basis"] == "registered"
            else "(people living in the area's LSOAs)."
        )
    )
    if area["basis"] == "resident":
        weights = attribution.deprivation_population(data.lsoa, data.imd_release)[1]
        notes.append(
            f"Deprivation of residents is weighted by {weights} (resident-weighted, as MHCLG "
            "summarises local authorities and ICBs); of patients, by registered patients "
            "(patient-weighted)."
        )
    if area["basis"] == "resident" and area["level"] != "england":
        lsoa = data.lsoa[data.lsoa["lsoa21_code"].isin(area_lsoas(data, area))]
        score = data.imd_release.column("score")
        for column, what in ((score, "IoD"), ("health_total", "Census 2021")):
            if column in lsoa and lsoa[column].isna().any():
                notes.append(
                    f"{int(lsoa[column].isna().sum())} of the area's {len(lsoa)} LSOAs have no "
                    f"{what} data; indicators from that source leave them out."
                )
    if area["basis"] == "registered" and "age_0_17" in manifest.get("notes", {}):
        notes.append(f"Registered patients aged 0-17: {manifest['notes']['age_0_17']}.")
    notes.extend(workforce_coverage_notes(data, area))
    notes.extend(reconciliation_notes(data, area))
    notes.extend(ltc.get("notes", []))
    notes.append(
        f"Built by pophealth {__version__} at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from the "
        f"prepared store of {manifest.get('prepared_at', 'unknown date')} (sources and checksums "
        "below)."
    )
    for indicator, why in manifest.get("indicators_unavailable", {}).items():
        notes.append(f"Not shown: {indicator} ({why}).")
    if data.groupings is not None and area["level"] == "neighbourhood":
        notes.append(f"Neighbourhoods: analyst groupings from {data.neighbourhoods_file}.")
    system = area["area_code"] if area["level"] == "system" else area.get("system_code")
    if isinstance(system, str) and system in data.unassigned_practices:
        count, patients = data.unassigned_practices[system]
        notes.append(
            f"{count} practice(s) of the system ({patients:,.0f} patients) are in no "
            "neighbourhood; they count in place and system figures."
        )
    elif "pcn_membership_date" in manifest.get("notes", {}):
        notes.append(f"PCN membership from ePCN at {manifest['notes']['pcn_membership_date']}.")
    team = team_frame(data, area, rows) if data.pcn_apportionment is not None else pd.DataFrame()
    if len(team) and area["area_type"] == "pcn":
        notes.append(
            "Whole team: the staff the PCN employs itself (NHS England PCN workforce) are added "
            "to its practices' staff."
        )
    elif len(team):
        notes.append(
            "PCN-employed staff are shared among each PCN's practices by registered patients, "
            "so custom neighbourhoods, places and systems hold the shares of the practices "
            "they contain; a PCN neighbourhood holds all its PCN's staff."
        )
    headline_text, findings = profile_headline(area, rows, data.comparator, team)

    similar, similar_list, similar_method = similar_area_frames(data, area)
    similar_region_list, similar_region = region_peer_frames(data, area)
    over_time = trend_frames(data, area)
    if len(over_time["summary"]):
        # sparklines where there are enough values for a trend
        enough = over_time["summary"][over_time["summary"]["points"] >= trends.MIN_TREND_POINTS]
        trend = enough.set_index("indicator_id")["values"]
        rows = rows.assign(trend=rows["indicator_id"].map(trend))
    return Profile(
        area=area,
        indicators=rows,
        spine=spine,
        pyramid=pyramid_frame(data, area, parent)
        if len(data.age_sex)
        else pd.DataFrame(columns=["age_band", "sex", "area_pct", "parent_pct", "england_pct"]),
        deciles=decile_frame(data, area, parent, everyone),
        map_values=map_values,
        map_geojson=geojson,
        practices=workforce_frame(data, area) if len(data.practices) else pd.DataFrame(),
        funnels=funnel_frames(data, area),
        inverse_care=inverse_care_frames(data, area, rows) if len(data.practices) else {},
        coverage=coverage_frame(data, area),
        provenance=provenance_frame(data),
        definitions=definitions_frame(rows["indicator_id"]),
        basis_comparison=basis_comparison,
        headline=headline_text,
        findings=findings,
        notes=notes,
        synthetic=bool(manifest.get("synthetic")),
        imd_release=imd_release,
        comparator=data.comparator,
        team=team,
        team_heatmap=team_heatmap_frame(data, area),
        workforce_quality=workforce_quality_frame(data, area),
        roles=roles_frame(data, area),
        workforce_findings=workforce_findings(area, team, data.comparator),
        long_term_conditions=ltc,
        related=related_areas(register, area),
        similar=similar,
        similar_list=similar_list,
        similar_method=similar_method,
        similar_region_list=similar_region_list,
        similar_region=similar_region,
        trends=over_time,
    )


def _register_row(register: pd.DataFrame, code, basis: str) -> dict | None:
    if code is None or (isinstance(code, float) and np.isnan(code)) or code is pd.NA:
        return None
    rows = register[(register["area_code"] == code) & (register["basis"] == basis)]
    return rows.iloc[0].to_dict() if len(rows) else None
