"""Loader for the Quality and Outcomes Framework (QOF) annual practice-level raw data (NHS England).

One zip per year (e.g. ``QOF2425.zip``) holds, among others (layout in ``docs/qof.md``):

* ``PREVALENCE_<YYYY>.csv``: ``PRACTICE_CODE, GROUP_CODE, REGISTER, PATIENT_LIST_TYPE,
  PRACTICE_LIST_SIZE``, one row per practice and register; the list size is that of the
  register's own denominator population (``TOTAL`` or an age-restricted list such as ``17OV``);
* ``ACHIEVEMENT_<REGION>_<YYYY>.csv`` (or one ``ACHIEVEMENT_<YYYY>.csv``): long format
  ``PRACTICE_CODE, INDICATOR_CODE, MEASURE, VALUE``;
* ``MAPPING_INDICATORS_<YYYY>.csv``: indicator -> ``GROUP_CODE, GROUP_DESCRIPTION``, domain,
  point value and ``PATIENT_LIST_TYPE``;
* ``MAPPING_NHS_GEOGRAPHIES_<YYYY>.csv``: practice -> PCN -> sub-ICB (CCG before 2022) -> ICB
  (STP before 2022) -> region, with names.

Columns are found by their official names and the variants older years used (``REGISTER_SIZE``,
``PATIENT_LIST_SIZE``, ``INDICATOR_GROUP_CODE``, ``CCG_ODS_CODE``, ``STP_ODS_CODE`` …). Files
split by region are concatenated; a practice and register published twice is an error.
:func:`load_qof` accepts the zip itself or the extracted CSVs.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from pophealth.sources.common import (
    ColumnPattern,
    SourceColumns,
    SourceFormatError,
    canonical_schema,
    check_no_repeats,
    code_column,
    code_columns,
    read_source_csv,
)

__all__ = [
    "GROUP_TITLES",
    "QOF_ACHIEVEMENT_SCHEMA",
    "QOF_PREVALENCE_SCHEMA",
    "QofData",
    "list_type_min_age",
    "load_qof",
    "load_qof_achievement",
    "load_qof_geographies",
    "load_qof_indicator_mapping",
    "load_qof_prevalence",
    "qof_file_kind",
    "qof_year",
]

SOURCE = "QOF practice-level raw data (NHS England)"

#: Registers (``GROUP_CODE``) QOF publishes prevalence for, with their official descriptions.
GROUP_TITLES: dict[str, str] = {
    "AF": "Atrial fibrillation",
    "AST": "Asthma",
    "CAN": "Cancer",
    "CHD": "Coronary heart disease",
    "CKD": "Chronic kidney disease",
    "COPD": "Chronic obstructive pulmonary disease",
    "DEM": "Dementia",
    "DEP": "Depression",
    "DM": "Diabetes mellitus",
    "EP": "Epilepsy",
    "HF": "Heart failure",
    "HYP": "Hypertension",
    "LD": "Learning disability",
    "MH": "Mental health",
    "NDH": "Non-diabetic hyperglycaemia",
    "OB": "Obesity",
    "OST": "Osteoporosis",
    "PAD": "Peripheral arterial disease",
    "PC": "Palliative care",
    "RA": "Rheumatoid arthritis",
    "STIA": "Stroke and transient ischaemic attack",
}

# TOTAL, <n>OV (n and over, e.g. 17OV, 06OV), <a>_<b> (ages a to b, e.g. 30_74), <n>UN_F …
_LIST_TYPE = re.compile(r"^(TOTAL|\d{1,2}OV|\d{1,2}_\d{1,2}|\d{1,2}UN(_F)?|\d{1,2}_\d{1,2}_F)$")
_OVER = re.compile(r"^(\d{1,2})OV$")

_KINDS = (
    ("prevalence", re.compile(r"^prevalence.*\.csv$", re.IGNORECASE)),
    ("achievement", re.compile(r"^achievement.*\.csv$", re.IGNORECASE)),
    ("indicators", re.compile(r"^mapping_indicators.*\.csv$", re.IGNORECASE)),
    ("geographies", re.compile(r"^mapping_nhs_geographies.*\.csv$", re.IGNORECASE)),
)
_YEAR = re.compile(r"_(\d{2})(\d{2})(?:_v\d+)?\.(?:csv|zip)$|QOF_?(\d{2})(\d{2})", re.IGNORECASE)

QOF_PREVALENCE_SCHEMA = canonical_schema(
    "QOF prevalence",
    {
        "practice_code": code_column(),
        "group_code": code_column(),
        "list_type": code_column(),
        "register": pa.Column("int64", pa.Check.ge(0)),
        "list_size": pa.Column("int64", pa.Check.ge(0)),
    },
)

QOF_ACHIEVEMENT_SCHEMA = canonical_schema(
    "QOF achievement",
    {
        "practice_code": code_column(),
        "indicator_code": code_column(),
        "measure": code_column(),
        "value": pa.Column("float64", nullable=True),
    },
)

_INDICATOR_SCHEMA = canonical_schema(
    "QOF indicator mapping",
    {
        "indicator_code": code_column(unique=True),
        "group_code": code_column(),
        **code_columns("group_description", "list_type"),
    },
)

_GEOGRAPHY_SCHEMA = canonical_schema(
    "QOF NHS geographies",
    {
        "practice_code": code_column(unique=True),
        **code_columns("practice_name", "pcn_code", "sicbl_ods", "icb_ods", "region_ods"),
    },
)

_PRACTICE = ColumnPattern("PRACTICE_CODE", "PRACTICECODE", "PRACTICE CODE")


@dataclass(frozen=True)
class QofData:
    """One QOF year as loaded: prevalence, indicator and geography mappings (and achievement).

    Attributes:
        year: Reporting year label, e.g. ``"2024-25"`` (from the file names), or ``""``.
        prevalence: ``practice_code, group_code, list_type, register, list_size`` plus
            ``group_description``.
        indicators: ``indicator_code, group_code, group_description, list_type`` (may be empty).
        geographies: practice -> PCN -> sub-ICB -> ICB -> region (may be empty).
        achievement: long achievement rows, or ``None`` when not asked for.
        files: Names of the files read.
    """

    year: str
    prevalence: pd.DataFrame
    indicators: pd.DataFrame
    geographies: pd.DataFrame
    achievement: pd.DataFrame | None
    files: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.prevalence)


def qof_file_kind(path: str | Path) -> str | None:
    """``prevalence``, ``achievement``, ``indicators``, ``geographies`` or ``None`` by file name."""
    name = Path(path).name
    for kind, pattern in _KINDS:
        if pattern.match(name):
            return kind
    return None


def qof_year(path: str | Path) -> str:
    """Reporting year from an official name: ``PREVALENCE_2425.csv`` -> ``"2024-25"``."""
    match = _YEAR.search(Path(path).name)
    if not match:
        return ""
    start, end = (g for g in match.groups() if g is not None)
    return f"20{start}-{end}"


def list_type_min_age(list_type: str) -> int | None:
    """Lowest age of a ``PATIENT_LIST_TYPE`` (``TOTAL`` -> 0, ``17OV`` -> 17, ``06OV`` -> 6)."""
    if list_type == "TOTAL":
        return 0
    match = _OVER.match(list_type)
    return int(match.group(1)) if match else None


def _codes_required(table: SourceColumns, name: str, what: str) -> pd.Series:
    codes = table.codes(name)
    if codes.isna().any():
        lines = ", ".join(str(int(i) + 2) for i in codes.index[codes.isna()][:5])
        raise SourceFormatError(
            table.path,
            f"{int(codes.isna().sum())} rows have no {what}",
            column=table.label(name),
            examples=f"lines {lines}",
            fix="every row of the official file carries one; check the file is complete",
        )
    return codes


def load_qof_prevalence(path: str | Path) -> pd.DataFrame:
    """Load one QOF prevalence file (``PREVALENCE_<YYYY>.csv``; region files one at a time).

    Returns:
        ``practice_code, group_code, list_type, register, list_size`` (one row per practice and
        register).

    Raises:
        SourceFormatError: Missing columns (``PATIENT_LIST_TYPE`` is absent before 2015-16),
            unknown list types, non-numeric or negative counts, repeated practice and register.
    """
    table = read_source_csv(
        path,
        {
            "practice_code": _PRACTICE,
            "group_code": ColumnPattern(
                "GROUP_CODE", "INDICATOR_GROUP_CODE", "INDICATOR_GROUP", "GROUPCODE"
            ),
            "list_type": ColumnPattern("PATIENT_LIST_TYPE", "LIST_TYPE"),
            "register": ColumnPattern("REGISTER", "REGISTER_SIZE", "DISEASE_REGISTER_SIZE"),
            "list_size": ColumnPattern(
                "PRACTICE_LIST_SIZE", "PATIENT_LIST_SIZE", "PRACTICE_LISTSIZE", "LIST_SIZE"
            ),
        },
        numeric={"register", "list_size"},
        source=f"{SOURCE}: PREVALENCE_<YYYY>.csv",
    )
    table = table.rows(table["practice_code"].notna() | table["group_code"].notna())
    list_type = _codes_required(table, "list_type", "list type").str.upper()
    unknown = ~list_type.str.match(_LIST_TYPE)
    if unknown.any():
        raise SourceFormatError(
            table.path,
            "unrecognised PATIENT_LIST_TYPE values",
            column=table.label("list_type"),
            examples=", ".join(map(repr, list_type[unknown].unique()[:5])),
            fix="expected TOTAL, <n>OV (e.g. 17OV, 06OV) or <a>_<b> (e.g. 30_74)",
        )
    out = pd.DataFrame(
        {
            "practice_code": _codes_required(table, "practice_code", "practice code"),
            "group_code": _codes_required(table, "group_code", "group code").str.upper(),
            "list_type": list_type,
            "register": table.numbers("register", integer=True),
            "list_size": table.numbers("list_size", integer=True),
        }
    )
    _no_repeats(out, ["practice_code", "group_code"], table.path, table.label("group_code"))
    return table.output(out, QOF_PREVALENCE_SCHEMA)


def _no_repeats(frame: pd.DataFrame, keys: list[str], path: Path, column: str) -> None:
    check_no_repeats(
        frame,
        keys,
        path,
        column=column,
        fix="each practice has one row per register; do not pass two copies or two years",
    )


def load_qof_achievement(path: str | Path) -> pd.DataFrame:
    """Load one QOF achievement file (``ACHIEVEMENT_<REGION>_<YYYY>.csv``), long format.

    Returns:
        ``practice_code, indicator_code, measure, value`` (``measure`` e.g. ``ACHIEVED_POINTS``,
        ``NUMERATOR``, ``DENOMINATOR``, ``REGISTER``, ``PCAS``).
    """
    table = read_source_csv(
        path,
        {
            "practice_code": _PRACTICE,
            "indicator_code": ColumnPattern("INDICATOR_CODE", "INDICATORCODE"),
            "measure": ColumnPattern("MEASURE"),
            "value": ColumnPattern("VALUE"),
        },
        numeric={"value"},
        source=f"{SOURCE}: ACHIEVEMENT_<REGION>_<YYYY>.csv",
    )
    out = pd.DataFrame(
        {
            "practice_code": _codes_required(table, "practice_code", "practice code"),
            "indicator_code": _codes_required(table, "indicator_code", "indicator code"),
            "measure": _codes_required(table, "measure", "measure"),
            "value": table.numbers("value", allow_missing=True),
        }
    )
    return table.output(out, QOF_ACHIEVEMENT_SCHEMA)


def load_qof_indicator_mapping(path: str | Path) -> pd.DataFrame:
    """Load ``MAPPING_INDICATORS_<YYYY>.csv``: indicator -> register group and list type."""
    table = read_source_csv(
        path,
        {
            "indicator_code": ColumnPattern("INDICATOR_CODE"),
            "group_code": ColumnPattern("GROUP_CODE", "INDICATOR_GROUP_CODE", "INDICATOR_GROUP"),
            "group_description": ColumnPattern("GROUP_DESCRIPTION", "INDICATOR_GROUP_DESCRIPTION"),
            "list_type": ColumnPattern("PATIENT_LIST_TYPE"),
        },
        optional={"group_description", "list_type"},
        source=f"{SOURCE}: MAPPING_INDICATORS_<YYYY>.csv",
    )
    out = pd.DataFrame(
        {
            "indicator_code": table.codes("indicator_code"),
            "group_code": table.codes("group_code").str.upper(),
            "group_description": table.text("group_description"),
            "list_type": table.codes("list_type"),
        }
    )
    return _one_row_each(out.dropna(subset=["indicator_code"]), table, _INDICATOR_SCHEMA)


def _one_row_each(
    out: pd.DataFrame, table: SourceColumns, schema: pa.DataFrameSchema
) -> pd.DataFrame:
    """A mapping's output, checked for repeats of its key (its first column) and its schema."""
    key = str(out.columns[0])
    _no_repeats(out, [key], table.path, table.label(key))
    return table.output(out, schema)


def load_qof_geographies(path: str | Path) -> pd.DataFrame:
    """Load ``MAPPING_NHS_GEOGRAPHIES_<YYYY>.csv``: practice -> PCN -> sub-ICB -> ICB -> region."""
    table = read_source_csv(
        path,
        {
            "practice_code": _PRACTICE,
            "practice_name": ColumnPattern("PRACTICE_NAME", "PRACTICENAME"),
            "pcn_code": ColumnPattern("PCN_ODS_CODE", "PCN_CODE"),
            "sicbl_ods": ColumnPattern("SUB_ICB_ODS_CODE", "SUB_ICB_LOC_ODS_CODE", "CCG_ODS_CODE"),
            "icb_ods": ColumnPattern("ICB_ODS_CODE", "STP_ODS_CODE"),
            "region_ods": ColumnPattern("REGION_ODS_CODE", "REGION_CODE", "REGIONCODE"),
        },
        optional={"practice_name", "pcn_code", "sicbl_ods", "icb_ods", "region_ods"},
        source=f"{SOURCE}: MAPPING_NHS_GEOGRAPHIES_<YYYY>.csv",
    )
    out = pd.DataFrame({name: table.codes(name) for name in _GEOGRAPHY_SCHEMA.columns})
    return _one_row_each(out.dropna(subset=["practice_code"]), table, _GEOGRAPHY_SCHEMA)


def _expand(paths: Iterable[str | Path], workdir: Path) -> list[Path]:
    """Zip archives -> their QOF CSV members (extracted into ``workdir``); CSVs as given."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.suffix.lower() != ".zip":
            out.append(path)
            continue
        try:
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if qof_file_kind(m)]
                if not members:
                    raise SourceFormatError(
                        path,
                        "the zip holds no QOF raw-data CSVs",
                        examples=", ".join(archive.namelist()[:6]),
                        fix="download the year's raw data .csv zip (e.g. QOF2425.zip)",
                    )
                # a folder named after the zip, so messages still name the archive
                target = workdir / path.name
                target.mkdir(parents=True, exist_ok=True)
                for member in members:
                    extracted = target / Path(member).name
                    extracted.write_bytes(archive.read(member))
                    out.append(extracted)
        except zipfile.BadZipFile as error:
            raise SourceFormatError(
                path, f"not a readable zip ({error})", fix="download the zip again"
            ) from error
    return out


def load_qof(paths: str | Path | Sequence[str | Path], *, achievement: bool = False) -> QofData:
    """Load one QOF year from its zip or its CSVs (region-split files concatenated).

    Args:
        paths: The ``QOF<YYYY>.zip`` and/or any of its CSVs (prevalence is required).
        achievement: Also load the (large) achievement files.

    Returns:
        A :class:`QofData`; prevalence rows carry ``group_description`` from the indicator
        mapping where it has one, else the official title in :data:`GROUP_TITLES`.

    Raises:
        SourceFormatError: No prevalence file, files of two different years, or any file
            error of the single-file loaders.
    """
    given = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    with tempfile.TemporaryDirectory(prefix="pophealth-qof-") as tmp:
        files = _expand(given, Path(tmp))
        by_kind: dict[str, list[Path]] = {}
        for path in files:
            kind = qof_file_kind(path)
            if kind is not None:
                by_kind.setdefault(kind, []).append(path)
        if not by_kind.get("prevalence"):
            first = given[0] if given else Path("QOF")
            raise SourceFormatError(
                first,
                "no QOF prevalence file (PREVALENCE_<YYYY>.csv) among the files given",
                examples=", ".join(p.name for p in files[:6]),
                fix="add PREVALENCE_<YYYY>.csv, or the whole QOF<YYYY>.zip, to the raw folder",
            )
        years = {qof_year(p) for p in files if qof_year(p)}
        if len(years) > 1:
            raise SourceFormatError(
                files[0],
                f"QOF files of more than one year: {', '.join(sorted(years))}",
                examples=", ".join(p.name for p in files[:6]),
                fix="keep one QOF year in the raw folder",
            )
        prevalence = pd.concat(
            [load_qof_prevalence(p) for p in by_kind["prevalence"]], ignore_index=True
        )
        if len(by_kind["prevalence"]) > 1:
            _no_repeats(
                prevalence,
                ["practice_code", "group_code"],
                by_kind["prevalence"][0],
                "PRACTICE_CODE",
            )
        indicators = (
            pd.concat([load_qof_indicator_mapping(p) for p in by_kind["indicators"]])
            if by_kind.get("indicators")
            else pd.DataFrame(columns=["indicator_code", "group_code", "group_description"])
        )
        geographies = (
            pd.concat([load_qof_geographies(p) for p in by_kind["geographies"]])
            if by_kind.get("geographies")
            else pd.DataFrame(columns=["practice_code", "pcn_code", "sicbl_ods", "icb_ods"])
        )
        achieved = None
        if achievement and by_kind.get("achievement"):
            achieved = pd.concat(
                [load_qof_achievement(p) for p in by_kind["achievement"]], ignore_index=True
            )
    titles = (
        indicators.dropna(subset=["group_description"])
        .drop_duplicates("group_code")
        .set_index("group_code")["group_description"]
    )
    # the year's own mapping file names its registers; the official titles fill any gaps
    names = {**GROUP_TITLES, **{str(k): str(v) for k, v in titles.items()}}
    described = prevalence["group_code"].map(names).fillna(prevalence["group_code"])
    prevalence = prevalence.assign(group_description=described)
    return QofData(
        year=next(iter(years), ""),
        prevalence=prevalence,
        indicators=indicators.reset_index(drop=True),
        geographies=geographies.reset_index(drop=True),
        achievement=achieved,
        files=tuple(p.name for p in given),
    )
