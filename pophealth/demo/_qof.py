"""Synthetic QOF raw data (prevalence, achievement and mappings) in the official layout.

Each register's recorded count at a practice is Poisson with mean
``sum over sex and age of patients x rate(age) x exp(dep_slope x z) x recording``, where
``rate(age) = min(0.9, k x exp(age_slope x (age - 60)))`` above the register's minimum age,
``k`` is calibrated so the national crude prevalence matches the condition's target, ``z`` is
the practice's deprivation latent, and ``recording`` varies by practice (log-normal, sd
``RECORDING_SD``). A few practices under-record known conditions by a known factor
(:func:`planted_under_recording`), so tests can check the recorded-vs-expected model finds them.

The demo writes two QOF years (2023-24 and 2024-25), each from the practices' lists at the end of
its year. A practice's recording is persistent between years (:func:`persistent_recording` plus
a small yearly wobble) and each condition's national crude prevalence moves by
:data:`ANNUAL_CHANGE` a year (diabetes, hypertension, depression, obesity and non-diabetic
hyperglycaemia up, as in the published series).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pophealth.sources.qof import GROUP_TITLES

YEAR_SUFFIX = "2425"  # the current QOF year (the registry's file); earlier years count back

#: group -> (list type, target crude prevalence over its list, age slope per year, dep slope)
CONDITIONS: dict[str, tuple[str, float, float, float]] = {
    "AF": ("TOTAL", 0.022, 0.10, -0.02),
    "AST": ("06OV", 0.065, -0.005, 0.08),
    "CAN": ("TOTAL", 0.036, 0.06, -0.05),
    "CHD": ("TOTAL", 0.030, 0.08, 0.12),
    "CKD": ("18OV", 0.044, 0.10, 0.05),
    "COPD": ("TOTAL", 0.019, 0.06, 0.30),
    "DEM": ("TOTAL", 0.008, 0.15, 0.03),
    "DEP": ("18OV", 0.139, 0.0, 0.12),
    "DM": ("17OV", 0.077, 0.045, 0.15),
    "EP": ("18OV", 0.008, 0.0, 0.12),
    "HF": ("TOTAL", 0.011, 0.10, 0.12),
    "HYP": ("TOTAL", 0.150, 0.06, 0.05),
    "LD": ("TOTAL", 0.006, -0.02, 0.15),
    "MH": ("TOTAL", 0.010, 0.0, 0.25),
    "NDH": ("18OV", 0.070, 0.04, 0.10),
    "OB": ("18OV", 0.140, 0.01, 0.20),
    "OST": ("50OV", 0.010, 0.07, 0.0),
    "PAD": ("TOTAL", 0.006, 0.08, 0.15),
    "PC": ("TOTAL", 0.005, 0.08, 0.0),
    "RA": ("16OV", 0.008, 0.04, 0.05),
    "STIA": ("TOTAL", 0.019, 0.08, 0.10),
}
#: register indicator code per group (illustrative codes of the "establishes a register" kind)
REGISTER_INDICATORS = {
    "AF": "AF001", "AST": "AST005", "CAN": "CAN001", "CHD": "CHD001", "CKD": "CKD005",
    "COPD": "COPD015", "DEM": "DEM001", "DEP": "DEP004", "DM": "DM017", "EP": "EP001",
    "HF": "HF001", "HYP": "HYP001", "LD": "LD004", "MH": "MH001", "NDH": "NDH001",
    "OB": "OB002", "OST": "OST004", "PAD": "PAD001", "PC": "PC001", "RA": "RA001",
    "STIA": "STIA001",
}  # fmt: skip
RECORDING_SD = 0.06
#: sd of a practice's year-to-year change in recording (log scale), around its persistent level
YEARLY_RECORDING_SD = 0.02
#: group -> relative change in national crude prevalence per year (the targets are 2024-25's)
ANNUAL_CHANGE: dict[str, float] = {
    "AF": 0.02, "AST": 0.005, "CAN": 0.03, "CHD": -0.01, "CKD": 0.01, "COPD": -0.005,
    "DEM": 0.01, "DEP": 0.04, "DM": 0.03, "EP": 0.0, "HF": 0.02, "HYP": 0.015, "LD": 0.02,
    "MH": 0.01, "NDH": 0.08, "OB": 0.04, "OST": 0.02, "PAD": -0.01, "PC": 0.0, "RA": 0.0,
    "STIA": 0.0,
}  # fmt: skip
#: (position in code order, group, factor): practices that record only ``factor`` of their cases
PLANTED = ((5, "HYP", 0.6), (22, "DM", 0.65), (40, "COPD", 0.55), (58, "AF", 0.55))


def planted_under_recording(practice_codes: Sequence[str]) -> pd.DataFrame:
    """The demo's planted under-recording practices, from the practice codes of the demo.

    Args:
        practice_codes: Every demo practice code (any order).

    Returns:
        ``practice_code, group_code, factor`` (recorded = factor x what national recording
        would give).
    """
    ordered = sorted(set(practice_codes))
    if not ordered:
        return pd.DataFrame(columns=["practice_code", "group_code", "factor"])
    rows = [
        (ordered[position % len(ordered)], group, factor) for position, group, factor in PLANTED
    ]
    return pd.DataFrame(rows, columns=["practice_code", "group_code", "factor"])


def _min_age(list_type: str) -> int:
    return 0 if list_type == "TOTAL" else int(list_type[:-2])


def _age_rates(list_type: str, target: float, slope: float, ages: np.ndarray) -> np.ndarray:
    """Rates by single year of age, scaled so the national crude prevalence equals ``target``."""
    lo = _min_age(list_type)
    shape = np.where(np.arange(len(ages)) >= lo, np.exp(slope * (np.arange(len(ages)) - 60)), 0.0)
    denominator = ages[lo:].sum()
    low, high = 0.0, 10.0
    for _ in range(60):  # bisection on the scale; the cap makes it non-linear
        mid = (low + high) / 2
        if (np.minimum(0.9, mid * shape) * ages).sum() / denominator < target:
            low = mid
        else:
            high = mid
    return np.minimum(0.9, low * shape)


def persistent_recording(n: int, rng: np.random.Generator) -> np.ndarray:
    """Each practice's recording level per register (log scale, sd ``RECORDING_SD``).

    Returns:
        ``(registers in CONDITIONS order, practices)``: the same for every QOF year, so a
        practice that records well one year records well the next.
    """
    return RECORDING_SD * rng.standard_normal((len(CONDITIONS), n))


def qof_year_suffix(years_back: int) -> str:
    """File-name year of the QOF year ``years_back`` before the current one (1 -> ``"2324"``)."""
    start = int(YEAR_SUFFIX[:2]) - years_back
    return f"{start:02d}{start + 1:02d}"


def calibration(single_age: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, float]:
    """What the rates are calibrated on: patients by single year of age, and the mean latent."""
    return single_age.sum(axis=(0, 1)).astype(float), float(np.average(z))


def qof_tables(
    practices: pd.DataFrame,
    single_age: np.ndarray,
    z: np.ndarray,
    rng: np.random.Generator,
    *,
    reference: tuple[np.ndarray, float] | None = None,
    plant: bool = True,
    years_back: int = 0,
    recording: np.ndarray | None = None,
) -> dict[str, pd.DataFrame]:
    """The four QOF tables (official headers) for the demo practices.

    Args:
        practices: Demo practice frame with codes, names and PCN / sub-ICB / ICB / region codes.
        single_age: ``(practice, sex, age 0..95)`` registered patients.
        z: Practice deprivation latent (higher is more deprived).
        rng: Random generator (its own stream, so other files do not change).
        reference: :func:`calibration` of the population the rates are calibrated on (default
            these practices); the synthetic rest of England passes the demo ICS's, so the same
            age and deprivation rates apply everywhere.
        plant: Whether to plant the under-recording practices (the demo ICS only).
        years_back: QOF years before the current one (each condition's national prevalence
            target moves back by :data:`ANNUAL_CHANGE` a year).
        recording: :func:`persistent_recording` of these practices (each year then adds a small
            wobble); ``None`` draws an independent recording per practice from ``rng``.
    """
    n = len(practices)
    codes = practices["practice_code"].to_numpy()
    by_age = single_age.sum(axis=1).astype(float)  # (practice, age)
    national, z_centre = reference if reference is not None else calibration(single_age, z)
    planted = planted_under_recording(codes if plant else [])
    rows = []
    for position, (group, (list_type, target, slope, dep)) in enumerate(CONDITIONS.items()):
        target = target * (1 + ANNUAL_CHANGE[group]) ** -years_back
        rates = _age_rates(list_type, target, slope, national)
        lo = _min_age(list_type)
        list_size = by_age[:, lo:].sum(axis=1).astype(np.int64)
        mean = (by_age * rates[None, :]).sum(axis=1) * np.exp(dep * (z - z_centre))
        if recording is None:
            level = np.exp(RECORDING_SD * rng.standard_normal(n))
        else:
            level = np.exp(recording[position] + YEARLY_RECORDING_SD * rng.standard_normal(n))
        for row in planted[planted["group_code"] == group].itertuples():
            level[codes == row.practice_code] *= row.factor
        register = np.minimum(rng.poisson(mean * level), list_size)
        rows.append(
            pd.DataFrame(
                {
                    "PRACTICE_CODE": codes,
                    "GROUP_CODE": group,
                    "REGISTER": register,
                    "PATIENT_LIST_TYPE": list_type,
                    "PRACTICE_LIST_SIZE": list_size,
                }
            )
        )
    prevalence = pd.concat(rows, ignore_index=True).sort_values(
        ["PRACTICE_CODE", "GROUP_CODE"], ignore_index=True
    )
    indicators = pd.DataFrame(
        {
            "INDICATOR_CODE": [REGISTER_INDICATORS[g] for g in CONDITIONS],
            "INDICATOR_DESCRIPTION": [
                f"The contractor establishes and maintains a register of patients with "
                f"{GROUP_TITLES[g].lower()}"
                for g in CONDITIONS
            ],
            "INDICATOR_POINT_VALUE": 4,
            "GROUP_CODE": list(CONDITIONS),
            "GROUP_DESCRIPTION": [GROUP_TITLES[g] for g in CONDITIONS],
            "DOMAIN_CODE": "CL",
            "DOMAIN_DESCRIPTION": "Clinical",
            "PATIENT_LIST_TYPE": [CONDITIONS[g][0] for g in CONDITIONS],
        }
    )
    register_rows = prevalence.assign(
        INDICATOR_CODE=prevalence["GROUP_CODE"].map(REGISTER_INDICATORS)
    )
    achievement = pd.concat(
        [
            register_rows.assign(MEASURE="ACHIEVED_POINTS", VALUE=4.0),
            register_rows.assign(MEASURE="REGISTER", VALUE=register_rows["REGISTER"]),
        ],
        ignore_index=True,
    ).sort_values(["PRACTICE_CODE", "INDICATOR_CODE", "MEASURE"], ignore_index=True)
    achievement = achievement.merge(
        practices[["practice_code", "region_name"]].rename(
            columns={"practice_code": "PRACTICE_CODE"}
        ),
        on="PRACTICE_CODE",
    )[["PRACTICE_CODE", "INDICATOR_CODE", "MEASURE", "VALUE", "region_name"]]
    geographies = pd.DataFrame(
        {
            "REGION_ODS_CODE": practices["region_ods"],
            "REGION_ONS_CODE": practices["region_code"],
            "REGION_NAME": practices["region_name"],
            "ICB_ODS_CODE": practices["icb_ods"],
            "ICB_ONS_CODE": practices["icb_code"],
            "ICB_NAME": practices["icb_name"],
            "SUB_ICB_ODS_CODE": practices["sicbl_ods"],
            "SUB_ICB_ONS_CODE": practices["sicbl_code"],
            "SUB_ICB_NAME": practices["sicbl_name"],
            "PCN_ODS_CODE": practices["pcn_code"],
            "PCN_NAME": practices["pcn_name"],
            "PRACTICE_CODE": practices["practice_code"],
            "PRACTICE_NAME": practices["practice_name"],
        }
    )
    return {
        "prevalence": prevalence,
        "achievement": achievement,
        "indicators": indicators,
        "geographies": geographies,
    }


def write_qof(
    practices: pd.DataFrame,
    single_age: np.ndarray,
    z: np.ndarray,
    out_dir: Path,
    rng: np.random.Generator,
    write_csv,
    *,
    reference: tuple[np.ndarray, float] | None = None,
    plant: bool = True,
    years_back: int = 0,
    recording: np.ndarray | None = None,
) -> dict[str, Path]:
    """Write the demo QOF files in the official layout (the members of the published zip).

    ``PREVALENCE_<YYYY>.csv``, ``ACHIEVEMENT_<REGION>_<YYYY>.csv`` (one per region),
    ``MAPPING_INDICATORS_<YYYY>.csv`` and ``MAPPING_NHS_GEOGRAPHIES_<YYYY>.csv``, ``<YYYY>`` the
    year ``years_back`` QOF years before the current one (``2425``).

    ``reference``, ``plant``, ``years_back`` and ``recording`` are passed to :func:`qof_tables`.

    Returns:
        ``{"qof": path of the prevalence file}`` (the file the registry's QOF entry names).
    """
    tables = qof_tables(
        practices,
        single_age,
        z,
        rng,
        reference=reference,
        plant=plant,
        years_back=years_back,
        recording=recording,
    )
    suffix = qof_year_suffix(years_back)
    # the registry's one QOF entry names the prevalence file; the other members sit beside it
    prevalence = write_csv(tables["prevalence"], out_dir / f"PREVALENCE_{suffix}.csv")
    write_csv(tables["indicators"], out_dir / f"MAPPING_INDICATORS_{suffix}.csv")
    write_csv(tables["geographies"], out_dir / f"MAPPING_NHS_GEOGRAPHIES_{suffix}.csv")
    # one achievement file per NHS region, as published
    for region, rows in tables["achievement"].groupby("region_name"):
        # a file-name token of letters only (a hostile-names demo's region holds '/' and digits)
        label = "_".join(re.sub(r"[^A-Z]+", " ", str(region).upper()).split())
        write_csv(rows.drop(columns="region_name"), out_dir / f"ACHIEVEMENT_{label}_{suffix}.csv")
    return {"qof": prevalence}
