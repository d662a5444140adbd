"""Loader for Census 2021 LSOA tables from the Nomis bulk download (``census2021-tsNNN-lsoa.csv``).

Nomis files begin ``date,geography,geography code`` and then one column per category, labelled
``<Table>: <Category>`` (some end in ``; measures: Value``; spacing after colons varies; labels
with commas are quoted). The table is detected from the header (e.g. ``General health:`` ->
TS037) and columns are matched by normalised label, never by position. Where a file only has a
category's sub-categories (e.g. TS054 ``Owned: Owns outright`` and ``Owned: Owns with a mortgage
or loan``) the canonical top-level column is their sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from pophealth.ages import CENSUS_AGE_COLUMNS, band_lower
from pophealth.sources.common import (
    ColumnPattern,
    SourceFormatError,
    canonical_schema,
    clean_codes,
    code_column,
    header_key,
    missing_column_error,
    parse_numeric,
    read_csv_columns,
    read_header,
    validate_output,
)

__all__ = ["CENSUS_TABLES", "CensusTable", "detect_table", "load_nomis_table"]


@dataclass(frozen=True)
class CensusColumn:
    """A canonical column: its official label(s), or the sub-categories that sum to it."""

    labels: tuple[str, ...]
    parts: tuple[str, ...] = ()
    optional: bool = False


@dataclass(frozen=True)
class CensusTable:
    """One Nomis table: id, the header prefix that identifies it, and its canonical columns."""

    table_id: str
    prefix: str
    columns: dict[str, CensusColumn] = field(default_factory=dict)

    @property
    def schema(self) -> pa.DataFrameSchema:
        """Strict canonical schema for this table's loader output."""
        spec = {"lsoa21_code": code_column(unique=True)}
        for name, column in self.columns.items():
            spec[name] = pa.Column(
                "Int64" if column.optional else "int64", nullable=column.optional
            )
        return canonical_schema(f"Census 2021 {self.table_id}", spec)


def _c(*labels: str, parts: tuple[str, ...] = (), optional: bool = False) -> CensusColumn:
    return CensusColumn(labels=labels, parts=parts, optional=optional)


def _age_columns() -> dict[str, CensusColumn]:
    columns = {"age_total": _c("Age: Total", "Age: Total: All usual residents")}
    columns["age_0_4"] = _c("Age: Aged 4 years and under")
    for name in CENSUS_AGE_COLUMNS[1:-1]:
        start = band_lower(name[len("age_") :])
        columns[name] = _c(f"Age: Aged {start} to {start + 4} years")
    columns["age_85_plus"] = _c("Age: Aged 85 years and over")
    return columns


_TENURE = "Tenure of household"
_ETHNIC = "Ethnic group"
_DISABLED = "Disability: Disabled under the Equality Act"
_NOT_ENGLISH = (
    "Proficiency in English language: Main language is not English (English or Welsh in Wales)"
)
_NOT_ENGLISH_E = "Proficiency in English language: Main language is not English"
_NOT_DISABLED = "Disability: Not disabled under the Equality Act"

CENSUS_TABLES: dict[str, CensusTable] = {
    table.table_id: table
    for table in (
        CensusTable("TS007A", "Age", _age_columns()),
        CensusTable(
            "TS037",
            "General health",
            {
                "health_total": _c(
                    "General health: Total: All usual residents", "General health: Total"
                ),
                "health_very_good": _c("General health: Very good health"),
                "health_good": _c("General health: Good health"),
                "health_fair": _c("General health: Fair health"),
                "health_bad": _c("General health: Bad health"),
                "health_very_bad": _c("General health: Very bad health"),
            },
        ),
        CensusTable(
            "TS038",
            "Disability",
            {
                "disability_total": _c(
                    "Disability: Total: All usual residents", "Disability: Total"
                ),
                "disabled_ea": _c(
                    _DISABLED,
                    parts=(
                        f"{_DISABLED}: Day-to-day activities limited a lot",
                        f"{_DISABLED}: Day-to-day activities limited a little",
                    ),
                ),
                "not_disabled_ea": _c(
                    _NOT_DISABLED,
                    parts=(
                        f"{_NOT_DISABLED}: Has long term physical or mental health condition but "
                        "day-to-day activities are not limited",
                        f"{_NOT_DISABLED}: No long term physical or mental health conditions",
                    ),
                ),
            },
        ),
        CensusTable(
            "TS021",
            _ETHNIC,
            {
                "ethnic_total": _c(f"{_ETHNIC}: Total: All usual residents", f"{_ETHNIC}: Total"),
                "ethnic_asian": _c(
                    f"{_ETHNIC}: Asian, Asian British or Asian Welsh",
                    parts=tuple(
                        f"{_ETHNIC}: Asian, Asian British or Asian Welsh: {group}"
                        for group in (
                            "Bangladeshi",
                            "Chinese",
                            "Indian",
                            "Pakistani",
                            "Other Asian",
                        )
                    ),
                ),
                "ethnic_black": _c(
                    f"{_ETHNIC}: Black, Black British, Black Welsh, Caribbean or African",
                    parts=tuple(
                        f"{_ETHNIC}: Black, Black British, Black Welsh, Caribbean or African: {g}"
                        for g in ("African", "Caribbean", "Other Black")
                    ),
                ),
                "ethnic_mixed": _c(
                    f"{_ETHNIC}: Mixed or Multiple ethnic groups",
                    parts=tuple(
                        f"{_ETHNIC}: Mixed or Multiple ethnic groups: {g}"
                        for g in (
                            "White and Asian",
                            "White and Black African",
                            "White and Black Caribbean",
                            "Other Mixed or Multiple ethnic groups",
                        )
                    ),
                ),
                "ethnic_white": _c(
                    f"{_ETHNIC}: White",
                    parts=tuple(
                        f"{_ETHNIC}: White: {g}"
                        for g in (
                            "English, Welsh, Scottish, Northern Irish or British",
                            "Irish",
                            "Gypsy or Irish Traveller",
                            "Roma",
                            "Other White",
                        )
                    ),
                ),
                "ethnic_other": _c(
                    f"{_ETHNIC}: Other ethnic group",
                    parts=(
                        f"{_ETHNIC}: Other ethnic group: Arab",
                        f"{_ETHNIC}: Other ethnic group: Any other ethnic group",
                    ),
                ),
                "ethnic_white_british": _c(
                    f"{_ETHNIC}: White: English, Welsh, Scottish, Northern Irish or British",
                    optional=True,
                ),
            },
        ),
        CensusTable(
            "TS011",
            "Household deprivation",
            {
                "hh_total": _c(
                    "Household deprivation: Total: All households", "Household deprivation: Total"
                ),
                "hh_deprived_0": _c(
                    "Household deprivation: Household is not deprived in any dimension"
                ),
                **{
                    f"hh_deprived_{n}": _c(
                        f"Household deprivation: Household is deprived in {word} "
                        f"dimension{'s' if n > 1 else ''}"
                    )
                    for n, word in ((1, "one"), (2, "two"), (3, "three"), (4, "four"))
                },
            },
        ),
        CensusTable(
            "TS054",
            _TENURE,
            {
                "tenure_total": _c(f"{_TENURE}: Total: All households", f"{_TENURE}: Total"),
                "tenure_owned": _c(
                    f"{_TENURE}: Owned",
                    parts=(
                        f"{_TENURE}: Owned: Owns outright",
                        f"{_TENURE}: Owned: Owns with a mortgage or loan",
                    ),
                ),
                "tenure_shared_ownership": _c(
                    f"{_TENURE}: Shared ownership",
                    parts=(f"{_TENURE}: Shared ownership: Shared ownership",),
                ),
                "tenure_social_rented": _c(
                    f"{_TENURE}: Social rented",
                    parts=(
                        f"{_TENURE}: Social rented: Rents from council or Local Authority",
                        f"{_TENURE}: Social rented: Other social rented",
                    ),
                ),
                "tenure_private_rented": _c(
                    f"{_TENURE}: Private rented",
                    parts=(
                        f"{_TENURE}: Private rented: Private landlord or letting agency",
                        f"{_TENURE}: Private rented: Other private rented",
                    ),
                ),
                "tenure_rent_free": _c(
                    f"{_TENURE}: Lives rent free", f"{_TENURE}: Lives rent free: Lives rent free"
                ),
            },
        ),
        # Core20PLUS5 PLUS groups (issue 12): carers, language, car access, older people alone
        CensusTable(
            "TS039",
            "Provision of unpaid care",
            {
                "care_total": _c(
                    "Provision of unpaid care: Total: All usual residents aged 5 and over",
                    "Provision of unpaid care: Total",
                ),
                "care_none": _c("Provision of unpaid care: Provides no unpaid care"),
            },
        ),
        CensusTable(
            "TS029",
            "Proficiency in English language",
            {
                "english_total": _c(
                    "Proficiency in English language: Total: All usual residents aged 3 years "
                    "and over",
                    "Proficiency in English language: Total",
                ),
                "english_not_well": _c(
                    f"{_NOT_ENGLISH}: Cannot speak English well",
                    f"{_NOT_ENGLISH_E}: Cannot speak English well",
                ),
                "english_none": _c(
                    f"{_NOT_ENGLISH}: Cannot speak English",
                    f"{_NOT_ENGLISH_E}: Cannot speak English",
                ),
            },
        ),
        CensusTable(
            "TS045",
            "Number of cars or vans",
            {
                "cars_total": _c(
                    "Number of cars or vans: Total: All households", "Number of cars or vans: Total"
                ),
                "cars_none": _c("Number of cars or vans: No cars or vans in household"),
            },
        ),
        CensusTable(
            "TS003",
            "Household composition",
            {
                "hhcomp_total": _c(
                    "Household composition: Total", "Household composition: Total: All households"
                ),
                "hhcomp_alone_66_plus": _c(
                    "Household composition: One person household: Aged 66 years and over"
                ),
            },
        ),
    )
}

_GEOGRAPHY_CODE = ColumnPattern("geography code")
_LSOA_PREFIXES = ("E01", "W01")


def detect_table(headers: list[str]) -> CensusTable | None:
    """Identify the Census table from a Nomis header (``General health: …`` -> TS037)."""
    keys = [header_key(h) for h in headers]
    for table in CENSUS_TABLES.values():
        prefix = header_key(table.prefix) + ":"
        if any(k.startswith(prefix) for k in keys):
            return table
    return None


def load_nomis_table(path: str | Path, table_id: str | None = None) -> pd.DataFrame:
    """Load one Census 2021 LSOA table (Nomis bulk CSV) into canonical columns.

    Keeps the England and Wales LSOA rows as published (codes ``E01…`` and ``W01…``); the caller
    decides whether to keep Wales.

    Args:
        path: ``census2021-tsNNN-lsoa.csv``.
        table_id: Expected table (``"TS037"`` …); detected from the header when ``None``.

    Returns:
        ``lsoa21_code`` and the table's canonical columns (``int64``; TS021's
        ``ethnic_white_british`` is nullable ``Int64`` and all-NA when the file has only the
        top-level groups).

    Raises:
        SourceFormatError: Unknown table, missing category columns (the table is named),
            non-numeric counts, no LSOA rows.
    """
    path = Path(path)
    headers = read_header(path)
    detected = detect_table(headers)
    if table_id is not None:
        expected = CENSUS_TABLES.get(table_id.upper())
        if expected is None:
            raise ValueError(f"unknown census table {table_id!r}; known: {list(CENSUS_TABLES)}")
        if detected is not None and detected.table_id != expected.table_id:
            raise SourceFormatError(
                path,
                f"expected Census table {expected.table_id} but the header is {detected.table_id}",
                fix=f"pass the census2021-{expected.table_id.lower()}-lsoa.csv file",
            )
        detected = expected
    if detected is None:
        raise SourceFormatError(
            path,
            "not a recognised Census 2021 table",
            examples=f"headers: {', '.join(map(repr, headers[:6]))}",
            fix="expected a Nomis census2021-tsNNN-lsoa.csv for one of "
            + ", ".join(f"{t.table_id} ({t.prefix}: …)" for t in CENSUS_TABLES.values()),
        )
    table = detected
    source = f"Census 2021 {table.table_id} Nomis CSV"
    by_key = {header_key(h): h for h in reversed(headers)}
    code_header = next((h for h in headers if _GEOGRAPHY_CODE.matches(header_key(h))), None)
    if code_header is None:
        raise missing_column_error(path, _GEOGRAPHY_CODE, headers, source=source)

    # canonical -> list of headers summed (one header when the top-level category is present)
    plan: dict[str, list[str]] = {}
    for name, column in table.columns.items():
        top = next(
            (by_key[header_key(label)] for label in column.labels if header_key(label) in by_key),
            None,
        )
        if top is not None:
            plan[name] = [top]
            continue
        part_headers = [by_key.get(header_key(p)) for p in column.parts]
        if column.parts and all(part_headers):
            plan[name] = [str(h) for h in part_headers]
            continue
        if column.optional:
            continue
        raise missing_column_error(
            path, ColumnPattern(*column.labels, *column.parts), headers, source=source
        )

    needed = {"lsoa21_code": code_header}
    for headers_summed in plan.values():
        for header in headers_summed:
            needed[f"col:{header}"] = header
    numeric_names = [k for k in needed if k != "lsoa21_code"]
    raw = read_csv_columns(path, needed, numeric=numeric_names)
    codes = clean_codes(raw["lsoa21_code"])
    is_lsoa = codes.str[:3].isin(_LSOA_PREFIXES).fillna(False).astype(bool)
    if not is_lsoa.any():
        raise SourceFormatError(
            path,
            "no LSOA rows (codes starting E01 or W01)",
            column=code_header,
            examples=", ".join(codes.dropna().unique()[:5]),
            fix="download the LSOA-level file (census2021-tsNNN-lsoa.csv), not another geography",
        )
    raw = raw.loc[is_lsoa]
    out = pd.DataFrame({"lsoa21_code": codes.loc[is_lsoa]})
    parsed: dict[str, pd.Series] = {}
    for name in table.columns:
        if name not in plan:
            out[name] = pd.Series(pd.NA, index=raw.index, dtype="Int64")
            continue
        total = None
        for header in plan[name]:
            if header not in parsed:
                parsed[header] = parse_numeric(raw[f"col:{header}"], path, header, integer=True)
            total = parsed[header] if total is None else total + parsed[header]
        out[name] = total.astype("Int64") if table.columns[name].optional else total
    out = out.reset_index(drop=True)
    validate_output(out, table.schema, path)
    return out
