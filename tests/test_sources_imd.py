# Official headers and rows are long literal lines.
# ruff: noqa: E501
import csv

import pandas as pd
import pytest
from reference_helpers import official_iod2025_partial, reference_file

from pophealth.sources.common import SourceFormatError
from pophealth.sources.imd import load_iod2019_file7, load_iod2025_file7

DOMAINS = [
    ("Index of Multiple Deprivation (IMD)", "Score"),
    ("Income", "Score (rate)"),
    ("Employment", "Score (rate)"),
    ("Education, Skills and Training", "Score"),
    ("Health Deprivation and Disability", "Score"),
    ("Crime", "Score"),
    ("Barriers to Housing and Services", "Score"),
    ("Living Environment", "Score"),
    ("Income Deprivation Affecting Children Index (IDACI)", "Score (rate)"),
    ("Income Deprivation Affecting Older People (IDAOPI)", "Score (rate)"),
    ("Children and Young People Sub-domain", "Score"),
]


def _header(lsoa_year, lad_year, population_labels):
    header = [
        f"LSOA code ({lsoa_year})",
        f"LSOA name ({lsoa_year})",
        f"Local Authority District code ({lad_year})",
        f"Local Authority District name ({lad_year})",
    ]
    for name, score in DOMAINS:
        header += [
            f"{name} {score}",
            f"{name} Rank (where 1 is most deprived)",
            f"{name} Decile (where 1 is most deprived 10% of LSOAs)",
        ]
    # The official IoD2025 file truncates one decile header.
    header[-1] = header[-1][:80]
    return header + population_labels


def _row(code, score, rank, decile, population):
    values = [code, f"Somewhere {code[-3:]}", "E09000001", "City of London"]
    for i in range(len(DOMAINS)):
        values += [f"{score + i:.3f}", rank, decile]
    return values + population


def _write(path, header, rows, bom=False):
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_iod2025_bom_thousands_truncated_header(tmp_path):
    header = _header(
        "2021", "2024", ["Total population: mid 2022", "Dependent Children aged 0-15: mid 2022"]
    )
    path = _write(
        tmp_path / "File_7_IoD2025_All_Ranks_Scores_Deciles_Population_Denominators.csv",
        header,
        [
            _row("E01000001", 8.742, "26,525", 8, ["1,795", "149"]),
            _row("W01000002", 4.7, "31203", 10, ["1500", "100"]),
        ],
        bom=True,
    )
    frame = load_iod2025_file7(path)
    assert list(frame.columns)[:4] == ["lsoa21_code", "lsoa21_name", "lad_code", "lad_name"]
    assert frame["imd_rank"].tolist() == [26525, 31203] and frame["population"].tolist() == [
        1795,
        1500,
    ]
    assert frame["imd_score"].iloc[0] == pytest.approx(8.742)
    assert frame["living_env_score"].iloc[0] == pytest.approx(8.742 + 7)
    assert frame["idaopi_score"].iloc[0] == pytest.approx(8.742 + 9)
    assert frame["lsoa21_code"].tolist() == ["E01000001", "W01000002"]  # kept as published


def test_iod2019_trailing_space_last_header(tmp_path):
    header = _header(
        "2011",
        "2019",
        [
            "Total population: mid 2015 (excluding prisoners)",
            "Working age population 18-59/64: for use with Employment Deprivation Domain (excluding prisoners) ",
        ],
    )
    path = _write(
        tmp_path / "File_7_-_All_IoD2019_Scores__Ranks__Deciles_and_Population_Denominators_3.csv",
        header,
        [_row("E01000001", 6.2, "29,199", 9, ["1,296", "715"])],
    )
    frame = load_iod2019_file7(path)
    assert list(frame.columns)[:2] == ["lsoa11_code", "lsoa11_name"]
    assert (
        frame["imd_rank"].iloc[0],
        frame["imd_decile"].iloc[0],
        frame["population"].iloc[0],
    ) == (29199, 9, 1296)


def test_iod2019_file_is_not_iod2025(tmp_path):
    header = _header("2011", "2019", ["Total population: mid 2015 (excluding prisoners)"])
    path = _write(tmp_path / "f7.csv", header, [_row("E01000001", 6.2, "1", 9, ["1"])])
    with pytest.raises(SourceFormatError) as info:
        load_iod2025_file7(path)
    assert "LSOA code (2021)" in str(info.value) and "'LSOA code (2011)'" in str(info.value)


def test_non_numeric_score_names_row(tmp_path):
    header = _header("2021", "2024", ["Total population: mid 2022"])
    bad = _row("E01000002", 1.0, "2", 1, ["10"])
    bad[4] = "n/a?"
    path = _write(tmp_path / "f7.csv", header, [_row("E01000001", 1.0, "1", 1, ["10"]), bad])
    with pytest.raises(SourceFormatError, match=r"line 3: 'n/a\?'"):
        load_iod2025_file7(path)


@pytest.mark.reference
def test_reference_iod2025_excerpt_matches_converted_full_file():
    excerpt = load_iod2025_file7(
        reference_file(
            "imd",
            "File_7_IoD2025_All_Ranks_Scores_Deciles_Population_Denominators.EXCERPT_first6rows.csv",
        )
    )
    assert len(excerpt) == 6 and excerpt["lsoa21_code"].iloc[0] == "E01000001"
    assert excerpt["population"].iloc[0] == 1795
    converted = pd.read_csv(reference_file("imd", "imd2025_england_lsoa21.csv")).set_index(
        "lsoa21_code"
    )
    pairs = {
        "imd_score": "IMD_score",
        "imd_rank": "IMD_rank",
        "imd_decile": "IMD_decile",
        "income_score": "Income_score",
        "employment_score": "Employment_score",
        "education_score": "Education_score",
        "health_score": "Health_score",
        "crime_score": "Crime_score",
        "barriers_score": "Housing_and_Services_score",
        "living_env_score": "Environment_score",
    }
    for ours, theirs in pairs.items():
        expected = converted.loc[excerpt["lsoa21_code"], theirs].to_numpy()
        assert excerpt[ours].to_numpy() == pytest.approx(expected), ours


@pytest.mark.reference
def test_reference_iod2025_converted_lacks_population(tmp_path):
    # The converted 33,755-row file dropped names, LAD, IDACI/IDAOPI and population: the IMD
    # columns load, the missing optional ones are named in a warning and left empty (no guess).
    path = official_iod2025_partial(tmp_path)
    with pytest.warns(UserWarning, match="population") as record:
        frame = load_iod2025_file7(path)
    assert "LSOA name" in str(record[0].message) or "lsoa21_name" in str(record[0].message)
    assert len(frame) == 33_755
    assert frame["population"].isna().all()
    assert frame["imd_decile"].between(1, 10).all()


def test_iod_file_without_the_imd_score_is_refused(tmp_path):
    path = tmp_path / "File_7_IoD2025_All_Ranks_Scores_Deciles_Population_Denominators.csv"
    path.write_text(
        "LSOA code (2021),Index of Multiple Deprivation (IMD) Rank (where 1 is most deprived)\nE01000001,5\n"
    )
    with pytest.raises(SourceFormatError, match="Index of Multiple Deprivation"):
        load_iod2025_file7(path)
