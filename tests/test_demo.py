"""Tests of the synthetic demo dataset generator (pophealth.demo).

Checked with pandas/openpyxl/geopandas directly (not pophealth.sources) against the official
formats, and against the real reference files where /work/shared/reference is available.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pytest

from pophealth.demo import DEMO_SYSTEMS, add_cli, write_demo_dataset
from pophealth.demo import generator as gen

DEMO_ICB = "E54000999"


def _reference_dir() -> Path:
    env = os.environ.get("POPHEALTH_REFERENCE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "reference"


def _reference(relative: str) -> Path:
    path = _reference_dir() / relative
    if not path.exists():
        pytest.skip(f"reference file not available: {path}")
    return path


def _header(path: Path, encoding: str = "utf-8") -> list[str]:
    with open(path, encoding=encoding, newline="") as handle:
        return next(csv.reader(handle))


def _norm(label: str) -> str:
    return re.sub(r"\s+", " ", label.replace("; measures: Value", "")).strip()


def _sha256_tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_demo_dataset(tmp_path_factory.mktemp("demo42"), seed=42, scale="ics")


@pytest.fixture(scope="module")
def lsoa_rows(demo: dict[str, Path]) -> pd.DataFrame:
    return pd.read_csv(demo["registrations_lsoa"], dtype=str, keep_default_na=False).astype(
        {"NUMBER_OF_PATIENTS": "int64"}
    )


@pytest.fixture(scope="module")
def lookup21(demo: dict[str, Path]) -> pd.DataFrame:
    return pd.read_csv(demo["lsoa21_lookup"], dtype=str)


@pytest.fixture(scope="module")
def iod25(demo: dict[str, Path]) -> pd.DataFrame:
    return pd.read_csv(demo["iod2025"])


# ---------------------------------------------------------------------------------------------
# files and exact headers
# ---------------------------------------------------------------------------------------------


def test_all_files_written_with_official_names(demo: dict[str, Path]) -> None:
    assert set(demo) == set(gen.FILE_NAMES)
    for name, path in demo.items():
        assert path.name == gen.FILE_NAMES[name]
        assert path.exists() and path.stat().st_size > 0, name
    assert "\u2013" in demo["workforce"].name  # en dash, as published
    for suffix in (".shx", ".dbf", ".prj", ".cpg"):
        assert demo["lsoa_boundaries"].with_suffix(suffix).exists()
    assert "synthetic" in demo["readme"].read_text().lower()


def test_csv_headers_exact(demo: dict[str, Path]) -> None:
    assert _header(demo["registrations_lsoa"]) == [
        "PUBLICATION", "EXTRACT_DATE", "PRACTICE_CODE", "PRACTICE_NAME", "LSOA_CODE", "SEX",
        "NUMBER_OF_PATIENTS",
    ]  # fmt: skip
    assert _header(demo["practice_age_bands"]) == gen.QUINARY_HEADER
    for key in ("practice_single_age_male", "practice_single_age_female"):
        assert _header(demo[key]) == gen.SINGLE_AGE_HEADER
    assert _header(demo["practice_map"])[-1] == "SUPPLIER_NAME"
    assert _header(demo["lsoa11_lsoa21_lookup"]) == [
        "LSOA11CD", "LSOA11NM", "LSOA21CD", "LSOA21NM", "CHGIND", "LAD22CD", "LAD22NM",
        "LAD22NMW", "ObjectId",
    ]  # fmt: skip
    assert _header(demo["lsoa21_lookup"])[:4] == [
        "LSOA21CD",
        "LSOA21NM",
        "SICBL23CD",
        "SICBL23CDH",
    ]
    iod19 = _header(demo["iod2019"])
    assert len(iod19) == 57 and iod19[0] == "LSOA code (2011)" and iod19[-1].endswith(") ")
    iod25 = _header(demo["iod2025"])
    assert len(iod25) == 56 and "Decile (where 1 is most deprived 10% of LSO" in iod25[36]
    assert _header(demo["census_ts011"])[3].endswith("; measures: Value")
    assert _header(demo["census_ts054"])[3].endswith("; measures: Value")
    for key, labels in gen.CENSUS_HEADERS.items():
        assert _header(demo[f"census_{key}"]) == ["date", "geography", "geography code", *labels]
    raw = demo["payments"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw[:4000]


def test_headers_match_real_reference_files(demo: dict[str, Path]) -> None:
    ref_totals = _reference("registrations/gp-reg-pat-prac-all-2025-10.csv")
    assert _header(demo["practice_totals"]) == _header(ref_totals)
    ref_pay = _reference("payments/nhspaymentsgp-22-23-prac.csv")
    assert _header(demo["payments"], "utf-8-sig") == _header(ref_pay, "utf-8-sig")
    ref_iod = _reference(
        "imd/File_7_IoD2025_All_Ranks_Scores_Deciles_Population_Denominators.EXCERPT_first6rows.csv"
    )
    assert _header(demo["iod2025"]) == _header(ref_iod)
    # IoD2019 File 7 = the domain pattern of File 2 plus the denominators of File 6
    ref_f6 = pd.read_csv(_reference("imd/File_6_-_IoD2019_Population_Denominators.csv.gz"), nrows=0)
    # (the reference File 6 is a re-save that lost File 7's trailing space, so compare stripped)
    assert [h.strip() for h in _header(demo["iod2019"])[-5:]] == list(ref_f6.columns[-5:])
    ref_f2 = pd.read_csv(_reference("imd/File_2_-_IoD2019_Domains_of_Deprivation.csv.gz"), nrows=0)
    assert set(ref_f2.columns) <= set(_header(demo["iod2019"]))


def test_census_headers_match_reference_category_labels(demo: dict[str, Path]) -> None:
    pairs = {
        "ts011": "ts011_household_deprivation21_lsoa21_WIDE_reconstructed.csv",
        "ts021": "ts021_ethnicity21_lsoa21_WIDE_reconstructed.csv",
        "ts038": "ts038_disability21_lsoa21_ew_WIDE_reconstructed.csv",
        "ts054": "ts054_household_tenure21_lsoa21_WIDE_reconstructed.csv",
    }
    for table, ref_name in pairs.items():
        ref = {_norm(c) for c in _header(_reference(f"census/{ref_name}"))[1:]}
        ours = {_norm(c) for c in _header(demo[f"census_{table}"])}
        assert ref <= ours, (table, sorted(ref - ours))


def test_epcn_workbook_headers_match_real_file(demo: dict[str, Path]) -> None:
    ours = openpyxl.load_workbook(demo["epcn"], read_only=True)
    assert ours.sheetnames == ["PCNDetails", "PCN Core Partner Details"]
    ours_headers = {ws.title: next(ws.iter_rows(values_only=True)) for ws in ours.worksheets}
    assert list(ours_headers["PCNDetails"]) == gen.EPCN_DETAILS_HEADER
    assert ours_headers["PCN Core Partner Details"][-1].endswith("Match ")
    real = openpyxl.load_workbook(_reference("epcn/ePCN-2023-02.xlsx"), read_only=True)
    for ws in real.worksheets:
        assert tuple(ours_headers[ws.title]) == next(ws.iter_rows(values_only=True))


def test_workforce_columns_follow_official_definitions(demo: dict[str, Path]) -> None:
    columns = _header(demo["workforce"])
    for needed in ("PRAC_CODE", "PCN_CODE", "TOTAL_PATIENTS", "TOTAL_GP_EXTGL_FTE", "ADMIN_SOURCE"):
        assert needed in columns
    book = openpyxl.load_workbook(
        _reference("workforce/workforce-practice-detailed-definitions.xlsx"), read_only=True
    )
    official = [r[1] for r in book.worksheets[0].iter_rows(min_row=2, values_only=True)]
    positions = [official.index(c) for c in columns]  # every column is an official field…
    assert positions == sorted(positions)  # …in the official order


# ---------------------------------------------------------------------------------------------
# determinism and size
# ---------------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(demo: dict[str, Path], tmp_path: Path) -> None:
    again = write_demo_dataset(tmp_path / "again", seed=42, scale="ics")
    first = _sha256_tree(demo["readme"].parent)
    assert _sha256_tree(again["readme"].parent) == first
    other = _sha256_tree(write_demo_dataset(tmp_path / "other", seed=7)["readme"].parent)
    assert other["gp-reg-pat-prac-lsoa-all.csv"] != first["gp-reg-pat-prac-lsoa-all.csv"]


def test_ics_size_minimums(
    demo: dict[str, Path], lookup21: pd.DataFrame, lsoa_rows: pd.DataFrame
) -> None:
    everyone = pd.read_csv(demo["practice_map"], dtype=str)
    mapping = everyone[everyone["ONS_ICB_CODE"] == DEMO_ICB]
    assert mapping["PRACTICE_CODE"].nunique() >= 60
    assert mapping["PRACTICE_CODE"].str.fullmatch(r"Y9\d{4}").all()
    assert mapping.loc[mapping["PCN_CODE"] != "U", "PCN_CODE"].nunique() >= 12
    demo_lsoas = lookup21[lookup21["ICB23CD"] == DEMO_ICB]
    assert len(demo_lsoas) >= 600
    assert demo_lsoas["LAD23CD"].nunique() >= 3 and demo_lsoas["SICBL23CD"].nunique() >= 2
    # demo ICB + neighbouring ring + a synthetic rest of England of 40 ICBs
    assert lookup21["ICB23CD"].nunique() == 42
    assert set(DEMO_SYSTEMS) <= set(lookup21["ICB23CD"])
    in_demo = lsoa_rows["PRACTICE_CODE"].isin(set(mapping["PRACTICE_CODE"]))
    assert 500_000 <= lsoa_rows.loc[in_demo, "NUMBER_OF_PATIENTS"].sum() <= 750_000
    assert demo_lsoas["LSOA21NM"].str.contains("Demo").all()
    assert everyone["ICB_NAME"].str.contains("Demo").all()
    # no code of the rest of England collides with the demo ICS's
    assert everyone["PRACTICE_CODE"].is_unique and lookup21["LSOA21CD"].is_unique


def test_rest_of_england_shares_the_demo_region(demo: dict[str, Path]) -> None:
    mapping = pd.read_csv(demo["practice_map"], dtype=str)
    region = mapping.loc[mapping["ONS_ICB_CODE"] == DEMO_ICB, "ONS_COMM_REGION_CODE"].unique()
    assert len(region) == 1
    in_region = mapping.loc[mapping["ONS_COMM_REGION_CODE"] == region[0], "ONS_ICB_CODE"]
    assert in_region.nunique() >= 2  # the demo ICB's region is not the ICB itself
    assert mapping["ONS_COMM_REGION_CODE"].nunique() == 7


# ---------------------------------------------------------------------------------------------
# internal consistency
# ---------------------------------------------------------------------------------------------


def test_practice_totals_equal_lsoa_sums_and_age_files(
    demo: dict[str, Path], lsoa_rows: pd.DataFrame
) -> None:
    lsoa_sum = lsoa_rows.groupby("PRACTICE_CODE")["NUMBER_OF_PATIENTS"].sum()
    totals = pd.read_csv(demo["practice_totals"], dtype={"NUMBER_OF_PATIENTS": "int64"})
    assert (totals[["TYPE", "SEX", "AGE"]] == ["GP", "ALL", "ALL"]).all().all()
    totals = totals.set_index("CODE")["NUMBER_OF_PATIENTS"]
    pd.testing.assert_series_equal(lsoa_sum.sort_index(), totals.sort_index(), check_names=False)

    quin = pd.read_csv(demo["practice_age_bands"], dtype=str, keep_default_na=False)
    quin["NUMBER_OF_PATIENTS"] = quin["NUMBER_OF_PATIENTS"].astype(int)
    assert {"GP", "ICB", "SUB_ICB_LOCATION"} <= set(quin["ORG_TYPE"])
    gp = quin[quin["ORG_TYPE"] == "GP"]
    all_all = gp[(gp["SEX"] == "ALL") & (gp["AGE_GROUP_5"] == "ALL")].set_index("ORG_CODE")
    assert (all_all["NUMBER_OF_PATIENTS"].sort_index() == totals.sort_index()).all()
    assert set(gp.loc[gp["SEX"] == "ALL", "AGE_GROUP_5"]) == {"ALL"}  # ALL sex only as total
    bands = gp[gp["AGE_GROUP_5"] != "ALL"].groupby(["ORG_CODE", "SEX"])["NUMBER_OF_PATIENTS"].sum()
    by_sex = gp[(gp["AGE_GROUP_5"] == "ALL") & (gp["SEX"] != "ALL")]
    alls = by_sex.set_index(["ORG_CODE", "SEX"])["NUMBER_OF_PATIENTS"]
    assert (bands.sort_index() == alls.sort_index()).all()
    assert (bands.groupby(level=0).sum().sort_index() == totals.sort_index()).all()
    icb = quin[
        (quin["ORG_TYPE"] == "ICB") & (quin["SEX"] == "ALL") & (quin["AGE_GROUP_5"] == "ALL")
    ]
    assert icb["NUMBER_OF_PATIENTS"].sum() == totals.sum()

    for sex in ("male", "female"):
        single = pd.read_csv(demo[f"practice_single_age_{sex}"], dtype=str)
        single["NUMBER_OF_PATIENTS"] = single["NUMBER_OF_PATIENTS"].astype(int)
        assert set(single["AGE"]) == {*map(str, range(95)), "95+", "ALL"}
        years = single[single["AGE"] != "ALL"].copy()
        years["band"] = [
            "95+" if a == "95+" else f"{int(a) // 5 * 5}_{int(a) // 5 * 5 + 4}"
            for a in years["AGE"]
        ]
        by_band = years.groupby(["ORG_CODE", "band"])["NUMBER_OF_PATIENTS"].sum()
        q = gp[(gp["SEX"] == sex.upper()) & (gp["AGE_GROUP_5"] != "ALL")]
        q = q.set_index(["ORG_CODE", "AGE_GROUP_5"])["NUMBER_OF_PATIENTS"]
        assert (by_band.sort_index().to_numpy() == q.sort_index().to_numpy()).all()

    workforce = pd.read_csv(demo["workforce"], keep_default_na=False).set_index("PRAC_CODE")
    assert (workforce["TOTAL_PATIENTS"].sort_index() == totals.sort_index()).all()
    assert (
        workforce["TOTAL_MALE"] + workforce["TOTAL_FEMALE"] == workforce["TOTAL_PATIENTS"]
    ).all()


def test_registration_quirks_present(
    demo: dict[str, Path], lsoa_rows: pd.DataFrame, lookup21: pd.DataFrame, iod25: pd.DataFrame
) -> None:
    assert (lsoa_rows["EXTRACT_DATE"] == "2025-10-01").all() and (lsoa_rows["SEX"] == "ALL").all()
    codes = lsoa_rows["LSOA_CODE"]
    closed = lsoa_rows[codes == "CLOSED"]
    assert closed["PRACTICE_CODE"].nunique() >= 0.7 * lsoa_rows["PRACTICE_CODE"].nunique()
    assert codes.str.startswith("W01").any()
    english = codes[codes.str.fullmatch(r"E01\d{6}")]
    census = pd.read_csv(demo["census_ts037"], dtype=str)
    known = (
        set(lookup21["LSOA21CD"]) | set(iod25["LSOA code (2021)"]) | set(census["geography code"])
    )
    outside = set(english) - known
    assert outside, "expected some valid-format LSOAs outside the loaded data"
    neighbour = set(lookup21.loc[lookup21["ICB23CD"] != DEMO_ICB, "LSOA21CD"])
    assert neighbour & set(english), "expected patients living in the neighbouring ICB"
    # every LSOA of the lookup is also in IoD2025, every census table and the boundaries
    assert (
        set(lookup21["LSOA21CD"]) == set(iod25["LSOA code (2021)"]) == set(census["geography code"])
    )


def test_epcn_history_and_unaligned(demo: dict[str, Path]) -> None:
    book = openpyxl.load_workbook(demo["epcn"], read_only=True)
    # the demo ICS's PCNs (U9...) and practices (Y9...); the rest of England's follow them
    details = [
        r
        for r in book["PCNDetails"].iter_rows(min_row=2, values_only=True)
        if r[0].startswith("U9")
    ]
    partners = [
        r
        for r in book["PCN Core Partner Details"].iter_rows(min_row=2, values_only=True)
        if r[0].startswith("Y9")
    ]
    closed = [r for r in details if r[5]]
    assert len(closed) == 1 and re.fullmatch(r"\d{8}", closed[0][5])
    assert all(re.fullmatch(r"\d{8}", r[8]) for r in partners)
    ended = [r for r in partners if r[9]]
    current = {r[0] for r in partners if not r[9]}
    movers = {r[0] for r in ended} & current
    assert len(movers) >= 2  # closed PCN's members and a practice that moved PCN
    assert {r[4] for r in ended} & {closed[0][0]}
    workforce = pd.read_csv(demo["workforce"], keep_default_na=False)
    unaligned = workforce.loc[workforce["PCN_CODE"] == "Unaligned", "PRAC_CODE"]
    assert len(unaligned) >= 1 and not set(unaligned) & current
    assert (workforce["TOTAL_GP_FTE"] == "NA").any()
    assert workforce["GP_SOURCE"].value_counts().index[0] == "Fully provided"
    assert {"Includes FTE Estimates", "Fully Estimated"} <= set(workforce["GP_SOURCE"])


def test_lsoa_2011_lookup_change_codes(demo: dict[str, Path]) -> None:
    lookup = pd.read_csv(demo["lsoa11_lsoa21_lookup"], dtype=str, keep_default_na=False)
    assert set(lookup["CHGIND"]) == {"U", "S", "M", "X"}
    assert (lookup["CHGIND"] == "U").mean() > 0.9
    splits = lookup[lookup["CHGIND"] == "S"].groupby("LSOA11CD")["LSOA21CD"].nunique()
    assert (splits >= 2).all()
    merges = lookup[lookup["CHGIND"] == "M"].groupby("LSOA21CD")["LSOA11CD"].nunique()
    assert (merges >= 2).all()
    unchanged = lookup[lookup["CHGIND"] == "U"]
    assert (unchanged["LSOA11CD"] == unchanged["LSOA21CD"]).all()
    iod19 = pd.read_csv(demo["iod2019"], dtype={"LSOA code (2011)": str})
    assert set(iod19["LSOA code (2011)"]) == set(lookup["LSOA11CD"])


def test_boundaries_tile_in_british_national_grid(
    demo: dict[str, Path], lookup21: pd.DataFrame
) -> None:
    shapes = gpd.read_file(demo["lsoa_boundaries"])
    assert shapes.crs.to_epsg() == 27700
    assert {"LSOA21CD", "LSOA21NM"} <= set(shapes.columns)
    # the demo ICS and its ring are mapped; the coarse rest of England is not
    mapped = lookup21[lookup21["ICB23CD"].isin(DEMO_SYSTEMS)]
    assert set(shapes["LSOA21CD"]) == set(mapped["LSOA21CD"])
    xmin, ymin, xmax, ymax = shapes.total_bounds
    assert 100_000 < xmin < xmax < 700_000 and 0 < ymin < ymax < 700_000
    union = shapes.union_all()
    assert union.geom_type == "Polygon"  # contiguous
    assert union.area == pytest.approx(shapes.area.sum(), rel=1e-6)  # no overlaps


# ---------------------------------------------------------------------------------------------
# realism
# ---------------------------------------------------------------------------------------------


def test_deprivation_spans_national_deciles_with_skew(
    lookup21: pd.DataFrame, iod25: pd.DataFrame
) -> None:
    decile = iod25.columns[6]
    demo_lsoas = iod25[
        iod25["LSOA code (2021)"].isin(lookup21.loc[lookup21["ICB23CD"] == DEMO_ICB, "LSOA21CD"])
    ]
    assert set(demo_lsoas[decile]) == set(range(1, 11))
    core20 = demo_lsoas[decile].le(2).mean()
    assert 0.25 <= core20 <= 0.40
    ranks = iod25.iloc[:, 5]
    assert ranks.between(1, 33_755).all() and ranks.is_unique
    # ranks and scores agree: higher score = more deprived = lower rank
    assert np.corrcoef(iod25.iloc[:, 4], ranks)[0, 1] < -0.8


def test_deprived_areas_younger_and_sicker(demo: dict[str, Path], iod25: pd.DataFrame) -> None:
    age = pd.read_csv(demo["census_ts007a"]).set_index("geography code")
    health = pd.read_csv(demo["census_ts037"]).set_index("geography code")
    disability = pd.read_csv(demo["census_ts038"]).set_index("geography code")
    imd = iod25.set_index("LSOA code (2021)")["Index of Multiple Deprivation (IMD) Score"]
    older = age.loc[:, "Age: Aged 65 to 69 years":].sum(axis=1) / age["Age: Total"]
    bad = health.iloc[:, -2:].sum(axis=1) / health.iloc[:, 2]
    disabled = disability["Disability: Disabled under the Equality Act"] / disability.iloc[:, 2]
    frame = pd.DataFrame({"imd": imd, "older": older, "bad": bad, "disabled": disabled}).dropna()
    corr = frame.corr()["imd"]
    assert corr["older"] < -0.3
    assert corr["bad"] > 0.3
    assert corr["disabled"] > 0.3
    # cell-key perturbation: table totals differ slightly but never by more than a few people
    diff = (age["Age: Total"] - health.iloc[:, 2]).abs()
    assert diff.max() <= 6 and (diff > 0).any()


def test_inverse_care_law_and_weighting(
    demo: dict[str, Path], lsoa_rows: pd.DataFrame, iod25: pd.DataFrame
) -> None:
    scores = iod25.set_index("LSOA code (2021)")["Index of Multiple Deprivation (IMD) Score"]
    rows = lsoa_rows[lsoa_rows["LSOA_CODE"].isin(scores.index)].copy()
    rows["weighted_score"] = rows["NUMBER_OF_PATIENTS"] * rows["LSOA_CODE"].map(scores)
    grouped = rows.groupby("PRACTICE_CODE")[["weighted_score", "NUMBER_OF_PATIENTS"]].sum()
    practice_imd = grouped["weighted_score"] / grouped["NUMBER_OF_PATIENTS"]
    pay = pd.read_csv(demo["payments"], encoding="utf-8-sig").set_index("Practice Code")
    workforce = pd.read_csv(demo["workforce"], na_values=["NA"], keep_default_na=False).set_index(
        "PRAC_CODE"
    )
    weighted = pay["Number of Weighted Patients (Last Known Figure)"]
    registered = pay["Number of Registered Patients (Last Known Figure)"]
    frame = pd.DataFrame(
        {
            "imd": practice_imd,
            "gp_per_weighted": workforce["TOTAL_GP_FTE"] / weighted,
            "weight_ratio": weighted / registered,
        }
    ).dropna()
    assert frame.corr().loc["imd", "gp_per_weighted"] < -0.3
    assert 0.8 < frame["weight_ratio"].mean() < 1.2
    gp_per_1000 = 1000 * workforce["TOTAL_GP_FTE"].sum() / workforce["TOTAL_PATIENTS"].sum()
    assert 0.3 < gp_per_1000 < 1.0


# ---------------------------------------------------------------------------------------------
# England scale (shrunken smoke run) and CLI
# ---------------------------------------------------------------------------------------------


def test_england_scale_smoke(tmp_path: Path) -> None:
    small = {"n_core_lsoa": 1500, "n_practices": 250, "n_lad": 20, "n_sicbl": 8, "n_icb": 4}
    written = write_demo_dataset(tmp_path, seed=3, scale="england", _config_overrides=small)
    lookup = pd.read_csv(written["lsoa21_lookup"], dtype=str)
    assert len(lookup) == 1500 and lookup["ICB23CD"].nunique() == 4
    mapping = pd.read_csv(written["practice_map"], dtype=str)
    assert mapping["PRACTICE_CODE"].nunique() == 250
    iod = pd.read_csv(written["iod2025"])
    assert sorted(iod.iloc[:, 6].unique()) == list(range(1, 11))
    with pytest.raises(ValueError, match="scale"):
        write_demo_dataset(tmp_path, scale="wales")


def test_cli_subcommand_writes_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="pophealth")
    add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo-data", "--out", str(tmp_path), "--seed", "5"])
    assert args.scale == "ics"
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "gp-reg-pat-prac-lsoa-all.csv" in out
    assert (tmp_path / "ePCN.xlsx").exists()
