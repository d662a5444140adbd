"""The pipeline on real published reference files (skipped where ../shared/reference is absent).

* A resident-based system profile for a real ICB from IoD2025, the lookups, Census and boundaries
  alone (no registrations), with its indicators checked against an independent computation.
* A prepared store built from a folder mixing real reference files with demo files.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from reference_helpers import (
    official_census,
    official_iod2025_partial,
    official_lsoa11_lsoa21_lookup,
    official_lsoa21_geojson,
    official_lsoa21_lookup,
    reference_dir,
    reference_file,
)

import pophealth
from pophealth.prepare import prepare
from pophealth.sources.common import sha256_of

pytestmark = pytest.mark.reference

CENSUS = {
    "TS011": "ts011_household_deprivation21_lsoa21_WIDE_reconstructed.csv",
    "TS021": "ts021_ethnicity21_lsoa21_WIDE_reconstructed.csv",
    "TS038": "ts038_disability21_lsoa21_ew_WIDE_reconstructed.csv",
    "TS054": "ts054_household_tenure21_lsoa21_WIDE_reconstructed.csv",
}
CHESHIRE_AND_MERSEYSIDE = "E54000008"  # ODS QYG


@pytest.fixture(scope="module")
def real_prepared(tmp_path_factory):
    if reference_dir() is None:
        pytest.skip("../shared/reference is absent")
    raw = tmp_path_factory.mktemp("real_raw")
    official_iod2025_partial(raw)
    official_lsoa21_lookup(raw)
    official_lsoa11_lsoa21_lookup(raw)
    official_lsoa21_geojson(raw)
    for table, name in CENSUS.items():
        official_census(raw, name, table)
    out = tmp_path_factory.mktemp("real_prepared")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the converted IoD file lacks names
        manifest = prepare(raw, out, progress=None)
    return out, manifest, raw


def test_prepare_says_which_indicators_it_could_not_build(real_prepared):
    _, manifest, _ = real_prepared
    missing = manifest["indicators_unavailable"]
    assert "pct_bad_health" in missing and "census_ts037" in missing["pct_bad_health"]
    assert "gp_fte_per_10k" in missing and "workforce" in missing["gp_fte_per_10k"]
    assert "pct_core20" not in missing and "pct_disabled" not in missing
    assert manifest["counts"]["lsoas"] == 33_755
    assert manifest["counts"]["registration_rows"] == 0


def test_resident_system_profile_for_a_real_icb(real_prepared):
    prepared, _, raw = real_prepared
    data = pophealth.load(prepared, cache=False)
    assert data.comparator == "England"
    assert data.resolve_system("qyg") == CHESHIRE_AND_MERSEYSIDE
    profile = data.profile("QYG", basis="resident")
    values = profile.indicators.set_index("indicator_id")["value"]

    # independent computation straight from the reference files
    imd = pd.read_csv(reference_file("imd", "imd2025_england_lsoa21.csv"))
    lookup = pd.read_csv(reference_file("lookups", "lookup_lsoa21_icb24.csv"))
    disability = pd.read_csv(reference_file("census", CENSUS["TS038"]))
    icb = lookup.loc[lookup["icb24_code"] == CHESHIRE_AND_MERSEYSIDE, "lsoa21_code"]
    frame = imd[imd["lsoa21_code"].isin(icb)].merge(
        disability, left_on="lsoa21_code", right_on="geography code"
    )
    weight = frame["Disability: Total: All usual residents"]
    assert values["imd_score"] == pytest.approx(np.average(frame["IMD_score"], weights=weight))
    core20 = weight[frame["IMD_decile"] <= 2].sum() / weight.sum() * 100
    assert values["pct_core20"] == pytest.approx(core20)
    disabled = frame["Disability: Disabled under the Equality Act"].sum() / weight.sum() * 100
    assert values["pct_disabled"] == pytest.approx(disabled)
    # plausibility: Cheshire and Merseyside is more deprived than England as a whole
    assert 25 < values["pct_core20"] < 45
    assert (
        values["imd_score"]
        > profile.indicators.set_index("indicator_id")["comparator_value"]["imd_score"]
    )
    assert 15 < values["pct_disabled"] < 25
    england = data.indicator_table.query("area_code == 'ALL' and basis == 'resident'")
    assert england.set_index("indicator_id")["value"]["pct_core20"] == pytest.approx(20, abs=1.5)
    # the map covers the ICB's LSOAs; no registrations means no coverage rows to show
    assert len(profile.map_values) == len(icb) and len(profile.map_geojson["features"]) == len(icb)
    assert profile.notes and any("Not shown" in n for n in profile.notes)
    assert len(profile.funnels) >= 1  # the ICB's LADs as peers


def test_prepare_works_on_a_mix_of_real_and_demo_files(demo_raw, tmp_path):
    if reference_dir() is None:
        pytest.skip("../shared/reference is absent")
    raw = tmp_path / "raw"
    shutil.copytree(demo_raw, raw)
    real_epcn = reference_file("epcn", "ePCN-2023-02.xlsx")
    (raw / "ePCN.xlsx").unlink()
    shutil.copy(real_epcn, raw / "ePCN-2023-02.xlsx")
    (raw / "gp-reg-pat-prac-all.csv").unlink()
    shutil.copy(
        reference_file("registrations", "gp-reg-pat-prac-all-2025-10.csv"),
        raw / "gp-reg-pat-prac-all.csv",
    )
    manifest = prepare(raw, tmp_path / "prepared", progress=None)
    assert manifest["sources"]["epcn"]["files"][0]["sha256"] == sha256_of(real_epcn)
    assert manifest["sources"]["practice_totals"]["rows"] == 6_202
    assert manifest["sources"]["registrations_lsoa"]["rows"] > 10_000
    stored = json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    assert stored["sources"] == manifest["sources"]
    data = pophealth.load(tmp_path / "prepared", cache=False)
    # real practices are not in the demo lookup's sub-ICBs: counted, not silently dropped
    assert stored["notes"]["unmapped_practices"] > 6_000
    assert len(data.indicator_table) > 0
