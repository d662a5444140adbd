"""Attribution: LSOA-level data to practice lists by patient shares, and roll-ups to areas.

Method (OHID's method for practice deprivation scores, generalised): a practice's value of an
LSOA measure is the mean of the LSOA values weighted by the number of the practice's patients
living in each LSOA. For a proportion such as "bad or very bad health", the practice's
attributed numerator is ``sum_l patients[p, l] * rate[l]`` and its denominator
``sum_l patients[p, l]`` over LSOAs where the measure is known; areas add practices'
numerators and denominators, so roll-ups are patient-weighted and conserve patients.

Every function returns new frames ("measures": one row per practice or LSOA with
``<indicator>__num`` and ``<indicator>__den`` columns) and never mutates its inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# LSOA statuses of registration rows (set by prepare)
MATCHED = "matched"
LSOA_STATUS_LABELS = {
    "matched": "Matched to an LSOA in the loaded data",
    "closed": "CLOSED (invalid or unmatched postcode)",
    "unknown": "Unknown residence (NO2011 / blank)",
    "wales": "Welsh LSOA (no English IMD)",
    "outside": "LSOA outside the loaded data",
}

FTE_COLUMNS = {
    "gp_fte_per_10k": ("gp_fte", "registered_patients"),
    "gp_qualified_permanent_fte_per_10k": ("gp_extgl_fte", "registered_patients"),
    "gp_fte_per_10k_weighted": ("gp_fte", "weighted_patients"),
    "gp_qualified_permanent_fte_per_10k_weighted": ("gp_extgl_fte", "weighted_patients"),
    "nurse_fte_per_10k": ("nurse_fte", "registered_patients"),
    "dpc_fte_per_10k": ("dpc_fte", "registered_patients"),
    "admin_fte_per_10k": ("admin_fte", "registered_patients"),
}

AGE_0_17_WEIGHTS = {"0_4": 1.0, "5_9": 1.0, "10_14": 1.0, "15_19": 0.6}
AGE_65_BANDS = ("65_69", "70_74", "75_79", "80_84", "85_89", "90_94", "95+")
AGE_85_BANDS = ("85_89", "90_94", "95+")


def lsoa_values(lsoa: pd.DataFrame, imd: str = "2025") -> pd.DataFrame:
    """LSOA-level rates and scores to attribute to practice lists.

    Args:
        lsoa: Prepared LSOA table.
        imd: ``"2025"`` (IoD2025, default) or ``"2019"`` (IoD2019 on 2021 LSOAs).

    Returns:
        ``lsoa21_code`` plus one column per attributable indicator: ``imd_score`` (score),
        ``pct_core20`` (1 if IMD decile 1-2 else 0) and census proportions as fractions.
        NaN where the source is missing for that LSOA.
    """
    out = pd.DataFrame({"lsoa21_code": lsoa["lsoa21_code"].to_numpy()})
    score, decile = f"imd{imd}_score", f"imd{imd}_decile"
    if score in lsoa:
        out["imd_score"] = lsoa[score].to_numpy(dtype=float)
        dec = lsoa[decile].to_numpy(dtype=float)
        out["pct_core20"] = np.where(np.isnan(dec), np.nan, (dec <= 2).astype(float))
    for indicator, (num, den) in census_fractions(lsoa).items():
        with np.errstate(invalid="ignore", divide="ignore"):
            out[indicator] = np.where(den > 0, num / den, np.nan)
    return out


def census_fractions(lsoa: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Census numerators and denominators per LSOA for each census indicator present."""
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def col(name: str) -> np.ndarray:
        return lsoa[name].to_numpy(dtype=float)

    if {"health_bad", "health_very_bad", "health_total"} <= set(lsoa):
        found["pct_bad_health"] = (col("health_bad") + col("health_very_bad"), col("health_total"))
    if {"disabled_ea", "disability_total"} <= set(lsoa):
        found["pct_disabled"] = (col("disabled_ea"), col("disability_total"))
    if {"ethnic_total"} <= set(lsoa):
        if "ethnic_white_british" in lsoa and lsoa["ethnic_white_british"].notna().any():
            found["pct_ethnic_minority"] = (
                col("ethnic_total") - col("ethnic_white_british"),
                col("ethnic_total"),
            )
        elif "ethnic_white" in lsoa:
            found["pct_ethnic_minority"] = (
                col("ethnic_total") - col("ethnic_white"),
                col("ethnic_total"),
            )
    hh = [f"hh_deprived_{k}" for k in (2, 3, 4)]
    if set(hh + ["hh_total"]) <= set(lsoa):
        found["pct_hh_deprived_2plus"] = (sum(col(c) for c in hh), col("hh_total"))
    if {"tenure_social_rented", "tenure_total"} <= set(lsoa):
        found["pct_social_rented"] = (col("tenure_social_rented"), col("tenure_total"))
    return found


def ethnicity_definition(lsoa: pd.DataFrame) -> str:
    """Say which definition of 'ethnic minority' the loaded census data allow."""
    if "ethnic_white_british" in lsoa and lsoa["ethnic_white_british"].notna().any():
        return "not White British"
    return "not White (detailed groups unavailable)"


def attribute_lsoa_to_practices(registrations: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """Attribute LSOA values to practices by each practice's share of patients per LSOA.

    Args:
        registrations: ``practice_code, lsoa_code, patients`` (all statuses; only rows whose
            LSOA has a value contribute to that value).
        values: ``lsoa21_code`` plus value columns (rates as fractions, or scores).

    Returns:
        One row per practice with ``matched_patients`` and, per value column ``v``,
        ``v__num`` (patients x value summed) and ``v__den`` (patients in LSOAs where v is
        known). ``v__num / v__den`` is the patient-weighted practice value.
    """
    value_cols = [c for c in values.columns if c != "lsoa21_code"]
    joined = registrations[["practice_code", "lsoa_code", "patients"]].merge(
        values.rename(columns={"lsoa21_code": "lsoa_code"}), on="lsoa_code", how="inner"
    )
    n = joined["patients"].to_numpy(dtype=float)
    data = {"practice_code": joined["practice_code"].to_numpy(), "matched_patients": n}
    for v in value_cols:
        x = joined[v].to_numpy(dtype=float)
        known = ~np.isnan(x)
        data[f"{v}__num"] = np.where(known, n * np.nan_to_num(x), 0.0)
        data[f"{v}__den"] = np.where(known, n, 0.0)
    frame = pd.DataFrame(data)
    practices = registrations[["practice_code"]].drop_duplicates()
    summed = frame.groupby("practice_code", as_index=False, sort=True).sum()
    out = practices.merge(summed, on="practice_code", how="left")
    return out.fillna({c: 0.0 for c in out.columns if c != "practice_code"}).reset_index(drop=True)


def practice_age_measures(
    age_sex: pd.DataFrame, practices: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Age indicators per practice from five-year bands.

    Ages 0-17 come from the single-year-of-age lists where ``practices`` carries them
    (``age_0_17_patients`` over ``single_age_patients``, from prepare); otherwise from the
    five-year bands with the 15-19 band split 3:2.
    """
    exact = _exact_ages_0_17(practices)
    if age_sex is None or not len(age_sex):
        if not len(exact):
            return pd.DataFrame(columns=["practice_code"])
        return pd.DataFrame(
            {
                "practice_code": exact.index,
                "pct_age_0_17__num": exact["age_0_17_patients"].to_numpy(),
                "pct_age_0_17__den": exact["single_age_patients"].to_numpy(),
            }
        )
    wide = age_sex.pivot_table(
        index="practice_code", columns="age_band", values="patients", aggfunc="sum", fill_value=0
    )
    wide = wide.reindex(wide.index.union(exact.index), fill_value=0)
    total = wide.sum(axis=1)

    def bands(names) -> pd.Series:
        present = [b for b in names if b in wide.columns]
        return wide[present].sum(axis=1) if present else total * 0

    young = sum(wide[b] * w for b, w in AGE_0_17_WEIGHTS.items() if b in wide.columns)
    young_total = total.astype(float)
    young = young.astype(float).copy()
    if len(exact):
        young.loc[exact.index] = exact["age_0_17_patients"]
        young_total.loc[exact.index] = exact["single_age_patients"]
    out = pd.DataFrame(
        {
            "pct_age_0_17__num": young,
            "pct_age_0_17__den": young_total,
            "pct_age_65_plus__num": bands(AGE_65_BANDS),
            "pct_age_65_plus__den": total,
            "pct_age_85_plus__num": bands(AGE_85_BANDS),
            "pct_age_85_plus__den": total,
        }
    )
    return out.reset_index()


def _exact_ages_0_17(practices: pd.DataFrame | None) -> pd.DataFrame:
    """``age_0_17_patients, single_age_patients`` by practice_code where known and non-zero."""
    columns = ["age_0_17_patients", "single_age_patients"]
    if practices is None or not set(columns) <= set(practices.columns):
        return pd.DataFrame(columns=columns, index=pd.Index([], name="practice_code"))
    exact = practices.set_index("practice_code")[columns].astype(float).dropna()
    return exact[exact["single_age_patients"] > 0]


def census_age_measures(lsoa: pd.DataFrame) -> pd.DataFrame:
    """Age indicators per LSOA from Census 2021 TS007A (resident basis)."""
    needed = {"age_total", "age_0_4", "age_85_plus"}
    if not needed <= set(lsoa):
        return pd.DataFrame({"lsoa21_code": lsoa["lsoa21_code"]})
    col = {c: lsoa[c].to_numpy(dtype=float) for c in lsoa.columns if c.startswith("age_")}
    young = col["age_0_4"] + col["age_5_9"] + col["age_10_14"] + 0.6 * col["age_15_19"]
    old = sum(col[c] for c in ("age_65_69", "age_70_74", "age_75_79", "age_80_84", "age_85_plus"))
    total = col["age_total"]
    return pd.DataFrame(
        {
            "lsoa21_code": lsoa["lsoa21_code"].to_numpy(),
            "pct_age_0_17__num": young,
            "pct_age_0_17__den": total,
            "pct_age_65_plus__num": old,
            "pct_age_65_plus__den": total,
            "pct_age_85_plus__num": col["age_85_plus"],
            "pct_age_85_plus__den": total,
        }
    )


def practice_workforce_measures(practices: pd.DataFrame) -> pd.DataFrame:
    """Workforce numerators/denominators per practice (practices lacking data contribute 0/0)."""
    out = pd.DataFrame({"practice_code": practices["practice_code"].to_numpy()})
    for indicator, (fte, patients) in FTE_COLUMNS.items():
        if fte not in practices or patients not in practices:
            continue
        f = practices[fte].to_numpy(dtype=float)
        p = practices[patients].to_numpy(dtype=float)
        ok = ~np.isnan(f) & ~np.isnan(p)
        out[f"{indicator}__num"] = np.where(ok, f, 0.0)
        out[f"{indicator}__den"] = np.where(ok, p, 0.0)
    if "gp_fte" in practices:
        f = practices["gp_fte"].to_numpy(dtype=float)
        p = practices["registered_patients"].to_numpy(dtype=float)
        ok = ~np.isnan(f) & ~np.isnan(p)
        out["patients_per_gp_fte__num"] = np.where(ok, p, 0.0)
        out["patients_per_gp_fte__den"] = np.where(ok, f, 0.0)
    return out


def practice_measures(
    practices: pd.DataFrame,
    registrations: pd.DataFrame,
    age_sex: pd.DataFrame,
    lsoa: pd.DataFrame,
    imd: str = "2025",
) -> pd.DataFrame:
    """All registered-basis measures per practice (``<indicator>__num``/``__den``)."""
    base = pd.DataFrame(
        {
            "practice_code": practices["practice_code"].to_numpy(),
            "list_size__num": practices["registered_patients"].to_numpy(dtype=float),
            "list_size__den": np.nan,
        }
    )
    parts = [base, practice_workforce_measures(practices)]
    if registrations is not None and len(registrations):
        attributed = attribute_lsoa_to_practices(registrations, lsoa_values(lsoa, imd))
        parts.append(attributed.drop(columns=["matched_patients"]))
    if (age_sex is not None and len(age_sex)) or "age_0_17_patients" in practices:
        parts.append(practice_age_measures(age_sex, practices))
    out = parts[0]
    for part in parts[1:]:
        out = out.merge(part, on="practice_code", how="left")
    return out.fillna(
        {c: 0.0 for c in out.columns if c.endswith("__num") and c != "list_size__num"}
    )


def lsoa_practice_shares(registrations: pd.DataFrame) -> pd.DataFrame:
    """Each practice's share of its (all-status) list living in each LSOA."""
    totals = registrations.groupby("practice_code")["patients"].transform("sum")
    return registrations.assign(share=registrations["patients"] / totals.replace(0, np.nan))


def lsoa_measures(
    lsoa: pd.DataFrame,
    registrations: pd.DataFrame | None,
    practices: pd.DataFrame | None,
    imd: str = "2025",
) -> pd.DataFrame:
    """All resident-basis measures per LSOA.

    Census measures use census counts directly; IMD measures are weighted by resident
    population (census total, else IoD mid-year population); list size and workforce are
    attributed from practices by the share of each practice's patients living in the LSOA.
    """
    codes = lsoa["lsoa21_code"].to_numpy()
    out = pd.DataFrame({"lsoa21_code": codes})
    pop = deprivation_population(lsoa, imd)[0]
    values = lsoa_values(lsoa, imd)
    decile = f"imd{imd}_decile"
    if decile in lsoa:
        # MHCLG's area summary: share of the area's LSOAs in the most deprived 10% nationally
        dec = lsoa[decile].to_numpy(dtype=float)
        out["pct_lsoas_most_deprived_10__num"] = (dec == 1).astype(float)
        out["pct_lsoas_most_deprived_10__den"] = (~np.isnan(dec)).astype(float)
    for v in ("imd_score", "pct_core20"):
        if v in values:
            x = values[v].to_numpy(dtype=float)
            known = ~np.isnan(x) & ~np.isnan(pop)
            out[f"{v}__num"] = np.where(known, np.nan_to_num(x) * np.nan_to_num(pop), 0.0)
            out[f"{v}__den"] = np.where(known, np.nan_to_num(pop), 0.0)
    for indicator, (num, den) in census_fractions(lsoa).items():
        known = ~np.isnan(num) & ~np.isnan(den)
        out[f"{indicator}__num"] = np.where(known, np.nan_to_num(num), 0.0)
        out[f"{indicator}__den"] = np.where(known, np.nan_to_num(den), 0.0)
    age = census_age_measures(lsoa)
    out = out.merge(age, on="lsoa21_code", how="left")
    if registrations is not None and len(registrations):
        regs = registrations[registrations["lsoa_status"] == MATCHED]
        residents = regs.groupby("lsoa_code")["patients"].sum()
        out["list_size__num"] = out["lsoa21_code"].map(residents).fillna(0.0).to_numpy(float)
        out["list_size__den"] = np.nan
        if practices is not None and len(practices):
            out = out.merge(
                _attributed_workforce(registrations, practices), on="lsoa21_code", how="left"
            )
    nums = [c for c in out.columns if c.endswith("__num") and c != "list_size__num"]
    dens = [c for c in out.columns if c.endswith("__den") and c != "list_size__den"]
    return out.fillna({c: 0.0 for c in nums + dens})


def deprivation_population(lsoa: pd.DataFrame, imd: str = "2025") -> tuple[np.ndarray, str]:
    """Resident weights for deprivation summaries, and what they are.

    MHCLG summarises the IoD for LADs and ICBs with the IoD's own population denominators
    (File 7, mid-year estimates); those are used when the file has them (IoD2025 on 2021
    LSOAs), else Census 2021 residents.

    Returns:
        (weights aligned with ``lsoa``, a label for method texts).
    """
    if imd == "2025" and "population" in lsoa and lsoa["population"].notna().any():
        return lsoa["population"].to_numpy(dtype=float), "IoD2025 population denominators"
    return _resident_population(lsoa), "Census 2021 residents"


def _resident_population(lsoa: pd.DataFrame) -> np.ndarray:
    for column in ("age_total", "health_total", "disability_total", "population"):
        if column in lsoa and lsoa[column].notna().any():
            return lsoa[column].to_numpy(dtype=float)
    return np.full(len(lsoa), np.nan)


def _attributed_workforce(registrations: pd.DataFrame, practices: pd.DataFrame) -> pd.DataFrame:
    """Workforce measures of practices shared out to LSOAs by where their patients live."""
    shares = lsoa_practice_shares(registrations)
    shares = shares[shares["lsoa_status"] == MATCHED]
    measures = practice_workforce_measures(practices)
    joined = shares[["practice_code", "lsoa_code", "share"]].merge(
        measures, on="practice_code", how="inner"
    )
    cols = [c for c in measures.columns if c != "practice_code"]
    weighted = joined[cols].mul(joined["share"].to_numpy(), axis=0)
    weighted["lsoa21_code"] = joined["lsoa_code"].to_numpy()
    return weighted.groupby("lsoa21_code", as_index=False).sum()


def aggregate_measures(measures: pd.DataFrame, membership: pd.DataFrame, key: str) -> pd.DataFrame:
    """Sum unit-level measures (practices or LSOAs) to areas.

    Args:
        measures: One row per unit with ``key`` and measure columns.
        membership: ``key, area_code`` (a unit may belong to several areas).
        key: ``"practice_code"`` or ``"lsoa21_code"``.

    Returns:
        One row per area_code with the summed measure columns. ``list_size__den`` stays NaN.
    """
    joined = membership[[key, "area_code"]].merge(measures, on=key, how="inner")
    summed = (
        joined.drop(columns=[key]).groupby("area_code", as_index=False, sort=True).sum(min_count=1)
    )
    if "list_size__den" in summed:
        summed["list_size__den"] = np.nan
    return summed
