import openpyxl
import pandas as pd
import pytest
from reference_helpers import reference_file

from pophealth.demo.generator import EPCN_PARTNER_HEADER
from pophealth.sources.common import SourceFormatError
from pophealth.sources.epcn import load_epcn, membership_at

SUB_ICB_ERA = {
    "details": [
        "PCN Code",
        "PCN Name",
        "Current Sub ICB Loc Code",
        "Sub ICB Location",
        "Open Date",
        "Close Date",
        "Address Line 1",
        "Postcode",
    ],
    # the demo writes the current ePCN partner sheet; one list of its headers serves both
    "partners": EPCN_PARTNER_HEADER,
}
CCG_ERA = {
    "details": [
        "PCN Code",
        "PCN Name",
        "Current Clinical \nCommissioning \nGroup Code",
        "Clinical\nCommissioning\nGroup Name",
        "Open Date",
        "Close Date",
        "Address Line 1",
        "Postcode",
    ],
    "partners": [
        "Partner\nOrganisation\nCode",
        "Partner\nName",
        "Practice\nParent\nCCG Code",
        "Practice\nParent\nCCG Name",
        "PCN Code",
        "PCN Name",
        "PCN Parent\nCCG Code",
        "PCN Parent\nCCG Name",
        "Practice to PCN\nRelationship\nStart Date",
        "Practice to PCN\nRelationship\nEnd Date",
        "Practice CCG and PCN\nCCG Match ",
    ],
}
DETAILS = [
    ["U00001", "NORTH PCN", "16C", "X", "20191001", "", "A", "TS1 1AA"],
    ["U00002", "SOUTH PCN", "16C", "X", "20191001", "20220331", "B", "TS1 1AB"],
    ["U00003", "EAST PCN", "16C", "X", 20220401, None, "C", "TS1 1AC"],
]
PARTNERS = [
    # practice moves from SOUTH to EAST on 2022-04-01; an overlap day on 2022-04-01 (both in force)
    [
        "A00001",
        "ONE SURGERY",
        "16C",
        "X",
        "U00001",
        "NORTH PCN",
        "16C",
        "X",
        "20191001",
        None,
        True,
    ],
    [
        "A00002",
        "TWO SURGERY",
        "16C",
        "X",
        "U00002",
        "SOUTH PCN",
        "16C",
        "X",
        "20191001",
        "20220401",
        True,
    ],
    ["A00002", "TWO SURGERY", "16C", "X", "U00003", "EAST PCN", "16C", "X", 20220401, None, True],
]


def _workbook(path, era, partner_rows=PARTNERS):
    book = openpyxl.Workbook()
    details = book.active
    details.title = "PCNDetails"
    details.append(era["details"])
    for row in DETAILS:
        details.append(row)
    partners = book.create_sheet("PCN Core Partner Details")
    partners.append(era["partners"])
    for row in partner_rows:
        partners.append(row)
    book.save(path)
    return path


@pytest.mark.parametrize("era", [SUB_ICB_ERA, CCG_ERA], ids=["sub-icb", "ccg"])
def test_both_eras_load(tmp_path, era):
    tables = load_epcn(_workbook(tmp_path / "ePCN.xlsx", era))
    assert list(tables.pcns.columns) == [
        "pcn_code",
        "pcn_name",
        "sicbl_ods",
        "open_date",
        "close_date",
    ]
    assert list(tables.memberships.columns) == [
        "practice_code",
        "practice_name",
        "practice_sicbl_ods",
        "pcn_code",
        "pcn_name",
        "start_date",
        "end_date",
    ]
    assert tables.pcns["close_date"].notna().tolist() == [False, True, False]
    assert tables.pcns["open_date"].iloc[2] == pd.Timestamp("2022-04-01")
    assert tables.memberships["practice_sicbl_ods"].eq("16C").all()


def test_membership_at_dates(tmp_path):
    memberships = load_epcn(_workbook(tmp_path / "ePCN.xlsx", SUB_ICB_ERA)).memberships
    before = membership_at(memberships, "2021-06-01")
    assert dict(zip(before["practice_code"], before["pcn_code"], strict=True)) == {
        "A00001": "U00001",
        "A00002": "U00002",
    }
    assert before.attrs["n_practices_in_multiple_pcns"] == 0
    overlap = membership_at(memberships, "2022-04-01")
    assert overlap.attrs["n_practices_in_multiple_pcns"] == 1
    assert overlap.attrs["practices_in_multiple_pcns"] == ["A00002"]
    assert (
        overlap.set_index("practice_code").loc["A00002", "pcn_code"] == "U00003"
    )  # latest start wins
    current = membership_at(memberships)
    assert sorted(current["pcn_code"]) == ["U00001", "U00003"]
    assert len(memberships) == 3  # input not modified


def test_missing_column_names_sheet_and_close_match(tmp_path):
    era = {
        "details": SUB_ICB_ERA["details"],
        "partners": ["Partner\nOrganisation\nCod"] + SUB_ICB_ERA["partners"][1:],
    }
    with pytest.raises(SourceFormatError) as info:
        load_epcn(_workbook(tmp_path / "ePCN.xlsx", era))
    message = str(info.value)
    assert (
        "ePCN.xlsx" in message
        and "Partner Organisation Code" in message
        and "PCN Core Partner Details" in message
    )
    assert "did you mean" in message


def test_bad_date_names_rows(tmp_path):
    rows = [PARTNERS[0][:8] + ["2019-13-45", None, True]]
    with pytest.raises(SourceFormatError, match="2019-13-45"):
        load_epcn(_workbook(tmp_path / "ePCN.xlsx", SUB_ICB_ERA, rows))


@pytest.mark.reference
def test_reference_2023_02_sub_icb_era():
    tables = load_epcn(reference_file("epcn", "ePCN-2023-02.xlsx"))
    assert len(tables.pcns) == 1329 and tables.pcns["close_date"].isna().sum() == 1264
    assert len(tables.memberships) == 7455
    current = membership_at(tables.memberships)
    assert len(current) == 6391 and current["practice_code"].is_unique


@pytest.mark.reference
def test_reference_2022_04_ccg_era():
    tables = load_epcn(reference_file("epcn", "ePCN-2022-04-ccg-era.xlsx"))
    assert len(tables.pcns) == 1318 and len(tables.memberships) == 7359
    assert tables.pcns["sicbl_ods"].notna().all()
    at_date = membership_at(tables.memberships, "2022-04-01")
    assert at_date["practice_code"].is_unique
    assert len(at_date) > 6000
