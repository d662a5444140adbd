import pandas as pd
import pytest
from reference_helpers import reference_file

from pophealth.sources.common import SourceFormatError
from pophealth.sources.epraccur import active_gp_practices, load_epraccur


def _row(code, status, setting, close=""):
    fields = [
        code,
        f"{code} SURGERY",
        "Y63",
        "QHM",
        "THE HEALTH CENTRE",
        "LAWSON STREET",
        "STOCKTON",
        "CLEVELAND",
        "",
        "TS18 1HU",
        "19740401",
        close,
        status,
        "B",
        "16C",
        "20200401",
        "",
        "01642 672351",
        "",
        "",
        "",
        "0",
        "",
        "16C",
        "",
        str(setting),
        "",
    ]
    assert len(fields) == 27
    return ",".join(f'"{f}"' for f in fields) + "\n"


def test_headerless_27_columns(tmp_path):
    path = tmp_path / "epraccur.csv"
    path.write_text(
        _row("A81001", "A", 4) + _row("A81003", "C", 4, "20171031") + _row("Y00001", "A", 9)
    )
    frame = load_epraccur(path)
    assert list(frame.columns) == [
        "practice_code",
        "practice_name",
        "icb_ods",
        "postcode",
        "open_date",
        "close_date",
        "status_code",
        "sicbl_ods",
        "prescribing_setting",
    ]
    assert frame["close_date"].iloc[1] == pd.Timestamp("2017-10-31") and pd.isna(
        frame["close_date"].iloc[0]
    )
    assert active_gp_practices(frame)["practice_code"].tolist() == ["A81001"]
    assert frame.loc[0, ["icb_ods", "sicbl_ods", "postcode"]].tolist() == ["QHM", "16C", "TS18 1HU"]


def test_too_few_columns(tmp_path):
    path = tmp_path / "epraccur.csv"
    path.write_text('"A81001","X","Y63"\n')
    with pytest.raises(SourceFormatError, match="3 columns found"):
        load_epraccur(path)


def test_bad_prescribing_setting_names_row(tmp_path):
    path = tmp_path / "epraccur.csv"
    path.write_text(_row("A81001", "A", 4) + _row("A81002", "A", "four"))
    with pytest.raises(SourceFormatError, match="line 2: 'four'"):
        load_epraccur(path)


@pytest.mark.reference
def test_reference_epraccur_active_gp_practices():
    frame = load_epraccur(reference_file("ods", "epraccur.csv"))
    # SOURCES.md says 15,535 rows; the file has 15,536 lines, all organisations (no header).
    assert len(frame) == 15536
    active = active_gp_practices(frame)
    # Status A (active) and prescribing setting 4 (GP practice): SOURCES.md's 6,859.
    assert len(active) == 6859
    assert active["practice_code"].is_unique
