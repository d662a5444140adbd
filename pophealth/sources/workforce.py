"""Loader for NHS England GP workforce "Practice Level - Detailed" CSV (805 columns).

Official file: ``1 General Practice – <Month YYYY> Practice Level - Detailed.csv`` inside
``GPWPracticeCSV.MMYYYY.zip``. Missing values are ``NA`` (earlier ``ND``) and become NaN; the
``*_SOURCE`` columns say whether a staff group's figures were provided or estimated and are kept
so that estimated FTEs can be flagged.

Besides the four staff-group totals the file gives every role the publisher collects (GP partners,
salaried, retainers, GPs in training grade by grade, locums by reason; each nurse type; each direct
patient care role; each admin role), as ``TOTAL_<role>_FTE`` and ``TOTAL_<role>_HC`` (headcount).
:data:`ROLES` lists them, with the staff group each belongs to, as named in the publisher's field
definitions workbook; the male/female and age-band splits are not read.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pophealth.sources.common import (
    ColumnPattern,
    canonical_schema,
    clean_codes,
    code_column,
    code_columns,
    parse_numeric,
    parse_numeric_columns,
    read_csv_columns,
    read_header,
    resolve_columns,
    validate_output,
)

__all__ = [
    "DETAIL_COLUMNS",
    "ESTIMATED_SOURCES",
    "FTE_COLUMNS",
    "MISSING_SOURCES",
    "ROLES",
    "SOURCE_COLUMNS",
    "WORKFORCE_SCHEMA",
    "Role",
    "load_workforce",
    "official_columns",
]


class Role(NamedTuple):
    """One role (or total) of the detailed file.

    Attributes:
        stem: The official field stem: ``TOTAL_<stem>_FTE`` and ``TOTAL_<stem>_HC``.
        group: Staff group: ``gp``, ``nurse``, ``dpc`` (direct patient care) or ``admin``.
        label: The publisher's description, shortened.
    """

    stem: str
    group: str
    label: str


#: Every role and total of the detailed file, in the publisher's order (field definitions
#: workbook ``Practice-Level CSV Definitions``). Totals first in each group.
ROLES: tuple[Role, ...] = (
    Role("GP", "gp", "GPs (all, incl. GPs in training grade and locums)"),
    Role("GP_EXTG", "gp", "Fully qualified GPs (excl. training grade)"),
    Role("GP_EXL", "gp", "Regular GPs (excl. locums)"),
    Role("GP_EXTGL", "gp", "Qualified permanent GPs (excl. training grade and locums)"),
    Role("GP_SEN_PTNR", "gp", "GP senior partners"),
    Role("GP_PTNR_PROV", "gp", "GP partners/providers"),
    Role("GP_SAL_BY_PRAC", "gp", "Salaried GPs (by practice)"),
    Role("GP_SAL_BY_OTH", "gp", "Salaried GPs (by other)"),
    Role("GP_TRN_GR_ST1", "gp", "GP registrars ST1"),
    Role("GP_TRN_GR_ST2", "gp", "GP registrars ST2"),
    Role("GP_TRN_GR_ST3", "gp", "GP registrars ST3"),
    Role("GP_TRN_GR_ST4", "gp", "GP registrars ST4"),
    Role("GP_TRN_GR_OTH", "gp", "GPs in training grade, other"),
    Role("GP_TRN_GR_F1_2", "gp", "Foundation doctors F1/F2"),
    Role("GP_RET", "gp", "GP retainers"),
    Role("GP_LOCUM_VAC", "gp", "GP locums covering vacancies"),
    Role("GP_LOCUM_ABS", "gp", "GP locums covering sickness/maternity/paternity"),
    Role("GP_LOCUM_OTH", "gp", "GP locums, other"),
    Role("NURSES", "nurse", "Nurses (all)"),
    Role("N_PRAC_NURSE", "nurse", "Practice nurses"),
    Role("N_ADV_NURSE_PRAC", "nurse", "Advanced nurse practitioners"),
    Role("N_ENH_PRAC_NURSE", "nurse", "Enhanced practice nurses"),
    Role("N_NURSE_SPEC", "nurse", "Nurse specialists"),
    Role("N_EXT_ROLE_NURSE", "nurse", "Extended role practice nurses"),
    Role("N_TRAINEE_NURSE", "nurse", "Trainee nurses"),
    Role("N_NURSE_DISP", "nurse", "Nurse dispensers"),
    Role("N_NURSE_PTNR", "nurse", "Practice nurse partners"),
    Role("N_NURSE_OTH", "nurse", "Other nurses"),
    Role("DPC", "dpc", "Direct patient care staff (all)"),
    Role("DPC_ADV_DIETICIAN_PRAC", "dpc", "Advanced dietician practitioners"),
    Role("DPC_ADV_PARAMED_PRAC", "dpc", "Advanced paramedic practitioners"),
    Role("DPC_ADV_PHARMA_PRAC", "dpc", "Advanced pharmacist practitioners"),
    Role("DPC_ADV_PHYSIO_PRAC", "dpc", "Advanced physiotherapist practitioners"),
    Role("DPC_ADV_PODIA_PRAC", "dpc", "Advanced podiatrist practitioners"),
    Role("DPC_ADV_THERA_OCC_PRAC", "dpc", "Advanced occupational therapist practitioners"),
    Role("DPC_DIETICIAN", "dpc", "Dieticians"),
    Role("DPC_DISPENSER", "dpc", "Dispensers"),
    Role("DPC_GPA", "dpc", "General practice assistants"),
    Role("DPC_HCA", "dpc", "Health care assistants"),
    Role("DPC_OST", "dpc", "Osteopaths"),
    Role("DPC_PHLEB", "dpc", "Phlebotomists"),
    Role("DPC_PHARMA", "dpc", "Pharmacists"),
    Role("DPC_PHYSIO", "dpc", "Physiotherapists"),
    Role("DPC_PODIA", "dpc", "Podiatrists"),
    Role("DPC_PHYSICIAN_ASSOC", "dpc", "Physician associates"),
    Role("DPC_THERA_COU", "dpc", "Therapists: counsellors"),
    Role("DPC_THERA_OCC", "dpc", "Therapists: occupational therapists"),
    Role("DPC_THERA_OTH", "dpc", "Therapists: other"),
    Role("DPC_NURSE_ASSOC", "dpc", "Nursing associates"),
    Role("DPC_TRAINEE_NURSE_ASSOC", "dpc", "Trainee nursing associates"),
    Role("DPC_PARAMED", "dpc", "Paramedics"),
    Role("DPC_PHARMT", "dpc", "Pharmacy technicians"),
    Role("DPC_TRAINEE_PHARMT", "dpc", "Trainee pharmacy technicians"),
    Role("DPC_SPLW", "dpc", "Social prescribing link workers"),
    Role("DPC_NHS_TALKING_THERA", "dpc", "NHS Talking Therapies therapists"),
    Role("DPC_TRAINEE_NHS_TALKING_THERA", "dpc", "Trainee NHS Talking Therapies therapists"),
    Role("DPC_APP_HCA", "dpc", "Apprentice health care assistants"),
    Role("DPC_APP_PHLEB", "dpc", "Apprentice phlebotomists"),
    Role("DPC_APP_PHARMA", "dpc", "Apprentice pharmacists"),
    Role("DPC_APP_PHYSIO", "dpc", "Apprentice physiotherapists"),
    Role("DPC_APP_PHYSICIAN_ASSOC", "dpc", "Apprentice physician associates"),
    Role("DPC_APP_OTH", "dpc", "Apprentices, other"),
    Role("DPC_APPRENTICE", "dpc", "Apprentices (all)"),
    Role("DPC_HLTH_SPRT_WRK", "dpc", "Health support workers"),
    Role("DPC_OTH", "dpc", "Other direct patient care"),
    Role("ADMIN", "admin", "Admin/non-clinical staff (all)"),
    Role("ADMIN_MANAGER", "admin", "Managers"),
    Role("ADMIN_MANAGE_PTNR", "admin", "Management partners"),
    Role("ADMIN_MED_SECRETARY", "admin", "Medical secretaries"),
    Role("ADMIN_RECEPT", "admin", "Receptionists"),
    Role("ADMIN_TELEPH", "admin", "Telephonists"),
    Role("ADMIN_ESTATES_ANC", "admin", "Estates and ancillary"),
    Role("ADMIN_DT_LEAD", "admin", "Digital and transformation leads"),
    Role("ADMIN_OTH", "admin", "Admin/non-clinical, other"),
    Role("ADMIN_APP", "admin", "Admin/non-clinical apprentices"),
)

#: canonical name -> official column: the staff-group totals every release carries (required).
FTE_COLUMNS: dict[str, str] = {
    "gp_fte": "TOTAL_GP_FTE",
    "gp_extg_fte": "TOTAL_GP_EXTG_FTE",
    "gp_exl_fte": "TOTAL_GP_EXL_FTE",
    "gp_extgl_fte": "TOTAL_GP_EXTGL_FTE",
    "nurse_fte": "TOTAL_NURSES_FTE",
    "dpc_fte": "TOTAL_DPC_FTE",
    "admin_fte": "TOTAL_ADMIN_FTE",
}


def _canonical(stem: str, measure: str) -> str:
    return f"{'nurse' if stem == 'NURSES' else stem.lower()}_{measure}"


#: canonical name -> official column: every other role FTE and every headcount (optional: roles
#: were added over the years, e.g. osteopaths from April 2024; absent columns load as NaN).
DETAIL_COLUMNS: dict[str, str] = {
    **{
        _canonical(role.stem, "fte"): f"TOTAL_{role.stem}_FTE"
        for role in ROLES
        if f"TOTAL_{role.stem}_FTE" not in FTE_COLUMNS.values()
    },
    **{_canonical(role.stem, "hc"): f"TOTAL_{role.stem}_HC" for role in ROLES},
}
SOURCE_COLUMNS: dict[str, str] = {
    "gp_source": "GP_SOURCE",
    "nurse_source": "NURSE_SOURCE",
    "dpc_source": "DPC_SOURCE",
    "admin_source": "ADMIN_SOURCE",
}
#: ``*_SOURCE`` values meaning some or all of a group's FTE were estimated by the publisher.
ESTIMATED_SOURCES: frozenset[str] = frozenset({"Includes FTE Estimates", "Fully Estimated"})
#: ``*_SOURCE`` values meaning the group has no usable figures.
MISSING_SOURCES: frozenset[str] = frozenset({"No valid or current data", "No data provided"})
_ID_COLUMNS: dict[str, str] = {
    "practice_code": "PRAC_CODE",
    "practice_name": "PRAC_NAME",
    "pcn_code": "PCN_CODE",
    "sicbl_ods": "SUB_ICB_CODE",
    "icb_ods": "ICB_CODE",
}


def official_columns() -> set[str]:
    """Every official column name this loader reads (for checks against the definitions)."""
    return {
        *_ID_COLUMNS.values(),
        "TOTAL_PATIENTS",
        *FTE_COLUMNS.values(),
        *DETAIL_COLUMNS.values(),
        *SOURCE_COLUMNS.values(),
    }


_FTE_AND_HC = [*FTE_COLUMNS, *DETAIL_COLUMNS]

WORKFORCE_SCHEMA = canonical_schema(
    "GP workforce practice level",
    {
        "practice_code": code_column(),
        **code_columns("practice_name", "pcn_code", "sicbl_ods", "icb_ods"),
        "total_patients": pa.Column("Int64", pa.Check.ge(0), nullable=True),
        **{name: pa.Column("float64", pa.Check.ge(0), nullable=True) for name in _FTE_AND_HC},
        **{name: code_column(nullable=True) for name in SOURCE_COLUMNS},
    },
)


#: The schema without the number columns (checked at once in :func:`load_workforce`).
_LABEL_SCHEMA = canonical_schema(
    WORKFORCE_SCHEMA.name,
    {name: column for name, column in WORKFORCE_SCHEMA.columns.items() if name not in _FTE_AND_HC},
)


def load_workforce(path: str | Path) -> pd.DataFrame:
    """Load practice-level FTEs and headcounts by staff group and role, with estimation flags.

    ``PCN_CODE`` is kept as published but upper-cased like every code (``UNALIGNED`` for practices
    in no PCN, ``NA`` before
    PCNs). FTE/headcount ``NA``/``ND`` -> NaN. ``total_patients`` is nullable ``Int64``. Before
    2022 the sub-ICB column was ``CCG_CODE`` and the ICB column ``STP_CODE``; both are accepted.
    The four group totals and the GP subtotals are required; role columns a release lacks
    (:data:`DETAIL_COLUMNS`) are NaN.

    Returns:
        ``practice_code, practice_name, pcn_code, sicbl_ods, icb_ods, total_patients``, the
        :data:`FTE_COLUMNS` (``gp_fte`` … ``admin_fte``), the :data:`DETAIL_COLUMNS` (role FTEs
        such as ``gp_trn_gr_st1_fte``, ``dpc_splw_fte``, then headcounts ``gp_hc`` …
        ``admin_app_hc``, all float) and ``gp_source, nurse_source, dpc_source, admin_source``.
    """
    path = Path(path)
    headers = read_header(path)
    wanted: dict[str, ColumnPattern] = {
        "practice_code": ColumnPattern("PRAC_CODE"),
        "practice_name": ColumnPattern("PRAC_NAME"),
        "pcn_code": ColumnPattern("PCN_CODE"),
        "sicbl_ods": ColumnPattern("SUB_ICB_CODE", "CCG_CODE"),
        "icb_ods": ColumnPattern("ICB_CODE", "STP_CODE"),
        "total_patients": ColumnPattern("TOTAL_PATIENTS"),
        **{name: ColumnPattern(label) for name, label in FTE_COLUMNS.items()},
        **{name: ColumnPattern(label) for name, label in DETAIL_COLUMNS.items()},
        **{name: ColumnPattern(label) for name, label in SOURCE_COLUMNS.items()},
    }
    columns = resolve_columns(
        headers,
        wanted,
        path,
        optional={"pcn_code", "icb_ods", *SOURCE_COLUMNS, *DETAIL_COLUMNS},
        source="GP workforce 'Practice Level - Detailed' CSV",
    )
    raw = read_csv_columns(path, columns, numeric={"total_patients", *_FTE_AND_HC})
    out = pd.DataFrame(index=raw.index)
    for name in _ID_COLUMNS:
        out[name] = (
            clean_codes(raw[name])
            if name in raw
            else pd.Series(pd.NA, index=raw.index, dtype="str")
        )
    out["total_patients"] = parse_numeric(
        raw["total_patients"],
        path,
        str(columns["total_patients"]),
        integer=True,
        allow_missing=True,
    ).astype("Int64")
    numbers = parse_numeric_columns(
        raw,
        path,
        {name: str(columns[name]) for name in _FTE_AND_HC if name in raw},
        allow_missing=True,
    ).reindex(columns=_FTE_AND_HC)
    out = pd.concat([out, numbers], axis=1)
    for name in SOURCE_COLUMNS:
        out[name] = (
            raw[name].str.strip() if name in raw else pd.Series(pd.NA, index=raw.index, dtype="str")
        )
    out = out.reset_index(drop=True)
    values = numbers.to_numpy()
    if (np.isnan(values) | (values >= 0)).all():
        # The ~160 number columns are float64 by construction and pass ge(0): checking them
        # column by column in pandera costs more than the whole parse; other columns as usual.
        validate_output(out.drop(columns=_FTE_AND_HC), _LABEL_SCHEMA, path)
    else:
        validate_output(out, WORKFORCE_SCHEMA, path)
    return out
