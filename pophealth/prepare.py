"""Prepare: a folder of official raw files -> a fast prepared store (parquet) + manifest.

Raw files are found by their official names (or header), or listed in a small YAML file
(``sources.yaml`` in the raw folder, or ``--listing FILE``)::

    sources:
      registrations_lsoa: {path: gp-reg-pat-prac-lsoa-all.csv, release: "2025-10"}
      iod2025_file7: {path: File_7_IoD2025_....csv, release: IoD2025}

``prepare`` works with whichever sources are present and records in the manifest which
indicators it could not build for lack of which source.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pophealth import attribution, geography, membership, prevalence, reconcile, staffing
from pophealth._version import STORE_FORMAT, __version__
from pophealth.attribution import attribute_lsoa_to_practices, lsoa_values
from pophealth.codes import isin, map_codes
from pophealth.contracts import PCN_WORKFORCE_TABLE, validate_store_table
from pophealth.errors import PopHealthError
from pophealth.files import atomic_path, sha256_of
from pophealth.indicators import unavailable_indicators
from pophealth.releases import IMD_YEARS, ImdRelease
from pophealth.sources import (
    SOURCES,
    describe_source,
    identify_by_content,
    identify_source,
    release_from_name,
)
from pophealth.sources import epcn as src_epcn
from pophealth.sources import lookups as src_lookups
from pophealth.sources import ods_successors as src_successors
from pophealth.sources import pcn_workforce as src_pcn_workforce
from pophealth.sources import workforce as src_workforce
from pophealth.sources.common import SourceFormatError, counting_code_fixes

STORE_FILES = (
    "national.parquet",
    "lsoa.parquet",
    "practices.parquet",
    "registrations.parquet",
    "practice_age_sex.parquet",
    "boundaries.parquet",
    "qof_prevalence.parquet",
    "qof_expected.parquet",
    "manifest.json",
)

IOD2025, IOD2019 = ImdRelease("2025"), ImdRelease("2019")

# sources published as several files (one per sex), loaded together
MULTI_FILE_SOURCES = {name for name, spec in SOURCES.items() if spec.multi_file}
# sources whose loader reads all their files at once (QOF: a zip or its CSVs, region-split)
FILE_SET_SOURCES = {name for name, spec in SOURCES.items() if spec.file_set}
# sub-folder of the raw folder holding earlier releases, one folder per period (see history.py)
RELEASES_DIR = "releases"


class PrepareError(PopHealthError, ValueError):
    """The raw folder cannot be prepared (missing essentials or conflicting files)."""


@dataclass
class RawSources:
    """Raw files found for each source, with their release labels."""

    paths: dict[str, list[Path]] = field(default_factory=dict)
    releases: dict[str, str] = field(default_factory=dict)
    unrecognised: list[Path] = field(default_factory=list)

    def first(self, name: str) -> Path | None:
        """The file for a single-file source, or None when absent."""
        found = self.paths.get(name)
        return found[0] if found else None


@dataclass(frozen=True)
class NationalInputs:
    """What :func:`prepare` derived from every row of the national files, for extension steps.

    The release history (:mod:`pophealth.history`) keeps the model covariates so that a QOF year
    added later with ``prepare --add`` is modelled exactly as a full rebuild would model it.

    Attributes:
        practice_codes: Today's practices: every practice of the national registrations files.
        successions: GP practice successions of the ODS successor file (``None`` without one).
        age_sex: Practice x sex x five-year band patients of every practice (model covariates).
        imd_scores: ``practice_code, imd, score``: each practice's patient-weighted IMD
            score per IoD release (NaN where unknown; model covariates).
        qof_expected: The current QOF year's expected registers of every practice (``imd``
            column; empty without a fit).
        qof_fit: The current QOF year's model fit per IoD release (records per register).
        tables: When ``--systems`` cut the store, the national tables before the cut
            (``lsoa``, ``practices``, ``registrations``, ``pcn_workforce``: the PCN staff by
            PCN and group, or ``None``), from which England's and the regions' QOF values are
            summed when ``prepare --add`` brings a newer QOF year
            (:func:`pophealth.history.write_national_tables` keeps them); empty when the store
            is not cut (its own tables are national).
    """

    practice_codes: frozenset[str]
    successions: pd.DataFrame | None
    age_sex: pd.DataFrame
    imd_scores: pd.DataFrame
    qof_expected: pd.DataFrame
    qof_fit: dict
    tables: dict = field(default_factory=dict)


def discover_raw_files(raw_dir: str | Path, listing: str | Path | None = None) -> RawSources:
    """Find the official files in ``raw_dir`` (by listing YAML, official name or header).

    Raises:
        PrepareError: when two files claim the same single-file source.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise PrepareError(f"Raw data folder {raw_dir} does not exist.")
    found = RawSources()
    listing = Path(listing) if listing else raw_dir / "sources.yaml"
    if listing.exists():
        doc = yaml.safe_load(listing.read_text(encoding="utf-8")) or {}
        for name, entry in (doc.get("sources") or {}).items():
            entry = entry if isinstance(entry, dict) else {"path": entry}
            path = Path(entry["path"])
            path = path if path.is_absolute() else listing.parent / path
            if not path.exists():
                raise PrepareError(
                    f"{listing}: source {name!r} lists {path}, which does not exist."
                )
            found.paths.setdefault(name, []).append(path)
            if entry.get("release"):
                found.releases[name] = str(entry["release"])
    listed = {p.resolve() for paths in found.paths.values() for p in paths}
    candidates = sorted(
        p
        for p in raw_dir.rglob("*")
        if p.is_file()
        and p.suffix.lower() in {".csv", ".xlsx", ".shp", ".geojson", ".gpkg", ".zip"}
    )
    for path in candidates:
        if path.resolve() in listed or path.relative_to(raw_dir).parts[0] == RELEASES_DIR:
            continue  # earlier releases (releases/<period>/) are read by pophealth.history
        name = identify_source(path)
        if name is None and path.suffix.lower() == ".zip":
            continue  # only official zips we read (QOF) are sources; others are not data
        if name is None:
            found.unrecognised.append(path)
            continue
        found.paths.setdefault(name, []).append(path)
    for name, paths in found.paths.items():
        if len(paths) > 1 and name not in MULTI_FILE_SOURCES | FILE_SET_SOURCES:
            names = ", ".join(p.name for p in paths)
            raise PrepareError(
                f"Two or more files for source {name!r} in {raw_dir}: {names}. Keep one release "
                "per source in the raw folder, or list the one to use in sources.yaml."
            )
    return found


def _release_of(name: str, path: Path, frame: pd.DataFrame | None, raw: RawSources) -> str:
    if name in raw.releases:
        return raw.releases[name]
    if frame is not None and "extract_date" in frame and len(frame):
        return pd.Timestamp(frame["extract_date"].max()).strftime("%Y-%m-%d")
    if frame is not None and "effective_date" in frame and len(frame):
        # the ODS successor file carries no release date: its latest succession stands in
        return f"successions to {pd.Timestamp(frame['effective_date'].max()):%Y-%m-%d}"
    from_name = release_from_name(name, path)
    if from_name is not None:
        return from_name
    return f"file dated {datetime.fromtimestamp(path.stat().st_mtime, UTC):%Y-%m-%d}"


def classify_lsoa_codes(codes: pd.Series, known: set[str]) -> pd.Series:
    """Label each published LSOA code: matched, closed, unknown, wales or outside."""
    # each distinct code is labelled once (a million rows hold some 35,000 codes); a missing
    # code (-1) takes the label of "", the last
    found, distinct = pd.factorize(codes, use_na_sentinel=True)
    text = pd.concat(
        [pd.Series(distinct, dtype=object), pd.Series([""], dtype=object)], ignore_index=True
    )
    text = text.astype(str).str.strip().str.upper()
    status = np.select(
        [
            isin(text, known),
            (text == "CLOSED").to_numpy(),
            text.isin(["", "NO2011", "UNKNOWN", "NAN"]).to_numpy(),
            text.str.startswith("W01").to_numpy(),
        ],
        ["matched", "closed", "unknown", "wales"],
        default="outside",
    )
    # spread as Python strings: one object per distinct label, not one per row
    return pd.Series(status.astype(object)[found], index=codes.index, dtype="object")


def _iod2019_on_lsoa21(iod19: pd.DataFrame, lookup11: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Convert IoD2019 scores to 2021 LSOAs and re-derive national deciles from the scores."""
    values = iod19[["lsoa11_code", "imd_score"]]
    weights = iod19[["lsoa11_code", "population"]]
    converted, report = src_lookups.convert_lsoa11_to_lsoa21(values, lookup11, weights)
    # national IoD2019 decile cut points (decile 1 = highest scores) from the 2011 file
    ordered = np.sort(iod19["imd_score"].to_numpy(dtype=float))[::-1]
    cuts = [ordered[int(len(ordered) * k / 10) - 1] for k in range(1, 10)]
    score = converted["imd_score"].to_numpy(dtype=float)
    decile = np.ones(len(score))
    for cut in cuts:
        decile += score < cut
    out = pd.DataFrame(
        {
            "lsoa21_code": converted["lsoa21_code"],
            IOD2019.column("score"): score,
            IOD2019.column("decile"): np.where(np.isnan(score), np.nan, decile),
        }
    )
    report_dict = {
        str(r["change_code"]): {k: int(v) for k, v in r.items() if k != "change_code"}
        for r in report.to_dict("records")
    }
    return out, report_dict


def build_lsoa_table(raw: RawSources, loaded: dict) -> tuple[pd.DataFrame, dict]:
    """LSOA 2021 table: lookup geography + IoD2025/IoD2019 + census columns."""
    notes: dict = {}
    lookup = loaded.get("lsoa21_lookup")
    iod25 = loaded.get("iod2025")
    if lookup is not None:
        lsoa = lookup.copy()
    elif iod25 is not None:
        lsoa = iod25[["lsoa21_code", "lsoa21_name", "lad_code", "lad_name"]].copy()
        for col in ("sicbl_code", "sicbl_ods", "sicbl_name", "icb_code", "icb_ods", "icb_name"):
            lsoa[col] = pd.NA
        notes["geography"] = "no LSOA→sub-ICB→ICB lookup: ICB and sub-ICB levels unavailable"
    else:
        raise PrepareError(
            "Cannot build the LSOA table: neither the LSOA 2021 → sub-ICB → ICB → LAD lookup "
            "nor IoD2025 File 7 was found. Add one of them to the raw folder."
        )
    if iod25 is not None:
        measures = ("score", "rank", "decile")
        imd = iod25.rename(columns={f"imd_{m}": IOD2025.column(m) for m in measures})
        keep = ["lsoa21_code", *(IOD2025.column(m) for m in measures), "population"]
        lsoa = lsoa.merge(imd[keep], on="lsoa21_code", how="left")
        # some lookup editions lack LAD: take it from the IoD file, which carries it
        lad = iod25.set_index("lsoa21_code")
        for col in ("lad_code", "lad_name"):
            missing = lsoa[col].isna()
            lsoa.loc[missing, col] = lsoa.loc[missing, "lsoa21_code"].map(lad[col])
    iod19 = loaded.get("iod2019")
    lookup11 = loaded.get("lsoa11_lsoa21_lookup")
    if lookup11 is not None and lsoa["lad_code"].isna().any():
        # the LSOA 2011→2021 lookup carries each 2021 LSOA's LAD
        lad = lookup11.dropna(subset=["lad_code"]).drop_duplicates("lsoa21_code")
        missing = lsoa["lad_code"].isna()
        lsoa.loc[missing, "lad_code"] = lsoa.loc[missing, "lsoa21_code"].map(
            lad.set_index("lsoa21_code")["lad_code"]
        )
    # an area with no published name keeps its code as its name
    lsoa["lad_name"] = lsoa["lad_name"].fillna(lsoa["lad_code"])
    if iod19 is not None and lookup11 is not None:
        converted, report = _iod2019_on_lsoa21(iod19, lookup11)
        lsoa = lsoa.merge(converted, on="lsoa21_code", how="left")
        notes["iod2019_conversion"] = report
    elif iod19 is not None:
        notes["iod2019"] = "IoD2019 found but no LSOA 2011→2021 lookup: IoD2019 not usable"
    for name, frame in loaded.items():
        if name.startswith("census_"):
            cols = [c for c in frame.columns if c not in lsoa.columns or c == "lsoa21_code"]
            lsoa = lsoa.merge(frame[cols], on="lsoa21_code", how="left")
    lsoa = lsoa[lsoa["lsoa21_code"].astype(str).str.startswith("E01")]
    return lsoa.reset_index(drop=True), notes


def build_practice_table(loaded: dict, lsoa: pd.DataFrame, as_of: pd.Timestamp) -> tuple:
    """Practice table: list sizes, PCN at ``as_of``, sub-ICB/ICB, workforce and weighted list."""
    notes: dict = {}
    totals = loaded.get("practice_totals")
    regs = loaded.get("registrations_lsoa")
    workforce = loaded.get("workforce")
    if totals is not None:
        practices = totals[["practice_code", "sicbl_ods", "sicbl_code", "patients"]].rename(
            columns={"patients": "registered_patients"}
        )
    elif regs is not None:
        practices = (
            regs.groupby("practice_code", as_index=False)["patients"]
            .sum()
            .rename(columns={"patients": "registered_patients"})
            .assign(sicbl_ods=pd.NA, sicbl_code=pd.NA)
        )
        notes["list_size"] = "practice totals file absent: list sizes summed from the LSOA file"
    elif workforce is not None:
        practices = workforce[["practice_code", "sicbl_ods", "total_patients"]].rename(
            columns={"total_patients": "registered_patients"}
        )
        practices["sicbl_code"] = pd.NA
    else:
        return pd.DataFrame(), {"practices": "no practice-level source found"}
    names = _practice_names(loaded)
    practices = practices.merge(names, on="practice_code", how="left")
    # sub-ICB (ONS and ODS codes) and ICB from the LSOA lookup's distinct pairs
    geo = lsoa[["sicbl_code", "sicbl_ods", "sicbl_name", "icb_code", "icb_ods", "icb_name"]]
    geo = geo.dropna(subset=["sicbl_code"]).drop_duplicates("sicbl_code")
    by_ods = geo.set_index("sicbl_ods")
    missing_ons = practices["sicbl_code"].isna()
    practices.loc[missing_ons, "sicbl_code"] = practices.loc[missing_ons, "sicbl_ods"].map(
        by_ods["sicbl_code"]
    )
    practices = practices.drop(columns=["sicbl_ods"]).merge(geo, on="sicbl_code", how="left")
    unmapped = practices["icb_code"].isna()
    if unmapped.any():
        notes["unmapped_practices"] = int(unmapped.sum())
    pcn = _pcn_membership(loaded, as_of, notes)
    practices = practices.merge(pcn, on="practice_code", how="left")
    practices = practices.merge(_practice_regions(loaded), on="practice_code", how="left")
    if workforce is not None:
        fte = [
            *src_workforce.FTE_COLUMNS,
            *src_workforce.SOURCE_COLUMNS,
            *src_workforce.DETAIL_COLUMNS,
        ]
        practices = practices.merge(
            workforce[["practice_code"] + [c for c in fte if c in workforce]],
            on="practice_code",
            how="left",
        )
    payments = loaded.get("payments")
    if payments is not None:
        practices = practices.merge(
            payments[["practice_code", "weighted_patients"]], on="practice_code", how="left"
        )
    single = loaded.get("practice_single_age")
    if single is not None and len(single):
        exact = practice_ages_0_17(single)
        practices = practices.merge(exact, on="practice_code", how="left")
        release = pd.Timestamp(single["extract_date"].max()).strftime("%Y-%m-%d")
        notes["age_0_17"] = (
            f"single year of age lists of {release} for "
            f"{int(practices['single_age_patients'].notna().sum()):,} practices; five-year "
            "bands (15-19 split 3:2) for any other"
        )
    return practices.reset_index(drop=True), notes


def registrations_table(regs: pd.DataFrame | None, lsoa: pd.DataFrame) -> pd.DataFrame:
    """Practice x LSOA patients with each published LSOA code's status (empty without a file)."""
    if regs is None:
        return pd.DataFrame(
            {"practice_code": [], "lsoa_code": [], "patients": [], "lsoa_status": []}
        )
    # keys are unique (checked by reconcile_sources), so this keeps every row and every patient
    registrations = regs[["practice_code", "lsoa_code", "patients"]].reset_index(drop=True)
    registrations["lsoa_status"] = classify_lsoa_codes(
        registrations["lsoa_code"], set(lsoa["lsoa21_code"])
    )
    return registrations


def age_sex_table(age_bands: pd.DataFrame | None) -> pd.DataFrame:
    """Practice x sex x five-year band patients, in the store's columns (empty without a file)."""
    if age_bands is None:
        return pd.DataFrame({"practice_code": [], "sex": [], "age_band": [], "patients": []})
    return age_bands[["practice_code", "sex", "age_band", "patients"]]


def practice_ages_0_17(single_age: pd.DataFrame) -> pd.DataFrame:
    """Patients aged 0-17 and all ages per practice from the single-year-of-age lists.

    Uses the latest extract in the files (male and female files are read together).

    Args:
        single_age: ``extract_date, practice_code, sex, age, patients`` (age 95 = 95+).

    Returns:
        ``practice_code, age_0_17_patients, single_age_patients``.
    """
    latest = single_age[single_age["extract_date"] == single_age["extract_date"].max()]
    young = np.where(latest["age"].to_numpy() <= 17, latest["patients"].to_numpy(float), 0.0)
    return (
        latest.assign(age_0_17_patients=young, single_age_patients=latest["patients"].astype(float))
        .groupby("practice_code", as_index=False)[["age_0_17_patients", "single_age_patients"]]
        .sum()
    )


def _practice_regions(loaded: dict) -> pd.DataFrame:
    """NHS England (commissioning) region of each practice, from the practice mapping file."""
    columns = ["practice_code", "region_code", "region_name"]
    mapping = loaded.get("practice_map")
    if mapping is None or "region_code" not in mapping:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return mapping[columns].dropna(subset=["region_code"]).drop_duplicates("practice_code")


def national_measures(
    lsoa: pd.DataFrame,
    practices: pd.DataFrame,
    registrations: pd.DataFrame,
    age_sex: pd.DataFrame,
    imd_releases: list[str],
    qof_measures: dict[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Measures of England and of each NHS England region, from the national files.

    Computed before the store is cut down to the profiled systems, so every profile compares
    with England (and its region) even when only one ICB is kept. ``qof_measures`` (IoD release ->
    :func:`pophealth.prevalence.qof_practice_measures` of every practice in the QOF files, the
    model fitted with that release) adds England's and the regions' prevalence,
    recorded-vs-expected and burden values.

    Returns:
        ``area_code`` (``ALL`` for England, else the region code), ``area_name``, ``level``
        (``england``/``region``), ``basis``, ``imd`` and the summed ``<indicator>__num/__den``
        columns of :func:`pophealth.attribution.aggregate_measures`.
    """
    frames = []
    regions = (
        practices[["practice_code", "icb_code", "region_code", "region_name"]].dropna(
            subset=["region_code"]
        )
        if len(practices) and "region_code" in practices
        else pd.DataFrame(columns=["practice_code", "icb_code", "region_code", "region_name"])
    )
    names = {
        geography.ALL_LOADED_CODE: "England",
        **dict(zip(regions["region_code"], regions["region_name"], strict=True)),
    }
    # an ICB's region is the region of most of its practices
    icb_region = (
        regions.groupby("icb_code")["region_code"].agg(lambda r: r.mode().iloc[0])
        if len(regions)
        else pd.Series(dtype=object)
    )
    for imd in imd_releases or ["2025"]:
        if len(practices):
            measures = attribution.practice_measures(practices, registrations, age_sex, lsoa, imd)
            # England's rates of each detailed workforce role (profiles' roles table)
            roles = staffing.role_measures(practices)
            if len(roles.columns) > 1:
                measures = measures.merge(roles, on="practice_code", how="left")
            qof_of_release = (qof_measures or {}).get(imd)
            if qof_of_release is not None and len(qof_of_release.columns) > 1:
                measures = measures.merge(qof_of_release, on="practice_code", how="left").copy()
            members = pd.concat(
                [
                    practices[["practice_code"]].assign(area_code=geography.ALL_LOADED_CODE),
                    regions[["practice_code", "region_code"]].rename(
                        columns={"region_code": "area_code"}
                    ),
                ]
            )
            summed = attribution.aggregate_measures(measures, members, "practice_code")
            frames.append(summed.assign(basis="registered", imd=imd))
        if len(lsoa):
            measures = attribution.lsoa_measures(lsoa, registrations, practices, imd)
            if (qof_measures or {}).get(imd) is not None:
                measures = prevalence.with_resident_qof(
                    measures, registrations, qof_measures[imd]
                ).copy()
            members = pd.concat(
                [
                    lsoa[["lsoa21_code"]].assign(area_code=geography.ALL_LOADED_CODE),
                    lsoa[["lsoa21_code"]].assign(area_code=lsoa["icb_code"].map(icb_region)),
                ]
            ).dropna()
            summed = attribution.aggregate_measures(measures, members, "lsoa21_code")
            frames.append(summed.assign(basis="resident", imd=imd))
    if not frames:
        return pd.DataFrame()
    out = pd.concat(frames, ignore_index=True)
    shapes = _national_distributions(lsoa, practices, registrations, age_sex, regions, icb_region)
    if len(shapes):
        out = out.merge(shapes, on=["area_code", "basis", "imd"], how="left")
    out.insert(1, "area_name", out["area_code"].map(names))
    out.insert(
        2,
        "level",
        np.where(out["area_code"] == geography.ALL_LOADED_CODE, "england", "region"),
    )
    return out


def _national_distributions(
    lsoa: pd.DataFrame,
    practices: pd.DataFrame,
    registrations: pd.DataFrame,
    age_sex: pd.DataFrame,
    regions: pd.DataFrame,
    icb_region: pd.Series,
) -> pd.DataFrame:
    """England's and the regions' population by IMD decile and by age band and sex.

    Columns ``decile_1`` … ``decile_10`` (patients on the registered basis, resident weights
    on the resident basis) and ``age_<sex>_<band>`` (registered patients; the resident rows
    repeat them, as resident profiles use practices' age structure), per ``area_code, basis,
    imd``; profiles draw England's pyramid and deciles from them.
    """
    parts = []
    region_of_practice = regions.set_index("practice_code")["region_code"]
    age_wide = pd.DataFrame()
    if len(age_sex):
        ages = age_sex.assign(column="age_" + age_sex["sex"] + "_" + age_sex["age_band"])
        ages = ages.assign(region=map_codes(ages["practice_code"], region_of_practice))
        every = ages.groupby("column")["patients"].sum().rename(geography.ALL_LOADED_CODE)
        by_region = ages.dropna(subset=["region"]).pivot_table(
            index="region", columns="column", values="patients", aggfunc="sum"
        )
        age_wide = pd.concat([every.to_frame().T, by_region]).rename_axis("area_code")
    for release in (ImdRelease(year) for year in IMD_YEARS):
        if release.column("decile") not in lsoa:
            continue
        imd = release.year
        decile = lsoa.set_index("lsoa21_code")[release.column("decile")]
        if len(registrations):
            regs = registrations[registrations["lsoa_status"] == attribution.MATCHED]
            regs = regs.assign(
                decile=map_codes(regs["lsoa_code"], decile),
                region=map_codes(regs["practice_code"], region_of_practice),
            ).dropna(subset=["decile"])
            parts.append(_by_decile(regs, "patients", "registered", imd, age_wide))
        weights, _ = attribution.deprivation_population(lsoa, release)
        residents = pd.DataFrame(
            {
                "decile": decile.to_numpy(),
                "people": weights,
                "region": lsoa["icb_code"].map(icb_region).to_numpy(),
            }
        ).dropna(subset=["decile"])
        parts.append(_by_decile(residents, "people", "resident", imd, age_wide))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _by_decile(
    frame: pd.DataFrame, weight: str, basis: str, imd: str, age_wide: pd.DataFrame
) -> pd.DataFrame:
    """One row per England/region: weights by decile (``decile_k``) and the age columns."""
    columns = {d: f"decile_{d}" for d in range(1, 11)}
    every = frame.groupby("decile")[weight].sum().rename(geography.ALL_LOADED_CODE)
    by_region = frame.dropna(subset=["region"]).pivot_table(
        index="region", columns="decile", values=weight, aggfunc="sum"
    )
    wide = pd.concat([every.to_frame().T, by_region]).reindex(columns=range(1, 11))
    wide = wide.fillna(0.0).rename(columns=columns).rename_axis("area_code")
    if len(age_wide):
        wide = wide.join(age_wide, how="left")
    return wide.reset_index().assign(basis=basis, imd=imd)


def keep_systems(
    systems: list[str],
    lsoa: pd.DataFrame,
    practices: pd.DataFrame,
    registrations: pd.DataFrame,
    age_sex: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Cut the prepared tables down to the systems to be profiled.

    Keeps those ICBs' practices with their registrations and age bands, and the LSOAs of
    those ICBs plus every LSOA where their patients live (needed to attribute LSOA data).

    Raises:
        PrepareError: a system code that is in neither the practices nor the LSOA lookup.
    """
    known = set(practices.get("icb_code", pd.Series(dtype=object)).dropna()) | set(
        lsoa["icb_code"].dropna()
    )
    odd = [s for s in systems if s not in known]
    if odd:
        raise PrepareError(
            f"--systems lists {', '.join(odd)}, not an ICB (ONS E54 code) of the loaded files "
            f"(for example {', '.join(sorted(known)[:5])})."
        )
    wanted = set(systems)
    if len(practices):
        practices = practices[practices["icb_code"].isin(wanted)]
    kept = set(practices["practice_code"]) if len(practices) else set()
    registrations = registrations[isin(registrations["practice_code"], kept)]
    lived_in = set(registrations["lsoa_code"].unique())
    lsoa = lsoa[isin(lsoa["icb_code"], wanted) | isin(lsoa["lsoa21_code"], lived_in)]
    age_sex = age_sex[isin(age_sex["practice_code"], kept)]
    return (
        lsoa.reset_index(drop=True),
        practices.reset_index(drop=True),
        registrations.reset_index(drop=True),
        age_sex.reset_index(drop=True),
    )


def _practice_names(loaded: dict) -> pd.DataFrame:
    frames = []
    for name in ("registrations_lsoa", "practice_map", "workforce", "payments"):
        frame = loaded.get(name)
        if frame is not None and "practice_name" in frame:
            frames.append(frame[["practice_code", "practice_name"]])
    if not frames:
        return pd.DataFrame({"practice_code": pd.Series(dtype=object), "practice_name": []})
    return pd.concat(frames).dropna().drop_duplicates("practice_code")


def _pcn_membership(loaded: dict, as_of: pd.Timestamp, notes: dict) -> pd.DataFrame:
    epcn = loaded.get("epcn")
    if epcn is not None:
        current = src_epcn.membership_at(epcn.memberships, as_of)
        notes["pcn_membership_date"] = as_of.strftime("%Y-%m-%d")
        overlapping = current.attrs.get("practices_in_multiple_pcns") or []
        if overlapping:
            # shown, not silent: the membership with the latest start date is kept
            notes["practices_in_multiple_pcns"] = (
                f"{len(overlapping)} practice(s) in two PCNs on {as_of:%Y-%m-%d} in ePCN; the "
                f"membership with the latest start date is used: {', '.join(overlapping[:10])}"
            )
        return current[["practice_code", "pcn_code", "pcn_name"]].drop_duplicates("practice_code")
    mapping = loaded.get("practice_map")
    if mapping is not None:
        notes["pcn_membership"] = "ePCN absent: PCNs from the practice mapping file"
        return mapping[["practice_code", "pcn_code", "pcn_name"]]
    workforce = loaded.get("workforce")
    if workforce is not None and "pcn_code" in workforce:
        notes["pcn_membership"] = "ePCN absent: PCNs from the workforce file"
        frame = workforce[["practice_code", "pcn_code"]].copy()
        frame["pcn_name"] = frame["pcn_code"]
        return frame[frame["pcn_code"].str.upper() != "UNALIGNED"]
    notes["pcn_membership"] = "no PCN source: neighbourhoods need ePCN or custom groupings"
    return pd.DataFrame(columns=["practice_code", "pcn_code", "pcn_name"])


#: Source name -> loader of one file (prepare concatenates the files of a multi-file source).
#: Boundaries are loaded apart (geometry, not a table); epraccur is not part of the store yet.
LOADERS = {
    name: spec.loader
    for name, spec in SOURCES.items()
    if spec.loader is not None and name not in ("epraccur", "lsoa_boundaries")
}


def _rows(frame) -> int:
    if frame is None:
        return 0
    if hasattr(frame, "memberships"):
        return int(len(frame.memberships))
    return int(len(frame))


def load_raw_sources(raw: RawSources, say=None) -> tuple[dict, dict, dict[str, int]]:
    """Load every recognised source of ``raw`` with its loader.

    Each file's content is checked against the source its name claims, and a damaged file fails
    as a SourceFormatError naming it.

    Returns:
        (loaded, files, code_fixes): source name -> loaded frame, source name -> manifest entry
        (files with sha256 and size, release label, rows), and source name -> codes the loader
        trimmed or upper-cased.
    """
    say = say or (lambda *_: None)
    loaded: dict = {}
    files: dict = {}
    code_fixes: dict[str, int] = {}
    for name, paths in sorted(raw.paths.items()):
        if name not in LOADERS:
            continue
        for path in paths:
            check_content_matches_name(name, path)
        with counting_code_fixes() as fixes:
            loaded[name] = _load_source(name, paths)
        code_fixes[name] = fixes[0]
        frame = loaded[name]
        files[name] = {
            "files": [
                {"name": p.name, "sha256": sha256_of(p), "bytes": p.stat().st_size} for p in paths
            ],
            "release": _release_of(
                name, paths[0], frame if isinstance(frame, pd.DataFrame) else None, raw
            ),
            "rows": _rows(frame),
        }
        say(f"  loaded {name:<28} {files[name]['rows']:>10,} rows  ({paths[0].name})")
    return loaded, files, code_fixes


def reconcile_sources(loaded: dict, files: dict) -> dict:
    """Check one release's sources against themselves and each other before anything is written.

    Duplicate keys and categories larger than their totals are errors; each practice's patients
    in the LSOA and age files are compared with the practice totals of the same extract date.
    Used by the full prepare and by every release of the history (``prepare --add`` too).

    Returns:
        The practice-totals report (:func:`pophealth.reconcile.reconcile_practice_totals`).

    Raises:
        ReconciliationError: A duplicate key, an impossible category or totals beyond tolerance.
    """
    reconcile.check_duplicate_keys(loaded, files)
    reconcile.check_categories(loaded, files)
    return reconcile.reconcile_practice_totals(loaded, files)


def as_of_date(as_of: str | None, regs: pd.DataFrame | None) -> pd.Timestamp:
    """PCN membership date: given, else the registrations extract date, else today."""
    if as_of is not None:
        return pd.Timestamp(as_of)
    if regs is not None and len(regs):
        return pd.Timestamp(regs["extract_date"].max())
    return pd.Timestamp.today().normalize()


def load_boundaries(raw: RawSources, files: dict, lsoa: pd.DataFrame):
    """Read and check the LSOA boundaries (before anything is written: a bad file leaves no store).

    Adds the ``lsoa_boundaries`` manifest entry (with its geometry report) to ``files``.

    Returns:
        The usable shapes of the store's LSOAs, or None without a boundary file.
    """
    boundary_path = raw.first("lsoa_boundaries")
    if boundary_path is None:
        return None
    shapes = _load_source("lsoa_boundaries", [boundary_path])
    files["lsoa_boundaries"] = {
        "files": [
            {
                "name": boundary_path.name,
                "sha256": sha256_of(boundary_path),
                "bytes": boundary_path.stat().st_size,
            }
        ],
        "release": _release_of("lsoa_boundaries", boundary_path, None, raw),
        "rows": int(len(shapes)),
    }
    shapes, geometry_report = check_geometries(shapes, set(lsoa["lsoa21_code"]))
    files["lsoa_boundaries"]["geometry"] = geometry_report
    return shapes


def write_pcn_workforce(
    pcn_staff: pd.DataFrame | None, out: Path, pcn_fte: pd.DataFrame | None = None
) -> None:
    """PCN-employed staff by PCN and staff group (apportioned to practices when read).

    Args:
        pcn_staff: The loaded PCN workforce file (None without one).
        out: Store folder.
        pcn_fte: FTE by PCN and staff group already summed (and cut to ``--systems``) by
            :func:`prepare`; default: summed from ``pcn_staff``.

    Without a PCN workforce file, a table left by an earlier prepare is removed.
    """
    if pcn_fte is None and pcn_staff is not None:
        pcn_fte = src_pcn_workforce.pcn_fte_by_group(pcn_staff)
    pcn_file = out / PCN_WORKFORCE_TABLE.name
    if pcn_fte is not None:
        _write_parquet(pcn_fte.reset_index(drop=True), pcn_file)
    elif pcn_file.exists():
        pcn_file.unlink()


def prepare(
    raw_dir: str | Path,
    out_dir: str | Path,
    *,
    listing: str | Path | None = None,
    as_of: str | None = None,
    progress=print,
    systems: list[str] | tuple[str, ...] | None = None,
    extensions: dict | None = None,
) -> dict:
    """Read every official file found in ``raw_dir`` and write the prepared store.

    Args:
        raw_dir: Folder of raw official files.
        out_dir: Folder for the prepared store (created; existing store files replaced).
        listing: Optional YAML listing of source files and releases.
        as_of: Date for PCN membership (default: the registrations extract date, else today).
        progress: Callable for one-line progress messages (``None`` for silence).
        systems: ICB codes (ONS E54) to keep in the store; default every ICB in the files.
            England's and the regions' values (``national.parquet``) always come from every
            row of the national files.
        extensions: Manifest key -> step ``(raw_dir, out, loaded, files, lsoa, say, national)
            -> entry`` (``national`` a :class:`NationalInputs`) run after the store tables are
            written; a non-empty entry is added to the manifest
            (:func:`pophealth.history.prepare_store` adds the release history this way).

    Returns:
        The manifest (also written to ``manifest.json``).
    """
    say = progress or (lambda *_: None)
    started = time.perf_counter()
    raw = discover_raw_files(raw_dir, listing)
    loaded, files, code_fixes = load_raw_sources(raw, say)
    # one source contradicting itself or another: an error before anything is written
    totals_report = reconcile_sources(loaded, files)
    lsoa, lsoa_notes = build_lsoa_table(raw, loaded)
    regs = loaded.get("registrations_lsoa")
    membership_date = as_of_date(as_of, regs)
    practices, practice_notes = build_practice_table(loaded, lsoa, membership_date)
    shapes = load_boundaries(raw, files, lsoa)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    registrations = registrations_table(regs, lsoa)
    age_sex = age_sex_table(loaded.get("practice_age_bands"))
    imd_releases = [year for year in IMD_YEARS if ImdRelease(year).column("score") in lsoa]
    today = practices_present(practices, registrations)
    successions = practice_successions(loaded, files)
    imd_scores = practice_imd_scores(registrations, lsoa, imd_releases, today)
    # PCN-employed staff by PCN and staff group (apportioned to practices when read); England's
    # and the regions' team values add every PCN's staff, shared to its practices
    pcn_staff = loaded.get("pcn_workforce")
    pcn_fte = src_pcn_workforce.pcn_fte_by_group(pcn_staff) if pcn_staff is not None else None
    team_practices = with_team(practices, pcn_fte)
    current_qof = derive_current_qof(
        loaded.get("qof"), successions, today, age_sex, imd_scores, imd_releases, team_practices
    )
    national = national_measures(
        lsoa, team_practices, registrations, age_sex, imd_releases, current_qof.measures
    )
    national_icbs = int(
        max(
            practices["icb_code"].nunique() if len(practices) else 0,
            lsoa["icb_code"].nunique() if len(lsoa) else 0,
        )
    )
    national_practices = set(practices["practice_code"]) if len(practices) else set()
    national_pcns = set(practices["pcn_code"].dropna()) if "pcn_code" in practices else set()
    # the national tables, kept (for a cut store) so that a QOF year added later with
    # `prepare --add` gives England's values as this prepare does
    national_age_sex = age_sex[["practice_code", "sex", "age_band", "patients"]]
    national_tables = (
        {
            "lsoa": lsoa,
            "practices": practices,
            "registrations": registrations,
            "pcn_workforce": pcn_fte,
        }
        if systems
        else {}
    )
    if systems:
        lsoa, practices, registrations, age_sex = keep_systems(
            list(systems), lsoa, practices, registrations, age_sex
        )
        # the release history keeps the same systems (pophealth.history.period_tables)
        lsoa.attrs["systems_kept"] = list(systems)
    if systems and pcn_fte is not None and len(practices):
        # PCNs whose practices are all outside --systems go with them (England keeps them)
        pcn_fte = pcn_fte[
            pcn_fte["pcn_code"].isin(set(practices["pcn_code"].dropna()))
            | ~pcn_fte["pcn_code"].isin(national_pcns)
        ]
    _write_parquet(national, out / "national.parquet")
    _write_parquet(lsoa, out / "lsoa.parquet")
    _write_parquet(practices, out / "practices.parquet")
    _write_parquet(registrations, out / "registrations.parquet")
    _write_parquet(
        age_sex[["practice_code", "sex", "age_band", "patients"]], out / "practice_age_sex.parquet"
    )
    write_pcn_workforce(pcn_staff, out, pcn_fte)
    qof_notes = write_current_qof(current_qof, practices, out, national_practices)
    if shapes is not None:
        # simplify in metres before reprojection, then store WGS84 for web maps
        shapes = shapes.assign(geometry=shapes.geometry.simplify(20, preserve_topology=True))
        shapes.to_crs(4326).to_parquet(out / "boundaries.parquet")
    elif (out / "boundaries.parquet").exists():
        (out / "boundaries.parquet").unlink()
    # further store sections (e.g. pophealth.history's release history) add their manifest entry
    national_inputs = NationalInputs(
        practice_codes=frozenset(today),
        successions=successions,
        age_sex=national_age_sex,
        imd_scores=imd_scores,
        qof_expected=expected_rows(current_qof.expected),
        qof_fit=current_qof.fit,
        tables=national_tables,
    )
    missing = unavailable_indicators(set(files))
    reconciliation = {
        "sources": reconcile.source_rows(
            loaded,
            set(lsoa["lsoa21_code"]),
            set(practices["practice_code"]) if len(practices) else set(),
            registrations["lsoa_status"] if len(registrations) else None,
        ),
        "patients_by_lsoa_status": reconcile.patients_by_lsoa_status(registrations),
        "practices": reconcile.practice_presence(loaded),
        "practice_totals": totals_report,
        "code_fixes": code_fixes,
        "boundaries": files.get("lsoa_boundaries", {}).get("geometry"),
        "indicators_unavailable": missing,
        "practices_without_icb": int(practice_notes.get("unmapped_practices", 0)),
    }
    # the steps come after the reconciliation, which thus runs while a step's worker process
    # (the history's) is still busy, not alone at the end
    extra = {
        name: step(Path(raw_dir), out, loaded, files, lsoa, say, national_inputs)
        for name, step in (extensions or {}).items()
    }
    manifest = {
        "pophealth_version": __version__,
        "store_format": STORE_FORMAT,
        "prepared_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "raw_dir": str(Path(raw_dir).resolve()),
        "as_of": membership_date.strftime("%Y-%m-%d"),
        "synthetic": (Path(raw_dir) / "README_SYNTHETIC.txt").exists(),
        "sources": files,
        "unrecognised_files": [p.name for p in raw.unrecognised],
        "indicators_unavailable": missing,
        "notes": {**lsoa_notes, **practice_notes, **qof_notes},
        "qof_model": current_qof.fit,
        "imd_releases": imd_releases,
        "reconciliation": reconciliation,
        # England's values come from every row of the files; it is England when they are
        # national (40+ ICBs), else the sum of what was loaded
        "national": {"icbs": national_icbs, "systems_kept": list(systems or [])},
        "counts": {
            "lsoas": int(len(lsoa)),
            "practices": int(len(practices)),
            "registration_rows": int(len(registrations)),
            "registered_patients": int(registrations["patients"].sum())
            if len(registrations)
            else 0,
        },
        "seconds": round(time.perf_counter() - started, 2),
    }
    manifest.update({name: entry for name, entry in extra.items() if entry})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    say("Reconciliation (rows read / used / set aside, patients, practices):")
    for line in reconcile.summary_lines(reconciliation):
        say(line)
    for indicator, why in missing.items():
        say(f"  not built: {indicator} ({why})")
    return manifest


def check_content_matches_name(name: str, path: Path) -> None:
    """Raise if a file named as one source holds another's table (read from its header).

    Raises:
        PrepareError: Naming the file, the source its name claims and the one its content is.
    """
    actual = identify_by_content(path)
    if actual and name not in actual:
        raise PrepareError(
            f"{path.name} is named as {describe_source(name)} but its content is "
            f"{describe_source(actual[0])}. Fix: put the right file under this name, or list "
            "each file with its source in sources.yaml."
        )


def _load_source(name: str, paths: list[Path]):
    """Run the source's declared loader; a damaged file fails as a SourceFormatError naming it."""
    loader = SOURCES[name].loader
    current = paths[0]
    try:
        if name in FILE_SET_SOURCES:
            return loader(paths)
        if name in MULTI_FILE_SOURCES:
            frames = []
            for current in paths:
                frames.append(loader(current))
            return pd.concat(frames, ignore_index=True)
        return loader(current)
    except PopHealthError:
        raise
    except Exception as error:  # noqa: BLE001 - a damaged file can fail inside any reader
        raise SourceFormatError(
            current,
            f"could not be read ({type(error).__name__}: {error})",
            fix="the file is damaged or not the official file; download it again",
        ) from error


def check_geometries(shapes, lsoa_codes: set[str]) -> tuple:
    """Keep the boundaries of known LSOAs; count (never silently drop) the ones that fail.

    Empty or missing geometries are dropped and counted; invalid ones are repaired with
    ``make_valid`` and counted; known LSOAs without any boundary are counted.

    Returns:
        The usable shapes and ``{"rows", "kept", "null_or_empty", "repaired",
        "lsoas_without_boundary", "examples"}``.
    """
    known = shapes[isin(shapes["lsoa21_code"], lsoa_codes)]
    bad = known.geometry.isna() | known.geometry.is_empty
    invalid = ~bad & ~known.geometry.is_valid
    if invalid.any():
        known = known.assign(geometry=known.geometry.where(~invalid, known.geometry.make_valid()))
    usable = known[~bad]
    report = {
        "rows": int(len(shapes)),
        "kept": int(len(usable)),
        "null_or_empty": int(bad.sum()),
        "repaired": int(invalid.sum()),
        "lsoas_without_boundary": int(len(lsoa_codes - set(usable["lsoa21_code"]))),
        "examples": sorted(known.loc[bad, "lsoa21_code"].astype(str))[:10],
    }
    return usable, report


def with_team(practices: pd.DataFrame, pcn_fte: pd.DataFrame | None) -> pd.DataFrame:
    """Practices with their share of their PCN's staff (as England's team values count them)."""
    return staffing.with_pcn_staff(practices, pcn_fte) if pcn_fte is not None else practices


@dataclass(frozen=True)
class CurrentQof:
    """The current QOF year as :func:`prepare` derives it from the national files.

    Attributes:
        qof: The QOF year as loaded (``None`` without QOF files).
        rows: Its prevalence rows with closed practices carried by their successors (the
            membership rule's succession step), or ``None``.
        fits: IoD release -> (expected registers, model fit records) of
            :func:`fit_qof_expected`.
        measures: IoD release -> :func:`pophealth.prevalence.qof_practice_measures` of every
            practice, or ``None`` without QOF files.
    """

    qof: object | None
    rows: pd.DataFrame | None
    fits: dict[str, tuple[pd.DataFrame, list[dict]]]
    measures: dict[str, pd.DataFrame] | None

    @property
    def expected(self) -> dict[str, pd.DataFrame]:
        """IoD release -> expected registers (empty frames where not fitted)."""
        return {imd: expected for imd, (expected, _) in self.fits.items()}

    @property
    def fit(self) -> dict[str, list[dict]]:
        """IoD release -> model fit records (the manifest's ``qof_model``), fitted ones only."""
        return {imd: fit for imd, (_, fit) in self.fits.items() if fit}


def derive_current_qof(
    qof,
    successions: pd.DataFrame | None,
    today: set[str],
    age_sex: pd.DataFrame,
    imd_scores: pd.DataFrame,
    imd_releases: list[str],
    team_practices: pd.DataFrame,
) -> CurrentQof:
    """The current QOF year's carried rows, models and practice measures (one code path).

    Used by :func:`prepare` and by ``prepare --add`` of a newer QOF year
    (:func:`pophealth.history.add_release`), so an added year becomes current exactly as a full
    prepare with it at the top level makes it. The models are fitted on every practice of the
    national files, and a practice that closed after the QOF year is carried by its successor.

    Args:
        qof: The loaded QOF year, or ``None``.
        successions: GP practice successions (:func:`practice_successions`), or ``None``.
        today: Today's practices (every practice of the national registrations files).
        age_sex: Practice x sex x five-year band patients of every practice.
        imd_scores: :func:`practice_imd_scores` of every practice.
        imd_releases: IoD releases in the store.
        team_practices: Every practice with its PCN staff share (:func:`with_team`).

    Returns:
        The :class:`CurrentQof`.
    """
    if qof is None:
        fits = {imd: fit_qof_expected(None, age_sex, imd_scores, imd) for imd in imd_releases}
        return CurrentQof(None, None, fits, None)
    rows = membership.carry_to_successors(
        qof.prevalence, membership.successor_mapping(successions, today)
    )
    fits = {imd: fit_qof_expected(rows, age_sex, imd_scores, imd) for imd in imd_releases}
    measures = {
        imd: prevalence.qof_practice_measures(rows, team_practices, expected)
        for imd, (expected, _) in fits.items()
    }
    return CurrentQof(qof, rows, fits, measures)


def write_current_qof(
    current: CurrentQof, practices: pd.DataFrame, out: Path, national_practices: set
) -> dict:
    """Write ``qof_prevalence.parquet`` and ``qof_expected.parquet`` of the kept practices.

    Args:
        current: :func:`derive_current_qof`.
        practices: The store's (kept) practices.
        out: The store.
        national_practices: Every practice of the national files (before ``--systems``).

    Returns:
        The manifest's QOF notes (:data:`QOF_NOTES`: ``qof_year`` and what was carried or not
        placed).
    """
    notes = _write_qof(
        current.qof, practices, out / "qof_prevalence.parquet", national_practices, current.rows
    )
    _write_qof_expected(current.expected, practices, out / "qof_expected.parquet")
    return notes


# the manifest's notes written by write_current_qof (replaced when the current QOF year changes)
QOF_NOTES = ("qof_year", "qof_practices_carried_by_successor", "qof_practices_not_in_registrations")


def qof_columns(columns) -> list[str]:
    """The QOF measure columns (``<id>__num/__den`` of the QOF families) among ``columns``."""
    families = ("qof", "qof_expected")
    ids = {m.indicator_id for family in families for m in attribution.measures_of(family)}
    return [c for c in columns if str(c).rsplit("__", 1)[0] in ids and "__" in str(c)]


def with_national_qof(stored: pd.DataFrame, recomputed: pd.DataFrame) -> pd.DataFrame:
    """``national.parquet`` with its QOF columns taken from ``recomputed``, the rest kept.

    Args:
        stored: The store's ``national.parquet``.
        recomputed: :func:`national_measures` of the same national tables with another QOF
            year's measures.

    Returns:
        ``stored``'s rows and other columns, and ``recomputed``'s QOF columns in
        ``recomputed``'s column order (a register the year lacks has no column, as in a full
        prepare with that year).

    Raises:
        PrepareError: The two tables do not have the same England/region rows.
    """
    key = ["area_code", "basis", "imd"]
    if not set(key) <= set(stored.columns) or not len(stored):
        return recomputed  # no England rows were stored: the new ones are a full prepare's
    if sorted(map(tuple, stored[key].to_numpy())) != sorted(map(tuple, recomputed[key].to_numpy())):
        raise PrepareError(
            "national.parquet: its England and region rows (area_code, basis, imd) differ from "
            "those summed again from the store's national tables, so the new QOF year's values "
            "cannot be put beside them. Fix: prepare the raw folder again with the QOF year at "
            "the top level."
        )
    kept = stored.drop(columns=qof_columns(stored.columns))
    new = qof_columns(recomputed.columns)
    merged = kept.merge(recomputed[[*key, *new]], on=key, how="left")
    order = [c for c in recomputed.columns if c in merged] + [
        c for c in merged if c not in set(recomputed.columns)
    ]
    return merged[order]


def practices_present(practices: pd.DataFrame, registrations: pd.DataFrame) -> set[str]:
    """Codes of the practices open in a month: in its practice table or its registrations."""
    present = set(practices["practice_code"]) if len(practices) else set()
    # (distinct values first: a set built from a million Arrow strings costs a second)
    present |= set(registrations["practice_code"].unique()) if len(registrations) else set()
    return present


def with_stored_qof(recomputed: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """``national.parquet`` summed again for a new month, with the stored QOF columns kept.

    The mirror of :func:`with_national_qof`: every other column, and the rows, are
    ``recomputed``'s (a region new in the month has no QOF value).

    Args:
        recomputed: :func:`national_measures` of a new month's national tables (no QOF year).
        stored: The store's ``national.parquet``.

    Returns:
        The stored column order (columns new in ``recomputed`` after them).
    """
    key = ["area_code", "basis", "imd"]
    kept = qof_columns(stored.columns)
    if not kept or not set(key) <= set(stored.columns):
        return recomputed
    merged = recomputed.drop(columns=qof_columns(recomputed.columns)).merge(
        stored[[*key, *kept]], on=key, how="left"
    )
    order = [c for c in stored.columns if c in merged] + [
        c for c in merged if c not in set(stored.columns)
    ]
    return merged[order]


def _write_qof(
    qof,
    practices: pd.DataFrame,
    path: Path,
    national_practices: set,
    carried: pd.DataFrame | None = None,
) -> dict:
    """Store the kept practices' QOF rows; count (never drop silently) practices not in the files.

    Rows of practices in the national files but outside ``--systems`` are cut like every other
    table (England's values keep them, in ``national.parquet``); practices absent from the
    registration files are kept and counted in the notes. The rows stored are ``carried`` (the
    membership rule's succession step: a practice that closed after the QOF year is carried by
    its successor, as in England's values and the model; the release history keeps the rows as
    published), or the published rows without it.
    """
    if qof is None:
        if path.exists():
            path.unlink()
        return {}
    rows = carried if carried is not None else qof.prevalence
    prevalence_rows = rows.assign(year=qof.year)
    notes: dict = {"qof_year": qof.year}
    published = set(qof.prevalence["practice_code"].unique())
    after = set(prevalence_rows["practice_code"].unique())
    moved = sorted(published - after)
    if moved:
        notes["qof_practices_carried_by_successor"] = {
            "practices": len(moved),
            "examples": moved[:5],
        }
    outside = sorted(after - national_practices)
    if outside:
        notes["qof_practices_not_in_registrations"] = {
            "practices": len(outside),
            "examples": outside[:5],
        }
    # cut only the national practices outside --systems; unplaced practices stay (counted)
    cut = national_practices - (set(practices["practice_code"]) if len(practices) else set())
    _write_parquet(prevalence_rows[~isin(prevalence_rows["practice_code"], cut)], path)
    return notes


def practice_successions(loaded: dict, files: dict) -> pd.DataFrame | None:
    """The GP practice successions of the loaded ODS successor file (``None`` without one)."""
    successors = loaded.get("ods_successors")
    if successors is None:
        return None
    name = (files.get("ods_successors", {}).get("files") or [{"name": "succ.csv"}])[0]["name"]
    practices, _ = src_successors.gp_practice_successions(successors, name)
    return practices


def practice_imd_scores(
    registrations: pd.DataFrame,
    lsoa: pd.DataFrame,
    imd_releases: list[str],
    practice_codes: set[str],
) -> pd.DataFrame:
    """Each practice's patient-weighted IMD score per IoD release (the model's deprivation term).

    Args:
        registrations: Practice x LSOA patients (every practice of the national files).
        lsoa: The LSOA table with the IoD releases' scores.
        imd_releases: IoD releases in the store.
        practice_codes: Every practice (one row each per release; NaN score where unknown).

    Returns:
        ``practice_code, imd, score``.
    """
    frames = []
    codes = sorted(practice_codes)
    for imd in imd_releases:
        release = ImdRelease(imd)
        score = pd.Series(np.nan, index=pd.Index(codes, dtype=object), dtype=float)
        if len(registrations) and release.column("score") in lsoa:
            values = lsoa_values(lsoa, release)[["lsoa21_code", "imd_score"]]
            base = attribute_lsoa_to_practices(registrations, values).set_index("practice_code")
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = base["imd_score__num"] / base["imd_score__den"].where(
                    base["imd_score__den"] > 0
                )
            score = ratio.astype(float).reindex(score.index)
        frames.append(
            pd.DataFrame({"practice_code": score.index, "imd": imd, "score": score.to_numpy()})
        )
    if not frames:
        return pd.DataFrame({"practice_code": [], "imd": [], "score": []}).astype(
            {"practice_code": object, "imd": object, "score": float}
        )
    return pd.concat(frames, ignore_index=True)


def fit_qof_expected(
    qof_rows: pd.DataFrame | None,
    age_sex: pd.DataFrame,
    imd_scores: pd.DataFrame,
    imd: str,
) -> tuple[pd.DataFrame, list[dict]]:
    """Fit one QOF year's recorded-vs-expected models on every practice of the national files.

    Args:
        qof_rows: The year's prevalence rows, closed practices carried by their successors.
        age_sex: Practice x sex x five-year band patients (every practice).
        imd_scores: :func:`practice_imd_scores`.
        imd: The IoD release of the deprivation covariate.

    Returns:
        ``(expected, fit)``: :func:`pophealth.prevalence.fit_expected_registers` rows and the
        fit per register as records; empty without QOF rows, age-sex lists or IMD scores.
    """
    scores = imd_scores[imd_scores["imd"] == imd].set_index("practice_code")["score"]
    if qof_rows is None or not len(age_sex) or not scores.notna().any():
        return pd.DataFrame(), []
    expected, fit = prevalence.fit_expected_registers(
        qof_rows, attribution.age_sex_matrix(age_sex), scores
    )
    return expected, fit.to_dict("records")


def expected_rows(expected: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Expected registers of several IoD releases in one table (``imd`` after the key)."""
    frames = [frame.assign(imd=imd) for imd, frame in expected.items() if len(frame)]
    if not frames:
        return pd.DataFrame()
    stored = pd.concat(frames, ignore_index=True)
    columns = ["practice_code", "group_code", "imd"]
    return stored[columns + [c for c in stored if c not in columns]]


def _write_qof_expected(
    expected: dict[str, pd.DataFrame], practices: pd.DataFrame, path: Path
) -> None:
    """Store the kept practices' expected registers per IoD release (fits in the manifest)."""
    if path.exists():
        path.unlink()
    kept = set(practices["practice_code"]) if len(practices) else set()
    stored = expected_rows(expected)
    if len(stored):
        _write_parquet(stored[isin(stored["practice_code"], kept)], path)


def _write_parquet(frame: pd.DataFrame, path: Path, table: str | None = None) -> None:
    """Check the table against its data contract, then write it atomically.

    Args:
        frame: The table.
        path: Where to write it.
        table: Its contract's name in ``contracts.STORE_CONTRACTS`` (default: the file name;
            ``history/practices.parquet`` etc. for the release history).
    """
    validate_store_table(table or path.name, frame, f"prepare writing {path}")
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
