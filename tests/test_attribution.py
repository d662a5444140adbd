"""Attribution of LSOA data to practices and roll-ups: unit tests and conservation properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pophealth import attribution


def _regs(rows):
    return pd.DataFrame(rows, columns=["practice_code", "lsoa_code", "patients", "lsoa_status"])


def test_practice_imd_score_is_patient_weighted_mean_of_lsoa_scores():
    regs = _regs(
        [
            ("P1", "E01", 30, "matched"),
            ("P1", "E02", 10, "matched"),
            ("P1", "CLOSED", 5, "closed"),
            ("P2", "E02", 20, "matched"),
        ]
    )
    values = pd.DataFrame({"lsoa21_code": ["E01", "E02"], "imd_score": [40.0, 10.0]})
    out = attribution.attribute_lsoa_to_practices(regs, values).set_index("practice_code")
    assert out.loc["P1", "imd_score__num"] / out.loc["P1", "imd_score__den"] == pytest.approx(32.5)
    assert out.loc["P1", "imd_score__den"] == 40  # CLOSED patients are not attributed
    assert out.loc["P2", "imd_score__num"] / out.loc["P2", "imd_score__den"] == pytest.approx(10.0)


def test_missing_lsoa_values_only_reduce_that_measure_denominator():
    regs = _regs([("P1", "E01", 30, "matched"), ("P1", "E02", 10, "matched")])
    values = pd.DataFrame(
        {"lsoa21_code": ["E01", "E02"], "imd_score": [40.0, np.nan], "pct_bad_health": [0.1, 0.2]}
    )
    out = attribution.attribute_lsoa_to_practices(regs, values).iloc[0]
    assert out["imd_score__den"] == 30
    assert out["pct_bad_health__den"] == 40
    assert out["pct_bad_health__num"] == pytest.approx(30 * 0.1 + 10 * 0.2)


def test_inputs_are_not_mutated():
    regs = _regs([("P1", "E01", 30, "matched")])
    values = pd.DataFrame({"lsoa21_code": ["E01"], "imd_score": [40.0]})
    before = (regs.copy(), values.copy())
    attribution.attribute_lsoa_to_practices(regs, values)
    pd.testing.assert_frame_equal(regs, before[0])
    pd.testing.assert_frame_equal(values, before[1])


def test_aggregate_measures_sums_units_to_areas_with_overlap():
    measures = pd.DataFrame(
        {"practice_code": ["P1", "P2"], "x__num": [1.0, 2.0], "x__den": [10.0, 20.0]}
    )
    members = pd.DataFrame({"practice_code": ["P1", "P2", "P2"], "area_code": ["A", "A", "B"]})
    out = attribution.aggregate_measures(measures, members, "practice_code").set_index("area_code")
    assert out.loc["A", "x__num"] == 3 and out.loc["A", "x__den"] == 30
    assert out.loc["B", "x__num"] == 2


def test_practice_age_measures_split_15_19_for_children():
    age = pd.DataFrame(
        {
            "practice_code": ["P1"] * 4,
            "sex": ["male"] * 4,
            "age_band": ["0_4", "15_19", "65_69", "85_89"],
            "patients": [10, 10, 10, 10],
        }
    )
    out = attribution.practice_age_measures(age).iloc[0]
    assert out["pct_age_0_17__num"] == pytest.approx(16)
    assert out["pct_age_65_plus__num"] == 20
    assert out["pct_age_85_plus__num"] == 10
    assert out["pct_age_0_17__den"] == 40


registrations_strategy = st.lists(
    st.tuples(
        st.sampled_from(["P1", "P2", "P3", "P4"]),
        st.sampled_from(["E01", "E02", "E03", "E04", "E05", "CLOSED", "W01"]),
        st.integers(min_value=0, max_value=5000),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(registrations_strategy, st.lists(st.floats(0, 1), min_size=5, max_size=5))
def test_attribution_conserves_patients(rows, rates):
    regs = _regs([(p, lsoa, n, "matched" if lsoa.startswith("E") else "x") for p, lsoa, n in rows])
    regs = regs.groupby(["practice_code", "lsoa_code", "lsoa_status"], as_index=False)[
        "patients"
    ].sum()
    values = pd.DataFrame(
        {"lsoa21_code": ["E01", "E02", "E03", "E04", "E05"], "one": 1.0, "rate": rates}
    )
    out = attribution.attribute_lsoa_to_practices(regs, values)
    matched = regs.loc[regs["lsoa_code"].str.startswith("E"), "patients"].sum()
    # every matched patient is attributed exactly once, none invented
    assert out["one__den"].sum() == pytest.approx(matched)
    assert out["one__num"].sum() == pytest.approx(matched)
    assert out["matched_patients"].sum() == pytest.approx(matched)
    # attributed numerators never exceed the attributed population
    assert (out["rate__num"] <= out["rate__den"] + 1e-9).all()
    # rolling practices up to one area conserves the sums
    members = out[["practice_code"]].assign(area_code="ALL")
    area = attribution.aggregate_measures(
        out.drop(columns=["matched_patients"]), members, "practice_code"
    )
    assert area["rate__num"].iloc[0] == pytest.approx(out["rate__num"].sum())


def test_resident_workforce_attribution_conserves_fte():
    regs = _regs(
        [
            ("P1", "E01", 60, "matched"),
            ("P1", "E02", 30, "matched"),
            ("P1", "CLOSED", 10, "closed"),
            ("P2", "E02", 50, "matched"),
        ]
    )
    practices = pd.DataFrame(
        {
            "practice_code": ["P1", "P2"],
            "registered_patients": [100.0, 50.0],
            "weighted_patients": [110.0, 60.0],
            "gp_fte": [2.0, 1.0],
            "gp_extgl_fte": [1.0, 1.0],
            "nurse_fte": [1.0, 0.5],
            "dpc_fte": [0.5, 0.5],
            "admin_fte": [3.0, 2.0],
        }
    )
    lsoa = pd.DataFrame(
        {
            "lsoa21_code": ["E01", "E02"],
            "imd2025_score": [30.0, 10.0],
            "imd2025_decile": [1, 5],
            "population": [1000.0, 800.0],
        }
    )
    out = attribution.lsoa_measures(lsoa, regs, practices).set_index("lsoa21_code")
    # P1's 10% CLOSED share of FTE cannot be placed: 2.0*0.9 + 1.0 placed
    assert out["gp_fte_per_10k__num"].sum() == pytest.approx(2.0 * 0.9 + 1.0)
    assert out.loc["E01", "list_size__num"] == 60
    assert out.loc["E02", "pct_core20__num"] == 0
    assert out.loc["E01", "pct_core20__num"] == 1000


def test_pct_age_75_plus_from_gp_bands_and_census():
    gp = pd.DataFrame(
        {
            "practice_code": ["P1"] * 5,
            "sex": ["male", "female", "female", "male", "female"],
            "age_band": ["70_74", "75_79", "80_84", "90_94", "95+"],
            "patients": [40, 7, 5, 2, 1],
        }
    )
    out = attribution.practice_age_measures(gp).iloc[0]
    assert (out["pct_age_75_plus__num"], out["pct_age_75_plus__den"]) == (15, 55)
    census = pd.DataFrame(
        {
            "lsoa21_code": ["E01000001"],
            "age_total": [100.0],
            **{f"age_{a}_{a + 4}": [0.0] for a in range(0, 85, 5)},
            "age_85_plus": [4.0],
        }
    ).assign(age_70_74=[20.0], age_75_79=[6.0], age_80_84=[3.0])
    resident = attribution.census_age_measures(census).iloc[0]
    assert (resident["pct_age_75_plus__num"], resident["pct_age_75_plus__den"]) == (13, 100)
