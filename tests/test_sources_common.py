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


def test_every_demo_loader_output_passes_the_validation_shortcut(demo_raw, monkeypatch):
    from pophealth import prepare
    from pophealth.sources import common

    verdicts = []
    shortcut = common.plainly_valid

    def recorded(frame, schema):
        verdicts.append((schema.name, shortcut(frame, schema)))
        return verdicts[-1][1]

    monkeypatch.setattr(common, "plainly_valid", recorded)
    prepare.load_raw_sources(prepare.discover_raw_files(demo_raw))
    assert len(verdicts) > 20
    assert [name for name, passed in verdicts if not passed] == []  # pandera is not needed


def _loader_column(column, rows: int, data) -> list:
    """Cells for one schema column: mostly valid, sometimes flawed or of the wrong kind."""
    from hypothesis import strategies as st

    kind = str(column.dtype)
    mode = data.draw(st.sampled_from(["good", "good", "flawed", "wrong kind"]))
    checks = {c.name: c.statistics for c in column.checks}
    if "isin" in checks:
        good = list(checks["isin"]["allowed_values"])
    elif "int" in kind.lower() or "float" in kind:
        good = [0, 1, 7, 94]
    elif "datetime" in kind:
        good = [pd.Timestamp("2025-10-01")]
    elif "str_matches" in checks:
        good = ["R", "O"]
    else:
        good = ["A1", "B2", "Y90001"]
    bad = [None, -1, 200, "other"]
    pool = {"good": good, "flawed": good + bad, "wrong kind": [1.5, "x", None]}[mode]
    return data.draw(st.lists(st.sampled_from(pool), min_size=rows, max_size=rows))


def _typed(cells: list, column) -> pd.Series:
    """The cells in the column's dtype where they convert (else as pandas infers them)."""
    try:
        dtype = "str" if str(column.dtype) in ("str", "string[pyarrow]") else str(column.dtype)
        return pd.Series(cells, dtype=dtype)
    except (TypeError, ValueError):
        return pd.Series(cells)


def test_the_shortcut_accepts_a_loader_output_only_when_pandera_does():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from pophealth.sources import census, common, ods_successors, pcn_workforce, registrations

    schemas = [
        registrations.LSOA_SCHEMA,
        registrations.AGE_BAND_SCHEMA,
        registrations.SINGLE_AGE_SCHEMA,
        registrations.TOTALS_SCHEMA,
        pcn_workforce.PCN_WORKFORCE_SCHEMA,
        census.CENSUS_TABLES["TS039"].schema,  # a unique code
        ods_successors.SUCCESSORS_SCHEMA,  # str_matches
    ]
    passed = []

    @settings(max_examples=400, deadline=None)
    @given(schema=st.sampled_from(schemas), rows=st.integers(1, 5), data=st.data())
    def check(schema, rows, data):
        frame = pd.DataFrame(
            {
                name: _typed(_loader_column(column, rows, data), column)
                for name, column in schema.columns.items()
            }
        )
        if data.draw(st.booleans()):
            frame = frame.iloc[:, ::-1]  # columns out of order
        if common.plainly_valid(frame, schema):
            schema.validate(frame, lazy=True)  # pandera accepts it too
            passed.append(schema.name)

    check()
    assert len(passed) > 10  # valid frames were generated, not only refused ones
