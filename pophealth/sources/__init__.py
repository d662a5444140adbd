"""Loaders for the official source files, and a registry to recognise them.

Each source has one loader returning the canonical columns of ``docs/architecture.md``.
:data:`SOURCES` describes every source (official file name patterns, a header signature for
sniffing, its loader, and which indicators need it); :func:`identify_source` names the source of a
file by its official file name first, then by sniffing its header.
"""

from __future__ import annotations

import fnmatch
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pophealth.sources import (
    boundaries,
    census,
    epcn,
    epraccur,
    imd,
    lookups,
    payments,
    registrations,
    workforce,
)
from pophealth.sources.common import SourceFormatError, header_key, read_header, sha256_of

__all__ = [
    "SOURCES",
    "SourceFormatError",
    "SourceSpec",
    "describe_source",
    "identify_by_content",
    "identify_source",
    "sha256_of",
]

_SPATIAL_SUFFIXES = (".shp", ".geojson", ".gpkg", ".json")


@dataclass(frozen=True)
class SourceSpec:
    """What the project knows about one official source.

    Attributes:
        name: Registry key, e.g. ``"registrations_lsoa"``.
        description: Publisher and content.
        patterns: Official file name globs (case-insensitive, matched on the base name).
        signature: Regexes that must each fully match some normalised header (lower case, ``_``
            as space) for header sniffing; empty for sources sniffed another way.
        loader: The loader function.
        required: Whether a profile cannot be built without it.
        indicators: Indicator groups that use this source.
    """

    name: str
    description: str
    patterns: tuple[str, ...]
    signature: tuple[str, ...]
    loader: Callable[..., Any]
    required: bool = False
    indicators: tuple[str, ...] = field(default_factory=tuple)

    def matches_name(self, path: str | Path) -> bool:
        """Whether the file's base name matches an official name pattern."""
        name = Path(path).name.lower()
        return any(fnmatch.fnmatchcase(name, p.lower()) for p in self.patterns)

    def matches_header(self, keys: list[str]) -> bool:
        """Whether every signature regex matches one of the header keys."""
        if not self.signature:
            return False
        return all(any(re.fullmatch(s, k) for k in keys) for s in self.signature)


def _census_spec(table_id: str, prefix: str, description: str, indicators: tuple[str, ...]):
    def load(path: str | Path, _table: str = table_id):
        return census.load_nomis_table(path, table_id=_table)

    load.__name__ = f"load_census_{table_id.lower()}"
    load.__doc__ = f"Load Census 2021 {table_id} ({description}) with census.load_nomis_table."
    return SourceSpec(
        name=f"census_{table_id.lower()}",
        description=f"ONS Census 2021 {table_id} {description}, LSOA 2021 (Nomis bulk CSV)",
        patterns=(f"census2021-{table_id.lower()}-lsoa*.csv",),
        signature=(r"geography code", re.escape(header_key(prefix)) + r": .*"),
        loader=load,
        indicators=indicators,
    )


_SPECS: tuple[SourceSpec, ...] = (
    SourceSpec(
        "registrations_lsoa",
        "NHS England patients registered at a GP practice by LSOA of residence (quarterly)",
        ("gp-reg-pat-prac-lsoa-all*.csv",),
        (r"practice code", r"lsoa code", r"number of patients"),
        registrations.load_registrations_by_lsoa,
        required=True,
        indicators=("attribution", "all resident-based practice/PCN indicators"),
    ),
    SourceSpec(
        "practice_totals",
        "NHS England patients registered per GP practice (monthly)",
        ("gp-reg-pat-prac-all*.csv",),
        (r"type", r"code", r"(ons sub icb location|ons ccg) code", r"number of patients"),
        registrations.load_practice_totals,
        required=True,
        indicators=("list size", "denominators"),
    ),
    SourceSpec(
        "practice_age_bands",
        "NHS England registered patients per practice by sex and five-year age band",
        ("gp-reg-pat-prac-quin-age*.csv",),
        (r"org type", r"age group 5", r"number of patients"),
        registrations.load_practice_age_bands,
        indicators=("age structure", "age-standardisation"),
    ),
    SourceSpec(
        "practice_single_age",
        "NHS England registered patients per practice by single year of age (male/female files)",
        ("gp-reg-pat-prac-sing-age-male*.csv", "gp-reg-pat-prac-sing-age-female*.csv"),
        (r"org code", r"age", r"sex", r"number of patients", r"(sub icb location|ccg) code"),
        registrations.load_practice_single_age,
        indicators=("age structure",),
    ),
    SourceSpec(
        "practice_map",
        "NHS England practice -> PCN -> sub-ICB location -> ICB mapping",
        ("gp-reg-pat-prac-map*.csv",),
        (r"practice code", r"pcn code", r"(sub icb location|ccg) code"),
        registrations.load_practice_map,
        required=True,
        indicators=("geography",),
    ),
    SourceSpec(
        "epcn",
        "ODS ePCN workbook: PCNs and practice-to-PCN memberships",
        ("epcn*.xlsx",),
        (),
        epcn.load_epcn,
        indicators=("geography (PCN membership at a date)",),
    ),
    SourceSpec(
        "epraccur",
        "ODS GP practices (epraccur.csv, no header)",
        ("epraccur*.csv",),
        (),
        epraccur.load_epraccur,
        indicators=("practice status and open/close dates",),
    ),
    SourceSpec(
        "workforce",
        "NHS England General Practice Workforce, practice level detailed (monthly)",
        ("*practice level*detailed*.csv",),
        (r"prac code", r"total gp fte"),
        workforce.load_workforce,
        indicators=("workforce FTE per 10,000 patients",),
    ),
    SourceSpec(
        "payments",
        "NHS Payments to General Practice (annual): registered and weighted patients",
        ("nhspaymentsgp-*prac*.csv",),
        (
            r"practice code",
            r"number of registered patients \(last known figure\)",
            r"number of weighted patients \(last known figure\)",
        ),
        payments.load_weighted_patients,
        indicators=("weighted (Carr-Hill) list", "workforce per weighted patient"),
    ),
    SourceSpec(
        "iod2025",
        "MHCLG English Indices of Deprivation 2025, File 7 (LSOA 2021)",
        ("file_7*iod2025*.csv",),
        (r"lsoa code \(2021\)", r"index of multiple deprivation \(imd\) score"),
        imd.load_iod2025_file7,
        required=True,
        indicators=("deprivation", "Core20"),
    ),
    SourceSpec(
        "iod2019",
        "MHCLG English Indices of Deprivation 2019, File 7 (LSOA 2011)",
        ("file_7*iod2019*.csv",),
        (r"lsoa code \(2011\)", r"index of multiple deprivation \(imd\) score"),
        imd.load_iod2019_file7,
        indicators=("deprivation trend (via LSOA 2011 -> 2021)",),
    ),
    _census_spec("TS007A", "Age", "age by five-year band", ("resident age structure",)),
    _census_spec("TS037", "General health", "general health", ("self-reported health",)),
    _census_spec("TS038", "Disability", "disability", ("disability",)),
    _census_spec("TS021", "Ethnic group", "ethnic group", ("ethnicity",)),
    _census_spec("TS011", "Household deprivation", "household deprivation", ("deprivation",)),
    _census_spec("TS054", "Tenure of household", "tenure", ("housing",)),
    SourceSpec(
        "lsoa21_lookup",
        "ONS LSOA 2021 -> sub-ICB location -> ICB -> LAD lookup",
        ("lsoa21_sicbl*_icb*_lad*_lu*.csv", "lsoa21_sicbl*_icb*_lu*.csv"),
        (r"lsoa21cd", r"sicbl\d\dcd"),
        lookups.load_lsoa21_lookup,
        required=True,
        indicators=("geography", "resident-based place/system indicators"),
    ),
    SourceSpec(
        "lsoa11_lsoa21_lookup",
        "ONS LSOA 2011 -> LSOA 2021 best-fit lookup with change indicator",
        ("lsoa11_lsoa21*_lu*.csv",),
        (r"lsoa11cd", r"lsoa21cd", r"chgind"),
        lookups.load_lsoa11_to_lsoa21,
        indicators=("IoD2019 on LSOA 2021",),
    ),
    SourceSpec(
        "lsoa_boundaries",
        "ONS LSOA (December 2021) boundaries (BSC/BGC)",
        ("lsoa_2021*.shp", "lsoa_2021*.geojson", "lsoa_2021*.gpkg"),
        (),
        boundaries.load_lsoa_boundaries,
        indicators=("maps",),
    ),
)

#: Registry of official sources by name.
SOURCES: dict[str, SourceSpec] = {spec.name: spec for spec in _SPECS}

_EPRACCUR_FIRST_ROW = re.compile(r'^"?[A-Z0-9]{3,8}"?,')


def _sniff_csv(path: Path) -> str | None:
    try:
        headers = read_header(path)
    except (SourceFormatError, OSError, UnicodeDecodeError):
        return None
    keys = [header_key(h) for h in headers]
    for spec in _SPECS:
        if spec.matches_header(keys):
            return spec.name
    # epraccur has no header: 27 fields, the first an ODS code, field 26 a prescribing setting.
    if len(headers) == epraccur.N_COLUMNS and re.fullmatch(r"[A-Z0-9]{3,8}", headers[0].strip()):
        return "epraccur"
    return None


def _sniff_xlsx(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            workbook = archive.read("xl/workbook.xml").decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, KeyError, OSError):
        return None
    if "PCNDetails" in workbook and "PCN Core Partner Details" in workbook:
        return "epcn"
    return None


def _sniff_spatial(path: Path) -> str | None:
    import pyogrio

    try:
        fields = [header_key(f) for f in pyogrio.read_info(path)["fields"]]
    except Exception:  # pyogrio's DataSourceError family; not spatial -> not ours
        return None
    return "lsoa_boundaries" if "lsoa21cd" in fields else None


def identify_source(path: str | Path) -> str | None:
    """Name the official source of a file, or ``None`` if it is not recognised.

    The official file name is tried first (e.g. ``gp-reg-pat-prac-lsoa-all.csv`` ->
    ``"registrations_lsoa"``); otherwise the header is sniffed (CSV header signatures, the
    ePCN workbook's sheet names, an ``LSOA21CD`` field in a spatial file, or epraccur's
    header-less 27-column rows).

    Args:
        path: Any file.

    Returns:
        A key of :data:`SOURCES`, or ``None``.
    """
    path = Path(path)
    for spec in _SPECS:
        if spec.matches_name(path):
            return spec.name
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _sniff_csv(path)
    if suffix == ".xlsx":
        return _sniff_xlsx(path)
    if suffix in _SPATIAL_SUFFIXES:
        return _sniff_spatial(path)
    return None


def identify_by_content(path: str | Path) -> list[str]:
    """Every source whose content signature the file matches, ignoring its name.

    Used to catch the right name on the wrong table (a Census table saved under another's name,
    a practice-level file where the LSOA-level one is expected).

    Args:
        path: Any file.

    Returns:
        Keys of :data:`SOURCES` (empty when the content is not recognised or unreadable).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            keys = [header_key(h) for h in read_header(path)]
        except (SourceFormatError, OSError, UnicodeDecodeError):
            return []
        return [spec.name for spec in _SPECS if spec.matches_header(keys)]
    found = _sniff_xlsx(path) if suffix == ".xlsx" else None
    return [found] if found else []


def describe_source(name: str) -> str:
    """``name (description)`` for messages."""
    spec = next((s for s in _SPECS if s.name == name), None)
    return f"{name} ({spec.description})" if spec else name
