"""QOF raw-data loader: demo files, the zip, region-split and older-year variants, bad input."""

import zipfile

import pandas as pd
import pytest

from pophealth.prepare import prepare
from pophealth.sources import identify_source
from pophealth.sources.census import load_nomis_table
from pophealth.sources.common import SourceFormatError
from pophealth.sources.ods_successors import gp_practice_successions, load_ods_successors
from pophealth.sources.qof import (
    GROUP_TITLES,
    list_type_min_age,
    load_qof,
    load_qof_achievement,
    load_qof_geographies,
    load_qof_prevalence,
    qof_year,
)

HEADER = "PRACTICE_CODE,GROUP_CODE,REGISTER,PATIENT_LIST_TYPE,PRACTICE_LIST_SIZE\n"


def _qof_files(demo_raw):
    return sorted(
        p
        for p in demo_raw.iterdir()
        if p.name.startswith(("PREVALENCE_", "ACHIEVEMENT_", "MAPPING_"))
    )


def test_demo_files_load_with_every_register_and_its_list_type(demo_raw):
    qof = load_qof(_qof_files(demo_raw), achievement=True)
    assert qof.year == "2024-25"
    prev = qof.prevalence
    assert set(prev["group_code"]) == set(GROUP_TITLES)
    assert not prev.duplicated(["practice_code", "group_code"]).any()
    types = prev.drop_duplicates("group_code").set_index("group_code")["list_type"]
    assert types["HYP"] == "TOTAL" and types["DM"] == "17OV" and types["OST"] == "50OV"
    assert types["AST"] == "06OV"
    # an age-restricted list is never larger than the whole list
    wide = prev.pivot(index="practice_code", columns="group_code", values="list_size")
    assert (wide["DM"] <= wide["HYP"]).all() and (wide["OST"] < wide["DM"]).all()
    assert (prev["register"] <= prev["list_size"]).all()
    assert prev.loc[prev["group_code"] == "MH", "group_description"].iloc[0] == "Mental health"
    assert set(qof.geographies["practice_code"]) == set(prev["practice_code"])
    assert {"REGISTER", "ACHIEVED_POINTS"} == set(qof.achievement["measure"])
    # achievement REGISTER rows reconcile with the prevalence file
    registers = qof.achievement[qof.achievement["measure"] == "REGISTER"]["value"].sum()
    assert registers == prev["register"].sum()


def test_zip_and_csvs_give_the_same_data(demo_raw, tmp_path):
    archive = tmp_path / "QOF2425.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in _qof_files(demo_raw):
            out.write(path, arcname=path.name)
        out.writestr("ORGANISATION_REFERENCE_2425.csv", "PRACTICE_CODE\nY90001\n")
    from_zip = load_qof(archive)
    from_csv = load_qof(_qof_files(demo_raw))
    pd.testing.assert_frame_equal(from_zip.prevalence, from_csv.prevalence)
    assert from_zip.files == ("QOF2425.zip",)
    assert identify_source(archive) == "qof"


def test_region_split_prevalence_files_are_concatenated(demo_raw, tmp_path):
    whole = pd.read_csv(demo_raw / "PREVALENCE_2425.csv", dtype=str)
    half = whole["PRACTICE_CODE"].isin(sorted(whole["PRACTICE_CODE"].unique())[:30])
    whole[half].to_csv(tmp_path / "PREVALENCE_LONDON_2425.csv", index=False)
    whole[~half].to_csv(tmp_path / "PREVALENCE_SOUTH_WEST_2425.csv", index=False)
    split = load_qof(sorted(tmp_path.glob("*.csv"))).prevalence
    joined = load_qof(demo_raw / "PREVALENCE_2425.csv").prevalence
    key = ["practice_code", "group_code"]
    pd.testing.assert_frame_equal(
        split.sort_values(key).reset_index(drop=True),
        joined.sort_values(key).reset_index(drop=True),
    )
    # the same practice in two region files is refused, not double counted
    whole.head(3).to_csv(tmp_path / "PREVALENCE_NORTH_2425.csv", index=False)
    with pytest.raises(SourceFormatError, match="repeat"):
        load_qof(sorted(tmp_path.glob("*.csv")))


def test_older_year_column_names(tmp_path):
    path = tmp_path / "PREVALENCE_2122_V2.csv"
    path.write_text(
        "PRACTICE_CODE,INDICATOR_GROUP_CODE,REGISTER_SIZE,PATIENT_LIST_TYPE,PATIENT_LIST_SIZE\n"
        "A81001,DM,262,17OV,3368\nA81001,AF,106,TOTAL,4150\n"
    )
    frame = load_qof_prevalence(path)
    assert frame["register"].tolist() == [262, 106]
    assert frame["list_size"].tolist() == [3368, 4150]
    assert qof_year(path) == "2021-22" and qof_year("QOF2425.zip") == "2024-25"
    geo = tmp_path / "MAPPING_NHS_GEOGRAPHIES_1920.csv"
    geo.write_text(
        "REGION_ODS_CODE,STP_ODS_CODE,CCG_ODS_CODE,PCN_ODS_CODE,PRACTICE_CODE,PRACTICE_NAME\n"
        "Y63,QHM,00L,U12345,A81001,THE DENSHAM SURGERY\n"
    )
    row = load_qof_geographies(geo).iloc[0]
    assert (row["icb_ods"], row["sicbl_ods"], row["pcn_code"]) == ("QHM", "00L", "U12345")


def test_list_type_ages():
    assert [list_type_min_age(t) for t in ("TOTAL", "17OV", "06OV", "30_74")] == [0, 17, 6, None]


@pytest.mark.parametrize(
    ("text", "match", "column"),
    [
        (
            "PRACTICE_CODE,GROUP_CODE,REGISTER,PRACTICE_LIST_SIZE\nA81001,HYP,10,100\n",
            "required column not found",
            "PATIENT_LIST_TYPE",
        ),
        (HEADER + "A81001,HYP,ten,TOTAL,100\n", "ten", "REGISTER"),
        (HEADER + "A81001,HYP,10,TOTAL,100\nA81001,HYP,11,TOTAL,100\n", "repeat", "GROUP_CODE"),
        (HEADER + "A81001,HYP,10,ADULTS,100\n", "PATIENT_LIST_TYPE values", "PATIENT_LIST_TYPE"),
        (HEADER + "A81001,HYP,-3,TOTAL,100\n", "schema", "register"),
        (HEADER + ",HYP,3,TOTAL,100\n", "no practice code", "PRACTICE_CODE"),
    ],
)
def test_bad_prevalence_files_name_file_column_examples_and_fix(tmp_path, text, match, column):
    path = tmp_path / "PREVALENCE_2425.csv"
    path.write_text(text)
    with pytest.raises(SourceFormatError, match=match) as error:
        load_qof_prevalence(path)
    message = str(error.value)
    assert "PREVALENCE_2425.csv" in message and column in message and "fix:" in message


def test_file_set_errors(tmp_path):
    (tmp_path / "MAPPING_INDICATORS_2425.csv").write_text("INDICATOR_CODE,GROUP_CODE\nAF001,AF\n")
    with pytest.raises(SourceFormatError, match="no QOF prevalence file"):
        load_qof([tmp_path / "MAPPING_INDICATORS_2425.csv"])
    (tmp_path / "PREVALENCE_2324.csv").write_text(HEADER + "A81001,AF,1,TOTAL,10\n")
    with pytest.raises(SourceFormatError, match="more than one year"):
        load_qof(sorted(tmp_path.glob("*.csv")))
    empty_zip = tmp_path / "QOF2425.zip"
    with zipfile.ZipFile(empty_zip, "w") as out:
        out.writestr("readme.txt", "nothing")
    with pytest.raises(SourceFormatError, match="no QOF raw-data CSVs"):
        load_qof(empty_zip)
    (tmp_path / "QOF2324.zip").write_text("not a zip")
    with pytest.raises(SourceFormatError, match="not a readable zip"):
        load_qof(tmp_path / "QOF2324.zip")
    bad = tmp_path / "ACHIEVEMENT_LONDON_2425.csv"
    bad.write_text("PRACTICE_CODE,INDICATOR_CODE,VALUE\nA81001,AF001,3\n")
    with pytest.raises(SourceFormatError, match="MEASURE"):
        load_qof_achievement(bad)


def test_official_names_and_header_sniffing(tmp_path):
    for name in (
        "PREVALENCE_2425.csv",
        "ACHIEVEMENT_NORTH_EAST_AND_YORKSHIRE_2425.csv",
        "MAPPING_INDICATORS_2425.csv",
        "MAPPING_NHS_GEOGRAPHIES_2425.csv",
        "QOF2425.zip",
    ):
        assert identify_source(tmp_path / name) == "qof", name
    sniffed = tmp_path / "download.csv"
    sniffed.write_text(HEADER)
    assert identify_source(sniffed) == "qof"


def test_prepare_stores_qof_and_counts_practices_it_cannot_place(demo_raw, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in demo_raw.iterdir():
        (raw / path.name).symlink_to(path)
    (raw / "PREVALENCE_2425.csv").unlink()
    prevalence = pd.read_csv(demo_raw / "PREVALENCE_2425.csv", dtype=str)
    extra = prevalence.head(2).assign(PRACTICE_CODE="Z99999")
    pd.concat([prevalence, extra]).to_csv(raw / "PREVALENCE_2425.csv", index=False)
    manifest = prepare(raw, tmp_path / "prepared", progress=None)
    stored = pd.read_parquet(tmp_path / "prepared" / "qof_prevalence.parquet")
    published = pd.concat([prevalence, extra])
    # nothing dropped: the practice that closed after the year is carried by its successor (the
    # membership rule), every other practice is stored, and every register entry is counted
    carried = manifest["notes"]["qof_practices_carried_by_successor"]["examples"]
    successions, _ = gp_practice_successions(load_ods_successors(raw / "succ.csv"), "succ.csv")
    merged = successions.loc[successions["chain"].str.count(">") == 1, "predecessor_code"]
    assert carried == merged.tolist()
    assert set(stored["practice_code"]) == set(published["PRACTICE_CODE"]) - set(carried)
    assert stored["register"].sum() == published["REGISTER"].astype(int).sum()
    assert len(stored) == len(published[~published["PRACTICE_CODE"].isin(carried)])
    assert manifest["sources"]["qof"]["release"] == "2024-25"
    assert manifest["notes"]["qof_practices_not_in_registrations"]["examples"] == ["Z99999"]
    assert "qof_prev_hyp" not in manifest["indicators_unavailable"]


def test_core20plus_census_tables_load(demo_raw, tmp_path):
    care = load_nomis_table(demo_raw / "census2021-ts039-lsoa.csv")
    assert {"care_total", "care_none"} <= set(care.columns)
    assert (care["care_none"] <= care["care_total"]).all()
    for table, column in (("ts029", "english_none"), ("ts045", "cars_none")):
        assert column in load_nomis_table(demo_raw / f"census2021-{table}-lsoa.csv")
    alone = load_nomis_table(demo_raw / "census2021-ts003-lsoa.csv")
    assert (alone["hhcomp_alone_66_plus"] < alone["hhcomp_total"]).all()
    broken = tmp_path / "census2021-ts045-lsoa.csv"
    text = (demo_raw / "census2021-ts045-lsoa.csv").read_text()
    broken.write_text(text.replace("No cars or vans in household", "No car"))
    with pytest.raises(SourceFormatError, match="No cars or vans in household"):
        load_nomis_table(broken)
