"""prepare: discovery of official files, bad raw folders, listings and what cannot be built."""

from __future__ import annotations

import shutil

import pytest

from pophealth import cli
from pophealth.prepare import PrepareError, classify_lsoa_codes, discover_raw_files, prepare


def test_empty_raw_folder_says_what_is_missing(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    with pytest.raises(PrepareError, match="LSOA 2021 → sub-ICB → ICB → LAD lookup"):
        prepare(tmp_path / "raw", tmp_path / "out", progress=None)
    assert cli.main(["prepare", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]) == 2
    assert "IoD2025 File 7" in capsys.readouterr().err


def test_missing_raw_folder_is_a_clear_error(tmp_path):
    with pytest.raises(PrepareError, match="does not exist"):
        discover_raw_files(tmp_path / "nowhere")


def test_two_releases_of_one_source_are_refused(demo_raw, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(demo_raw, raw)
    shutil.copy(raw / "gp-reg-pat-prac-all.csv", raw / "gp-reg-pat-prac-all-2025-07.csv")
    with pytest.raises(PrepareError, match="Two or more files for source 'practice_totals'"):
        discover_raw_files(raw)


def test_listing_yaml_names_files_and_releases(demo_raw, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(demo_raw, raw)
    (raw / "sources.yaml").write_text(
        "sources:\n  payments: {path: nhspaymentsgp-24-25-prac-csv.csv, release: '2024-25 final'}\n"
    )
    found = discover_raw_files(raw)
    assert found.releases["payments"] == "2024-25 final"
    (raw / "sources.yaml").write_text("sources:\n  payments: {path: missing.csv}\n")
    with pytest.raises(PrepareError, match="missing.csv, which does not exist"):
        discover_raw_files(raw)


def test_prepare_reports_indicators_it_cannot_build(demo_raw, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(demo_raw, raw)
    for name in ("census2021-ts037-lsoa.csv", "nhspaymentsgp-24-25-prac-csv.csv"):
        (raw / name).unlink()
    manifest = prepare(raw, tmp_path / "out", progress=None)
    missing = manifest["indicators_unavailable"]
    assert missing["pct_bad_health"] == "needs census_ts037"
    assert missing["gp_fte_per_10k_weighted"] == "needs payments"
    assert "gp_fte_per_10k" not in missing


def test_lsoa_codes_are_classified_not_dropped():
    import pandas as pd

    codes = pd.Series(["E01000001", "CLOSED", "NO2011", "W01000001", "E01999999", None])
    got = classify_lsoa_codes(codes, {"E01000001"}).tolist()
    assert got == ["matched", "closed", "unknown", "wales", "outside", "unknown"]


def test_ages_0_17_come_from_the_single_year_of_age_lists(demo_raw, demo_prepared):
    import json

    import pandas as pd

    import pophealth
    from pophealth.sources.registrations import load_practice_single_age

    manifest = json.loads((demo_prepared / "manifest.json").read_text())
    single = manifest["sources"]["practice_single_age"]
    assert {f["name"] for f in single["files"]} == {
        "gp-reg-pat-prac-sing-age-male.csv",
        "gp-reg-pat-prac-sing-age-female.csv",
    }
    assert all(len(f["sha256"]) == 64 for f in single["files"])
    assert "single year of age" in manifest["notes"]["age_0_17"]

    # Independent count from the raw files: every practice, both sexes, ages 0 to 17.
    raw = pd.concat(
        load_practice_single_age(demo_raw / f"gp-reg-pat-prac-sing-age-{sex}.csv")
        for sex in ("male", "female")
    )
    young = raw[raw["age"] <= 17].groupby("practice_code")["patients"].sum()
    data = pophealth.load(demo_prepared, cache=False)
    pcn = data.practices["pcn_code"].dropna().iloc[0]
    members = data.practices.loc[data.practices["pcn_code"] == pcn, "practice_code"]
    row = data.profile(pcn).indicators.set_index("indicator_id").loc["pct_age_0_17"]
    assert row["numerator"] == young.reindex(members).sum()
    all_ages = raw.groupby("practice_code")["patients"].sum().reindex(members).sum()
    assert row["denominator"] == all_ages
    assert row["value"] == pytest.approx(100 * young.reindex(members).sum() / all_ages)
    assert any("aged 0-17: single year of age" in n for n in data.profile(pcn).notes)


def test_ages_0_17_fall_back_to_five_year_bands_without_single_age_lists():
    import pandas as pd

    from pophealth.attribution import practice_age_measures

    bands = pd.DataFrame(
        {
            "practice_code": ["A"] * 5 + ["B"] * 5,
            "sex": ["female"] * 10,
            "age_band": ["0_4", "5_9", "10_14", "15_19", "20_24"] * 2,
            "patients": [10, 10, 10, 10, 60] * 2,
        }
    )
    exact = pd.DataFrame(
        {"practice_code": ["A"], "age_0_17_patients": [35.0], "single_age_patients": [100.0]}
    )
    out = practice_age_measures(bands, exact).set_index("practice_code")
    assert (out.loc["A", "pct_age_0_17__num"], out.loc["A", "pct_age_0_17__den"]) == (35, 100)
    assert out.loc["B", "pct_age_0_17__num"] == pytest.approx(36.0)  # 30 + 0.6 x 10
    assert out.loc["B", "pct_age_0_17__den"] == 100
    assert out.loc["A", "pct_age_65_plus__den"] == 100
    # Single-age lists only (no five-year bands): 0-17 still built.
    only = practice_age_measures(bands.iloc[:0], exact)
    assert only.set_index("practice_code").loc["A", "pct_age_0_17__num"] == 35


def test_lsoa_codes_are_classified_per_cell_as_published():
    import pandas as pd

    # each cell classified as its own trimmed, upper-cased text (a missing cell as "")
    cells = ["E01000001", " e01000001", None, "CLOSED", "closed ", "W01000001", "nan", ""]
    cells += ["S01000001", "E01000001", None, "no2011"]
    for dtype in ("str", object):
        codes = pd.Series(cells, dtype=dtype, index=range(7, 7 + len(cells)))
        got = classify_lsoa_codes(codes, {"E01000001"})
        one_by_one = [
            classify_lsoa_codes(pd.Series([cell], dtype=object), {"E01000001"}).iloc[0]
            for cell in cells
        ]
        assert got.tolist() == one_by_one and got.index.equals(codes.index)
        assert got.dtype == object
    assert one_by_one[:4] == ["matched", "matched", "unknown", "closed"]
