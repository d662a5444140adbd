"""Typed contracts between stages: the prepared store tables, the area register, the tidy table.

Each :class:`Contract` is a pandera schema plus the prose ``docs/architecture.md`` shows: prepare
checks every table before it writes it, :class:`pophealth.api.PopHealthData` checks the tables
it reads and the register and indicator table it derives, and the data-contract tables of
``docs/architecture.md`` are generated from these declarations (``tests/test_contracts.py``
keeps them in sync). Columns not declared (e.g. the census columns of ``lsoa.parquet``, listed
with the loaders) are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import pandera.pandas as pa

from pophealth import codes
from pophealth.ages import AGE_BANDS
from pophealth.errors import PopHealthError
from pophealth.indicators import RATINGS
from pophealth.releases import IMD_YEARS
from pophealth.staffing import STAFF_GROUPS

LSOA_STATUSES = ("matched", "closed", "unknown", "wales", "outside")
LEVELS = ("neighbourhood", "place", "system", "region", "england")
AREA_TYPES = ("pcn", "custom", "lad", "sicbl", "icb", "nhser", "all")
BASES = ("registered", "resident")
POLARITIES = ("high is good", "low is good", "no judgement")
INDICATOR_KINDS = tuple(RATINGS)
ALL_RATINGS = tuple(dict.fromkeys(r for ratings in RATINGS.values() for r in ratings))


class ContractError(PopHealthError, ValueError):
    """A table breaks its data contract (a stage wrote, or a store holds, the wrong columns)."""


def _is_text(series: pd.Series) -> bool:
    return len(series) == 0 or pd.api.types.is_string_dtype(series) or series.dtype == object


def _is_number(series: pd.Series) -> bool:
    return len(series) == 0 or pd.api.types.is_numeric_dtype(series)


def _is_flag(series: pd.Series) -> bool:
    return len(series) == 0 or pd.api.types.is_bool_dtype(series)


def _is_date(series: pd.Series) -> bool:
    return len(series) == 0 or pd.api.types.is_datetime64_any_dtype(series)


# kind -> (label in the docs, dtype check)
KINDS = {
    "code": ("code (str)", _is_text),
    "text": ("text (str)", _is_text),
    "count": ("count (int or float >= 0)", _is_number),
    "number": ("float", _is_number),
    "flag": ("flag (bool)", _is_flag),
    "date": ("date (datetime64)", _is_date),
}


@dataclass(frozen=True)
class Field:
    """One column of a contract.

    Attributes:
        name: Column name.
        kind: ``code``, ``text``, ``count``, ``number`` or ``date`` (see :data:`KINDS`).
        description: What it holds (shown in the docs).
        required: Whether every table has it (optional columns come from optional sources).
        nullable: Whether values may be missing.
        values: The allowed values, if a closed set.
        unique: Whether each value occurs once.
    """

    name: str
    kind: str
    description: str
    required: bool = True
    nullable: bool = False
    values: tuple[str, ...] | None = None
    unique: bool = False

    def column(self) -> pa.Column:
        """The pandera column for this field."""
        label, is_kind = KINDS[self.kind]
        checks = [pa.Check(is_kind, error=f"{self.name} must be {label}")]
        if self.kind == "count":
            checks.append(pa.Check.ge(0, ignore_na=True))
        if self.values is not None:
            checks.append(pa.Check.isin(list(self.values)))
        options = {"nullable": self.nullable, "required": self.required, "unique": self.unique}
        return pa.Column(None, checks=checks, description=self.description, **options)

    def doc_row(self) -> str:
        """This field as a markdown table row."""
        notes = []
        if not self.required:
            notes.append("optional")
        if self.nullable:
            notes.append("may be missing")
        if self.unique:
            notes.append("unique")
        if self.values is not None:
            notes.append("one of " + ", ".join(f"`{v}`" for v in self.values))
        return (
            f"| `{self.name}` | {KINDS[self.kind][0]} | {self.description} | {'; '.join(notes)} |"
        )


@dataclass(frozen=True)
class Contract:
    """The columns a table between two stages must have."""

    name: str
    grain: str
    fields: tuple[Field, ...]
    note: str = ""

    @property
    def schema(self) -> pa.DataFrameSchema:
        """The pandera schema (extra columns allowed)."""
        return pa.DataFrameSchema(
            {f.name: f.column() for f in self.fields}, strict=False, name=self.name
        )

    def validate(self, frame: pd.DataFrame, where: str) -> pd.DataFrame:
        """Check ``frame`` against the contract.

        Args:
            frame: The table.
            where: Who holds it (a file path, or a stage), for the error message.

        Returns:
            ``frame`` unchanged.

        Raises:
            ContractError: naming the table, the columns at fault, example values and the fix.
        """
        if frame.shape == (0, 0):  # a table of an absent source: nothing to check
            return frame
        if self.plainly_valid(frame):
            return frame
        try:
            self.schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as exc:
            cases = exc.failure_cases
            problems = []
            for column, rows in cases.groupby(cases["column"].astype(str), sort=True):
                checks = ", ".join(dict.fromkeys(rows["check"].astype(str)))
                examples = ", ".join(repr(v) for v in rows["failure_case"].head(3))
                problems.append(f"{column}: {checks} (examples: {examples})")
            raise ContractError(
                f"{where}: the {self.name} table breaks its data contract: "
                + "; ".join(problems)
                + ". Fix: prepare the store again with this pophealth version (the contract is "
                "in docs/architecture.md)."
            ) from None
        return frame

    def plainly_valid(self, frame: pd.DataFrame) -> bool:
        """Whether ``frame`` meets the contract, decided by a few vectorised tests.

        A shortcut of :meth:`validate` (pandera runs each check through its machinery, a large
        part of prepare's time on national tables): true only when pandera would accept the
        frame too, each test being pandera's own or stricter; anything else is left to pandera,
        which names the problems.
        """
        try:
            for field in self.fields:
                if field.name not in frame.columns:
                    if field.required:
                        return False
                    continue
                column = frame[field.name]
                if not isinstance(column, pd.Series) or not KINDS[field.kind][1](column):
                    return False  # a repeated column name, or the wrong kind
                present = column.notna().to_numpy()
                complete = bool(present.all())
                if not complete and not field.nullable:
                    return False
                values = column if complete else column[present]
                if field.kind == "count" and not bool((values >= 0).all()):
                    return False
                # the allowed values as pandera's isin check takes them (a dict's keys)
                if field.values is not None and not bool(
                    codes.isin(values, list(field.values)).all()
                ):
                    return False
                if field.unique and not column.is_unique:
                    return False
        except Exception:  # noqa: BLE001 - pandera decides, and says why
            return False
        return True

    def markdown(self) -> str:
        """The contract as the markdown section of ``docs/architecture.md``."""
        lines = [f"### {self.name} ({self.grain})", ""]
        if self.note:
            lines += [self.note, ""]
        lines += ["| column | type | meaning | notes |", "|---|---|---|---|"]
        lines += [f.doc_row() for f in self.fields]
        return "\n".join(lines)


def _geo(prefix: str, what: str, nullable: bool = True) -> tuple[Field, ...]:
    return (
        Field(f"{prefix}_code", "code", f"{what} ONS code", nullable=nullable),
        Field(f"{prefix}_ods", "code", f"{what} ODS code", nullable=nullable),
        Field(f"{prefix}_name", "text", f"{what} name", nullable=nullable),
    )


def _imd(year: str, required: bool) -> tuple[Field, ...]:
    source = "IoD2025 File 7" if year == "2025" else "IoD2019 converted to LSOA 2021"
    out = [Field(f"imd{year}_score", "number", f"IMD score ({source})", required, True)]
    if year == "2025":
        out.append(Field("imd2025_rank", "count", "IMD rank, 1 = most deprived", required, True))
    out.append(
        Field(
            f"imd{year}_decile", "number", "national IMD decile, 1 = most deprived", required, True
        )
    )
    return tuple(out)


_SICBL_ICB = (*_geo("sicbl", "sub-ICB location"), *_geo("icb", "ICB"))


def _code_name(prefix: str, what: str, *, key: bool = False) -> tuple[Field, Field]:
    """``<prefix>_code`` and ``<prefix>_name``; a key's code is unique and never missing."""
    return (
        Field(f"{prefix}_code", "code", f"{what} code", nullable=not key, unique=key),
        Field(f"{prefix}_name", "text", f"{what} name", nullable=True),
    )


LSOA_TABLE = Contract(
    "lsoa.parquet",
    "one row per LSOA 2021 in England",
    (
        *_code_name("lsoa21", "LSOA 2021", key=True),
        *_SICBL_ICB,
        *_code_name("lad", "local authority district"),
        *_imd("2025", required=False),
        Field("population", "count", "IoD mid-year population", required=False, nullable=True),
        *_imd("2019", required=False),
    ),
    note="Plus the census canonical columns of each Census table found (see the loaders).",
)

_FTE = (
    ("gp_fte", "GP FTE, all (TOTAL_GP_FTE)"),
    ("gp_extg_fte", "GP FTE excluding trainees"),
    ("gp_exl_fte", "GP FTE excluding locums"),
    ("gp_extgl_fte", "qualified permanent GP FTE (excluding trainees and locums)"),
    ("nurse_fte", "nurse FTE"),
    ("dpc_fte", "direct patient care FTE"),
    ("admin_fte", "admin/non-clinical FTE"),
)

PRACTICE_TABLE = Contract(
    "practices.parquet",
    "one row per GP practice",
    (
        *_code_name("practice", "GP practice (ODS)", key=True),
        Field("registered_patients", "count", "registered list size", nullable=True),
        *_SICBL_ICB,
        *_code_name("pcn", "PCN (at the as-of date)"),
        *(Field(name, "number", what, required=False, nullable=True) for name, what in _FTE),
        Field(
            "weighted_patients", "number", "Carr-Hill weighted list", required=False, nullable=True
        ),
        Field(
            "age_0_17_patients",
            "count",
            "patients aged 0-17 (single years of age)",
            required=False,
            nullable=True,
        ),
        Field(
            "single_age_patients",
            "count",
            "patients in the single-year-of-age lists",
            required=False,
            nullable=True,
        ),
        *(
            Field(f.name, f.kind, f.description, required=False, nullable=True)
            for f in _code_name("region", "NHS England region (practice mapping file)")
        ),
    ),
    note="Plus `gp_source, nurse_source, dpc_source, admin_source` (workforce data source flags) "
    "and, from the detailed workforce file, `<role>_fte` and `<role>_hc` of every role "
    "(`sources.workforce.DETAIL_COLUMNS`; NaN where a release does not carry the role).",
)

REGISTRATIONS_TABLE = Contract(
    "registrations.parquet",
    "one row per practice × published LSOA code",
    (
        Field("practice_code", "code", "ODS practice code"),
        Field("lsoa_code", "code", "LSOA code as published"),
        Field("patients", "count", "registered patients living there"),
        Field(
            "lsoa_status",
            "code",
            "whether the code matched an LSOA of the store",
            values=LSOA_STATUSES,
        ),
    ),
)

AGE_SEX_TABLE = Contract(
    "practice_age_sex.parquet",
    "one row per practice × sex × five-year band",
    (
        Field("practice_code", "code", "ODS practice code"),
        Field("sex", "code", "sex", values=("male", "female")),
        Field("age_band", "code", "five-year age band", values=AGE_BANDS),
        Field("patients", "count", "registered patients"),
    ),
)

PCN_WORKFORCE_TABLE = Contract(
    "pcn_workforce.parquet",
    "one row per PCN × staff group; only when the PCN workforce source was found",
    (
        Field("pcn_code", "code", "PCN ODS code"),
        Field("group", "code", "staff group (PCN directors count as admin)", values=STAFF_GROUPS),
        Field("fte", "count", "PCN-employed FTE (staff and contracted services)"),
        Field("headcount", "count", "distinct staff (contracted services have no identifier)"),
        Field("contracted_fte", "count", "the part of `fte` from contracted services"),
    ),
    note="PCN-employed staff (`sources.pcn_workforce.pcn_fte_by_group`); shared among each PCN's "
    "practices by registered patients when the store is read (`staffing.apportion_pcn_staff`).",
)

_REGISTER_KEY = (
    Field("practice_code", "code", "ODS practice code"),
    Field("group_code", "code", "QOF register (indicator group) code, e.g. `HYP`"),
)

QOF_PREVALENCE_TABLE = Contract(
    "qof_prevalence.parquet",
    "one row per practice × QOF register (docs/qof.md)",
    (
        *_REGISTER_KEY,
        Field("list_type", "code", "QOF denominator list type (`TOTAL`, `17OV`, ...)"),
        Field("register", "count", "patients on the register"),
        Field("list_size", "count", "patients on the list of the register's list type"),
        Field("group_description", "text", "register name", nullable=True),
        Field("year", "code", "QOF year, e.g. `2024-25`"),
    ),
)

QOF_EXPECTED_TABLE = Contract(
    "qof_expected.parquet",
    "one row per practice × QOF register × IoD release (recorded-vs-expected model)",
    (
        *_REGISTER_KEY,
        Field("imd", "code", "IoD release of the model's deprivation covariate", values=IMD_YEARS),
        Field("observed", "count", "patients on the register"),
        Field("expected", "number", "register at national average recording", nullable=True),
        Field("list_size", "count", "patients on the list of the register's list type"),
    ),
    note=(
        "Fitted on every practice of the national files before `--systems` cuts the store; "
        "the fit of each register's model is in `manifest.json` (`qof_model`, by IoD release)."
    ),
)

_PARENT = (
    "parent area (a neighbourhood's place or system; a place's system; a system's NHS England "
    "region or `ALL`; never the area itself)"
)
_AREA = (
    Field(
        "area_code",
        "code",
        "area code (PCN/custom, LAD, sub-ICB, ICB, NHS England region; `ALL` for England)",
    ),
    Field("area_name", "text", "area name", nullable=True),
    Field("level", "code", "level", values=LEVELS),
    Field("area_type", "code", "area type", values=AREA_TYPES),
    Field("basis", "code", "population basis", values=BASES),
    Field("parent_code", "code", _PARENT, nullable=True),
)

AREA_REGISTER = Contract(
    "area register",
    "one row per area × basis (`PopHealthData.register`)",
    (
        *_AREA,
        Field("parent_name", "text", "parent area name", nullable=True),
        Field("system_code", "code", "the ICB the area belongs to", nullable=True),
    ),
)

_LIMITS = tuple(
    (f"{side}_{suffix}", f"{side} {level} limit")
    for suffix, level in (("ci", "95%"), ("99_8", "99.8%"))
    for side in ("lower", "upper")
)

INDICATOR_TABLE = Contract(
    "tidy indicator table",
    "one row per area × basis × indicator (`PopHealthData.indicator_table`)",
    (
        *_AREA,
        Field("system_code", "code", "the ICB the area belongs to", nullable=True),
        Field("indicator_id", "code", "catalogue id"),
        Field("title", "text", "catalogue title"),
        Field("unit", "text", "catalogue unit"),
        Field("polarity", "code", "catalogue polarity", values=POLARITIES),
        Field("numerator", "number", "summed numerator", nullable=True),
        Field("denominator", "number", "summed denominator (NaN for counts)", nullable=True),
        Field(
            "value", "number", "the statistic (catalogue `statistic` × multiplier)", nullable=True
        ),
        *(Field(name, "number", what, nullable=True) for name, what in _LIMITS),
        Field("method", "text", "method of the value and limits"),
        Field("confidence", "text", "confidence levels of the limits"),
        Field("reason", "text", "why a value is missing"),
        Field("parent_value", "number", "the parent area's value", nullable=True),
        Field(
            "comparator_value", "number", "England's (or all loaded areas') value", nullable=True
        ),
        Field("comparison_95", "text", "benchmark comparison at 95%"),
        Field("comparison_99_8", "text", "benchmark comparison at 99.8%"),
        Field("kind", "code", "catalogue kind", values=INDICATOR_KINDS),
        Field("need", "flag", "need-related context (catalogue `need`)"),
        Field("parent_comparison_95", "text", "comparison with the parent at 95%"),
        Field("peer_rank", "number", "rank among peers, 1 = highest value", nullable=True),
        Field("peer_count", "count", "peers with a value (same level, area type, basis)"),
        Field("peer_quintile", "number", "quintile among peers, 5 = highest", nullable=True),
        *(
            Field(name, "number", what, nullable=True)
            for name, what in (
                ("fair_share", "supply: FTE at England's rate per patient"),
                ("fair_share_gap", "supply: FTE minus the fair share"),
                ("fair_share_gap_pct", "supply: the gap as % of the fair share"),
                ("parent_fair_share", "supply: FTE at the parent's rate per patient"),
                ("parent_fair_share_gap", "supply: FTE minus the parent's fair share"),
            )
        ),
        Field("rating", "text", "the rating for the indicator's kind", values=ALL_RATINGS),
    ),
    note="The history (`PopHealthData.indicator_history`, `pophealth indicators --periods all`) "
    "has the same columns plus `period` (`YYYY-MM`).",
)

NATIONAL_TABLE = Contract(
    "national.parquet",
    "one row per England (`ALL`) and NHS England region × basis × IoD release",
    (
        Field("area_code", "code", "`ALL` (England) or the NHS England region code"),
        Field("area_name", "text", "England or the region's name", nullable=True),
        Field("level", "code", "level", values=("england", "region")),
        Field("basis", "code", "population basis", values=BASES),
        Field("imd", "code", "IoD release year of the deprivation measures", values=IMD_YEARS),
    ),
    note=(
        "Summed over every row of the national files before `--systems` cuts the store, so a "
        "single-ICB store still compares with England. Plus every `<indicator>__num` / "
        "`<indicator>__den` (as `attribution.aggregate_measures`), `decile_1` … `decile_10` "
        "(population by national IMD decile) and `age_<sex>_<band>` (registered patients)."
    ),
)

_PERIOD = Field("period", "code", "release period (`YYYY-MM`)")


def _history(current: Contract) -> Contract:
    """The release-history version of a current store table: its columns plus ``period``."""
    return Contract(
        f"history/{current.name}",
        f"{current.grain}, per period (docs/history.md)",
        # a practice is one row per period, not one row in the table
        (_PERIOD, *(replace(f, unique=False) for f in current.fields)),
        note=current.note,
    )


HISTORY_CONTRACTS = tuple(
    _history(c) for c in (PRACTICE_TABLE, REGISTRATIONS_TABLE, AGE_SEX_TABLE, PCN_WORKFORCE_TABLE)
)

_QOF_PERIOD = Field(
    "period",
    "code",
    "the QOF year's period: the month it ends (`YYYY-03`; QOF 2024-25 -> `2025-03`)",
)
_QOF_YEARS_NOTE = (
    "Every QOF year found (the top level's and each `releases/<label>/` folder's), as published "
    "(a practice that closed later keeps its own code; the membership rule carries it when "
    "indicators are computed); every practice of the national file, so England's value of each "
    "year is summed from the rows (docs/history.md)."
)


def _qof_history(current: Contract, note: str) -> Contract:
    """The QOF-year version of a QOF store table: its columns plus the QOF year's ``period``."""
    return Contract(
        f"history/{current.name}",
        f"{current.grain}, per QOF year (docs/history.md)",
        (_QOF_PERIOD, *(replace(f, unique=False) for f in current.fields)),
        note=note,
    )


QOF_HISTORY_CONTRACTS = (
    _qof_history(QOF_PREVALENCE_TABLE, _QOF_YEARS_NOTE),
    _qof_history(
        QOF_EXPECTED_TABLE,
        "Each year's models fitted (as `prepare` fits the current year's) on every practice of "
        "that year's national file, closed practices carried by their successors, with the "
        "current release's age-sex lists and IMD scores as covariates "
        "(`history/static/qof_age_sex.parquet`, `history/static/qof_imd.parquet`).",
    ),
    Contract(
        "history/qof_geographies.parquet",
        "one row per practice × QOF year (MAPPING_NHS_GEOGRAPHIES, docs/qof.md)",
        (
            _QOF_PERIOD,
            Field("practice_code", "code", "ODS practice code"),
            *(
                Field(name, "code", what, nullable=True)
                for name, what in (
                    ("practice_name", "practice name"),
                    ("pcn_code", "PCN ODS code that year"),
                    ("sicbl_ods", "sub-ICB location (CCG before 2022) ODS code that year"),
                    ("icb_ods", "ICB (STP before 2022) ODS code that year"),
                    ("region_ods", "NHS England region ODS code that year"),
                )
            ),
        ),
        note="A practice not in today's list and not carried by a successor counts in that "
        "year's sub-ICB location and ICB (the membership rule).",
    ),
)

_STATIC = "practice-level input stored for `prepare --add` (docs/history.md)"
_PCN = Field("pcn_code", "code", "PCN code")
STATIC_CONTRACTS = (
    Contract(
        "history/static/epcn_pcns.parquet",
        "one row per PCN (ePCN PCNDetails)",
        (_PCN, Field("pcn_name", "text", "PCN name", nullable=True)),
        note=f"A {_STATIC}.",
    ),
    Contract(
        "history/static/epcn_memberships.parquet",
        "one row per practice × PCN membership spell (ePCN Core Partner Details)",
        (
            Field("practice_code", "code", "ODS practice code"),
            _PCN,
            Field("start_date", "date", "membership start", nullable=True),
            Field("end_date", "date", "membership end (missing while current)", nullable=True),
        ),
        note=f"A {_STATIC}.",
    ),
    Contract(
        "history/static/successors.parquet",
        "one row per closed or merged GP practice (ODS successor organisations, succ.csv)",
        (
            Field("predecessor_code", "code", "ODS code of the closed practice", unique=True),
            Field("successor_code", "code", "ODS code of its last successor (chain resolved)"),
            Field("effective_date", "date", "legal date of the practice's own succession"),
            Field("chain", "text", "codes walked from predecessor to successor, `A>B>C`"),
        ),
        note=(
            "Practice input of the membership rule: the predecessor's patients, staff and "
            "registrations are carried by the successor in earlier periods (docs/history.md)."
        ),
    ),
    Contract(
        "history/static/qof_age_sex.parquet",
        "one row per practice × sex × five-year band, every practice of the national files",
        AGE_SEX_TABLE.fields,
        note="The recorded-vs-expected model's age-sex covariates (the current release's lists), "
        "stored so a QOF year added with `prepare --add` is fitted as a full rebuild fits it.",
    ),
    Contract(
        "history/static/qof_imd.parquet",
        "one row per practice × IoD release, every practice of the national files",
        (
            Field("practice_code", "code", "ODS practice code"),
            Field("imd", "code", "IoD release", values=IMD_YEARS),
            Field("score", "number", "patient-weighted IMD score of the release", nullable=True),
        ),
        note="The recorded-vs-expected model's deprivation covariate (the current release's "
        "registrations); its practices are today's list for carrying closed practices.",
    ),
    Contract(
        "history/static/payments.parquet",
        "one row per practice (NHS Payments to General Practice)",
        (
            Field("practice_code", "code", "ODS practice code", unique=True),
            Field("weighted_patients", "number", "Carr-Hill weighted list", nullable=True),
        ),
        note=f"A {_STATIC}.",
    ),
)

#: Prepared store file (relative to the store) -> its contract.
STORE_CONTRACTS: dict[str, Contract] = {
    c.name: c
    for c in (
        LSOA_TABLE,
        PRACTICE_TABLE,
        REGISTRATIONS_TABLE,
        AGE_SEX_TABLE,
        PCN_WORKFORCE_TABLE,
        QOF_PREVALENCE_TABLE,
        QOF_EXPECTED_TABLE,
        NATIONAL_TABLE,
        *HISTORY_CONTRACTS,
        *QOF_HISTORY_CONTRACTS,
        *STATIC_CONTRACTS,
    )
}
CONTRACTS: tuple[Contract, ...] = (*STORE_CONTRACTS.values(), AREA_REGISTER, INDICATOR_TABLE)

DOC_START = "<!-- data contracts: generated from pophealth/contracts.py; do not edit -->"
DOC_END = "<!-- end of generated data contracts -->"


def contracts_markdown() -> str:
    """Every contract as markdown, between the markers ``docs/architecture.md`` holds."""
    body = "\n\n".join(c.markdown() for c in CONTRACTS)
    return f"{DOC_START}\n\n{body}\n\n{DOC_END}"


def validate_store_table(file_name: str, frame: pd.DataFrame, where: Any) -> pd.DataFrame:
    """Check one prepared store table against its contract.

    Args:
        file_name: The table's path in the store (``practices.parquet``,
            ``history/practices.parquet``, ...).
        frame: The table.
        where: Who holds it, for the error message.
    """
    return STORE_CONTRACTS[file_name].validate(frame, str(where))
