# Official headers and rows are long literal lines.
# ruff: noqa: E501
import numpy as np
import pytest

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
    path = tmp_path / "wf.csv"
    path.write_text(
        HEADER.replace("TOTAL_NURSES_FTE", "TOTAL_NURSE_FTE")
        + "A1,X,U1,P,16C,N,QHM,I,Y,R,1,1,0,a,b,c,d,1,1,1,1,1,1,1,1\n"
    )
    with pytest.raises(SourceFormatError) as info:
        load_workforce(path)
    assert "TOTAL_NURSES_FTE" in str(info.value) and "'TOTAL_NURSE_FTE'" in str(info.value)


def test_non_numeric_fte(tmp_path):
    path = tmp_path / "wf.csv"
    path.write_text(HEADER + "A1,X,U1,P,16C,N,QHM,I,Y,R,1,1,0,a,b,c,d,1,one,1,1,1,1,1,1\n")
    with pytest.raises(SourceFormatError, match="line 2: 'one'"):
        load_workforce(path)
