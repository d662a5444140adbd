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
