"""Long-term conditions from QOF registers: recorded prevalence, recorded vs expected, burden.

* Recorded prevalence: each register over its own QOF denominator (``PATIENT_LIST_TYPE``).
* Recorded vs expected: for each register a Poisson log-linear model (the Poisson GLM with a log
  list-size offset, maximum likelihood by Newton-Raphson in statsmodels) is fitted on every
  practice in the national files (before ``--systems`` cuts the store), with the list's age-sex
  structure (shares of the list in five-year bands by sex, from the practice quinary-age file)
  and its patient-weighted IMD score as covariates. A practice's expected register is the
  model's prediction: what national average recording would give for its population. Observed
  / expected with Byar limits on the observed count is the indirectly standardised ratio
  (Breslow N.E. and Day N.E., Statistical Methods in Cancer Research vol. II, IARC 1987, ch. 2;
  McCullagh P. and Nelder J.A., Generalized Linear Models, 2nd ed. 1989, ch. 6). Because the
  model has an intercept, the sum of expected equals the sum of observed over the practices
  fitted: England's ratio is 1 by construction (a region's or system's is not).
* Multimorbidity burden: register entries per 100 patients; GP FTE per 1,000 register entries.

All functions are df-in/df-out and leave their inputs unchanged.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from pophealth import attribution, blas, headline, staffing
from pophealth.checks import require_columns
from pophealth.errors import PopHealthError
from pophealth.sources.qof import GROUP_TITLES
from pophealth.store import records

#: Display order of the registers (cardiovascular and metabolic first).
GROUP_ORDER = (
    "HYP", "DM", "NDH", "OB", "CHD", "STIA", "HF", "AF", "PAD", "CKD", "COPD", "AST", "CAN",
    "DEM", "DEP", "MH", "LD", "EP", "OST", "RA", "PC",
)  # fmt: skip
#: Core20PLUS5 adult clinical areas with open QOF data (NHS England).
CORE20PLUS5_GROUPS = {
    "HYP": "Hypertension case-finding",
    "MH": "Severe mental illness",
    "COPD": "Chronic respiratory disease (COPD)",
    "AST": "Chronic respiratory disease (asthma)",
    "CAN": "Early cancer diagnosis (cancer register)",
}
#: Broad age groups used when there are too few practices for five-year bands by sex.
BROAD_BANDS = {"0_19": 0, "20_39": 20, "40_59": 40, "60_74": 60, "75+": 75}
MIN_PRACTICES_PER_PARAMETER = 15
RESIDENT_METHOD_NOTE = "modelled from practice registers"

PREV = attribution.QOF_FAMILIES["qof"]
OE = attribution.QOF_FAMILIES["qof_expected"]
BURDEN = "qof_registers_per_100"
FTE_PER_REGISTER = "gp_fte_per_1k_on_registers"


class PrevalenceModelError(PopHealthError, ValueError):
    """The recorded-vs-expected model cannot be fitted from the data given."""


def indicator_ids(groups: list[str] | tuple[str, ...] = GROUP_ORDER) -> list[str]:
    """Catalogue ids of the QOF indicators (prevalence, then recorded vs expected, then burden)."""
    ids = [PREV.format(g.lower()) for g in groups] + [OE.format(g.lower()) for g in groups]
    return ids + [BURDEN, FTE_PER_REGISTER]


def _wide(long: pd.DataFrame, value: str) -> pd.DataFrame:
    """Practices x register group of one value column (NaN where a practice lacks a register)."""
    frame = long.pivot_table(
        index="practice_code", columns="group_code", values=value, aggfunc="sum"
    )
    frame.columns = [str(g) for g in frame.columns]
    return frame


def _measure_columns(registers: attribution.PracticeRegisters, family: str) -> pd.DataFrame:
    """``practice_code`` plus ``<id>__num/__den`` of every registered measure of ``family``."""
    out = pd.DataFrame(index=registers.index)
    for m in attribution.measures_of(family):
        pair = m.function(registers)
        if pair is not None:
            out[f"{m.indicator_id}__num"], out[f"{m.indicator_id}__den"] = pair
    out.index.name = "practice_code"
    return out.fillna(0.0).reset_index()


def practice_qof_measures(qof: pd.DataFrame, practices: pd.DataFrame) -> pd.DataFrame:
    """Registered-basis QOF measures per practice (``<indicator>__num``/``__den``).

    The measures are the ones registered for the ``"qof"`` family in
    :mod:`pophealth.attribution` (one per register plus burden and GP FTE per register entry).

    Args:
        qof: Stored QOF prevalence rows (``practice_code, group_code, register, list_size,
            list_type``).
        practices: Practice table (GP FTE; with PCN staff shared to practices, as
            :func:`pophealth.staffing.with_pcn_staff` gives, also the whole team).

    Returns:
        ``practice_code`` plus ``qof_prev_<group>__num/__den`` (register / its list size),
        ``qof_registers_per_100__num/__den`` (sum of registers / TOTAL list) and
        ``gp_fte_per_1k_on_registers__num/__den`` (GP FTE / sum of registers, practices with
        valid FTE only) and, with PCN staff, ``team_fte_per_1k_register__num/__den``.
    """
    _require(qof, ["practice_code", "group_code", "register", "list_size", "list_type"], "qof")
    known = qof[qof["group_code"].isin(GROUP_TITLES)]
    total_list = known[known["list_type"] == "TOTAL"].groupby("practice_code")["list_size"].max()
    fte = practices.set_index("practice_code")["gp_fte"] if "gp_fte" in practices else None
    registers = attribution.PracticeRegisters(
        _wide(known, "register"),
        _wide(known, "list_size"),
        total_list,
        fte,
        staffing.whole_team_fte(practices),
    )
    return _measure_columns(registers, "qof")


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    require_columns(frame, columns, what, error=PrevalenceModelError)


def age_sex_design(age_sex_matrix: pd.DataFrame, n_practices: int) -> tuple[pd.DataFrame, str]:
    """Covariates of the age-sex structure: shares of each list by band (one band dropped).

    Five-year bands by sex when there are at least ``MIN_PRACTICES_PER_PARAMETER`` practices per
    parameter; otherwise broad age groups (sexes pooled), so a small loaded area is not over-fitted.

    Args:
        age_sex_matrix: Practices x (sex, age_band) registered patients.
        n_practices: Practices available to fit on.

    Returns:
        ``(shares, description)``; shares indexed by practice code.
    """
    totals = age_sex_matrix.sum(axis=1).replace(0, np.nan)
    full = age_sex_matrix.div(totals, axis=0)
    full.columns = [f"{sex}_{band}" for sex, band in full.columns]
    if n_practices >= MIN_PRACTICES_PER_PARAMETER * (full.shape[1] + 1):
        return full.iloc[:, 1:], "five-year age bands by sex"
    lows = np.array(list(BROAD_BANDS.values()))
    bands = age_sex_matrix.columns.get_level_values("age_band")
    starts = np.array([int(str(b).split("_")[0].rstrip("+")) for b in bands])
    group = np.array(list(BROAD_BANDS))[np.searchsorted(lows, starts, side="right") - 1]
    broad = age_sex_matrix.T.groupby(group).sum().T.div(totals, axis=0)[list(BROAD_BANDS)]
    return broad.iloc[:, 1:], "broad age groups (0-19, 20-39, 40-59, 60-74, 75+)"


def fit_expected_registers(
    qof: pd.DataFrame, age_sex_matrix: pd.DataFrame, imd_score: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Expected registers at national average recording, one Poisson GLM per register.

    Args:
        qof: Stored QOF prevalence rows.
        age_sex_matrix: Practices x (sex, age_band) registered patients.
        imd_score: Patient-weighted IMD score per practice (index practice code).

    Returns:
        ``(expected, fit)``: ``expected`` has ``practice_code, group_code, observed, expected,
        list_size`` (expected NaN for practices without age-sex or IMD data, or a zero list);
        ``fit`` one row per register: ``group_code, practices, parameters, design,
        deviance_explained, dispersion, converged``.
    """
    import statsmodels.api as sm

    _require(qof, ["practice_code", "group_code", "register", "list_size"], "qof")
    covariate_practices = age_sex_matrix.index.intersection(imd_score.dropna().index)
    usable_practices = covariate_practices.intersection(pd.Index(qof["practice_code"].unique()))
    shares, design = age_sex_design(age_sex_matrix.loc[usable_practices], len(usable_practices))
    imd = imd_score.reindex(shares.index).astype(float)
    covariates = shares.assign(imd_score=(imd - imd.mean()) / (imd.std() or 1.0)).dropna()
    known = qof[qof["group_code"].isin(GROUP_TITLES)]
    # plain numpy arrays: per-register selections on Arrow strings cost seconds nationally
    codes = known["practice_code"].to_numpy(dtype=object)
    groups = known["group_code"].to_numpy(dtype=object)
    registers = known["register"].to_numpy(dtype=float)
    list_sizes = known["list_size"].to_numpy(dtype=float)
    design_rows = pd.Index(covariates.index.astype(object)).get_indexer(codes)
    exog_all = sm.add_constant(covariates.to_numpy(float), has_constant="add")
    expected_all = np.full(len(known), np.nan)
    fits = []
    # one BLAS thread: many small products, where threads cost more than they save
    with blas.one_thread():
        for group in sorted(set(groups)):
            in_group = groups == group
            usable = in_group & (list_sizes > 0) & (design_rows >= 0)
            exog = exog_all[design_rows[usable]]
            if usable.sum() > exog.shape[1] and registers[usable].sum() > 0:
                observed = registers[usable]
                offset = np.log(list_sizes[usable])
                # Newton-Raphson from the intercept-only solution: few iterations, no SVD per step
                start = np.zeros(exog.shape[1])
                start[0] = np.log(observed.sum() / np.exp(offset).sum())
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    # check_rank=False: the rank only sets df_model, which nothing here reads
                    result = sm.Poisson(observed, exog, offset=offset, check_rank=False).fit(
                        method="newton", start_params=start, maxiter=100, disp=0
                    )
                fitted = np.exp(exog @ result.params + offset)
                expected_all[usable] = fitted
                # the intercept-only model with the same offset has fitted L x sum(O) / sum(L)
                null = np.exp(offset) * observed.sum() / np.exp(offset).sum()
                deviance, null_deviance = (
                    _poisson_deviance(observed, fitted),
                    _poisson_deviance(observed, null),
                )
                fits.append(
                    {
                        "group_code": group,
                        "practices": int(usable.sum()),
                        "parameters": int(exog.shape[1]),
                        "design": design + " + IMD score",
                        "deviance_explained": float(1 - deviance / null_deviance)
                        if null_deviance > 0
                        else np.nan,
                        "dispersion": float(
                            ((observed - fitted) ** 2 / fitted).sum()
                            / max(len(observed) - exog.shape[1], 1)
                        ),
                        "converged": bool(result.mle_retvals.get("converged", False)),
                    }
                )
    columns = ["group_code", "practices", "parameters", "design"]
    fit = pd.DataFrame(fits, columns=columns + ["deviance_explained", "dispersion", "converged"])
    expected_frame = pd.DataFrame(
        {
            "practice_code": codes,
            "group_code": groups,
            "observed": registers,
            "expected": expected_all,
            "list_size": list_sizes,
        }
    )
    return expected_frame, fit


def _poisson_deviance(observed: np.ndarray, fitted: np.ndarray) -> float:
    """Poisson deviance ``2 sum(y log(y/mu) - (y - mu))`` (``y log y`` is 0 at 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(observed > 0, observed * np.log(observed / fitted), 0.0)
    return float(2 * (term - (observed - fitted)).sum())


def expected_from_store(
    qof: pd.DataFrame, age_sex: pd.DataFrame, practice_measures: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`fit_expected_registers` from stored tables (five-year bands, attributed IMD)."""
    base = practice_measures.set_index("practice_code")
    if "imd_score__num" not in base:
        return pd.DataFrame(), pd.DataFrame()
    with np.errstate(invalid="ignore", divide="ignore"):
        imd = base["imd_score__num"] / base["imd_score__den"].where(base["imd_score__den"] > 0)
    return fit_expected_registers(qof, attribution.age_sex_matrix(age_sex), imd)


def practice_oe_measures(expected: pd.DataFrame) -> pd.DataFrame:
    """``qof_oe_<group>__num`` (observed) and ``__den`` (expected) per practice.

    The measures registered for the ``"qof_expected"`` family in :mod:`pophealth.attribution`.
    Practices without an expected value contribute to neither, so area ratios compare like
    with like.
    """
    known = expected.dropna(subset=["expected"])
    registers = attribution.PracticeRegisters(_wide(known, "observed"), _wide(known, "expected"))
    return _measure_columns(registers, "qof_expected")


def qof_practice_measures(
    qof: pd.DataFrame, practices: pd.DataFrame, expected: pd.DataFrame | None
) -> pd.DataFrame:
    """Every QOF measure per practice: prevalence, burden and (where fitted) recorded vs expected.

    Args:
        qof: Stored QOF prevalence rows.
        practices: Practice table (for GP FTE).
        expected: :func:`fit_expected_registers` rows, or ``None``/empty when not fitted.
    """
    out = practice_qof_measures(qof, practices)
    if expected is not None and len(expected):
        out = out.merge(practice_oe_measures(expected), on="practice_code", how="left")
    return out


def with_resident_qof(
    lsoa_measures: pd.DataFrame, registrations: pd.DataFrame, qof_measures: pd.DataFrame
) -> pd.DataFrame:
    """Resident-basis measures plus QOF measures attributed to LSOAs by practices' shares."""
    if len(qof_measures.columns) <= 1 or not len(registrations):
        return lsoa_measures
    shared = attribution.attribute_practices_to_lsoas(registrations, qof_measures)
    out = lsoa_measures.merge(shared, on="lsoa21_code", how="left")
    return out.fillna({c: 0.0 for c in shared.columns if c != "lsoa21_code"})


# what the register table reads of an indicator row
_LTC_COLUMNS = (
    "indicator_id",
    "value",
    "lower_ci",
    "upper_ci",
    "comparator_value",
    "numerator",
    "denominator",
    "comparison_95",
)


def ltc_table(rows: pd.DataFrame, groups: tuple[str, ...] = GROUP_ORDER) -> pd.DataFrame:
    """One row per register: recorded prevalence and recorded vs expected for one area.

    Args:
        rows: The area's tidy indicator rows (one basis).
        groups: Registers to include, in display order.

    Returns:
        ``group_code, condition, prevalence, prevalence_low, prevalence_high,
        england_prevalence, register, ratio, ratio_low, ratio_high, expected,
        missing_patients, comparison`` sorted by estimated patients not on a register
        (largest gap first), registers without a ratio last.
    """
    # rows as dicts once: a .loc per register and statistic costs more than the whole table
    by_id = {row["indicator_id"]: row for row in records(rows, _LTC_COLUMNS)}
    table_rows = []
    for group in groups:
        prev, oe = PREV.format(group.lower()), OE.format(group.lower())
        if prev not in by_id:
            continue
        p = by_id[prev]
        o = by_id.get(oe)
        expected = float(o["denominator"]) if o is not None else np.nan
        observed = float(o["numerator"]) if o is not None else np.nan
        table_rows.append(
            {
                "group_code": group,
                "condition": GROUP_TITLES[group],
                "prevalence": p["value"],
                "prevalence_low": p["lower_ci"],
                "prevalence_high": p["upper_ci"],
                "england_prevalence": p["comparator_value"],
                "register": float(p["numerator"]),
                "ratio": o["value"] if o is not None else np.nan,
                "ratio_low": o["lower_ci"] if o is not None else np.nan,
                "ratio_high": o["upper_ci"] if o is not None else np.nan,
                "expected": expected,
                "missing_patients": expected - observed,
                "comparison": o["comparison_95"] if o is not None else "",
            }
        )
    table = pd.DataFrame(table_rows)
    if not len(table):
        return table
    return table.sort_values(
        "missing_patients", ascending=False, na_position="last", kind="stable"
    ).reset_index(drop=True)


def significant_gaps(rows: pd.DataFrame, area_name: str = "the area") -> list[dict]:
    """Registers recorded significantly below expected (95% upper limit < 1), largest first.

    For the headline generator: each finding names the condition, the ratio with its limits
    and the estimated patients not on a register; the benchmark is national average
    recording for the same age-sex structure and deprivation.

    Returns:
        A list of ``{"indicator_id", "group_code", "condition", "ratio", "lower", "upper",
        "missing_patients", "benchmark", "text"}`` ranked by missing patients.
    """
    table = ltc_table(rows)
    if not len(table):
        return []
    gaps = table[(table["ratio_high"] < 1) & (table["missing_patients"] > 0)]
    findings = []
    for row in gaps.itertuples():
        findings.append(
            {
                "indicator_id": OE.format(row.group_code.lower()),
                "group_code": row.group_code,
                "condition": row.condition,
                "ratio": float(row.ratio),
                "lower": float(row.ratio_low),
                "upper": float(row.ratio_high),
                "missing_patients": float(row.missing_patients),
                "benchmark": "national average recording for the same age, sex and deprivation",
                "text": (
                    f"{row.condition}: about {row.missing_patients:,.0f} fewer patients on the "
                    f"register in {area_name} than expected at national average recording "
                    f"(recorded/expected {row.ratio:.2f}, 95% CI {row.ratio_low:.2f} to "
                    f"{row.ratio_high:.2f})."
                ),
            }
        )
    return findings


def oe_indicator_ids(groups: tuple[str, ...] = GROUP_ORDER) -> list[str]:
    """Catalogue ids of the recorded-vs-expected ratios."""
    return [OE.format(g.lower()) for g in groups]


def gap_findings(rows: pd.DataFrame, area_name: str = "the area") -> list[headline.Finding]:
    """:func:`significant_gaps` as headline findings (kind ``recording``).

    Rated ``under-recorded``, in :func:`significant_gaps`' order (most patients not on a
    register first). The size is the shortfall as a proportion of expected (``1 - ratio``),
    the scale of the other findings, so the headline ranks a 40% under-recording beside a 40%
    outcome gap.
    """
    name = area_name if area_name else "the area"
    return [
        headline.Finding(
            "recording", gap["indicator_id"], "under-recorded", 1.0 - gap["ratio"], gap["text"]
        )
        for gap in significant_gaps(rows, name)
    ]


def model_notes(fit: pd.DataFrame, year: str = "") -> list[str]:
    """Method notes reporting the recorded-vs-expected model fit per register."""
    if not len(fit):
        return []
    first = fit.iloc[0]
    lines = [
        f"Recorded vs expected (QOF {year}): Poisson GLM per register with a log list-size "
        f"offset, fitted on {int(first['practices']):,} practices of the national files "
        f"using {first['design']}; "
        "expected = the register at national average recording; limits by Byar's method on the "
        "observed count. Dispersion above 1 means practices vary more than Poisson "
        "chance: treat narrow limits with care."
    ]
    parts = [
        f"{r.group_code} {r.deviance_explained:.0%} (dispersion {r.dispersion:.1f})"
        for r in fit.itertuples()
    ]
    lines.append("Deviance explained by register: " + ", ".join(parts) + ".")
    return lines


def long_term_conditions_frames(
    rows: pd.DataFrame,
    spine: pd.DataFrame,
    fit: pd.DataFrame,
    *,
    year: str = "",
    area_name: str = "the area",
) -> dict:
    """Everything the Long-term conditions section shows for one area.

    Args:
        rows: The area's tidy indicator rows (one basis).
        spine: The area's spine rows (indicator rows with peer ranges).
        fit: Model fit per register (:func:`fit_expected_registers`).
        year: QOF year label for notes.
        area_name: For finding texts.

    Returns:
        ``{}`` when the store has no QOF data; else ``table`` (:func:`ltc_table`),
        ``spine`` (prevalence rows), ``gaps`` (:func:`significant_gaps`),
        ``core20plus5`` (the five clinical areas' rows of ``table``) and ``notes``.
    """
    prevalence_ids = [PREV.format(g.lower()) for g in GROUP_ORDER]
    if not rows["indicator_id"].isin(prevalence_ids).any():
        return {}
    table = ltc_table(rows)
    order = {i: n for n, i in enumerate(prevalence_ids)}
    ltc_spine = spine[spine["indicator_id"].isin(prevalence_ids)]
    ltc_spine = ltc_spine.sort_values("indicator_id", key=lambda s: s.map(order))
    clinical = table[table["group_code"].isin(CORE20PLUS5_GROUPS)].assign(
        clinical_area=lambda t: t["group_code"].map(CORE20PLUS5_GROUPS)
    )
    notes = model_notes(fit, year)
    if (rows["basis"] == "resident").any():
        notes.append(
            "Long-term conditions on the resident basis are modelled from practice registers: "
            "each practice's registers and list sizes are shared out to LSOAs by where its "
            "patients live, then summed to the area."
        )
    return {
        "table": table,
        "spine": ltc_spine.reset_index(drop=True),
        "gaps": significant_gaps(rows, area_name),
        "core20plus5": clinical.reset_index(drop=True),
        "notes": notes,
    }
