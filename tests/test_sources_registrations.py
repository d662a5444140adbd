# Official headers and rows are long literal lines.
# ruff: noqa: E501

import numpy as np
import pandas as pd
import pytest
from reference_helpers import reference_file

from pophealth.sources.common import SourceFormatError
from pophealth.sources.registrations import (
    AGE_BANDS,
    load_practice_age_bands,
    load_practice_map,
    load_practice_single_age,
    load_practice_totals,
    load_registrations_by_lsoa,
)

LSOA_HEADER = "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,LSOA_CODE,SEX,{count}\n"


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "count", ["NUMBER_OF_PATIENTS", "Number of Patients", "Number of patients"]
)
@pytest.mark.parametrize(
    ("date", "expected"),
    [("04JAN2021", "2021-01-04"), ("01Jan2022", "2022-01-01"), ("2025-10-01", "2025-10-01")],
)
def test_lsoa_variants(tmp_path, count, date, expected):
    path = _write(
        tmp_path / "gp-reg-pat-prac-lsoa-all.csv",
        LSOA_HEADER.format(count=count)
        + f"GP_PRAC_PAT_LIST,{date},A81001,THE DENSHAM SURGERY,E01011959,ALL,7\n"
        + f"GP_PRAC_PAT_LIST,{date},A81001,THE DENSHAM SURGERY,W01000001,ALL,3\n"
        + f"GP_PRAC_PAT_LIST,{date},A81001,THE DENSHAM SURGERY,CLOSED,ALL,2\n"
        + f'GP_PRAC_PAT_LIST,{date},A81002,"SMITH, JONES & PARTNERS",NO2011,ALL,1\n',
    )
    frame = load_registrations_by_lsoa(path)
    assert list(frame.columns) == [
        "extract_date",
        "practice_code",
        "practice_name",
        "lsoa_code",
        "patients",
    ]
    assert frame["lsoa_code"].tolist() == ["E01011959", "W01000001", "CLOSED", "NO2011"]
    assert frame["patients"].tolist() == [7, 3, 2, 1]
    assert frame["patients"].dtype == "int64"
    assert (frame["extract_date"] == pd.Timestamp(expected)).all()
    assert frame["practice_name"].iloc[3] == "SMITH, JONES & PARTNERS"


def test_lsoa_missing_column_suggests_close_match(tmp_path):
    path = _write(
        tmp_path / "gp-reg-pat-prac-lsoa-all.csv",
        "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,LSOA_CD,SEX,NUMBER_OF_PATIENTS\n"
        "GP_PRAC_PAT_LIST,2025-10-01,A81001,X,E01011959,ALL,7\n",
    )
    with pytest.raises(SourceFormatError) as info:
        load_registrations_by_lsoa(path)
    message = str(info.value)
    assert (
        "gp-reg-pat-prac-lsoa-all.csv" in message
        and "LSOA_CODE" in message
        and "'LSOA_CD'" in message
    )


def test_lsoa_non_numeric_count_names_rows(tmp_path):
    path = _write(
        tmp_path / "gp-reg-pat-prac-lsoa-all.csv",
        LSOA_HEADER.format(count="NUMBER_OF_PATIENTS")
        + "GP_PRAC_PAT_LIST,2025-10-01,A81001,X,E01011959,ALL,7\n"
        + "GP_PRAC_PAT_LIST,2025-10-01,A81001,X,E01011960,ALL,seven\n",
    )
    with pytest.raises(SourceFormatError) as info:
        load_registrations_by_lsoa(path)
    assert "line 3: 'seven'" in str(info.value) and "NUMBER_OF_PATIENTS" in str(info.value)


def test_lsoa_sex_split_file_is_refused(tmp_path):
    path = _write(
        tmp_path / "gp-reg-pat-prac-lsoa-male.csv",
        LSOA_HEADER.format(count="NUMBER_OF_PATIENTS")
        + "GP_PRAC_PAT_LIST,2025-10-01,A81001,X,E01011959,MALE,7\n",
    )
    with pytest.raises(SourceFormatError, match="SEX = ALL"):
        load_registrations_by_lsoa(path)


def test_lsoa_file_of_national_size_loads_every_row_and_patient(tmp_path):
    n_rows = 1_200_000
    rng = np.random.default_rng(1)
    practices = np.array([f"A{i:05d}" for i in range(6300)])
    lsoas = np.array([f"E01{i:06d}" for i in range(33755)] + ["CLOSED", "W01000001"])
    frame = pd.DataFrame(
        {
            "PUBLICATION": "GP_PRAC_PAT_LIST",
            "EXTRACT_DATE": "2025-10-01",
            "PRACTICE_CODE": rng.choice(practices, n_rows),
            "PRACTICE_NAME": "THE HEALTH CENTRE",
            "LSOA_CODE": rng.choice(lsoas, n_rows),
            "SEX": "ALL",
            "NUMBER_OF_PATIENTS": rng.integers(1, 300, n_rows),
        }
    )
    path = tmp_path / "gp-reg-pat-prac-lsoa-all.csv"
    frame.to_csv(path, index=False)
    warm = tmp_path / "warm.csv"
    frame.head(10).to_csv(warm, index=False)
    assert len(load_registrations_by_lsoa(warm)) == 10
    loaded = load_registrations_by_lsoa(path)
    assert len(loaded) == n_rows
    assert loaded["patients"].sum() == frame["NUMBER_OF_PATIENTS"].sum()
    # Speed is measured at England scale by benchmarks/bench_national.py (prepare), never in a
    # timed test: a shared 2-core machine made this one flaky.


def test_practice_totals_ccg_era_header(tmp_path):
    path = _write(
        tmp_path / "gp-reg-pat-prac-all.csv",
        "PUBLICATION,EXTRACT_DATE,TYPE,CCG_CODE,ONS_CCG_CODE,CODE,POSTCODE,SEX,AGE,NUMBER_OF_PATIENTS\n"
        "GP_PRAC_PAT_LIST,01Jan2022,GP,16C,E38000247,A81001,TS18 1HU,ALL,ALL,3827\n"
        "GP_PRAC_PAT_LIST,01Jan2022,GP,16C,E38000247,A81002,TS18 2AW,ALL,ALL,18706\n",
    )
    frame = load_practice_totals(path)
    assert list(frame.columns) == [
        "extract_date",
        "practice_code",
        "sicbl_ods",
        "sicbl_code",
        "postcode",
        "patients",
    ]
    assert frame["sicbl_ods"].tolist() == ["16C", "16C"] and frame["patients"].sum() == 22533


def test_age_bands(tmp_path):
    header = "PUBLICATION,EXTRACT_DATE,ORG_TYPE,ORG_CODE,ONS_CODE,POSTCODE,SEX,AGE_GROUP_5,NUMBER_OF_PATIENTS\n"
    rows = ["GP_PRAC_PAT_LIST,2025-10-01,ICB,QHM,E54000050,,ALL,ALL,100\n"]
    total = 0
    for sex in ("MALE", "FEMALE"):
        for i, band in enumerate(AGE_BANDS):
            rows.append(f"GP_PRAC_PAT_LIST,2025-10-01,GP,A81001,,TS18 1HU,{sex},{band},{i + 1}\n")
            total += i + 1
        rows.append(f"GP_PRAC_PAT_LIST,2025-10-01,GP,A81001,,TS18 1HU,{sex},ALL,{total}\n")
    rows.append(f"GP_PRAC_PAT_LIST,2025-10-01,GP,A81001,,TS18 1HU,ALL,ALL,{total}\n")
    path = _write(tmp_path / "gp-reg-pat-prac-quin-age.csv", header + "".join(rows))
    frame = load_practice_age_bands(path)
    assert len(frame) == 2 * len(AGE_BANDS)
    assert set(frame["sex"]) == {"male", "female"} and frame["patients"].sum() == total
    assert "ALL" not in set(frame["age_band"])


def test_age_bands_warn_when_bands_do_not_add_up(tmp_path):
    header = "PUBLICATION,EXTRACT_DATE,ORG_TYPE,ORG_CODE,ONS_CODE,POSTCODE,SEX,AGE_GROUP_5,NUMBER_OF_PATIENTS\n"
    path = _write(
        tmp_path / "gp-reg-pat-prac-quin-age.csv",
        header
        + "P,2025-10-01,GP,A81001,,X,MALE,0_4,5\nP,2025-10-01,GP,A81001,,X,FEMALE,95+,5\nP,2025-10-01,GP,A81001,,X,ALL,ALL,11\n",
    )
    with pytest.warns(UserWarning, match="A81001"):
        frame = load_practice_age_bands(path)
    assert frame["patients"].sum() == 10


def test_single_age(tmp_path):
    header = "EXTRACT_DATE,SUB_ICB_LOCATION_CODE,ONS_SUB_ICB_LOCATION_CODE,ORG_CODE,POSTCODE,SEX,AGE,NUMBER_OF_PATIENTS\n"
    path = _write(
        tmp_path / "gp-reg-pat-prac-sing-age-female.csv",
        header
        + "2025-10-01,16C,E38000247,A81001,TS18 1HU,FEMALE,0,10\n"
        + "2025-10-01,16C,E38000247,A81001,TS18 1HU,FEMALE,94,2\n"
        + "2025-10-01,16C,E38000247,A81001,TS18 1HU,FEMALE,95+,1\n"
        + "2025-10-01,16C,E38000247,A81001,TS18 1HU,FEMALE,ALL,13\n",
    )
    frame = load_practice_single_age(path)
    assert frame["age"].tolist() == [0, 94, 95] and frame["sex"].unique().tolist() == ["female"]


@pytest.mark.reference
def test_reference_practice_totals_2025_10():
    frame = load_practice_totals(reference_file("registrations", "gp-reg-pat-prac-all-2025-10.csv"))
    assert len(frame) == 6202
    assert frame["patients"].sum() == 63_919_527
    assert (frame["extract_date"] == pd.Timestamp("2025-10-01")).all()
    assert frame["practice_code"].is_unique


@pytest.mark.reference
def test_reference_practice_map_2022_ccg_era():
    frame = load_practice_map(reference_file("registrations", "gp-reg-pat-prac-map-2022-01.csv"))
    assert len(frame) == 6527
    first = frame.iloc[0]
    assert (first["practice_code"], first["pcn_code"], first["sicbl_ods"], first["icb_ods"]) == (
        "A81001",
        "U89141",
        "16C",
        "QHM",
    )
    assert first["sicbl_code"].startswith("E38") and first["icb_code"].startswith("E54")
    assert (frame["extract_date"] == pd.Timestamp("2022-01-01")).all()
    # the NHS England commissioning region: the ICB's parent in profiles
    assert first["region_code"] == "E40000009" and first["region_ods"] == "Y63"
    assert frame["region_code"].nunique() == 7 and frame["region_code"].notna().all()


def test_practice_map_without_region_columns_has_empty_regions(tmp_path):
    path = tmp_path / "gp-reg-pat-prac-map.csv"
    path.write_text(
        "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,PRACTICE_POSTCODE,PCN_CODE,"
        "PCN_NAME,ONS_SUB_ICB_LOCATION_CODE,SUB_ICB_LOCATION_CODE,SUB_ICB_LOCATION_NAME,"
        "ONS_ICB_CODE,ICB_CODE,ICB_NAME\n"
        "GP_PRAC_PAT_LIST,2025-10-01,A81001,ONE,TS1 1AA,U1,PCN ONE,E38000001,01A,SUB,"
        "E54000001,QAA,ICB\n",
        encoding="utf-8",
    )
    frame = load_practice_map(path)
    assert list(frame.columns[-3:]) == ["region_code", "region_ods", "region_name"]
    assert frame[["region_code", "region_ods", "region_name"]].isna().all().all()
