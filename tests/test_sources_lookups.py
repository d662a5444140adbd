# Official headers and rows are long literal lines.
# ruff: noqa: E501
import numpy as np
import pandas as pd
import pytest
from reference_helpers import official_lsoa11_lsoa21_lookup, official_lsoa21_lookup, reference_file

from pophealth.sources.common import SourceFormatError
from pophealth.sources.lookups import (
    convert_lsoa11_to_lsoa21,
    load_lsoa11_to_lsoa21,
    load_lsoa21_lookup,
)

LSOA21_2023 = (
    "LSOA21CD,LSOA21NM,SICBL23CD,SICBL23CDH,SICBL23NM,ICB23CD,ICB23CDH,ICB23NM,LAD23CD,LAD23NM,ObjectId\n"
    "E01012392,Halton 001A,E38000068,01F,NHS Cheshire and Merseyside ICB - 01F,E54000008,QYG,"
    "NHS Cheshire and Merseyside Integrated Care Board,E06000006,Halton,1\n"
)
LSOA21_2025_CANCER = (
    "LSOA21CD,LSOA21NM,SICBL25CD,SICBL25CDH,SICBL25NM,ICB25CD,ICB25CDH,ICB25NM,CAL25CD,CAL25NM,LAD25CD,LAD25NM\n"
    'E01012392,Halton 001A,E38000068,01F,"NHS Cheshire and Merseyside ICB - 01F",E54000008,QYG,NHS C&M ICB,'
    "E56000018,Cheshire and Merseyside,E06000006,Halton\n"
)


@pytest.mark.parametrize(
    "text", [LSOA21_2023, LSOA21_2025_CANCER], ids=["2023-objectid", "2025-cancer-alliance"]
)
def test_lsoa21_lookup_any_year(tmp_path, text):
    path = tmp_path / "LSOA21_SICBL_ICB_LAD_LU.csv"
    path.write_text(text)
    frame = load_lsoa21_lookup(path)
    assert frame.iloc[0].tolist() == [
        "E01012392",
        "Halton 001A",
        "E38000068",
        "01F",
        "NHS Cheshire and Merseyside ICB - 01F",
        "E54000008",
        "QYG",
        frame.iloc[0]["icb_name"],
        "E06000006",
        "Halton",
    ]


def test_lsoa21_lookup_without_lad(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text(
        "LSOA21CD,LSOA21NM,SICBL24CD,SICBL24CDH,SICBL24NM,ICB24CD,ICB24CDH,ICB24NM\nE01012392,H,E38000068,01F,S,E54000008,QYG,I\n"
    )
    frame = load_lsoa21_lookup(path)
    assert frame[["lad_code", "lad_name"]].isna().all().all()


def test_lsoa21_lookup_missing_icb(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text(
        "LSOA21CD,LSOA21NM,SICBL24CD,SICBL24CDH,SICBL24NM,ICB24CODE,ICB24CDH,ICB24NM\nE01012392,H,E38000068,01F,S,E54000008,QYG,I\n"
    )
    with pytest.raises(SourceFormatError) as info:
        load_lsoa21_lookup(path)
    assert "l.csv" in str(info.value) and "icb" in str(info.value).lower()


def _lookup():
    return pd.DataFrame(
        {
            "lsoa11_code": ["A", "B", "C", "D", "E", "F", "F"],
            "lsoa21_code": ["a", "b1", "cd", "cd", "x", "x", "y"],
            "change_code": ["U", "S", "M", "M", "X", "X", "X"],
            "lad_code": ["L"] * 7,
        }
    )


def test_convert_all_change_codes():
    lookup = _lookup()
    lookup = pd.concat(
        [
            lookup,
            pd.DataFrame(
                {
                    "lsoa11_code": ["B"],
                    "lsoa21_code": ["b2"],
                    "change_code": ["S"],
                    "lad_code": ["L"],
                }
            ),
        ]
    )
    values = pd.DataFrame(
        {"lsoa11_code": list("ABCDEFZ"), "imd_score": [10.0, 20.0, 30.0, 60.0, 5.0, 15.0, 99.0]}
    )
    weights = pd.DataFrame(
        {"lsoa11_code": list("ABCDEFZ"), "population": [1000, 1500, 1000, 2000, 3000, 1000, 1]}
    )
    converted, report = convert_lsoa11_to_lsoa21(values, lookup, weights)
    result = converted.set_index("lsoa21_code")["imd_score"]
    assert result["a"] == 10.0  # U: carried
    assert result["b1"] == result["b2"] == 20.0  # S: each child gets the parent's value
    assert result["cd"] == pytest.approx(
        (30 * 1000 + 60 * 2000) / 3000
    )  # M: population-weighted mean
    assert result["x"] == pytest.approx(
        (5 * 3000 + 15 * 1000) / 4000
    )  # X: several parents -> weighted
    assert result["y"] == 15.0  # X: one parent -> its value
    counts = report.set_index("change_code")
    assert counts.loc["U"].tolist() == [1, 1] and counts.loc["S"].tolist() == [1, 2]
    assert counts.loc["M"].tolist() == [2, 1] and counts.loc["X"].tolist() == [2, 2]
    assert counts.loc["not_in_lookup", "n_lsoa11"] == 1  # Z is counted, not silently dropped
    assert len(values) == 7  # input untouched


def test_convert_refuses_ranks_and_missing_weights():
    values = pd.DataFrame({"lsoa11_code": ["C", "D"], "imd_rank": [1, 2]})
    with pytest.raises(ValueError, match="ranks/deciles"):
        convert_lsoa11_to_lsoa21(values, _lookup())
    values = pd.DataFrame({"lsoa11_code": ["C", "D"], "imd_score": [1.0, 2.0]})
    with pytest.raises(ValueError, match="population weight"):
        convert_lsoa11_to_lsoa21(
            values, _lookup(), pd.DataFrame({"lsoa11_code": ["C"], "population": [5]})
        )
    converted, _ = convert_lsoa11_to_lsoa21(values, _lookup())  # no weights -> equal weights
    assert converted.set_index("lsoa21_code").loc["cd", "imd_score"] == 1.5


def test_convert_skips_missing_values_per_column():
    values = pd.DataFrame({"lsoa11_code": ["C", "D"], "score": [np.nan, 4.0]})
    converted, _ = convert_lsoa11_to_lsoa21(
        values, _lookup(), pd.DataFrame({"lsoa11_code": ["C", "D"], "population": [1, 3]})
    )
    assert converted.set_index("lsoa21_code").loc["cd", "score"] == 4.0


@pytest.mark.reference
def test_reference_lsoa11_to_lsoa21(tmp_path):
    lookup = load_lsoa11_to_lsoa21(official_lsoa11_lsoa21_lookup(tmp_path))
    assert len(lookup) == 35795
    assert lookup["change_code"].value_counts().to_dict() == {
        "U": 33647,
        "S": 1900,
        "M": 239,
        "X": 9,
    }
    assert lookup["lad_code"].str.match(r"^[EW]0[6789]").all()


@pytest.mark.reference
def test_reference_iod2019_scores_to_lsoa21(tmp_path):
    """Real IoD2019 scores (converted GB_IMD_E) carried onto LSOA 2021, weighted by IoD2019 File 6."""
    lookup = load_lsoa11_to_lsoa21(official_lsoa11_lsoa21_lookup(tmp_path))
    scores = pd.read_csv(reference_file("imd", "GB_IMD_E.csv"))
    scores = scores.loc[scores["nation"] == "E", ["lsoa", "overall_local_score"]]
    scores.columns = ["lsoa11_code", "imd_score"]
    population = pd.read_csv(
        reference_file("imd", "File_6_-_IoD2019_Population_Denominators.csv.gz"),
        thousands=",",
        encoding="utf-8-sig",
    )
    weights = population.iloc[:, [0, 4]].set_axis(["lsoa11_code", "population"], axis=1)
    converted, report = convert_lsoa11_to_lsoa21(scores, lookup, weights)
    assert len(scores) == 32844
    english = lookup.loc[lookup["lsoa21_code"].str.startswith("E01"), "lsoa21_code"].nunique()
    assert len(converted) == english == 33755
    assert report.set_index("change_code").loc["not_in_lookup", "n_lsoa11"] == 0
    assert (
        converted["imd_score"].between(scores["imd_score"].min(), scores["imd_score"].max()).all()
    )


@pytest.mark.reference
def test_reference_lsoa21_icb24_lookup(tmp_path):
    frame = load_lsoa21_lookup(official_lsoa21_lookup(tmp_path))
    assert (
        len(frame) == 33755
        and frame["sicbl_code"].nunique() == 106
        and frame["icb_code"].nunique() == 42
    )
    # ODS sub-ICB codes are 3 characters, or 5 for merged locations (e.g. M2L0M).
    assert (
        frame["sicbl_ods"].str.len().isin([3, 5]).all()
        and frame["icb_ods"].str.startswith("Q").all()
    )
    assert frame["lad_code"].isna().all()  # this edition has no LAD columns
