"""Loaders for the official source files, and the one registry of sources.

Each source has one loader returning the canonical columns of ``docs/architecture.md``.
:data:`SOURCES` holds one declaration per source (official file name patterns, a header signature
for sniffing, its loader and canonical pandera schema, its release parser, the names of its
entries in ``registry.yaml`` and of its demo files). ``fetch.KNOWN_SOURCES``, ``prepare.LOADERS``,
the demo generator's ``FILE_NAMES`` and the registry checks are all derived from it, so adding a
source is one :class:`SourceSpec` here plus its loader (see ``docs/architecture.md``).
:func:`identify_source` names the source of a file by its official file name first, then by
sniffing its header.
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
    ods_successors,
    payments,
    pcn_workforce,
    qof,
    registrations,
    workforce,
)
from pophealth.sources.common import SourceFormatError, header_key, read_header, sha256_of

__all__ = [
    "SOURCES",
    "SourceFormatError",
    "SourceSpec",
    "demo_file_names",
    "describe_source",
    "fetch_entry_names",
    "identify_by_content",
    "identify_source",
    "release_from_name",
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
        loader: The loader function (one file -> canonical frame); ``None`` for a source that is
            fetched for reference but not prepared.
        required: Whether a profile cannot be built without it.
        indicators: Indicator groups that use this source.
        schema: The canonical pandera schema the loader validates its output with (``None``
            where the loader returns several tables or a GeoDataFrame).
        release: Regex and label template naming the release from the official file name
            (groups fill the template, e.g. ``"IoD{0}"``); ``None`` when the data carry an
            extract date.
        fetch_entries: Names of this source's entries in ``registry.yaml``: ``(name,)`` by
            default, one ``<name>_<part>`` per file for a source published as several files, or
            ``()`` for a source the registry does not list.
        demo_files: The demo generator's file name for each fetch entry (same order); empty when
            the demo has no such file.
        file_set: Whether the loader reads all of the source's files in one call (a zip or its
            extracted members, region-split files: QOF) instead of one file per call.
        unique_key: Canonical columns naming one row of the loaded table; ``prepare`` refuses a
            file in which a key repeats (see :func:`pophealth.reconcile.check_duplicate_keys`).
    """

    name: str
    description: str
    patterns: tuple[str, ...]
    signature: tuple[str, ...]
    loader: Callable[..., Any] | None
    required: bool = False
    indicators: tuple[str, ...] = field(default_factory=tuple)
    schema: Any = None
    release: tuple[str, str] | None = None
    fetch_entries: tuple[str, ...] | None = None
    demo_files: tuple[str, ...] = ()
    file_set: bool = False
    unique_key: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.fetch_entries is None:
            object.__setattr__(self, "fetch_entries", (self.name,))
        if self.demo_files and len(self.demo_files) != len(self.fetch_entries):
            raise ValueError(f"source {self.name!r}: one demo file per fetch entry")

    @property
    def multi_file(self) -> bool:
        """Whether the source is published as several files that prepare loads together."""
        return len(self.fetch_entries) > 1

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
        schema=census.CENSUS_TABLES[table_id].schema,
        release=(r"census(2021)", "Census {0}"),
        demo_files=(f"census2021-{table_id.lower()}-lsoa.csv",),
        unique_key=("lsoa21_code",),
    )


def _gp_list_spec(
    name: str, description: str, stem: str, signature: tuple[str, ...], loader, schema, **kw
) -> SourceSpec:
    """An NHS England 'Patients registered at a GP practice' file: gp-reg-pat-prac-<stem>.csv."""
    return SourceSpec(
        name,
        f"NHS England {description}",
        (f"gp-reg-pat-prac-{stem}*.csv",),
        signature,
        loader,
        schema=schema,
        demo_files=(f"gp-reg-pat-prac-{stem}.csv",),
        **kw,
    )


def _iod_spec(year: str, lsoa_year: str, demo_file: str, **kw) -> SourceSpec:
    """An English Indices of Deprivation File 7 (all ranks, scores, deciles, denominators)."""
    return SourceSpec(
        f"iod{year}",
        f"MHCLG English Indices of Deprivation {year}, File 7 (LSOA {lsoa_year})",
        (f"file_7*iod{year}*.csv",),
        (rf"lsoa code \({lsoa_year}\)", r"index of multiple deprivation \(imd\) score"),
        getattr(imd, f"load_iod{year}_file7"),
        schema=getattr(imd, f"IOD{year}_SCHEMA"),
        release=(r"IoD(20\d\d)", "IoD{0}"),
        demo_files=(demo_file,),
        unique_key=(f"lsoa{lsoa_year[2:]}_code",),
        **kw,
    )


_SPECS: tuple[SourceSpec, ...] = (
    _gp_list_spec(
        "registrations_lsoa",
        "patients registered at a GP practice by LSOA of residence (quarterly)",
        "lsoa-all",
        (r"practice code", r"lsoa code", r"number of patients"),
        registrations.load_registrations_by_lsoa,
        registrations.LSOA_SCHEMA,
        required=True,
        indicators=("attribution", "all resident-based practice/PCN indicators"),
        unique_key=("practice_code", "lsoa_code"),
    ),
    _gp_list_spec(
        "practice_totals",
        "patients registered per GP practice (monthly)",
        "all",
        (r"type", r"code", r"(ons sub icb location|ons ccg) code", r"number of patients"),
        registrations.load_practice_totals,
        registrations.TOTALS_SCHEMA,
        required=True,
        indicators=("list size", "denominators"),
    ),
    _gp_list_spec(
        "practice_age_bands",
        "registered patients per practice by sex and five-year age band",
        "quin-age",
        (r"org type", r"age group 5", r"number of patients"),
        registrations.load_practice_age_bands,
        registrations.AGE_BAND_SCHEMA,
        indicators=("age structure", "age-standardisation"),
    ),
    SourceSpec(
        "practice_single_age",
        "NHS England registered patients per practice by single year of age (male/female files)",
        ("gp-reg-pat-prac-sing-age-male*.csv", "gp-reg-pat-prac-sing-age-female*.csv"),
        (r"org code", r"age", r"sex", r"number of patients", r"(sub icb location|ccg) code"),
        registrations.load_practice_single_age,
        indicators=("age structure",),
        schema=registrations.SINGLE_AGE_SCHEMA,
        fetch_entries=("practice_single_age_male", "practice_single_age_female"),
        demo_files=("gp-reg-pat-prac-sing-age-male.csv", "gp-reg-pat-prac-sing-age-female.csv"),
    ),
    _gp_list_spec(
        "practice_map",
        "practice -> PCN -> sub-ICB location -> ICB mapping",
        "map",
        (r"practice code", r"pcn code", r"(sub icb location|ccg) code"),
        registrations.load_practice_map,
        registrations.MAP_SCHEMA,
        required=True,
        indicators=("geography",),
        unique_key=("practice_code",),
    ),
    SourceSpec(
        "epcn",
        "ODS ePCN workbook: PCNs and practice-to-PCN memberships",
        ("epcn*.xlsx",),
        (),
        epcn.load_epcn,
        indicators=("geography (PCN membership at a date)",),
        demo_files=("ePCN.xlsx",),
    ),
    SourceSpec(
        "epraccur",
        "ODS GP practices (epraccur.csv, no header)",
        ("epraccur*.csv",),
        (),
        epraccur.load_epraccur,
        indicators=("practice status and open/close dates",),
        schema=epraccur.EPRACCUR_SCHEMA,
        fetch_entries=(),
    ),
    SourceSpec(
        "ods_successors",
        "ODS successor organisations (succ.csv in succ.zip; succarc.csv archive; no header)",
        ("succ.csv", "succarc.csv", "succ.zip", "succarc.zip"),
        (),
        ods_successors.load_ods_successors,
        indicators=("history: closed/merged practices carried by their successor",),
        schema=ods_successors.SUCCESSORS_SCHEMA,
        demo_files=("succ.csv",),
        file_set=True,
        unique_key=("predecessor_code", "successor_code"),
    ),
    SourceSpec(
        "workforce",
        "NHS England General Practice Workforce, practice level detailed (monthly)",
        ("*practice level*detailed*.csv",),
        (r"prac code", r"total gp fte"),
        workforce.load_workforce,
        indicators=("workforce FTE per 10,000 patients", "staff groups and roles", "skill mix"),
        schema=workforce.WORKFORCE_SCHEMA,
        release=(r"\u2013 (\w+ \d{4})", "{0}"),
        demo_files=("1 General Practice \u2013 October 2025 Practice Level - Detailed.csv",),
        unique_key=("practice_code",),
    ),
    SourceSpec(
        "pcn_workforce",
        "NHS England Primary Care Network Workforce, individual level (monthly): PCN staff",
        ("*primary care networks*individual level*.csv",),
        (r"pcn code", r"staff group", r"staff role", r"fte", r"unique identifier"),
        pcn_workforce.load_pcn_workforce,
        indicators=("whole team (practice + PCN staff) FTE", "skill mix", "fair-share gaps"),
        schema=pcn_workforce.PCN_WORKFORCE_SCHEMA,
        release=(r"Networks - (\w+ \d{4}) Individual", "{0}"),
        demo_files=("1.Primary Care Networks - October 2025 Individual Level.csv",),
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
        schema=payments.PAYMENTS_SCHEMA,
        release=(r"nhspaymentsgp-(\d\d)-(\d\d)", "20{0}-{1}"),
        demo_files=("nhspaymentsgp-24-25-prac-csv.csv",),
        unique_key=("practice_code",),
    ),
    _iod_spec(
        "2025",
        "2021",
        "File_7_IoD2025_All_Ranks_Scores_Deciles_Population_Denominators.csv",
        required=True,
        indicators=("deprivation", "Core20"),
    ),
    _iod_spec(
        "2019",
        "2011",
        "File_7_-_All_IoD2019_Scores__Ranks__Deciles_and_Population_Denominators_3.csv",
        indicators=("deprivation trend (via LSOA 2011 -> 2021)",),
    ),
    _census_spec("TS007A", "Age", "age by five-year band", ("resident age structure",)),
    _census_spec("TS037", "General health", "general health", ("self-reported health",)),
    _census_spec("TS038", "Disability", "disability", ("disability",)),
    _census_spec("TS021", "Ethnic group", "ethnic group", ("ethnicity",)),
    _census_spec("TS011", "Household deprivation", "household deprivation", ("deprivation",)),
    _census_spec("TS054", "Tenure of household", "tenure", ("housing",)),
    _census_spec("TS039", "Provision of unpaid care", "unpaid care", ("Core20PLUS5 carers",)),
    _census_spec(
        "TS029", "Proficiency in English language", "English proficiency", ("Core20PLUS5",)
    ),
    _census_spec("TS045", "Number of cars or vans", "car or van availability", ("Core20PLUS5",)),
    _census_spec("TS003", "Household composition", "household composition", ("Core20PLUS5",)),
    # --- QOF (issue 12): one multi-file source; see pophealth.sources.qof and docs/qof.md ----
    SourceSpec(
        "qof",
        "NHS England Quality and Outcomes Framework practice-level raw data (annual)",
        (
            "qof*.zip",
            "prevalence_*.csv",
            "achievement_*.csv",
            "mapping_indicators_*.csv",
            "mapping_nhs_geographies_*.csv",
        ),
        (r"practice code", r"group code", r"patient list type", r"practice list size"),
        qof.load_qof,
        indicators=("recorded prevalence", "recorded vs expected", "multimorbidity"),
        release=(r"^(?:prevalence|achievement|mapping|qof)\D*?(\d\d)(\d\d)", "20{0}-{1}"),
        # the registry's file for the one zip entry; the demo writes its other members beside it
        demo_files=("PREVALENCE_2425.csv",),
        file_set=True,
    ),
    SourceSpec(
        "lsoa21_lookup",
        "ONS LSOA 2021 -> sub-ICB location -> ICB -> LAD lookup",
        ("lsoa21_sicbl*_icb*_lad*_lu*.csv", "lsoa21_sicbl*_icb*_lu*.csv"),
        (r"lsoa21cd", r"sicbl\d\dcd"),
        lookups.load_lsoa21_lookup,
        required=True,
        indicators=("geography", "resident-based place/system indicators"),
        schema=lookups.LSOA21_LOOKUP_SCHEMA,
        release=(r"SICBL(\d\d)", "20{0} edition"),
        demo_files=("LSOA21_SICBL23_ICB23_LAD23_EN_LU.csv",),
        unique_key=("lsoa21_code",),
    ),
    SourceSpec(
        "lsoa11_lsoa21_lookup",
        "ONS LSOA 2011 -> LSOA 2021 best-fit lookup with change indicator",
        ("lsoa11_lsoa21*_lu*.csv",),
        (r"lsoa11cd", r"lsoa21cd", r"chgind"),
        lookups.load_lsoa11_to_lsoa21,
        indicators=("IoD2019 on LSOA 2021",),
        schema=lookups.LSOA11_TO_21_SCHEMA,
        release=(r"LSOA11_LSOA21_LAD(\d\d)", "20{0} edition"),
        demo_files=("LSOA11_LSOA21_LAD22_EW_LU.csv",),
    ),
    SourceSpec(
        "lsoa_boundaries",
        "ONS LSOA (December 2021) boundaries (BSC/BGC)",
        ("lsoa_2021*.shp", "lsoa_2021*.geojson", "lsoa_2021*.gpkg"),
        (),
        boundaries.load_lsoa_boundaries,
        indicators=("maps",),
        release=(r"LSOA_(20\d\d)", "{0} boundaries"),
        demo_files=("LSOA_2021_EW_BSC_V4.shp",),
    ),
)

# fetched for reference (maps drawn elsewhere) but not prepared: registry.yaml names only
_FETCH_ONLY: tuple[SourceSpec, ...] = (
    SourceSpec(
        "boundaries_icb",
        "ONS Integrated Care Board (April 2023) boundaries, for reference maps",
        ("icb_*_en_b?c*.geojson",),
        (),
        None,
    ),
)

#: Registry of official sources by name.
SOURCES: dict[str, SourceSpec] = {spec.name: spec for spec in _SPECS}


def fetch_entry_names() -> tuple[str, ...]:
    """Every source name ``registry.yaml`` may use (``fetch.KNOWN_SOURCES``), in order."""
    return tuple(entry for spec in _SPECS + _FETCH_ONLY for entry in spec.fetch_entries)


def demo_file_names() -> dict[str, str]:
    """Fetch entry name -> file name the demo generator writes for it."""
    return {
        entry: file_name
        for spec in _SPECS
        for entry, file_name in zip(spec.fetch_entries, spec.demo_files, strict=False)
    }


def release_from_name(name: str, path: str | Path) -> str | None:
    """The release label an official file name carries (e.g. ``"IoD2025"``), or ``None``."""
    spec = SOURCES.get(name)
    if spec is None or spec.release is None:
        return None
    pattern, label = spec.release
    match = re.search(pattern, Path(path).name, flags=re.IGNORECASE)
    return label.format(*match.groups()) if match else None


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
    spec = SOURCES.get(name)
    return f"{name} ({spec.description})" if spec else name
