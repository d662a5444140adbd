# Official headers and rows are long literal lines.
# ruff: noqa: E501
import numpy as np
import pandas as pd
import pytest
from loader_helpers import format_error

from pophealth.sources import workforce
from pophealth.sources.common import SourceFormatError
from pophealth.sources.workforce import load_workforce

HEADER = (
    "PRAC_CODE,PRAC_NAME,PCN_CODE,PCN_NAME,SUB_ICB_CODE,SUB_ICB_NAME,ICB_CODE,ICB_NAME,REGION_CODE,REGION_NAME,"
    "TOTAL_PATIENTS,TOTAL_MALE,TOTAL_FEMALE,GP_SOURCE,NURSE_SOURCE,DPC_SOURCE,ADMIN_SOURCE,TOTAL_GP_HC,"
    "TOTAL_GP_FTE,TOTAL_GP_EXTG_FTE,TOTAL_GP_EXL_FTE,TOTAL_GP_EXTGL_FTE,TOTAL_NURSES_FTE,TOTAL_DPC_FTE,TOTAL_ADMIN_FTE\n"
)


def test_na_nd_and_source_flags(tmp_path):
    path = tmp_path / "1 General Practice – October 2025 Practice Level - Detailed.csv"
    path.write_text(
        HEADER
        + "A81001,THE DENSHAM SURGERY,U89141,STOCKTON PCN,16C,NENC,QHM,NENC ICB,Y63,NEY,3827,1900,1927,"
        "Fully provided,Includes FTE Estimates,Fully Estimated,Fully provided,3,2.5,2.1,2.0,1.6,1.2,0.8,4.4\n"
        + "A81002,QUEENS PARK,Unaligned,Unaligned,16C,NENC,QHM,NENC ICB,Y63,NEY,18706,9000,9706,"
        "No data provided,No valid or current data,Fully provided,Fully provided,NA,NA,ND,NA,NA,3.0,2.0,10.0\n",
        encoding="utf-8",
    )
    frame = load_workforce(path)
    assert list(frame.columns)[:6] == [
        "practice_code",
        "practice_name",
        "pcn_code",
        "sicbl_ods",
        "icb_ods",
        "total_patients",
    ]
    assert frame["gp_fte"].tolist()[0] == 2.5 and np.isnan(frame["gp_fte"].iloc[1])
    assert np.isnan(frame["gp_extg_fte"].iloc[1])  # ND
    # codes are trimmed and upper-cased (docs/data_quality.md), the marker included
    assert frame["pcn_code"].tolist() == ["U89141", "UNALIGNED"]
    assert frame["nurse_source"].tolist() == ["Includes FTE Estimates", "No valid or current data"]
    assert frame["total_patients"].tolist() == [3827, 18706]


def test_missing_fte_column(tmp_path):
    message = format_error(
        load_workforce,
        tmp_path / "wf.csv",
        HEADER.replace("TOTAL_NURSES_FTE", "TOTAL_NURSE_FTE")
        + "A1,X,U1,P,16C,N,QHM,I,Y,R,1,1,0,a,b,c,d,1,1,1,1,1,1,1,1\n",
    )
    assert "TOTAL_NURSES_FTE" in message and "'TOTAL_NURSE_FTE'" in message


def test_non_numeric_fte(tmp_path):
    path = tmp_path / "wf.csv"
    path.write_text(HEADER + "A1,X,U1,P,16C,N,QHM,I,Y,R,1,1,0,a,b,c,d,1,one,1,1,1,1,1,1\n")
    with pytest.raises(SourceFormatError, match="line 2: 'one'"):
        load_workforce(path)


# --------------------------------------------------------------------------------------------
# Full detail (issue13): every role's FTE and headcount, checked against the real definitions
# --------------------------------------------------------------------------------------------

DEFINITIONS = ("workforce", "workforce-practice-detailed-definitions.xlsx")


def _definition_fields() -> list[str]:
    from reference_helpers import reference_file

    path = reference_file(*DEFINITIONS)
    frame = pd.read_excel(path, sheet_name=0)
    return frame["Name of Field"].dropna().astype(str).str.strip().tolist()


def test_loader_knows_every_role_field_of_the_real_definitions_workbook():
    fields = _definition_fields()
    assert len(fields) == 805  # the publisher's column count
    known = workforce.official_columns()
    # every FTE/headcount/flag column the loader reads is a published field ...
    assert known - set(fields) == set()
    # ... and every staff-group or role total (FTE and headcount, not the sex/age splits) of
    # the publication is read
    totals = {
        f
        for f in fields
        if f.startswith("TOTAL_")
        and (f.endswith("_FTE") or f.endswith("_HC"))
        and f != "TOTAL_PATIENTS"
    }
    assert totals and totals - known == set()
    assert {f for f in fields if f.endswith("_SOURCE")} <= known


def test_roles_are_grouped_as_the_publisher_groups_them():
    fields = _definition_fields()
    order = [f for f in fields if f.startswith("TOTAL_") and f.endswith("_FTE")]
    assert order == [f"TOTAL_{role.stem}_FTE" for role in workforce.ROLES]
    prefixes = {"gp": ("GP",), "nurse": ("NURSES", "N_"), "dpc": ("DPC",), "admin": ("ADMIN",)}
    for role in workforce.ROLES:
        assert role.stem.startswith(prefixes[role.group]), role


def test_demo_file_has_every_role_and_roles_add_up_to_group_totals(demo_raw):
    path = next(demo_raw.glob("*Practice Level - Detailed.csv"))
    frame = load_workforce(path)
    assert list(frame.columns) == list(workforce.WORKFORCE_SCHEMA.columns)
    known = frame[frame["nurse_fte"].notna()]
    nurse_roles = [f"{r.stem.lower()}_fte" for r in workforce.ROLES if r.stem.startswith("N_")]
    np.testing.assert_allclose(known[nurse_roles].sum(axis=1), known["nurse_fte"], atol=1e-4)
    gp = frame[frame["gp_fte"].notna()]
    trainees = [c for c in frame if c.startswith("gp_trn_gr_") and c.endswith("_fte")]
    np.testing.assert_allclose(
        gp[trainees].sum(axis=1), gp["gp_fte"] - gp["gp_extg_fte"], atol=1e-4
    )
    assert frame["dpc_splw_fte"].notna().any() and frame["admin_recept_hc"].notna().any()
    # "No data provided" rows carry NA for every role of the group
    no_gp = frame["gp_source"].isin(workforce.MISSING_SOURCES)
    assert no_gp.any() and frame.loc[no_gp, trainees].isna().all().all()


def test_older_release_without_new_roles_loads_them_as_nan(tmp_path):
    path = tmp_path / "1 General Practice – March 2022 Practice Level - Detailed.csv"
    path.write_text(
        HEADER.rstrip("\n") + ",TOTAL_GP_SEN_PTNR_FTE,TOTAL_DPC_SPLW_FTE\n"
        "A81001,X,U1,P,16C,N,QHM,I,Y,R,10,5,5,a,b,c,d,1,2,2,2,2,1,1,1,0.5,NA\n",
        encoding="utf-8",
    )
    frame = load_workforce(path)
    assert frame["gp_sen_ptnr_fte"].tolist() == [0.5]
    assert np.isnan(frame["dpc_splw_fte"].iloc[0])  # published NA
    assert np.isnan(frame["dpc_ost_fte"].iloc[0])  # not collected before April 2024


def test_non_numeric_role_fte_names_the_role_column(tmp_path):
    path = tmp_path / "wf.csv"
    path.write_text(
        HEADER.rstrip("\n") + ",TOTAL_DPC_PHARMA_FTE\n"
        "A1,X,U1,P,16C,N,QHM,I,Y,R,1,1,0,a,b,c,d,1,1,1,1,1,1,1,1,two\n"
    )
    with pytest.raises(SourceFormatError) as info:
        load_workforce(path)
    assert "TOTAL_DPC_PHARMA_FTE" in str(info.value) and "'two'" in str(info.value)


def test_negative_role_headcount_breaks_the_schema(tmp_path):
    path = tmp_path / "wf.csv"
    path.write_text(
        HEADER.rstrip("\n") + ",TOTAL_ADMIN_RECEPT_HC\n"
        "A1,X,U1,P,16C,N,QHM,I,Y,R,1,1,0,a,b,c,d,1,1,1,1,1,1,1,1,-3\n"
    )
    with pytest.raises(SourceFormatError, match="admin_recept_hc"):
        load_workforce(path)
