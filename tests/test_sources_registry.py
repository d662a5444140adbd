# Official headers and rows are long literal lines.
# ruff: noqa: E501
import openpyxl
import pytest
from reference_helpers import reference_file

from pophealth.sources import SOURCES, identify_source


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gp-reg-pat-prac-lsoa-all.csv", "registrations_lsoa"),
        ("gp-reg-pat-prac-all.csv", "practice_totals"),
        ("gp-reg-pat-prac-quin-age.csv", "practice_age_bands"),
        ("gp-reg-pat-prac-sing-age-male.csv", "practice_single_age"),
        ("gp-reg-pat-prac-sing-age-female.csv", "practice_single_age"),
        ("gp-reg-pat-prac-map.csv", "practice_map"),
        ("ePCN.xlsx", "epcn"),
        ("epraccur.csv", "epraccur"),
        ("1 General Practice – October 2025 Practice Level - Detailed.csv", "workforce"),
        ("nhspaymentsgp-22-23-prac-csv.csv", "payments"),
        ("File_7_IoD2025_All_Ranks_Scores_Deciles_Population_Denominators.csv", "iod2025"),
        (
            "File_7_-_All_IoD2019_Scores__Ranks__Deciles_and_Population_Denominators_3.csv",
            "iod2019",
        ),
        ("census2021-ts007a-lsoa.csv", "census_ts007a"),
        ("census2021-ts054-lsoa.csv", "census_ts054"),
        ("LSOA21_SICBL23_ICB23_LAD23_EN_LU.csv", "lsoa21_lookup"),
        ("LSOA11_LSOA21_LAD22_EW_LU.csv", "lsoa11_lsoa21_lookup"),
        ("LSOA_2021_EW_BSC_V4.shp", "lsoa_boundaries"),
        ("notes.txt", None),
    ],
)
def test_identify_by_official_name(tmp_path, name, expected):
    assert identify_source(tmp_path / name) == expected


def test_identify_by_header_sniffing(tmp_path):
    files = {
        "a.csv": (
            "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,LSOA_CODE,SEX,Number of Patients\n",
            "registrations_lsoa",
        ),
        "b.csv": ("FID,LSOA21CD,LSOA21NM,SICBL25CD,SICBL25CDH\n", "lsoa21_lookup"),
        "c.csv": ("LSOA11CD,LSOA11NM,LSOA21CD,LSOA21NM,CHGIND\n", "lsoa11_lsoa21_lookup"),
        "d.csv": (
            "date,geography,geography code,General health: Total: All usual residents\n",
            "census_ts037",
        ),
        "e.csv": ('"A81001","X",' + ",".join(['""'] * 25) + "\n", "epraccur"),
        "f.csv": ("x,y\n", None),
    }
    for name, (text, expected) in files.items():
        (tmp_path / name).write_text(text)
        assert identify_source(tmp_path / name) == expected, name
    book = openpyxl.Workbook()
    book.active.title = "PCNDetails"
    book.create_sheet("PCN Core Partner Details")
    book.save(tmp_path / "download.xlsx")
    assert identify_source(tmp_path / "download.xlsx") == "epcn"


def test_registry_entries_are_complete():
    assert {"registrations_lsoa", "epcn", "iod2025", "census_ts021", "lsoa_boundaries"} <= set(
        SOURCES
    )
    for name, spec in SOURCES.items():
        assert spec.name == name and spec.patterns and callable(spec.loader) and spec.description


@pytest.mark.reference
def test_identify_reference_official_files():
    assert identify_source(reference_file("ods", "epraccur.csv")) == "epraccur"
    assert identify_source(reference_file("payments", "nhspaymentsgp-22-23-prac.csv")) == "payments"
    assert identify_source(reference_file("epcn", "ePCN-2023-02.xlsx")) == "epcn"
    assert identify_source(reference_file("boundaries", "icb22.shp")) is None


def test_fetch_prepare_and_demo_are_derived_from_the_one_source_registry():
    from pophealth import fetch, prepare
    from pophealth.demo import generator
    from pophealth.sources import fetch_entry_names

    assert fetch.KNOWN_SOURCES == fetch_entry_names()
    registry = fetch.load_registry()
    assert fetch.missing_sources(registry) == []
    assert set(registry["source"]) <= set(fetch.KNOWN_SOURCES)
    for name, loader in prepare.LOADERS.items():
        assert SOURCES[name].loader is loader
    # every table source except epraccur (not in the store yet) is prepared
    assert set(SOURCES) - set(prepare.LOADERS) == {"epraccur", "lsoa_boundaries"}
    assert prepare.MULTI_FILE_SOURCES == {"practice_single_age"}
    # each demo file carries its official name: recognised as the source it was declared for
    for entry, file_name in generator.FILE_NAMES.items():
        if entry == "readme":
            continue
        owner = next(n for n, s in SOURCES.items() if entry in s.fetch_entries)
        assert identify_source(file_name) == owner, file_name


def test_release_labels_come_from_each_source_declaration(tmp_path):
    from pophealth.sources import release_from_name

    assert release_from_name("iod2025", "File_7_IoD2025_All.csv") == "IoD2025"
    assert release_from_name("payments", "nhspaymentsgp-24-25-prac-csv.csv") == "2024-25"
    assert release_from_name("census_ts021", "census2021-ts021-lsoa.csv") == "Census 2021"
    assert release_from_name("lsoa21_lookup", "LSOA21_SICBL23_ICB23_LAD23_EN_LU.csv") == (
        "2023 edition"
    )
    # a pattern of one source never labels another source's file
    assert release_from_name("epcn", "File_7_IoD2025_All.csv") is None
    assert release_from_name("not_a_source", "x.csv") is None
