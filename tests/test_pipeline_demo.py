"""The pipeline on the demo ICS: prepare, geography, indicators (golden file), profiles, CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pophealth import cli, geography
from pophealth.sources.common import sha256_of

GOLDEN = Path(__file__).parent / "golden" / "demo_indicators.csv"
GOLDEN_COLUMNS = [
    "area_code",
    "level",
    "basis",
    "indicator_id",
    "numerator",
    "denominator",
    "value",
    "lower_ci",
    "upper_ci",
    "parent_value",
    "comparator_value",
    "comparison_95",
    "comparison_99_8",
]


def test_manifest_records_every_source_with_checksums(demo_raw, demo_prepared):
    manifest = json.loads((demo_prepared / "manifest.json").read_text())
    sources = manifest["sources"]
    for name in (
        "registrations_lsoa",
        "practice_totals",
        "practice_age_bands",
        "epcn",
        "workforce",
        "payments",
        "iod2025",
        "lsoa21_lookup",
        "census_ts037",
        "lsoa_boundaries",
    ):
        assert name in sources, name
        for f in sources[name]["files"]:
            assert f["sha256"] == sha256_of(next(demo_raw.rglob(f["name"])))
        assert sources[name]["release"]
        assert sources[name]["rows"] > 0
    assert manifest["synthetic"] is True
    assert manifest["pophealth_version"]
    assert manifest["indicators_unavailable"] == {}


def test_demo_has_the_levels_a_user_expects(demo_data):
    reg = demo_data.register
    system = demo_data.resolve_system(
        reg[(reg["level"] == "system") & (reg["basis"] == "registered")]["area_code"].iloc[0]
    )
    areas = reg[reg["system_code"] == system]
    assert (areas["level"] == "neighbourhood").sum() >= 12
    assert (areas["area_type"] == "lad").sum() >= 3
    assert (areas["area_type"] == "sicbl").sum() >= 2
    assert demo_data.manifest["counts"]["practices"] >= 60
    assert demo_data.manifest["counts"]["lsoas"] >= 600


def test_no_patient_is_lost_between_the_lsoa_file_and_coverage(demo_raw, demo_data):
    raw = pd.read_csv(demo_raw / "gp-reg-pat-prac-lsoa-all.csv")
    regs = demo_data.registrations
    # the store keeps the demo ICS's practices; every one of their patients is there
    kept = raw[raw["PRACTICE_CODE"].isin(set(demo_data.practices["practice_code"]))]
    assert regs["patients"].sum() == kept["NUMBER_OF_PATIENTS"].sum()
    # and England (every practice of the national file) counts every patient of the file
    totals = pd.read_csv(demo_raw / "gp-reg-pat-prac-all.csv")
    table = demo_data.indicator_table
    england = table[
        (table["area_code"] == "ALL")
        & (table["basis"] == "registered")
        & (table["indicator_id"] == "list_size")
    ]
    assert england["value"].iloc[0] == totals["NUMBER_OF_PATIENTS"].sum()
    statuses = regs.groupby("lsoa_status")["patients"].sum()
    assert statuses.get("closed", 0) > 0
    assert statuses.get("outside", 0) > 0
    assert statuses.get("wales", 0) > 0
    everyone = demo_data.profile(
        "ALL" if False else demo_data.register.query("level == 'system'")["area_code"].iloc[0]
    )
    coverage = everyone.coverage
    assert coverage["patients"].sum() > 0
    assert set(coverage["category"]) >= {"CLOSED (invalid or unmatched postcode)"}


def test_neighbourhoods_add_up_to_their_system(demo_data):
    table = demo_data.indicator_table
    size = table[(table["indicator_id"] == "list_size") & (table["basis"] == "registered")]
    system = size[size["level"] == "system"]
    for _, row in system.iterrows():
        practices = demo_data.practices
        in_system = practices[practices["icb_code"] == row["area_code"]]
        assert row["value"] == in_system["registered_patients"].sum()
        neigh = size[(size["level"] == "neighbourhood") & (size["system_code"] == row["area_code"])]
        unaligned = in_system[in_system["pcn_code"].isna()]["registered_patients"].sum()
        assert neigh["value"].sum() + unaligned == row["value"]


def test_wilson_intervals_contain_values_and_comparisons_are_consistent(demo_data):
    t = demo_data.indicator_table
    with_ci = t.dropna(subset=["lower_ci", "upper_ci"])
    assert len(with_ci) > 100
    assert (with_ci["lower_ci"] <= with_ci["value"] + 1e-9).all()
    assert (with_ci["value"] <= with_ci["upper_ci"] + 1e-9).all()
    assert (with_ci["lower_99_8"] <= with_ci["lower_ci"] + 1e-9).all()
    higher = with_ci[
        with_ci["comparison_95"].isin(["higher", "worse"]) & (with_ci["polarity"] != "high is good")
    ]
    assert (higher["lower_ci"] > higher["comparator_value"]).all()


def test_deprivation_drives_need_in_the_demo(demo_data):
    """The synthetic ICS has the gradients it was built with (a realism check of the pipeline)."""
    t = demo_data.indicator_table
    neigh = t[t["level"] == "neighbourhood"].pivot_table(
        index="area_code", columns="indicator_id", values="value"
    )
    assert neigh["imd_score"].corr(neigh["pct_bad_health"]) > 0.3
    assert neigh["imd_score"].corr(neigh["pct_age_65_plus"]) < 0
    assert neigh["imd_score"].corr(neigh["gp_fte_per_10k_weighted"]) < 0


def _golden_frame(table: pd.DataFrame) -> pd.DataFrame:
    out = table[GOLDEN_COLUMNS].copy()
    for col in GOLDEN_COLUMNS[4:11]:  # numerator ... comparator_value
        out[col] = out[col].astype(float).round(6)
    return out.sort_values(["area_code", "basis", "indicator_id"]).reset_index(drop=True)


def test_indicator_table_matches_golden_file(demo_data):
    got = _golden_frame(demo_data.indicator_table)
    if os.environ.get("POPHEALTH_UPDATE_GOLDEN") or not GOLDEN.exists():
        GOLDEN.parent.mkdir(exist_ok=True)
        got.to_csv(GOLDEN, index=False)
        if not os.environ.get("POPHEALTH_UPDATE_GOLDEN"):
            pytest.fail("golden file was missing: written now, re-run to compare")
    want = pd.read_csv(GOLDEN, keep_default_na=False, na_values=[""])
    got = pd.read_csv(
        pd.io.common.StringIO(got.to_csv(index=False)), keep_default_na=False, na_values=[""]
    )
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("level", ["neighbourhood", "place", "system"])
def test_profile_frames_for_every_level(demo_data, level):
    area = demo_data.areas(level).iloc[0]
    p = demo_data.profile(area["area_code"], basis=area["basis"])
    assert len(p.indicators) >= 10
    assert p.headline.startswith(area["area_name"])
    assert p.synthetic
    assert p.deciles["area_pct"].sum() == pytest.approx(100)
    if area["basis"] == "registered":
        assert p.pyramid["area_pct"].sum() == pytest.approx(100)
    assert p.map_geojson is not None and len(p.map_geojson["features"]) == len(p.map_values)
    assert len(p.provenance) >= 10
    assert p.inverse_care["quintiles"]["quintile"].tolist() == [1, 2, 3, 4, 5]
    assert "Slope index" in p.inverse_care["sii_text"]
    assert len(p.funnels) >= 1


def test_resident_and_registered_bases_of_the_system(demo_data):
    code = demo_data.register.query("level == 'system' and basis == 'registered'")[
        "area_code"
    ].iloc[0]
    reg = demo_data.profile(code, basis="registered")
    res = demo_data.profile(code, basis="resident")
    assert reg.area["basis"] == "registered" and res.area["basis"] == "resident"
    assert len(reg.basis_comparison) >= 10


def test_unknown_codes_get_close_matches(demo_data):
    code = demo_data.areas("neighbourhood")["area_code"].iloc[0]
    with pytest.raises(geography.UnknownAreaError, match="Closest valid codes"):
        demo_data.profile(code[:-1] + "X")
    with pytest.raises(geography.UnknownAreaError, match="Unknown ICB"):
        demo_data.resolve_system("E54000998X")


def test_ods_codes_are_accepted_for_systems(demo_data):
    reg = demo_data.register.query("level == 'system' and basis == 'registered'").iloc[0]
    ods = [k for k, v in demo_data.aliases.items() if v == reg["area_code"]][0]
    assert demo_data.resolve_system(ods.lower()) == reg["area_code"]


def test_cli_indicators_and_areas(demo_prepared, tmp_path, capsys):
    out = tmp_path / "ind.csv"
    assert (
        cli.main(
            [
                "indicators",
                "--data",
                str(demo_prepared),
                "--level",
                "neighbourhood",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    table = pd.read_csv(out)
    assert set(table["level"]) == {"neighbourhood"}
    assert {"lower_99_8", "comparison_99_8", "method"} <= set(table.columns)
    assert cli.main(["areas", "--data", str(demo_prepared), "--level", "place"]) == 0
    assert "lad" in capsys.readouterr().out
    assert (
        cli.main(
            [
                "run",
                "--data",
                str(demo_prepared),
                "--system",
                "E54000XYZ",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "Closest valid codes" in capsys.readouterr().err


def test_imd2019_release_can_be_chosen(demo_prepared):
    import pophealth

    data = pophealth.load(demo_prepared, imd="2019", cache=False)
    t = data.indicator_table
    core20 = t[(t["indicator_id"] == "pct_core20") & (t["level"] == "system")]["value"]
    assert core20.notna().all() and (core20 > 0).all()
    area = data.areas("neighbourhood")["area_code"].iloc[0]
    assert "IoD2019" in data.profile(area).imd_release
    assert np.isfinite(t[t["indicator_id"] == "imd_score"]["value"]).all()


def test_analyst_neighbourhood_groupings(demo_prepared, capsys):
    import pophealth

    groupings = Path(__file__).resolve().parents[1] / "docs" / "example_neighbourhoods.yaml"
    data = pophealth.load(demo_prepared, neighbourhoods=groupings, cache=False)
    neigh = data.areas("neighbourhood")
    assert set(neigh["area_code"]) == {"INT01", "INT02"}
    assert set(neigh["area_type"]) == {"custom"}
    p = data.profile("INT01")
    size = p.indicators.set_index("indicator_id").loc["list_size", "value"]
    members = data.practices[
        data.practices["practice_code"].isin([f"Y9{n:04d}" for n in range(1, 11)])
    ]
    assert size == members["registered_patients"].sum()
    assert any("analyst groupings" in n for n in p.notes)
    assert any("in no neighbourhood" in n for n in p.notes)
    assert (
        cli.main(
            [
                "areas",
                "--data",
                str(demo_prepared),
                "--neighbourhoods",
                str(groupings),
                "--level",
                "neighbourhood",
            ]
        )
        == 0
    )
    assert "INT02" in capsys.readouterr().out


def test_profiles_count_practices_left_out_of_workforce_rates(demo_prepared):
    import pophealth

    data = pophealth.load(demo_prepared)
    practices = data.practices
    missing = practices[practices["gp_fte"].isna()]
    assert len(missing), "the demo data should include practices without workforce figures"
    pcn = missing["pcn_code"].iloc[0]
    in_pcn = practices[practices["pcn_code"] == pcn]
    gone = in_pcn[in_pcn["gp_fte"].isna()]
    note = next(n for n in data.profile(pcn).notes if "no GP workforce figures" in n)
    assert note.startswith(f"{len(gone)} of the area's {len(in_pcn)} practices")
    assert f"{gone['registered_patients'].sum():,.0f} registered patients" in note
    # The rate's denominator really leaves them out.
    row = data.profile(pcn).indicators.set_index("indicator_id").loc["gp_fte_per_10k"]
    kept = in_pcn[in_pcn["gp_fte"].notna()]
    assert row["denominator"] == kept["registered_patients"].sum()
    # A neighbourhood whose practices all have figures gets no such note.
    complete = practices.groupby("pcn_code")["gp_fte"].apply(lambda s: s.notna().all())
    full = complete[complete].index[0]
    assert not any("no GP workforce figures" in n for n in data.profile(full).notes)
