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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pophealth import staffing
from pophealth.ages import AGE_BANDS, CENSUS_AGE_COLUMNS, band_lower
from pophealth.codes import positions
from pophealth.releases import ImdRelease
from pophealth.sources.qof import GROUP_TITLES as QOF_GROUPS

# LSOA statuses of registration rows (set by prepare)
MATCHED = "matched"
LSOA_STATUS_LABELS = {
    "matched": "Matched to an LSOA in the loaded data",
    "closed": "CLOSED (invalid or unmatched postcode)",
    "unknown": "Unknown residence (NO2011 / blank)",
    "wales": "Welsh LSOA (no English IMD)",
    "outside": "LSOA outside the loaded data",
}

# -- the measure registry ----------------------------------------------------------------------
#
# Every catalogue indicator has one measure registered here by id (``@measure("<id>")``); its
# ``group`` says which inputs it takes. tests/test_indicator_registry.py fails when the
# catalogue, these measures and the sources disagree.


@dataclass(frozen=True)
class Measure:
    """A registered numerator/denominator measure of one catalogue indicator.

    Attributes:
        indicator_id: The catalogue id.
        group: Which inputs the function takes: ``"age"`` (an :class:`AgeCounts`),
            ``"census"`` (the LSOA table), ``"imd"`` (the LSOA table and an
            :class:`~pophealth.releases.ImdRelease`; attributed to practice lists),
            ``"lsoa_count"`` (likewise, but counting LSOAs: resident basis only),
            ``"workforce"`` or ``"list_size"`` (the practice table), ``"qof"`` or
            ``"qof_expected"`` (a :class:`PracticeRegisters`).
        function: Returns ``(numerator, denominator)`` arrays (``"imd"``: one value per LSOA),
            or ``None`` when its input columns are absent.
    """

    indicator_id: str
    group: str
    function: Callable[..., Any]


MEASURES: dict[str, Measure] = {}


def measure(indicator_id: str, group: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as the measure of catalogue indicator ``indicator_id``."""

    def register(function: Callable) -> Callable:
        if indicator_id in MEASURES:
            raise ValueError(f"measure {indicator_id!r} is registered twice")
        MEASURES[indicator_id] = Measure(indicator_id, group, function)
        return function

    return register


def measures_of(group: str) -> list[Measure]:
    """The registered measures of one input group, in registration order."""
    return [m for m in MEASURES.values() if m.group == group]


class AgeCounts:
    """People by five-year age band, for practices (GP lists) or LSOAs (Census TS007A).

    Args:
        bands: Lower age of each band -> counts (the last band is open: 95+ for GP lists,
            85+ for the census).
        total: All ages.
    """

    def __init__(self, bands: dict[int, Any], total: Any):
        self.bands = dict(sorted(bands.items()))
        self.total = total
        self.top = max(self.bands)

    def at_least(self, age: int) -> Any:
        """People aged ``age`` and over (``age`` a band boundary no higher than the open band)."""
        if age % 5 or age > self.top:
            raise ValueError(f"{age}+ is not a sum of five-year bands up to {self.top}+")
        return sum(counts for lower, counts in self.bands.items() if lower >= age)

    def under(self, age: int) -> Any:
        """People younger than ``age``; the band containing it is split evenly by year of age."""
        total = 0
        for lower, counts in self.bands.items():
            if lower >= age:
                break
            total = total + counts * min(1.0, (age - lower) / 5)
        return total


@measure("pct_age_0_17", "age")
def pct_age_0_17(ages: AgeCounts):
    """Aged 0-17: the 15-19 band split 3:2 (registered basis prefers single years of age)."""
    return ages.under(18), ages.total


def aged_at_least(age: int) -> Callable[[AgeCounts], Any]:
    """The measure 'aged ``age`` and over' (numerator) of all ages (denominator)."""

    def share_aged(ages: AgeCounts):
        return ages.at_least(age), ages.total

    share_aged.__doc__ = f"Aged {age} and over."
    return share_aged


pct_age_65_plus = measure("pct_age_65_plus", "age")(aged_at_least(65))
pct_age_75_plus = measure("pct_age_75_plus", "age")(aged_at_least(75))
pct_age_85_plus = measure("pct_age_85_plus", "age")(aged_at_least(85))


@measure("imd_score", "imd")
def imd_score(lsoa: pd.DataFrame, release: ImdRelease):
    """The LSOA's IMD score in the chosen release."""
    if release.column("score") not in lsoa:
        return None
    return lsoa[release.column("score")].to_numpy(dtype=float)


@measure("pct_core20", "imd")
def pct_core20(lsoa: pd.DataFrame, release: ImdRelease):
    """1 where the LSOA is in national IMD deciles 1-2 (Core20), 0 otherwise, NaN if unknown."""
    if release.column("decile") not in lsoa:
        return None
    dec = lsoa[release.column("decile")].to_numpy(dtype=float)
    return np.where(np.isnan(dec), np.nan, (dec <= 2).astype(float))


@measure("pct_lsoas_most_deprived_10", "lsoa_count")
def pct_lsoas_most_deprived_10(lsoa: pd.DataFrame, release: ImdRelease):
    """LSOAs in national IMD decile 1, of LSOAs with a decile (MHCLG's area summary)."""
    if release.column("decile") not in lsoa:
        return None
    dec = lsoa[release.column("decile")].to_numpy(dtype=float)
    return (dec == 1).astype(float), (~np.isnan(dec)).astype(float)


def _census_columns(lsoa: pd.DataFrame, *names: str) -> list[np.ndarray] | None:
    """The LSOA table's census columns as float arrays, or None when any is absent."""
    if not set(names) <= set(lsoa):
        return None
    return [lsoa[name].to_numpy(dtype=float) for name in names]


@measure("pct_bad_health", "census")
def pct_bad_health(lsoa: pd.DataFrame):
    """Bad or very bad general health (TS037)."""
    cols = _census_columns(lsoa, "health_bad", "health_very_bad", "health_total")
    return None if cols is None else (cols[0] + cols[1], cols[2])


def census_share(numerator: str, denominator: str) -> Callable[[pd.DataFrame], Any]:
    """The measure ``numerator`` of ``denominator`` (two census count columns)."""

    def share(lsoa: pd.DataFrame):
        cols = _census_columns(lsoa, numerator, denominator)
        return None if cols is None else (cols[0], cols[1])

    share.__doc__ = f"``{numerator}`` of ``{denominator}`` (Census 2021)."
    return share


pct_disabled = measure("pct_disabled", "census")(census_share("disabled_ea", "disability_total"))


@measure("pct_ethnic_minority", "census")
def pct_ethnic_minority(lsoa: pd.DataFrame):
    """Not White British (TS021), or not White where detailed groups are unavailable."""
    if "ethnic_total" not in lsoa:
        return None
    detailed = "ethnic_white_british" in lsoa and lsoa["ethnic_white_british"].notna().any()
    cols = _census_columns(
        lsoa, "ethnic_total", "ethnic_white_british" if detailed else "ethnic_white"
    )
    return None if cols is None else (cols[0] - cols[1], cols[0])


@measure("pct_hh_deprived_2plus", "census")
def pct_hh_deprived_2plus(lsoa: pd.DataFrame):
    """Households deprived in two or more dimensions (TS011)."""
    cols = _census_columns(lsoa, "hh_deprived_2", "hh_deprived_3", "hh_deprived_4", "hh_total")
    return None if cols is None else (sum(cols[:3]), cols[3])


pct_social_rented = measure("pct_social_rented", "census")(
    census_share("tenure_social_rented", "tenure_total")
)

# Core20PLUS5 PLUS groups (Census 2021 TS039, TS029, TS045, TS003)


@measure("pct_unpaid_carers", "census")
def pct_unpaid_carers(lsoa: pd.DataFrame):
    """Residents aged 5+ providing any unpaid care (TS039: total minus 'provides no care')."""
    cols = _census_columns(lsoa, "care_total", "care_none")
    return None if cols is None else (cols[0] - cols[1], cols[0])


@measure("pct_limited_english", "census")
def pct_limited_english(lsoa: pd.DataFrame):
    """Residents aged 3+ who cannot speak English well or at all (TS029)."""
    cols = _census_columns(lsoa, "english_not_well", "english_none", "english_total")
    return None if cols is None else (cols[0] + cols[1], cols[2])


pct_no_car = measure("pct_no_car", "census")(census_share("cars_none", "cars_total"))
pct_alone_66_plus = measure("pct_alone_66_plus", "census")(
    census_share("hhcomp_alone_66_plus", "hhcomp_total")
)


class PracticeRegisters:
    """QOF registers per practice, wide (practice rows x register group columns).

    Args:
        numerators: Practices x group: patients on each register (or observed registers).
        denominators: Practices x group, same index: each register's own list size (or the
            expected register).
        total_list: Practices' whole (``TOTAL`` list type) list size, for the burden measure.
        gp_fte: Practices' GP FTE (NaN where unknown).
        team_fte: Practices' whole team FTE, practice and PCN-employed staff (NaN where it
            does not count; see :func:`pophealth.staffing.whole_team_fte`).
    """

    def __init__(
        self,
        numerators: pd.DataFrame,
        denominators: pd.DataFrame,
        total_list: pd.Series | None = None,
        gp_fte: pd.Series | None = None,
        team_fte: pd.Series | None = None,
    ):
        self.index = numerators.index.union(denominators.index)
        self.numerators = numerators.reindex(self.index)
        self.denominators = denominators.reindex(self.index)
        nothing = pd.Series(np.nan, index=self.index)
        self.total_list = nothing if total_list is None else total_list.reindex(self.index)
        self.gp_fte = nothing if gp_fte is None else gp_fte.reindex(self.index)
        self.team_fte = nothing if team_fte is None else team_fte.reindex(self.index)

    def pair(self, group: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Numerator and denominator of one register (0/0 where a practice lacks it)."""
        if group not in self.numerators:
            return None
        return (
            self.numerators[group].fillna(0.0).to_numpy(float),
            self.denominators[group].fillna(0.0).to_numpy(float),
        )

    def on_registers(self) -> np.ndarray:
        """Sum of the practice's register entries over all registers."""
        return self.numerators.sum(axis=1).to_numpy(float)


def _register_measure(group: str) -> Callable[[PracticeRegisters], Any]:
    def register_share(registers: PracticeRegisters):
        return registers.pair(group)

    register_share.__doc__ = f"QOF {group} register over its own denominator."
    return register_share


#: QOF register families: measure group -> catalogue id template (one measure per register).
QOF_FAMILIES = {
    "qof": "qof_prev_{}",  # recorded prevalence: register / its list type's list size
    "qof_expected": "qof_oe_{}",  # recorded vs expected: observed / expected register
}
for _group in QOF_GROUPS:
    for _family, _template in QOF_FAMILIES.items():
        measure(_template.format(_group.lower()), _family)(_register_measure(_group))


@measure("qof_registers_per_100", "qof")
def qof_registers_per_100(registers: PracticeRegisters):
    """Register entries (all QOF registers) over the whole (TOTAL) list."""
    return registers.on_registers(), registers.total_list.fillna(0.0).to_numpy(float)


def _fte_over_register_entries(fte: pd.Series, registers: PracticeRegisters):
    """FTE over register entries, practices whose FTE counts only."""
    values = fte.to_numpy(float)
    known = ~np.isnan(values)
    return np.where(known, np.nan_to_num(values), 0.0), np.where(
        known, registers.on_registers(), 0.0
    )


@measure("gp_fte_per_1k_on_registers", "qof")
def gp_fte_per_1k_on_registers(registers: PracticeRegisters):
    """GP FTE over register entries, practices with a known FTE only."""
    return _fte_over_register_entries(registers.gp_fte, registers)


@measure("team_fte_per_1k_register", "qof")
def team_fte_per_1k_register(registers: PracticeRegisters):
    """Whole team FTE (practice + PCN staff) over register entries, where the team counts."""
    if registers.team_fte.isna().all():
        return None  # no PCN workforce loaded: the whole team is not known anywhere
    return _fte_over_register_entries(registers.team_fte, registers)


@measure("list_size", "list_size")
def list_size(practices: pd.DataFrame):
    """Registered patients (a count: no denominator)."""
    return practices["registered_patients"].to_numpy(dtype=float), np.nan


def _fte_measure(fte: str, patients: str) -> Callable[[pd.DataFrame], Any]:
    def fte_per_patients(practices: pd.DataFrame):
        if fte not in practices or patients not in practices:
            return None
        return _known_pairs(practices[fte], practices[patients])

    fte_per_patients.__doc__ = f"``{fte}`` over ``{patients}`` where both are known."
    return fte_per_patients


def _known_pairs(num: pd.Series, den: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Numerator and denominator where both are known; 0/0 (left out) otherwise."""
    n, d = num.to_numpy(dtype=float), den.to_numpy(dtype=float)
    ok = ~np.isnan(n) & ~np.isnan(d)
    return np.where(ok, n, 0.0), np.where(ok, d, 0.0)


#: FTE-per-patient indicators: FTE column over patient column of the practice table.
FTE_COLUMNS = {
    "gp_fte_per_10k": ("gp_fte", "registered_patients"),
    "gp_qualified_permanent_fte_per_10k": ("gp_extgl_fte", "registered_patients"),
    "gp_fte_per_10k_weighted": ("gp_fte", "weighted_patients"),
    "gp_qualified_permanent_fte_per_10k_weighted": ("gp_extgl_fte", "weighted_patients"),
    "nurse_fte_per_10k": ("nurse_fte", "registered_patients"),
    "dpc_fte_per_10k": ("dpc_fte", "registered_patients"),
    "admin_fte_per_10k": ("admin_fte", "registered_patients"),
}
for _indicator, (_fte, _patients) in FTE_COLUMNS.items():
    measure(_indicator, "workforce")(_fte_measure(_fte, _patients))


@measure("patients_per_gp_fte", "workforce")
def patients_per_gp_fte(practices: pd.DataFrame):
    """Registered patients over GP FTE where both are known."""
    if "gp_fte" not in practices:
        return None
    return _known_pairs(practices["registered_patients"], practices["gp_fte"])


# The whole team (practice + PCN-employed staff): one family of measures, defined in staffing.
for _indicator, _function in staffing.TEAM_MEASURES.items():
    measure(_indicator, "workforce")(_function)


def lsoa_values(lsoa: pd.DataFrame, imd: str | ImdRelease = "2025") -> pd.DataFrame:
    """LSOA-level rates and scores to attribute to practice lists.

    Args:
        lsoa: Prepared LSOA table.
        imd: The IoD release (or its year, ``"2025"`` default or ``"2019"``).

    Returns:
        ``lsoa21_code`` plus one column per attributable indicator: ``imd_score`` (score),
        ``pct_core20`` (1 if IMD decile 1-2 else 0) and census proportions as fractions.
        NaN where the source is missing for that LSOA.
    """
    release = ImdRelease.of(imd)
    out = pd.DataFrame({"lsoa21_code": lsoa["lsoa21_code"].to_numpy()})
    for m in measures_of("imd"):
        value = m.function(lsoa, release)
        if value is not None:
            out[m.indicator_id] = value
    for indicator, (num, den) in census_fractions(lsoa).items():
        with np.errstate(invalid="ignore", divide="ignore"):
            out[indicator] = np.where(den > 0, num / den, np.nan)
    return out


def census_fractions(lsoa: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Census numerators and denominators per LSOA for each census indicator present."""
    found = {m.indicator_id: m.function(lsoa) for m in measures_of("census")}
    return {indicator: pair for indicator, pair in found.items() if pair is not None}


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
    from scipy import sparse

    value_cols = [c for c in values.columns if c != "lsoa21_code"]
    # first-appearance order, as drop_duplicates (a missing code is a row of zeros, as before)
    rows, practices = pd.factorize(registrations["practice_code"], use_na_sentinel=False)
    cols = positions(registrations["lsoa_code"], values["lsoa21_code"])
    keep = (cols >= 0) & registrations["practice_code"].notna().to_numpy()  # an inner join
    # practice x LSOA patients times LSOA x value matrices: one sparse product instead of a
    # 1.2 M-row join and a groupby over every value column at national scale
    matrix = sparse.csr_matrix(
        (registrations["patients"].to_numpy(dtype=float)[keep], (rows[keep], cols[keep])),
        shape=(len(practices), len(values)),
    )
    x = values[value_cols].to_numpy(dtype=float)
    known = ~np.isnan(x)
    nums = matrix @ np.where(known, x, 0.0)
    dens = matrix @ known.astype(float)
    data: dict[str, Any] = {
        "practice_code": practices,
        "matched_patients": np.asarray(matrix.sum(axis=1)).ravel(),
    }
    for i, v in enumerate(value_cols):
        data[f"{v}__num"] = nums[:, i]
        data[f"{v}__den"] = dens[:, i]
    return pd.DataFrame(data)


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
    ages = AgeCounts(
        {band_lower(b): wide[b] if b in wide.columns else total * 0 for b in AGE_BANDS}, total
    )
    out = pd.DataFrame(index=wide.index)
    for m in measures_of("age"):
        num, den = m.function(ages)
        out[f"{m.indicator_id}__num"] = num.astype(float)
        out[f"{m.indicator_id}__den"] = den.astype(float)
    if len(exact):
        # single years of age, where the practice has them, replace the 15-19 split
        out.loc[exact.index, "pct_age_0_17__num"] = exact["age_0_17_patients"]
        out.loc[exact.index, "pct_age_0_17__den"] = exact["single_age_patients"]
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
    bands = {band_lower(name[len("age_") :]): col[name] for name in CENSUS_AGE_COLUMNS}
    ages = AgeCounts(bands, col["age_total"])
    out = {"lsoa21_code": lsoa["lsoa21_code"].to_numpy()}
    for m in measures_of("age"):
        out[f"{m.indicator_id}__num"], out[f"{m.indicator_id}__den"] = m.function(ages)
    return pd.DataFrame(out)


def practice_workforce_measures(practices: pd.DataFrame) -> pd.DataFrame:
    """Workforce numerators/denominators per practice (practices lacking data contribute 0/0)."""
    out = pd.DataFrame({"practice_code": practices["practice_code"].to_numpy()})
    for m in measures_of("workforce"):
        pair = m.function(practices)
        if pair is not None:
            out[f"{m.indicator_id}__num"], out[f"{m.indicator_id}__den"] = pair
    return out


def age_sex_matrix(age_sex: pd.DataFrame) -> pd.DataFrame:
    """Practices x (sex, age band) registered patients (empty frame when there are none)."""
    if not len(age_sex):
        return pd.DataFrame()
    return age_sex.pivot_table(
        index="practice_code",
        columns=["sex", "age_band"],
        values="patients",
        aggfunc="sum",
        fill_value=0,
    )


def practice_measures(
    practices: pd.DataFrame,
    registrations: pd.DataFrame,
    age_sex: pd.DataFrame,
    lsoa: pd.DataFrame,
    imd: str | ImdRelease = "2025",
) -> pd.DataFrame:
    """All registered-basis measures per practice (``<indicator>__num``/``__den``)."""
    num, den = list_size(practices)
    base = pd.DataFrame(
        {
            "practice_code": practices["practice_code"].to_numpy(),
            "list_size__num": num,
            "list_size__den": den,
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


def _matched(registrations: pd.DataFrame) -> np.ndarray:
    """Mask of registration rows matched to an LSOA of the store."""
    return (registrations["lsoa_status"] == MATCHED).to_numpy(dtype=bool, na_value=False)


def _practice_shares(registrations: pd.DataFrame) -> np.ndarray:
    """``lsoa_practice_shares``' ``share`` column as an array (NaN for an empty list)."""
    practice, distinct = pd.factorize(registrations["practice_code"])
    patients = registrations["patients"].to_numpy(dtype=float)
    coded = practice >= 0
    totals = np.bincount(
        practice[coded], weights=np.nan_to_num(patients[coded]), minlength=len(distinct)
    )
    totals[totals == 0] = np.nan
    return patients / np.where(coded, totals[np.maximum(practice, 0)], np.nan)


def lsoa_measures(
    lsoa: pd.DataFrame,
    registrations: pd.DataFrame | None,
    practices: pd.DataFrame | None,
    imd: str | ImdRelease = "2025",
) -> pd.DataFrame:
    """All resident-basis measures per LSOA.

    Census measures use census counts directly; IMD measures are weighted by resident
    population (census total, else IoD mid-year population); list size and workforce are
    attributed from practices by the share of each practice's patients living in the LSOA.
    """
    codes = lsoa["lsoa21_code"].to_numpy()
    out = pd.DataFrame({"lsoa21_code": codes})
    release = ImdRelease.of(imd)
    pop = deprivation_population(lsoa, release)[0]
    values = lsoa_values(lsoa, release)
    for m in measures_of("lsoa_count"):
        pair = m.function(lsoa, release)
        if pair is not None:
            out[f"{m.indicator_id}__num"], out[f"{m.indicator_id}__den"] = pair
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
        where = positions(registrations["lsoa_code"], out["lsoa21_code"])
        counted = (where >= 0) & _matched(registrations)
        patients = np.nan_to_num(registrations["patients"].to_numpy(dtype=float))
        out["list_size__num"] = np.bincount(
            where[counted], weights=patients[counted], minlength=len(out)
        )
        out["list_size__den"] = np.nan
        if practices is not None and len(practices):
            out = out.merge(
                _attributed_workforce(registrations, practices), on="lsoa21_code", how="left"
            )
    nums = [c for c in out.columns if c.endswith("__num") and c != "list_size__num"]
    dens = [c for c in out.columns if c.endswith("__den") and c != "list_size__den"]
    return out.fillna({c: 0.0 for c in nums + dens})


def deprivation_population(
    lsoa: pd.DataFrame, imd: str | ImdRelease = "2025"
) -> tuple[np.ndarray, str]:
    """Resident weights for deprivation summaries, and what they are.

    MHCLG summarises the IoD for LADs and ICBs with the IoD's own population denominators
    (File 7, mid-year estimates); those are used when the file has them (IoD2025 on 2021
    LSOAs), else Census 2021 residents.

    Returns:
        (weights aligned with ``lsoa``, a label for method texts).
    """
    release = ImdRelease.of(imd)
    # only IoD2025 is published on 2021 LSOAs with its own denominators
    if release.year == "2025" and "population" in lsoa and lsoa["population"].notna().any():
        return lsoa["population"].to_numpy(dtype=float), f"{release.name} population denominators"
    return _resident_population(lsoa), "Census 2021 residents"


def _resident_population(lsoa: pd.DataFrame) -> np.ndarray:
    for column in ("age_total", "health_total", "disability_total", "population"):
        if column in lsoa and lsoa[column].notna().any():
            return lsoa[column].to_numpy(dtype=float)
    return np.full(len(lsoa), np.nan)


def _attributed_workforce(registrations: pd.DataFrame, practices: pd.DataFrame) -> pd.DataFrame:
    """Workforce measures of practices shared out to LSOAs by where their patients live."""
    return attribute_practices_to_lsoas(registrations, practice_workforce_measures(practices))


def attribute_practices_to_lsoas(
    registrations: pd.DataFrame, measures: pd.DataFrame
) -> pd.DataFrame:
    """Share practice measures out to LSOAs by each practice's share of patients per LSOA.

    A practice's numerator and denominator are split in proportion to where its patients
    live (matched LSOAs only), so the LSOA figures are modelled, not observed: used for the
    resident basis of practice-only sources (workforce, QOF registers).

    Args:
        registrations: ``practice_code, lsoa_code, patients, lsoa_status``.
        measures: ``practice_code`` plus measure columns.

    Returns:
        One row per LSOA (``lsoa21_code``) with the share-weighted sums of the measures.
    """
    from scipy import sparse

    # as lsoa_practice_shares and the matched rows, on arrays: filtering a 1.2 M-row frame of
    # Arrow strings costs more than the whole product
    share = _practice_shares(registrations)
    cols = [c for c in measures.columns if c != "practice_code"]
    practice_index = pd.Index(measures["practice_code"])
    rows = positions(registrations["practice_code"], practice_index)
    every_lsoa, lsoa_codes = pd.factorize(registrations["lsoa_code"], sort=True)
    known = (rows >= 0) & (every_lsoa >= 0) & _matched(registrations)
    # np.unique's sorted codes and inverse, without sorting 1.2 M Python strings
    used, lsoa_rows = np.unique(every_lsoa[known], return_inverse=True)
    lsoas = np.asarray(lsoa_codes, dtype=object)[used]
    # LSOA x practice matrix of shares times practice x measure values: one sparse product,
    # instead of a 1.2 M-row join per measure column at national scale
    matrix = sparse.csr_matrix(
        (share[known], (lsoa_rows, rows[known])),
        shape=(len(lsoas), len(practice_index)),
    )
    values = np.nan_to_num(measures[cols].to_numpy(dtype=float))
    out = pd.DataFrame(matrix @ values, columns=cols)
    out.insert(0, "lsoa21_code", lsoas)
    return out


def aggregate_measures(measures: pd.DataFrame, membership: pd.DataFrame, key: str) -> pd.DataFrame:
    """Sum unit-level measures (practices or LSOAs) to areas.

    Args:
        measures: One row per unit with ``key`` and measure columns.
        membership: ``key, area_code`` (a unit may belong to several areas).
        key: ``"practice_code"`` or ``"lsoa21_code"``.

    Returns:
        One row per area_code with the summed measure columns. ``list_size__den`` stays NaN.
    """
    cols = [c for c in measures.columns if c != key]
    if all(measures[c].dtype == np.float64 for c in cols) and measures[key].is_unique:
        summed = _sparse_area_sums(measures, membership, key, cols)
    else:
        joined = membership[[key, "area_code"]].merge(measures, on=key, how="inner")
        # copy() consolidates a frame built column by column (pandas warns on fragmented frames)
        summed = (
            joined.drop(columns=[key])
            .copy()
            .groupby("area_code", as_index=False, sort=True)
            .sum(min_count=1)
        )
    if "list_size__den" in summed:
        summed = summed.assign(list_size__den=np.nan)
    return summed


def _sparse_area_sums(
    measures: pd.DataFrame, membership: pd.DataFrame, key: str, cols: list[str]
) -> pd.DataFrame:
    """``aggregate_measures`` as one sparse product (area x unit membership, unit x measure).

    Same result as an inner join and ``groupby("area_code").sum(min_count=1)``: areas sorted,
    only areas with a unit in ``measures``, NaN where none of an area's units has a value. At
    national scale the join copies ~170 columns for every (area, unit) pair; this does not.
    """
    from scipy import sparse

    units = positions(membership[key], measures[key])
    found = units >= 0
    areas, codes = pd.factorize(membership["area_code"][found], sort=True)
    matrix = sparse.csr_matrix(
        (np.ones(len(areas)), (areas, units[found])), shape=(len(codes), len(measures))
    )
    x = measures[cols].to_numpy(dtype=float)
    known = ~np.isnan(x)
    sums = matrix @ np.where(known, x, 0.0)
    sums[(matrix @ known.astype(float)) == 0] = np.nan  # min_count=1
    out = pd.DataFrame(sums, columns=cols)
    out.insert(0, "area_code", pd.Series(codes, dtype=membership["area_code"].dtype))
    return out
