"""Locate the real reference files and turn CONVERTED ones back into official headers.

Loaders only know the official headers. Several reference files were re-saved with renamed
columns; the helpers here rename them back (values untouched) into a temporary file, so the
loaders are tested on real data without ever learning the converted names.
"""

# Official headers and rows are long literal lines.
# ruff: noqa: E501

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest


def reference_dir() -> Path | None:
    """The shared reference folder, or None when it is absent."""
    override = os.environ.get("POPHEALTH_REFERENCE_DIR")
    folder = (
        Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "reference"
    )
    return folder if folder.is_dir() else None


def reference_file(*parts: str) -> Path:
    """Path of a reference file; skips the calling test when it is not available."""
    folder = reference_dir()
    if folder is None:
        pytest.skip("reference folder not available")
    path = folder.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference file {'/'.join(parts)} not available")
    return path


def rename_columns_to_official(
    source: Path,
    target: Path,
    renames: dict[str, str],
    *,
    keep_only_renamed: bool = True,
    prefix_columns: dict[str, object] | None = None,
) -> Path:
    """Copy a converted CSV to ``target`` with its columns renamed back to the official headers."""
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    missing = set(renames) - set(frame.columns)
    if missing:
        raise KeyError(f"{source.name} lacks {sorted(missing)}")
    if keep_only_renamed:
        frame = frame[list(renames)]
    frame = frame.rename(columns=renames)
    if prefix_columns:
        for position, (name, value) in enumerate(prefix_columns.items()):
            frame.insert(position, name, value)
    frame.to_csv(target, index=False)
    return target


# Converted lookup_lsoa11_lsoa21_ltla22.csv -> ONS LSOA11_LSOA21_LAD22_LU official order.
LSOA11_LSOA21_OFFICIAL = {
    "lsoa11_code": "LSOA11CD",
    "lsoa11_name": "LSOA11NM",
    "lsoa21_code": "LSOA21CD",
    "lsoa21_name": "LSOA21NM",
    "change_code": "CHGIND",
    "ltla22_code": "LAD22CD",
    "ltla22_name": "LAD22NM",
}
# Converted lookup_lsoa21_icb24.csv -> ONS LSOA21_SICBL24_ICB24_LU (this edition has no LAD).
LSOA21_ICB24_OFFICIAL = {
    "lsoa21_code": "LSOA21CD",
    "lsoa21_name": "LSOA21NM",
    "sicbl24_code": "SICBL24CD",
    "sicbl24_code_nhs": "SICBL24CDH",
    "sicbl24_name": "SICBL24NM",
    "icb24_code": "ICB24CD",
    "icb24_code_nhs": "ICB24CDH",
    "icb24_name": "ICB24NM",
}


def official_lsoa11_lsoa21_lookup(tmp_path: Path) -> Path:
    """The real LSOA 2011 -> 2021 lookup under its official headers."""
    source = reference_file("lookups", "lookup_lsoa11_lsoa21_ltla22.csv")
    return rename_columns_to_official(
        source, tmp_path / "LSOA11_LSOA21_LAD22_EW_LU.csv", LSOA11_LSOA21_OFFICIAL
    )


def official_lsoa21_lookup(tmp_path: Path) -> Path:
    """The real LSOA 2021 -> SICBL -> ICB (2024) lookup under its official headers."""
    source = reference_file("lookups", "lookup_lsoa21_icb24.csv")
    return rename_columns_to_official(
        source, tmp_path / "LSOA21_SICBL24_ICB24_EN_LU.csv", LSOA21_ICB24_OFFICIAL
    )


def official_census(
    tmp_path: Path, file_name: str, table_id: str, *, measures_suffix: bool = True
) -> Path:
    """A reshaped reference census file with Nomis's official layout restored.

    Adds the ``date,geography`` columns before ``geography code`` and, optionally, the
    ``; measures: Value`` suffix on the category columns (as Nomis ships some tables).
    """
    source = reference_file("census", file_name)
    frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    renames = {
        c: (f"{c}; measures: Value" if measures_suffix and c != "geography code" else c)
        for c in frame.columns
    }
    frame = frame.rename(columns=renames)
    frame.insert(0, "geography", frame["geography code"])
    frame.insert(0, "date", "2021")
    target = tmp_path / f"census2021-{table_id.lower()}-lsoa.csv"
    frame.to_csv(target, index=False)
    return target


def official_lsoa21_geojson(tmp_path: Path) -> Path:
    """The real LSOA 2021 GeoJSON (EPSG:4326) with the official ONS field names."""
    source = reference_file("boundaries", "boundaries_lsoa21.geojson")
    text = source.read_text(encoding="utf-8")
    text = text.replace('"lsoa21_code":', '"LSOA21CD":').replace('"lsoa21_name":', '"LSOA21NM":')
    target = tmp_path / "LSOA_2021_EW_BSC.geojson"
    target.write_text(text, encoding="utf-8")
    return target


# Converted imd2025_england_lsoa21.csv -> official IoD2025 File 7 headers (the columns it has).
IOD2025_CONVERTED_TO_OFFICIAL = {
    "lsoa21_code": "LSOA code (2021)",
    "IMD_score": "Index of Multiple Deprivation (IMD) Score",
    "IMD_rank": "Index of Multiple Deprivation (IMD) Rank (where 1 is most deprived)",
    "IMD_decile": "Index of Multiple Deprivation (IMD) Decile (where 1 is most deprived 10% of LSOAs)",
    "Income_score": "Income Score (rate)",
    "Employment_score": "Employment Score (rate)",
    "Education_score": "Education, Skills and Training Score",
    "Health_score": "Health Deprivation and Disability Score",
    "Crime_score": "Crime Score",
    "Housing_and_Services_score": "Barriers to Housing and Services Score",
    "Environment_score": "Living Environment Score",
}


def official_iod2025_partial(tmp_path: Path) -> Path:
    """The converted IoD2025 file (33,755 rows) under official File 7 headers.

    The conversion dropped names, LAD, IDACI/IDAOPI and population denominators, so this is NOT
    a complete File 7; it has the official labels for the columns it does have.
    """
    source = reference_file("imd", "imd2025_england_lsoa21.csv")
    return rename_columns_to_official(
        source,
        tmp_path / "File_7_IoD2025_All_Ranks_Scores_Deciles_Population_Denominators.csv",
        IOD2025_CONVERTED_TO_OFFICIAL,
    )
