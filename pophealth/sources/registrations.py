"""Loaders for NHS England "Patients Registered at a GP Practice" files.

Official files (see FORMATS.md section 1): ``gp-reg-pat-prac-lsoa-all.csv``,
``gp-reg-pat-prac-all.csv``, ``gp-reg-pat-prac-quin-age.csv``,
``gp-reg-pat-prac-sing-age-{male,female}.csv`` and ``gp-reg-pat-prac-map.csv``.
Columns are found by their official labels; CCG-era (before July 2022) names are accepted.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from pophealth.ages import AGE_BANDS
from pophealth.sources.common import (
    ColumnPattern,
    SourceColumns,
    SourceFormatError,
    canonical_schema,
    code_column,
    code_columns,
    date_column,
    parse_numeric,
    read_source_csv,
)

__all__ = [
    "AGE_BANDS",
    "LSOA_SCHEMA",
    "MAP_SCHEMA",
    "AGE_BAND_SCHEMA",
    "SINGLE_AGE_SCHEMA",
    "TOTALS_SCHEMA",
    "load_practice_age_bands",
    "load_practice_map",
    "load_practice_single_age",
    "load_practice_totals",
    "load_registrations_by_lsoa",
]

#: Five-year bands as published in AGE_GROUP_5, youngest first.

_PATIENTS = ColumnPattern("NUMBER_OF_PATIENTS", "Number of Patients", "Number of patients")
_EXTRACT_DATE = ColumnPattern("EXTRACT_DATE", "Extract Date")
_SUB_ICB_ODS = ColumnPattern("SUB_ICB_LOCATION_CODE", "CCG_CODE")
_SUB_ICB_ONS = ColumnPattern("ONS_SUB_ICB_LOCATION_CODE", "ONS_CCG_CODE")
# the columns the five-year and single-year age files share
_BY_SEX = {
    "extract_date": _EXTRACT_DATE,
    "org_type": ColumnPattern("ORG_TYPE", "TYPE"),
    "practice_code": ColumnPattern("ORG_CODE", "CODE", "PRACTICE_CODE"),
    "sex": ColumnPattern("SEX"),
}

_PATIENT_COUNT = pa.Column("int64", pa.Check.ge(0))
# every registrations table starts with the extract date and the practice
_EXTRACT_PRACTICE = {"extract_date": date_column(nullable=False), "practice_code": code_column()}
_MAP_LEVELS = ("sicbl", "icb", "region")
_SEXES = pa.Column(str, pa.Check.isin(["male", "female"]))

LSOA_SCHEMA = canonical_schema(
    "GP registrations by LSOA",
    {
        **_EXTRACT_PRACTICE,
        "practice_name": code_column(nullable=True),
        "lsoa_code": code_column(),
        "patients": _PATIENT_COUNT,
    },
)
TOTALS_SCHEMA = canonical_schema(
    "GP practice registered totals",
    {
        **_EXTRACT_PRACTICE,
        **code_columns("sicbl_ods", "sicbl_code", "postcode"),
        "patients": _PATIENT_COUNT,
    },
)
AGE_BAND_SCHEMA = canonical_schema(
    "GP practice registrations by five-year age band",
    {
        **_EXTRACT_PRACTICE,
        "sex": _SEXES,
        "age_band": pa.Column(str, pa.Check.isin(list(AGE_BANDS))),
        "patients": _PATIENT_COUNT,
    },
)
SINGLE_AGE_SCHEMA = canonical_schema(
    "GP practice registrations by single year of age",
    {
        **_EXTRACT_PRACTICE,
        "sex": _SEXES,
        "age": pa.Column("int64", pa.Check.in_range(0, 95)),
        "patients": _PATIENT_COUNT,
    },
)
MAP_SCHEMA = canonical_schema(
    "GP practice to PCN / sub-ICB / ICB map",
    {
        **_EXTRACT_PRACTICE,
        # each level above the PCN has an ONS code, an ODS code and a name
        **code_columns(
            "practice_name",
            "pcn_code",
            "pcn_name",
            *(f"{level}_{part}" for level in _MAP_LEVELS for part in ("code", "ods", "name")),
        ),
    },
)


def _keep_all_rows(table: SourceColumns, column: str) -> SourceColumns:
    """Keep rows whose ``column`` is ``ALL`` (e.g. SEX=ALL); error if there are none."""
    is_all = table[column].str.strip().str.upper() == "ALL"
    if not is_all.any():
        seen = ", ".join(sorted(table[column].dropna().unique()[:5]))
        label = table.label(column)
        raise SourceFormatError(
            table.path,
            f"no rows with {label} = ALL",
            column=label,
            examples=f"values found: {seen}",
            fix="use the '-all' file (persons), not the male/female split",
        )
    return table.rows(is_all)


def _gp_rows(table: SourceColumns, column: str) -> SourceColumns:
    """Keep the GP practice rows (``TYPE``/``ORG_TYPE`` = GP)."""
    return table.rows(table[column].str.strip().str.upper() == "GP")


def load_registrations_by_lsoa(path: str | Path) -> pd.DataFrame:
    """Load patients registered per practice by LSOA of residence (``…-lsoa-all.csv``).

    ``LSOA_CODE`` is kept exactly as published, including Welsh ``W01…`` codes, ``NO2011``
    (unknown residence, older files) and ``CLOSED`` (invalid postcode): the caller classifies
    and reports them. If a SEX column is present only ``ALL`` rows are kept.

    Args:
        path: The official CSV.

    Returns:
        ``extract_date, practice_code, practice_name, lsoa_code, patients``.

    Raises:
        SourceFormatError: Missing columns, non-numeric counts, unknown dates.
    """
    table = read_source_csv(
        path,
        {
            "extract_date": _EXTRACT_DATE,
            "practice_code": ColumnPattern("PRACTICE_CODE"),
            "practice_name": ColumnPattern("PRACTICE_NAME"),
            "lsoa_code": ColumnPattern("LSOA_CODE", "LSOA_2011_CODE", "LSOA_2021_CODE"),
            "sex": ColumnPattern("SEX"),
            "patients": _PATIENTS,
        },
        optional={"sex", "practice_name"},
        numeric={"patients"},
        source="GP registrations by LSOA file (gp-reg-pat-prac-lsoa-all.csv)",
    )
    if "sex" in table:
        table = _keep_all_rows(table, "sex")
    out = pd.DataFrame(
        {
            **_extract_and_practice(table),
            "practice_name": table.column("practice_name"),
            "lsoa_code": table.codes("lsoa_code"),
            "patients": table.numbers("patients", integer=True),
        }
    )
    return table.output(out, LSOA_SCHEMA)


def _extract_and_practice(table: SourceColumns) -> dict[str, pd.Series]:
    """The key columns every registrations table starts with (see ``_EXTRACT_PRACTICE``)."""
    return {
        "extract_date": table.dates("extract_date", allow_missing=False),
        "practice_code": table.codes("practice_code"),
    }


def load_practice_totals(path: str | Path) -> pd.DataFrame:
    """Load registered patients per practice (``gp-reg-pat-prac-all.csv``).

    Keeps GP rows (``TYPE`` = GP when present) for both sexes and all ages. Accepts the
    sub-ICB-era (``SUB_ICB_LOCATION_CODE``) and CCG-era (``CCG_CODE``) headers.

    Returns:
        ``extract_date, practice_code, sicbl_ods, sicbl_code, postcode, patients``.
    """
    table = read_source_csv(
        path,
        {
            "extract_date": _EXTRACT_DATE,
            "type": ColumnPattern("TYPE", "ORG_TYPE"),
            "sicbl_ods": _SUB_ICB_ODS,
            "sicbl_code": _SUB_ICB_ONS,
            "practice_code": ColumnPattern("CODE", "PRACTICE_CODE", "ORG_CODE"),
            "postcode": ColumnPattern("POSTCODE"),
            "sex": ColumnPattern("SEX"),
            "age": ColumnPattern("AGE"),
            "patients": _PATIENTS,
        },
        optional={"type", "sex", "age", "postcode"},
        numeric={"patients"},
        source="GP practice totals file (gp-reg-pat-prac-all.csv)",
    )
    if "type" in table:
        table = _gp_rows(table, "type")
    for name in ("sex", "age"):
        if name in table:
            table = _keep_all_rows(table, name)
    out = pd.DataFrame(
        {
            **_extract_and_practice(table),
            "sicbl_ods": table.codes("sicbl_ods"),
            "sicbl_code": table.codes("sicbl_code"),
            "postcode": table.text("postcode"),
            "patients": table.numbers("patients", integer=True),
        }
    )
    _check_unique(out, table)
    return table.output(out, TOTALS_SCHEMA)


def _check_unique(frame: pd.DataFrame, table: SourceColumns) -> None:
    """One row per practice (two months concatenated would repeat every practice)."""
    table.check_no_repeats(
        frame,
        ["practice_code"],
        what="the same practice_code",
        fix="check the file is a single extract and not two months concatenated",
    )


def load_practice_age_bands(path: str | Path) -> pd.DataFrame:
    """Load registered patients per practice by sex and five-year band (``…-quin-age.csv``).

    Keeps ``ORG_TYPE`` = GP rows for MALE/FEMALE and the bands ``0_4 … 90_94, 95+``. The
    ``ALL`` rows are used to check the bands (a warning names practices whose bands do not add
    up to their ALL/ALL total, e.g. patients of unknown sex) and then dropped.

    Returns:
        ``extract_date, practice_code, sex`` (``male``/``female``), ``age_band``, ``patients``.
    """
    table = read_source_csv(
        path,
        {
            **_BY_SEX,
            "age_band": ColumnPattern("AGE_GROUP_5", "AGE_GROUP"),
            "patients": _PATIENTS,
        },
        numeric={"patients"},
        source="GP registrations by five-year age file (gp-reg-pat-prac-quin-age.csv)",
    )
    path, columns = table.path, table.headers
    table = _gp_rows(table, "org_type")
    if table.raw.empty:
        raise SourceFormatError(
            path,
            "no GP rows",
            column=table.label("org_type"),
            fix="check this is the practice-level quin-age file",
        )
    raw = table.raw.assign(
        sex=table["sex"].str.strip().str.upper(),
        age_band=table["age_band"].str.strip().str.upper(),
        practice_code=table.codes("practice_code"),
        patients=table.numbers("patients", integer=True),
    )
    bands = raw["sex"].isin(["MALE", "FEMALE"]) & raw["age_band"].isin(AGE_BANDS)
    odd = ~bands & ~(raw["sex"].isin(["MALE", "FEMALE", "ALL"]) & (raw["age_band"] == "ALL"))
    if odd.any():
        shown = raw.loc[odd, ["sex", "age_band"]].drop_duplicates().head(5)
        raise SourceFormatError(
            path,
            "unexpected SEX/AGE_GROUP_5 values",
            column=f"{columns['sex']}/{columns['age_band']}",
            examples="; ".join(f"{s}/{a}" for s, a in shown.itertuples(index=False)),
            fix=f"AGE_GROUP_5 must be one of {', '.join(AGE_BANDS)} or ALL",
        )
    totals = raw.loc[(raw["sex"] == "ALL") & (raw["age_band"] == "ALL")].groupby("practice_code")[
        "patients"
    ]
    band_sums = raw.loc[bands].groupby("practice_code")["patients"].sum()
    if len(totals):
        compared = pd.concat([band_sums, totals.sum()], axis=1, keys=["bands", "all"]).dropna()
        over = compared.loc[compared["bands"] > compared["all"]]
        if len(over):
            # patients of unknown sex explain bands below ALL, never above it
            raise SourceFormatError(
                path,
                f"for {len(over)} practice(s) the MALE/FEMALE age bands add up to more than the "
                "practice's ALL/ALL total",
                column=str(columns["patients"]),
                examples="; ".join(
                    f"{code}: bands {int(r['bands']):,} > ALL {int(r['all']):,}"
                    for code, r in over.head(5).iterrows()
                ),
                fix="download the file again; a band row may be repeated or edited",
            )
        mismatched = compared.loc[compared["bands"] != compared["all"]]
        if len(mismatched):
            warnings.warn(
                f"{path.name}: for {len(mismatched)} practice(s) the MALE/FEMALE age bands do not "
                f"add up to the ALL/ALL total (e.g. {', '.join(mismatched.index[:5])}); patients "
                "of unknown sex are not in the bands",
                stacklevel=2,
            )
    kept = raw.loc[bands]
    out = pd.DataFrame(
        {
            "extract_date": table.rows(bands).dates("extract_date", allow_missing=False),
            "practice_code": kept["practice_code"],
            "sex": kept["sex"].str.lower(),
            "age_band": kept["age_band"],
            "patients": kept["patients"],
        }
    )
    return table.output(out, AGE_BAND_SCHEMA)


def load_practice_single_age(path: str | Path) -> pd.DataFrame:
    """Load registered patients per practice by single year of age (``…-sing-age-male.csv``/female).

    ``AGE`` 0–94 are kept as integers, ``95+`` becomes 95; ``ALL`` rows are dropped.

    Returns:
        ``extract_date, practice_code, sex, age, patients``.
    """
    table = read_source_csv(
        path,
        {
            **_BY_SEX,
            "age": ColumnPattern("AGE"),
            "patients": _PATIENTS,
        },
        optional={"org_type"},
        numeric={"patients"},
        source="GP registrations by single year of age file (gp-reg-pat-prac-sing-age-*.csv)",
    )
    if "org_type" in table:
        table = _gp_rows(table, "org_type")
    age_text = table["age"].str.strip().str.upper()
    sex = table["sex"].str.strip().str.lower()
    keep = (age_text != "ALL") & sex.isin(["male", "female"])
    age_text = age_text.loc[keep].str.replace("+", "", regex=False)
    ages = parse_numeric(age_text, table.path, table.label("age"), integer=True)
    kept = table.rows(keep)
    out = pd.DataFrame(
        {
            **_extract_and_practice(kept),
            "sex": sex.loc[keep],
            "age": ages,
            "patients": kept.numbers("patients", integer=True),
        }
    )
    return table.output(out, SINGLE_AGE_SCHEMA)


def load_practice_map(path: str | Path) -> pd.DataFrame:
    """Load the practice -> PCN -> sub-ICB location -> ICB map (``gp-reg-pat-prac-map.csv``).

    Sub-ICB/ICB-era headers and the pre-July-2022 CCG/STP-era headers are both accepted; CCG
    codes go to the ``sicbl_*`` columns and STP codes to the ``icb_*`` columns.

    Returns:
        ``extract_date, practice_code, practice_name, pcn_code, pcn_name, sicbl_code, sicbl_ods,
        sicbl_name, icb_code, icb_ods, icb_name, region_code, region_ods, region_name`` (the
        NHS England commissioning region; NA when the extract lacks it).
    """
    table = read_source_csv(
        path,
        {
            "extract_date": _EXTRACT_DATE,
            "practice_code": ColumnPattern("PRACTICE_CODE"),
            "practice_name": ColumnPattern("PRACTICE_NAME"),
            "pcn_code": ColumnPattern("PCN_CODE"),
            "pcn_name": ColumnPattern("PCN_NAME"),
            "sicbl_code": _SUB_ICB_ONS,
            "sicbl_ods": _SUB_ICB_ODS,
            "sicbl_name": ColumnPattern("SUB_ICB_LOCATION_NAME", "CCG_NAME"),
            "icb_code": ColumnPattern("ONS_ICB_CODE", "ONS_STP_CODE"),
            "icb_ods": ColumnPattern("ICB_CODE", "STP_CODE"),
            "icb_name": ColumnPattern("ICB_NAME", "STP_NAME"),
            "region_code": ColumnPattern("ONS_COMM_REGION_CODE"),
            "region_ods": ColumnPattern("COMM_REGION_CODE"),
            "region_name": ColumnPattern("COMM_REGION_NAME"),
        },
        optional=["region_code", "region_ods", "region_name"],
        source="GP practice mapping file (gp-reg-pat-prac-map.csv)",
    )
    # the NHS England (commissioning) region is optional: older extracts lack it (all-NA)
    out = pd.DataFrame(
        {
            c: table.codes(c) if c.endswith(("_code", "_ods")) else table.column(c)
            for c in table.headers
        }
    ).assign(extract_date=table.dates("extract_date", allow_missing=False))
    _check_unique(out, table)
    return table.output(out, MAP_SCHEMA)
