"""Chart-ready frames for one area's profile (pure functions of a loaded store).

Each area is described by *practice weights*: for a registered-basis area, 1 for each member
practice; for a resident-basis area, each practice's share of its list living in the area's
LSOAs. Age-sex pyramids, practice highlights and coverage all follow from those weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from pophealth import attribution, charts, geography, headline, indicators, prevalence, stats
from pophealth._version import __version__
from pophealth.ages import AGE_BANDS
from pophealth.store import ProfileStore

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
    long_term_conditions: dict = field(default_factory=dict)


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
    mask = _area_row_mask(data, area)
    codes = arrays[f"{by}_codes"]
    sums = np.bincount(arrays[by][mask], weights=arrays[weights][mask], minlength=len(codes))
    keep = sums > 0
    return pd.Series(sums[keep], index=codes[keep])


def area_lsoas(data: ProfileStore, area: dict) -> np.ndarray:
    """LSOAs of a resident-basis area."""
    return data.lsoa_members.get(area["area_code"], np.array([], dtype=object))


def _age_sex_shares(matrix: pd.DataFrame, weights: pd.Series) -> pd.Series:
    if not len(weights) or not len(matrix):
        return pd.Series(dtype=float)
    w = weights.reindex(matrix.index).fillna(0.0).to_numpy()
    counts = pd.Series(w @ matrix.to_numpy(dtype=float), index=matrix.columns)
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
    national = _national_row(data, geography.ALL_LOADED_CODE, "registered")
    if national is not None and any(c.startswith("age_") for c in national.index):
        # England from the national files (the store may hold only some ICBs)
        counts = pd.Series(
            [national.get(f"age_{sex}_{band}", np.nan) for sex, band in index], index=index
        ).astype(float)
        all_pct = counts / counts.sum() * 100
    else:
        every = pd.Series(1.0, index=matrix.index)
        all_pct = _age_sex_shares(matrix, every).reindex(index)
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


def _area_row_mask(data: ProfileStore, area: dict) -> np.ndarray:
    """Boolean mask over matched registration rows belonging to the area's population."""
    arrays = data.matched_arrays
    if area["level"] == "england":
        return np.ones(len(arrays["patients"]), dtype=bool)
    if area["basis"] == "registered":
        wanted = arrays["practice_codes"].get_indexer(
            data.practice_members.get(area["area_code"], [])
        )
        return np.isin(arrays["practice"], wanted[wanted >= 0])
    wanted = arrays["lsoa_codes"].get_indexer(area_lsoas(data, area))
    return np.isin(arrays["lsoa"], wanted[wanted >= 0])


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
    decile = data.lsoa.set_index("lsoa21_code")[data.imd_release.column("decile")]

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
            mask = _area_row_mask(data, a)
            counts = np.bincount(
                arrays["decile"][mask], weights=arrays["patients"][mask], minlength=11
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
    lsoa = data.lsoa.set_index("lsoa21_code")
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
    return values, json.loads('{"type":"FeatureCollection","features":[' + features + "]}")


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
    grid = stats.funnel_plot_points(
        100, float(points["denominator"].max()) * 1.1, min_denominator=np.floor(low)
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
    result["fair_share"] = pd.DataFrame()
    fte = rows[rows["indicator_id"] == "gp_fte_per_10k_weighted"]
    if len(fte) and fte["denominator"].iloc[0] > 0:
        r = fte.iloc[0]
        actual, weighted = float(r["numerator"]), float(r["denominator"])
        shares = []
        for label, rate in (
            ("Parent rate", r["parent_value"]),
            (f"{data.comparator} rate", r["comparator_value"]),
        ):
            if pd.notna(rate):
                fair = weighted * float(rate) / 10_000
                shares.append((label, actual, fair, actual - fair))
        result["fair_share"] = pd.DataFrame(
            shares, columns=["benchmark", "actual_fte", "fair_share_fte", "gap_fte"]
        )
    return result


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
    # recorded-vs-expected gaps are their own findings (condition, ratio and missing patients)
    headline_text, findings = headline.profile_headline(
        area,
        rows,
        data.comparator,
        extra=prevalence.gap_findings(rows, area["area_name"]),
        replaced=frozenset(prevalence.oe_indicator_ids()),
    )
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
        long_term_conditions=ltc,
    )


def _register_row(register: pd.DataFrame, code, basis: str) -> dict | None:
    if code is None or (isinstance(code, float) and np.isnan(code)) or code is pd.NA:
        return None
    rows = register[(register["area_code"] == code) & (register["basis"] == basis)]
    return rows.iloc[0].to_dict() if len(rows) else None
