import geopandas as gpd
import pytest
from reference_helpers import official_lsoa21_geojson, reference_file
from shapely.geometry import box

from pophealth.sources.boundaries import load_lsoa_boundaries
from pophealth.sources.common import SourceFormatError


def test_gpkg_in_4326_returned_in_27700(tmp_path):
    frame = gpd.GeoDataFrame(
        {"LSOA21CD": ["E01000001", "W01000002"], "LSOA21NM": ["a", "b"]},
        geometry=[box(-0.1, 51.51, -0.09, 51.52), box(-3.2, 51.4, -3.1, 51.5)],
        crs="EPSG:4326",
    )
    path = tmp_path / "LSOA_2021_EW_BGC.gpkg"
    frame.to_file(path)
    loaded = load_lsoa_boundaries(path)
    assert list(loaded.columns) == ["lsoa21_code", "geometry"]
    assert loaded.crs.to_epsg() == 27700
    assert 530000 < loaded.geometry.iloc[0].centroid.x < 535000  # City of London easting


def test_file_without_lsoa21cd(tmp_path):
    frame = gpd.GeoDataFrame(
        {"LSOA11CD": ["E01000001"]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:27700"
    )
    path = tmp_path / "x.gpkg"
    frame.to_file(path)
    with pytest.raises(SourceFormatError) as info:
        load_lsoa_boundaries(path)
    assert (
        "LSOA21CD" in str(info.value)
        and "x.gpkg" in str(info.value)
        and "LSOA11CD" in str(info.value)
    )


@pytest.mark.reference
def test_reference_icb_shapefile_is_not_lsoa():
    with pytest.raises(SourceFormatError, match="not an LSOA 2021 boundary file") as info:
        load_lsoa_boundaries(reference_file("boundaries", "icb22.shp"))
    assert "ICB22CD" in str(info.value)


@pytest.mark.reference
def test_reference_lsoa21_geojson(tmp_path):
    loaded = load_lsoa_boundaries(official_lsoa21_geojson(tmp_path))
    assert len(loaded) == 35672 and loaded.crs.to_epsg() == 27700
    assert loaded["lsoa21_code"].is_unique
    minx, miny, maxx, maxy = loaded.total_bounds
    assert (
        80000 < minx < 200000 and maxy < 700000
    )  # British National Grid metres, England and Wales
