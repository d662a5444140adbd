"""Loader for ONS LSOA 2021 boundaries (BSC/BGC shapefile, GeoJSON or GeoPackage).

Shapefiles are published in British National Grid (EPSG:27700); ArcGIS GeoJSON downloads are
EPSG:4326. Whatever the input, the loader returns EPSG:27700 so areas and distances are in metres.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import geopandas as gpd
import pyogrio

from pophealth.sources.common import ColumnPattern, SourceFormatError, header_key

__all__ = ["BRITISH_NATIONAL_GRID", "load_lsoa_boundaries"]

BRITISH_NATIONAL_GRID = "EPSG:27700"
_LSOA21CD = ColumnPattern("LSOA21CD")


def load_lsoa_boundaries(path: str | Path) -> gpd.GeoDataFrame:
    """Load LSOA 2021 polygons as ``lsoa21_code, geometry`` in EPSG:27700.

    Args:
        path: ``.shp`` (with its ``.dbf``/``.shx``/``.prj``), ``.geojson`` or ``.gpkg``.

    Returns:
        GeoDataFrame with ``lsoa21_code`` (str) and ``geometry``, CRS EPSG:27700.

    Raises:
        SourceFormatError: Not readable, no ``LSOA21CD`` field (e.g. an ICB boundary file), no
            CRS, or empty/repeated codes.
    """
    path = Path(path)
    if path.suffix.lower() == ".shp":
        # a shapefile is several files; name the missing part rather than a reader's symptom
        parts = {".shx": "its geometry index", ".dbf": "its attribute table (LSOA21CD)"}
        for suffix, what in parts.items():
            if not any(path.with_suffix(s).exists() for s in (suffix, suffix.upper())):
                raise SourceFormatError(
                    path,
                    f"the shapefile's {suffix} part ({what}) is missing",
                    fix="keep the .shp, .shx, .dbf and .prj files of the download together",
                )
    try:
        info = pyogrio.read_info(path)
    except Exception as error:  # pyogrio raises its own DataSourceError family
        raise SourceFormatError(
            path,
            f"could not be read as a spatial file ({error})",
            fix="use the ONS LSOA 2021 boundaries as .shp (with .dbf/.shx/.prj), .geojson or .gpkg",
        ) from error
    fields = [str(f) for f in info["fields"]]
    code_field = next((f for f in fields if _LSOA21CD.matches(header_key(f))), None)
    if code_field is None:
        close = difflib.get_close_matches("LSOA21CD", fields, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise SourceFormatError(
            path,
            "no LSOA21CD field: this is not an LSOA 2021 boundary file",
            column="LSOA21CD",
            examples=f"fields found: {', '.join(fields[:10])}",
            fix=f"{hint}download 'LSOA (December 2021) Boundaries EW BSC' (or BGC) from the ONS "
            "Open Geography Portal",
        )
    frame = gpd.read_file(path, columns=[code_field], engine="pyogrio")
    if frame.crs is None:
        raise SourceFormatError(
            path,
            "the file has no coordinate reference system",
            fix="keep the .prj file next to the .shp (ONS shapefiles are EPSG:27700)",
        )
    frame = frame.rename(columns={code_field: "lsoa21_code"})[["lsoa21_code", "geometry"]]
    frame["lsoa21_code"] = frame["lsoa21_code"].astype("str").str.strip()
    if frame["lsoa21_code"].isna().any() or frame["lsoa21_code"].duplicated().any():
        repeated = frame.loc[frame["lsoa21_code"].duplicated(), "lsoa21_code"].head(5).tolist()
        raise SourceFormatError(
            path,
            "LSOA codes are missing or repeated",
            column=code_field,
            examples=f"repeated: {repeated}",
            fix="use the full LSOA 2021 boundary file (one polygon per LSOA)",
        )
    if frame.crs.to_epsg() != 27700:
        frame = frame.to_crs(BRITISH_NATIONAL_GRID)
    return frame.reset_index(drop=True)
