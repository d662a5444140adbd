"""PCN workforce individual-level CSV loader (issue13): demo file, official header, bad input."""

# Official headers and rows are long literal lines.
# ruff: noqa: E501
import numpy as np
import pytest

from pophealth.sources import SOURCES, identify_source
from pophealth.sources.common import SourceFormatError
from pophealth.sources.pcn_workforce import (
    PCN_WORKFORCE_SCHEMA,
    load_pcn_workforce,
    pcn_fte_by_group,
)

# The header of "1.Primary Care Networks - November 2025 Individual Level.csv" (NHS England).
HEADER = (
    "Data_source,CENSUS_YEAR,CENSUS_MONTH,PCN_CODE,PCN_NAME,SUB_ICB_CODE,SUB_ICB_NAME,ICB_CODE,"
    "ICB_NAME,COMM_REGION_CODE,COMM_REGION_NAME,STAFF_GROUP,STAFF_ROLE,DETAILED_STAFF_ROLE,FTE,"
    "UNIQUE_IDENTIFIER\n"
)
ROWS = (
    "NWRS Staff,2025,11,U26715,WOLVERHAMPTON SOUTH EAST PCN,D2P2L,NHS Black Country ICB - D2P2L,QUA,NHS Black Country ICB,Y60,Midlands,Other Nurses,Nurse Specialists,Nurse Specialist,0.8,3126\n"
    "NWRS Staff,2025,11,U79574,HONITON/OTTERY/SID VALLEY (HOSMS) PCN,15N,NHS Devon ICB - 15N,QJK,NHS Devon ICB,Y58,South West,Other Direct Patient Care staff,Paramedics,Paramedic,1.0,132667\n"
    "NWRS Staff,2025,11,U79574,HONITON/OTTERY/SID VALLEY (HOSMS) PCN,15N,NHS Devon ICB - 15N,QJK,NHS Devon ICB,Y58,South West,Other Direct Patient Care staff,Pharmacists,Clinical Pharmacist,0.4,132667\n"
    "NWRS Contracted Services,2025,11,U79574,HONITON/OTTERY/SID VALLEY (HOSMS) PCN,15N,NHS Devon ICB - 15N,QJK,NHS Devon ICB,Y58,South West,Other Direct Patient Care staff,Care Coordinators,Care Coordinator,2.5,\n"
    "NWRS Staff,2025,11,U79574,HONITON/OTTERY/SID VALLEY (HOSMS) PCN,15N,NHS Devon ICB - 15N,QJK,NHS Devon ICB,Y58,South West,Directors,Medical Clinical Director (GP),Clinical Director,0.2,99\n"
)
NAME = "1.Primary Care Networks - November 2025 Individual Level.csv"


def _write(tmp_path, text, name=NAME):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_official_header_and_groups(tmp_path):
    frame = load_pcn_workforce(_write(tmp_path, HEADER + ROWS))
    assert list(frame.columns) == list(PCN_WORKFORCE_SCHEMA.columns)
    assert frame["group"].tolist() == ["nurse", "dpc", "dpc", "dpc", "admin"]
    assert frame["unique_identifier"].isna().tolist() == [False, False, False, True, False]
    assert frame["census_month"].tolist() == [11] * 5
    by = pcn_fte_by_group(frame).set_index(["pcn_code", "group"])
    # one person in two DPC roles: FTE adds up, headcount counts the person once
    assert by.loc[("U79574", "dpc"), "fte"] == pytest.approx(3.9)
    assert by.loc[("U79574", "dpc"), "headcount"] == 1
    assert by.loc[("U79574", "dpc"), "contracted_fte"] == pytest.approx(2.5)


def test_file_is_recognised_by_name_and_by_header(tmp_path):
    assert identify_source(_write(tmp_path, HEADER + ROWS)) == "pcn_workforce"
    renamed = _write(tmp_path, HEADER + ROWS, name="pcn_staff_extract.csv")
    assert identify_source(renamed) == "pcn_workforce"
    assert SOURCES["pcn_workforce"].loader is load_pcn_workforce


def test_demo_file_loads_and_one_pcn_made_no_return(demo_raw, demo_data):
    path = next(demo_raw.glob("*Individual Level.csv"))
    frame = load_pcn_workforce(path)
    assert len(frame) > 100 and set(frame["group"]) == {"gp", "nurse", "dpc", "admin"}
    assert (frame["data_source"] == "NWRS Contracted Services").any()
    pcns = set(demo_data.practices["pcn_code"].dropna())
    # the demo ICS's PCNs (U9...; the file also holds the synthetic rest of England's, U8...)
    ics_pcns = set(frame.loc[frame["pcn_code"].str.startswith("U9"), "pcn_code"])
    assert ics_pcns < pcns  # every PCN but one made a return


def test_missing_fte_column_is_named_with_a_close_match(tmp_path):
    path = _write(tmp_path, HEADER.replace(",FTE,", ",FTE_TOTAL,") + ROWS)
    with pytest.raises(SourceFormatError) as info:
        load_pcn_workforce(path)
    assert "'FTE'" in str(info.value) and "FTE_TOTAL" in str(info.value)


def test_non_numeric_fte_gives_the_line(tmp_path):
    bad = ROWS.replace(",0.8,3126", ",0.8x,3126")
    with pytest.raises(SourceFormatError, match="line 2: '0.8x'"):
        load_pcn_workforce(_write(tmp_path, HEADER + bad))


def test_na_fte_is_missing_not_zero(tmp_path):
    frame = load_pcn_workforce(_write(tmp_path, HEADER + ROWS.replace(",0.8,3126", ",NA,3126")))
    assert np.isnan(frame["fte"].iloc[0])


def test_unknown_staff_group_is_refused_with_the_value(tmp_path):
    bad = ROWS.replace("Other Nurses,Nurse Specialists", "Wizards,Nurse Specialists")
    with pytest.raises(SourceFormatError) as info:
        load_pcn_workforce(_write(tmp_path, HEADER + bad))
    text = str(info.value)
    assert "'Wizards'" in text and "line(s) 2" in text and "PCN_STAFF_GROUPS" in text


def test_row_without_pcn_code_is_refused(tmp_path):
    bad = ROWS.replace(",U26715,", ",,")
    with pytest.raises(SourceFormatError, match="no PCN code"):
        load_pcn_workforce(_write(tmp_path, HEADER + bad))


def test_negative_fte_breaks_the_schema(tmp_path):
    bad = ROWS.replace(",0.8,3126", ",-0.8,3126")
    with pytest.raises(SourceFormatError, match="fte"):
        load_pcn_workforce(_write(tmp_path, HEADER + bad))


def test_staff_groups_are_keyed_per_cell_as_published():
    import pandas as pd

    from pophealth.sources.pcn_workforce import PCN_STAFF_GROUPS, staff_group_of

    cells = ["GPs", " Nurses ", "Admin/Non-Clinical", None, "Other   Direct patient care staff"]
    cells += ["not a group", "GPS", None]
    for dtype in ("str", object):
        published = pd.Series(cells, dtype=dtype, name="STAFF_GROUP", index=range(3, 11))
        got = staff_group_of(published)
        key = published.astype("str").str.strip().str.casefold()
        want = key.str.replace(r"\s+", " ", regex=True).map(PCN_STAFF_GROUPS)
        pd.testing.assert_series_equal(got, want)
    assert got.tolist()[:3] == ["gp", "nurse", "admin"]
