import hashlib

import pandas as pd
import pytest

from pophealth.sources.common import (
    ColumnPattern,
    SourceFormatError,
    header_key,
    normalise_header,
    parse_dates,
    parse_numeric,
    read_header,
    resolve_columns,
    sha256_of,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\ufeffPractice Code", "Practice Code"),
        ("Partner\nOrganisation\nCode", "Partner Organisation Code"),
        (
            "Practice Sub ICB Loc and PCN Sub ICB Loc Match ",
            "Practice Sub ICB Loc and PCN Sub ICB Loc Match",
        ),
        (
            "Household deprivation: Total: All households; measures: Value",
            "Household deprivation: Total: All households",
        ),
        ("General health:Very good health", "General health: Very good health"),
        ("Age :  Aged 4 years and under", "Age: Aged 4 years and under"),
    ],
)
def test_normalise_header(raw, expected):
    assert normalise_header(raw) == expected


def test_header_key_treats_underscores_and_case_alike():
    keys = {
        header_key(h) for h in ["NUMBER_OF_PATIENTS", "Number of Patients", "Number of patients"]
    }
    assert keys == {"number of patients"}


def test_missing_column_names_file_column_and_close_match(tmp_path):
    path = tmp_path / "x.csv"
    with pytest.raises(SourceFormatError) as info:
        resolve_columns(["PRACTICE_CODE", "LSOA_COD"], {"lsoa": ColumnPattern("LSOA_CODE")}, path)
    message = str(info.value)
    assert "x.csv" in message and "LSOA_CODE" in message and "did you mean 'LSOA_COD'" in message


def test_truncated_prefix_and_regex_patterns():
    pattern = ColumnPattern(
        "Sub-domain Decile (where 1 is most deprived 10% of LSOAs)", prefix_min=30
    )
    assert pattern.matches(header_key("Sub-domain Decile (where 1 is most deprived 10% of LSO"))
    assert not pattern.matches(header_key("Sub-domain"))
    assert ColumnPattern(regex=[r"sicbl\d\dcd"]).matches(header_key("SICBL25CD"))


def test_parse_numeric_thousands_and_missing(tmp_path):
    values = pd.Series(["29,199", "7", "NA", "ND", ""])
    parsed = parse_numeric(values, tmp_path / "f.csv", "N", allow_missing=True)
    assert parsed.iloc[:2].tolist() == [29199.0, 7.0]
    assert parsed.iloc[2:].isna().all()


def test_parse_numeric_reports_line_numbers(tmp_path):
    with pytest.raises(SourceFormatError) as info:
        parse_numeric(
            pd.Series(["1", "2", "seven"]), tmp_path / "f.csv", "NUMBER_OF_PATIENTS", integer=True
        )
    message = str(info.value)
    assert "line 4: 'seven'" in message and "NUMBER_OF_PATIENTS" in message and "f.csv" in message


def test_parse_dates_all_published_formats(tmp_path):
    parsed = parse_dates(
        pd.Series(
            [
                "04JAN2021",
                "01Jan2022",
                "2025-10-01",
                "20191001",
                20191001,
                20191001.0,
                "01/04/1974",
                None,
                "",
            ]
        ),
        tmp_path / "f.csv",
        "EXTRACT_DATE",
    )
    expected = [
        "2021-01-04",
        "2022-01-01",
        "2025-10-01",
        "2019-10-01",
        "2019-10-01",
        "2019-10-01",
        "1974-04-01",
    ]
    assert parsed.iloc[:7].dt.strftime("%Y-%m-%d").tolist() == expected
    assert parsed.iloc[7:].isna().all()
    assert str(parsed.dtype) == "datetime64[ns]"


def test_parse_dates_rejects_unknown(tmp_path):
    with pytest.raises(SourceFormatError, match="2021/13/45"):
        parse_dates(pd.Series(["2021/13/45"]), tmp_path / "f.csv", "EXTRACT_DATE")


def test_read_header_strips_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffPractice Code,Name\nA1,x\n".encode())
    assert read_header(path) == ["Practice Code", "Name"]


def test_sha256_of(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"pophealth" * 1000)
    assert sha256_of(path) == hashlib.sha256(b"pophealth" * 1000).hexdigest()
