# Official headers and rows are long literal lines.
# ruff: noqa: E501
import csv

import pandas as pd
import pytest
from reference_helpers import official_census

from pophealth.sources.census import CENSUS_TABLES, load_nomis_table
from pophealth.sources.common import SourceFormatError

PREFIX = ["date", "geography", "geography code"]
ROWS = [("E01000001", 0), ("W01000001", 100), ("K04000001", 5)]  # the last is not an LSOA


def _write(path, categories, values_for):
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREFIX + categories)
        for code, offset in ROWS:
            writer.writerow(["2021", f"Area {code}", code] + values_for(offset))
    return path


def _numbered(categories):
    return lambda offset: [str(offset + i + 1) for i in range(len(categories))]


def _load_numbered(path, categories):
    """A Nomis file of one LSOA whose categories count 1, 2, 3…, as loaded."""
    return load_nomis_table(_write(path, categories, _numbered(categories)))


def test_ts007a_age(tmp_path):
    categories = (
        ["Age: Total", "Age: Aged 4 years and under"]
        + [f"Age: Aged {a} to {a + 4} years" for a in range(5, 85, 5)]
        + ["Age: Aged 85 years and over"]
    )
    frame = _load_numbered(tmp_path / "census2021-ts007a-lsoa.csv", categories)
    assert list(frame.columns) == ["lsoa21_code"] + list(CENSUS_TABLES["TS007A"].columns)
    assert frame["lsoa21_code"].tolist() == ["E01000001", "W01000001"]
    assert (
        frame.loc[0, "age_0_4"] == 2
        and frame.loc[0, "age_85_plus"] == 19
        and frame.loc[1, "age_total"] == 101
    )


def test_ts037_measures_suffix_and_irregular_colon_spacing(tmp_path):
    categories = [
        "General health: Total: All usual residents; measures: Value",
        "General health:Very good health; measures: Value",
        "General health:  Good health",
        "General health : Fair health",
        "General health: Bad health",
        "General health: Very bad health",
    ]
    frame = load_nomis_table(_write(tmp_path / "anything.csv", categories, _numbered(categories)))
    assert frame.loc[0].tolist()[1:] == [1, 2, 3, 4, 5, 6]
    assert list(frame.columns)[1:] == [
        "health_total",
        "health_very_good",
        "health_good",
        "health_fair",
        "health_bad",
        "health_very_bad",
    ]


def test_ts038_sub_categories_summed(tmp_path):
    d, n = (
        "Disability: Disabled under the Equality Act",
        "Disability: Not disabled under the Equality Act",
    )
    categories = [
        "Disability: Total: All usual residents",
        f"{d}: Day-to-day activities limited a lot",
        f"{d}: Day-to-day activities limited a little",
        f"{n}: Has long term physical or mental health condition but day-to-day activities are not limited",
        f"{n}: No long term physical or mental health conditions",
    ]
    frame = _load_numbered(tmp_path / "census2021-ts038-lsoa.csv", categories)
    assert frame.loc[0, ["disability_total", "disabled_ea", "not_disabled_ea"]].tolist() == [
        1,
        2 + 3,
        4 + 5,
    ]


def test_ts021_detailed_with_white_british(tmp_path):
    e = "Ethnic group"
    categories = [
        f"{e}: Total: All usual residents",
        f"{e}: Asian, Asian British or Asian Welsh",
        f"{e}: Asian, Asian British or Asian Welsh: Indian",
        f"{e}: Black, Black British, Black Welsh, Caribbean or African",
        f"{e}: Mixed or Multiple ethnic groups",
        f"{e}: White",
        f"{e}: White: English, Welsh, Scottish, Northern Irish or British",
        f"{e}: White: Irish",
        f"{e}: Other ethnic group",
    ]
    frame = _load_numbered(tmp_path / "census2021-ts021-lsoa.csv", categories)
    assert frame.loc[
        0,
        [
            "ethnic_total",
            "ethnic_asian",
            "ethnic_black",
            "ethnic_mixed",
            "ethnic_white",
            "ethnic_other",
            "ethnic_white_british",
        ],
    ].tolist() == [1, 2, 4, 5, 6, 9, 7]


def test_ts011_and_ts054(tmp_path):
    h = "Household deprivation"
    ts011 = [
        f"{h}: Total: All households; measures: Value",
        f"{h}: Household is not deprived in any dimension; measures: Value",
    ] + [
        f"{h}: Household is deprived in {w} dimension{'s' if w != 'one' else ''}; measures: Value"
        for w in ("one", "two", "three", "four")
    ]
    frame = load_nomis_table(
        _write(tmp_path / "census2021-ts011-lsoa.csv", ts011, _numbered(ts011))
    )
    assert frame.loc[0].tolist()[1:] == [1, 2, 3, 4, 5, 6]
    t = "Tenure of household"
    ts054 = [
        f"{t}: Total: All households",
        f"{t}: Owned",
        f"{t}: Owned: Owns outright",
        f"{t}: Shared ownership",
        f"{t}: Social rented",
        f"{t}: Private rented",
        f"{t}: Lives rent free",
    ]
    frame = load_nomis_table(
        _write(tmp_path / "census2021-ts054-lsoa.csv", ts054, _numbered(ts054))
    )
    assert frame.loc[0].tolist()[1:] == [
        1,
        2,
        4,
        5,
        6,
        7,
    ]  # top-level "Owned" used, not its sub-category


def test_missing_category_names_table_and_close_match(tmp_path):
    categories = [
        "General health: Total: All usual residents",
        "General health: Very good health",
        "General health: Good health",
        "General health: Fair health",
        "General health: Bad heath",
        "General health: Very bad health",
    ]
    with pytest.raises(SourceFormatError) as info:
        _load_numbered(tmp_path / "census2021-ts037-lsoa.csv", categories)
    message = str(info.value)
    assert (
        "TS037" in message
        and "General health: Bad health" in message
        and "'General health: Bad heath'" in message
    )


def test_non_numeric_count_and_unknown_table(tmp_path):
    categories = [
        "General health: Total: All usual residents",
        "General health: Very good health",
        "General health: Good health",
        "General health: Fair health",
        "General health: Bad health",
        "General health: Very bad health",
    ]
    path = _write(
        tmp_path / "c.csv", categories, lambda offset: ["x"] * 6 if offset == 100 else ["1"] * 6
    )
    with pytest.raises(SourceFormatError, match="line 3: 'x'"):
        load_nomis_table(path)
    other = _write(tmp_path / "c2.csv", ["Accommodation type: Total"], lambda offset: ["1"])
    with pytest.raises(SourceFormatError, match="not a recognised Census 2021 table"):
        load_nomis_table(other)
    with pytest.raises(SourceFormatError, match="expected Census table TS038"):
        load_nomis_table(path, table_id="TS038")


@pytest.mark.reference
@pytest.mark.parametrize(
    ("file_name", "table_id", "total", "parts"),
    [
        (
            "ts011_household_deprivation21_lsoa21_WIDE_reconstructed.csv",
            "TS011",
            "hh_total",
            [f"hh_deprived_{n}" for n in range(5)],
        ),
        (
            "ts021_ethnicity21_lsoa21_WIDE_reconstructed.csv",
            "TS021",
            "ethnic_total",
            ["ethnic_asian", "ethnic_black", "ethnic_mixed", "ethnic_white", "ethnic_other"],
        ),
        (
            "ts038_disability21_lsoa21_ew_WIDE_reconstructed.csv",
            "TS038",
            "disability_total",
            ["disabled_ea", "not_disabled_ea"],
        ),
        (
            "ts054_household_tenure21_lsoa21_WIDE_reconstructed.csv",
            "TS054",
            "tenure_total",
            [
                "tenure_owned",
                "tenure_shared_ownership",
                "tenure_social_rented",
                "tenure_private_rented",
                "tenure_rent_free",
            ],
        ),
    ],
)
def test_reference_census_tables(tmp_path, file_name, table_id, total, parts):
    frame = load_nomis_table(
        official_census(
            tmp_path, file_name, table_id, measures_suffix=table_id in {"TS011", "TS054"}
        )
    )
    assert len(frame) == 35672 and frame["lsoa21_code"].is_unique
    assert frame["lsoa21_code"].str[:3].isin(["E01", "W01"]).all()
    assert (frame["lsoa21_code"].str[:3] == "W01").sum() > 1500
    # Categories add up to the total (cell-key perturbation: within 0.5% nationally).
    assert frame[parts].sum().sum() == pytest.approx(frame[total].sum(), rel=0.005)
    if table_id == "TS021":
        assert frame["ethnic_white_british"].isna().all()  # top-level-only reshaped file
    source = pd.read_csv(tmp_path / f"census2021-{table_id.lower()}-lsoa.csv", nrows=1)
    assert list(source.columns[:3]) == ["date", "geography", "geography code"]
