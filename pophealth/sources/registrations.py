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
    SourceFormatError,
    canonical_schema,
    clean_codes,
    code_column,
    date_column,
    parse_dates,
    parse_numeric,
    read_csv_columns,
    read_header,
    resolve_columns,
    validate_output,
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

_PATIENT_COUNT = pa.Column("int64", pa.Check.ge(0))

LSOA_SCHEMA = canonical_schema(
    "GP registrations by LSOA",
    {
        "extract_date": date_column(nullable=False),
        "practice_code": code_column(),
        "practice_name": code_column(nullable=True),
        "lsoa_code": code_column(),
        "patients": _PATIENT_COUNT,
    },
)
TOTALS_SCHEMA = canonical_schema(
    "GP practice registered totals",
    {
        "extract_date": date_column(nullable=False),
        "practice_code": code_column(),
        "sicbl_ods": code_column(nullable=True),
        "sicbl_code": code_column(nullable=True),
        "postcode": code_column(nullable=True),
        "patients": _PATIENT_COUNT,
    },
)
AGE_BAND_SCHEMA = canonical_schema(
    "GP practice registrations by five-year age band",
    {
        "extract_date": date_column(nullable=False),
        "practice_code": code_column(),
        "sex": pa.Column(str, pa.Check.isin(["male", "female"])),
        "age_band": pa.Column(str, pa.Check.isin(list(AGE_BANDS))),
        "patients": _PATIENT_COUNT,
    },
)
SINGLE_AGE_SCHEMA = canonical_schema(
    "GP practice registrations by single year of age",
    {
        "extract_date": date_column(nullable=False),
        "practice_code": code_column(),
        "sex": pa.Column(str, pa.Check.isin(["male", "female"])),
        "age": pa.Column("int64", pa.Check.in_range(0, 95)),
        "patients": _PATIENT_COUNT,
    },
)
MAP_SCHEMA = canonical_schema(
    "GP practice to PCN / sub-ICB / ICB map",
    {
        "extract_date": date_column(nullable=False),
        "practice_code": code_column(),
        "practice_name": code_column(nullable=True),
        "pcn_code": code_column(nullable=True),
        "pcn_name": code_column(nullable=True),
        "sicbl_code": code_column(nullable=True),
        "sicbl_ods": code_column(nullable=True),
        "sicbl_name": code_column(nullable=True),
        "icb_code": code_column(nullable=True),
        "icb_ods": code_column(nullable=True),
        "icb_name": code_column(nullable=True),
        "region_code": code_column(nullable=True),
        "region_ods": code_column(nullable=True),
        "region_name": code_column(nullable=True),
    },
)


def _keep_all_rows(frame: pd.DataFrame, column: str, path: Path, label: str) -> pd.DataFrame:
    """Keep rows whose ``column`` is ``ALL`` (e.g. SEX=ALL); error if there are none."""
    is_all = frame[column].str.strip().str.upper() == "ALL"
    if not is_all.any():
        seen = ", ".join(sorted(frame[column].dropna().unique()[:5]))
        raise SourceFormatError(
            path,
            f"no rows with {label} = ALL",
            column=label,
            examples=f"values found: {seen}",
            fix="use the '-all' file (persons), not the male/female split",
        )
    return frame.loc[is_all]


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
    path = Path(path)
    headers = read_header(path)
    columns = resolve_columns(
        headers,
        {
            "extract_date": _EXTRACT_DATE,
            "practice_code": ColumnPattern("PRACTICE_CODE"),
            "practice_name": ColumnPattern("PRACTICE_NAME"),
            "lsoa_code": ColumnPattern("LSOA_CODE", "LSOA_2011_CODE", "LSOA_2021_CODE"),
            "sex": ColumnPattern("SEX"),
            "patients": _PATIENTS,
        },
        path,
        optional={"sex", "practice_name"},
        source="GP registrations by LSOA file (gp-reg-pat-prac-lsoa-all.csv)",
    )
    raw = read_csv_columns(path, columns, numeric={"patients"})
    if "sex" in raw:
        raw = _keep_all_rows(raw, "sex", path, str(columns["sex"]))
    out = pd.DataFrame(
        {
            "extract_date": parse_dates(
                raw["extract_date"], path, str(columns["extract_date"]), allow_missing=False
            ),
            "practice_code": clean_codes(raw["practice_code"]),
            "practice_name": raw["practice_name"]
            if "practice_name" in raw
            else pd.Series(pd.NA, index=raw.index, dtype="str"),
            "lsoa_code": clean_codes(raw["lsoa_code"]),
            "patients": parse_numeric(
                raw["patients"], path, str(columns["patients"]), integer=True
            ),
        }
    ).reset_index(drop=True)
    validate_output(out, LSOA_SCHEMA, path)
    return out


def load_practice_totals(path: str | Path) -> pd.DataFrame:
    """Load registered patients per practice (``gp-reg-pat-prac-all.csv``).

    Keeps GP rows (``TYPE`` = GP when present) for both sexes and all ages. Accepts the
    sub-ICB-era (``SUB_ICB_LOCATION_CODE``) and CCG-era (``CCG_CODE``) headers.

    Returns:
        ``extract_date, practice_code, sicbl_ods, sicbl_code, postcode, patients``.
    """
    path = Path(path)
    headers = read_header(path)
    columns = resolve_columns(
        headers,
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
        path,
        optional={"type", "sex", "age", "postcode"},
        source="GP practice totals file (gp-reg-pat-prac-all.csv)",
    )
    raw = read_csv_columns(path, columns, numeric={"patients"})
    if "type" in raw:
        raw = raw.loc[raw["type"].str.strip().str.upper() == "GP"]
    for name in ("sex", "age"):
        if name in raw:
            raw = _keep_all_rows(raw, name, path, str(columns[name]))
    out = pd.DataFrame(
        {
            "extract_date": parse_dates(
                raw["extract_date"], path, str(columns["extract_date"]), allow_missing=False
            ),
            "practice_code": clean_codes(raw["practice_code"]),
            "sicbl_ods": clean_codes(raw["sicbl_ods"]),
            "sicbl_code": clean_codes(raw["sicbl_code"]),
            "postcode": raw["postcode"].str.strip()
            if "postcode" in raw
            else pd.Series(pd.NA, index=raw.index, dtype="str"),
            "patients": parse_numeric(
                raw["patients"], path, str(columns["patients"]), integer=True
            ),
        }
    ).reset_index(drop=True)
    _check_unique(out, ["practice_code"], path)
    validate_output(out, TOTALS_SCHEMA, path)
    return out


def _check_unique(frame: pd.DataFrame, keys: list[str], path: Path) -> None:
    duplicated = frame.duplicated(keys, keep=False)
    if duplicated.any():
        examples = frame.loc[duplicated, keys].drop_duplicates().head(5)
        raise SourceFormatError(
            path,
            f"{int(duplicated.sum())} rows repeat the same {'/'.join(keys)}",
            column=", ".join(keys),
            examples="; ".join(str(tuple(r)) for r in examples.itertuples(index=False)),
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
    path = Path(path)
    headers = read_header(path)
    columns = resolve_columns(
        headers,
        {
            "extract_date": _EXTRACT_DATE,
            "org_type": ColumnPattern("ORG_TYPE", "TYPE"),
            "practice_code": ColumnPattern("ORG_CODE", "CODE", "PRACTICE_CODE"),
            "sex": ColumnPattern("SEX"),
            "age_band": ColumnPattern("AGE_GROUP_5", "AGE_GROUP"),
            "patients": _PATIENTS,
        },
        path,
        source="GP registrations by five-year age file (gp-reg-pat-prac-quin-age.csv)",
    )
    raw = read_csv_columns(path, columns, numeric={"patients"})
    raw = raw.loc[raw["org_type"].str.strip().str.upper() == "GP"]
    if raw.empty:
        raise SourceFormatError(
            path,
            "no GP rows",
            column=str(columns["org_type"]),
            fix="check this is the practice-level quin-age file",
        )
    raw = raw.assign(
        sex=raw["sex"].str.strip().str.upper(),
        age_band=raw["age_band"].str.strip().str.upper(),
        practice_code=clean_codes(raw["practice_code"]),
        patients=parse_numeric(raw["patients"], path, str(columns["patients"]), integer=True),
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
            "extract_date": parse_dates(
                kept["extract_date"], path, str(columns["extract_date"]), allow_missing=False
            ),
            "practice_code": kept["practice_code"],
            "sex": kept["sex"].str.lower(),
            "age_band": kept["age_band"],
            "patients": kept["patients"],
        }
    ).reset_index(drop=True)
    validate_output(out, AGE_BAND_SCHEMA, path)
    return out


def load_practice_single_age(path: str | Path) -> pd.DataFrame:
    """Load registered patients per practice by single year of age (``…-sing-age-male.csv``/female).

    ``AGE`` 0–94 are kept as integers, ``95+`` becomes 95; ``ALL`` rows are dropped.

    Returns:
        ``extract_date, practice_code, sex, age, patients``.
    """
    path = Path(path)
    headers = read_header(path)
    columns = resolve_columns(
        headers,
        {
            "extract_date": _EXTRACT_DATE,
            "org_type": ColumnPattern("ORG_TYPE", "TYPE"),
            "practice_code": ColumnPattern("ORG_CODE", "CODE", "PRACTICE_CODE"),
            "sex": ColumnPattern("SEX"),
            "age": ColumnPattern("AGE"),
            "patients": _PATIENTS,
        },
        path,
        optional={"org_type"},
        source="GP registrations by single year of age file (gp-reg-pat-prac-sing-age-*.csv)",
    )
    raw = read_csv_columns(path, columns, numeric={"patients"})
    if "org_type" in raw:
        raw = raw.loc[raw["org_type"].str.strip().str.upper() == "GP"]
    age_text = raw["age"].str.strip().str.upper()
    sex = raw["sex"].str.strip().str.lower()
    keep = (age_text != "ALL") & sex.isin(["male", "female"])
    age_text = age_text.loc[keep].str.replace("+", "", regex=False)
    ages = parse_numeric(age_text, path, str(columns["age"]), integer=True)
    kept = raw.loc[keep]
    out = pd.DataFrame(
        {
            "extract_date": parse_dates(
                kept["extract_date"], path, str(columns["extract_date"]), allow_missing=False
            ),
            "practice_code": clean_codes(kept["practice_code"]),
            "sex": sex.loc[keep],
            "age": ages,
            "patients": parse_numeric(
                kept["patients"], path, str(columns["patients"]), integer=True
            ),
        }
    ).reset_index(drop=True)
    validate_output(out, SINGLE_AGE_SCHEMA, path)
    return out


def load_practice_map(path: str | Path) -> pd.DataFrame:
    """Load the practice -> PCN -> sub-ICB location -> ICB map (``gp-reg-pat-prac-map.csv``).

    Sub-ICB/ICB-era headers and the pre-July-2022 CCG/STP-era headers are both accepted; CCG
    codes go to the ``sicbl_*`` columns and STP codes to the ``icb_*`` columns.

    Returns:
        ``extract_date, practice_code, practice_name, pcn_code, pcn_name, sicbl_code, sicbl_ods,
        sicbl_name, icb_code, icb_ods, icb_name, region_code, region_ods, region_name`` (the
        NHS England commissioning region; NA when the extract lacks it).
    """
    path = Path(path)
    headers = read_header(path)
    columns = resolve_columns(
        headers,
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
        path,
        optional=["region_code", "region_ods", "region_name"],
        source="GP practice mapping file (gp-reg-pat-prac-map.csv)",
    )
    raw = read_csv_columns(path, columns)
    # the NHS England (commissioning) region is optional: older extracts lack it
    raw = raw.assign(
        **{c: pd.NA for c in ("region_code", "region_ods", "region_name") if c not in raw}
    )
    raw = raw[list(columns)]
    out = raw.assign(
        extract_date=parse_dates(
            raw["extract_date"], path, str(columns["extract_date"]), allow_missing=False
        ),
        **{c: clean_codes(raw[c]) for c in raw.columns if c.endswith(("_code", "_ods"))},
    ).reset_index(drop=True)
    _check_unique(out, ["practice_code"], path)
    validate_output(out, MAP_SCHEMA, path)
    return out
