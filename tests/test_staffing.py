"""The whole team (issue13): PCN staff apportionment, conservation of FTE, fair shares, findings."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pophealth import attribution, staffing
from pophealth.staffing import StaffingInputError

GROUPS = list(staffing.STAFF_GROUPS)


def _practices(**extra):
    frame = pd.DataFrame(
        {
            "practice_code": ["A", "B", "C", "D"],
            "pcn_code": ["P1", "P1", "P2", None],
            "registered_patients": [3000.0, 1000.0, 5000.0, 2000.0],
            "weighted_patients": [3300.0, 900.0, 5200.0, 2100.0],
            "gp_fte": [2.0, 1.0, 3.0, 1.0],
            "nurse_fte": [1.0, 0.5, 1.5, 0.5],
            "dpc_fte": [1.0, 0.2, 2.0, 0.4],
            "admin_fte": [3.0, 1.0, 4.0, 2.0],
        }
    )
    return frame.assign(**extra)


PCN_STAFF = pd.DataFrame(
    {
        "pcn_code": ["P1", "P1", "P3"],
        "group": ["dpc", "gp", "dpc"],
        "fte": [8.0, 1.0, 5.0],
    }
)


def test_pcn_staff_are_shared_by_registered_patients_as_documented():
    practices = _practices()
    shares, unattributed = staffing.apportion_pcn_staff(PCN_STAFF, practices)
    by = shares.set_index("practice_code")
    # P1 has 3,000 + 1,000 patients: practice A takes 3/4 of its staff, B 1/4
    assert by.loc["A", "pcn_dpc_fte"] == pytest.approx(6.0)
    assert by.loc["B", "pcn_dpc_fte"] == pytest.approx(2.0)
    assert by.loc["A", "pcn_gp_fte"] == pytest.approx(0.75)
    # P2 made no return; D is in no PCN: neither has PCN staff, and they are told apart
    assert by.loc["C", "pcn_status"] == staffing.PCN_STATUS_NO_RETURN
    assert by.loc["D", "pcn_status"] == staffing.PCN_STATUS_NONE
    assert by.loc[["C", "D"], [f"pcn_{g}_fte" for g in GROUPS]].to_numpy().sum() == 0
    # P3's staff have no practice in the data: counted, not dropped
    assert unattributed.to_dict("records") == [
        {"pcn_code": "P3", "fte": 5.0, "reason": "no member practice in the data"}
    ]
    # by weighted patients when asked
    weighted, _ = staffing.apportion_pcn_staff(PCN_STAFF, practices, "weighted_patients")
    assert weighted.set_index("practice_code").loc["A", "pcn_dpc_fte"] == pytest.approx(
        8.0 * 3300 / 4200
    )
    # inputs are not modified
    assert "pcn_status" not in practices


def test_pcn_neighbourhood_gets_its_staff_and_custom_neighbourhood_its_shares():
    practices = _practices()
    shares, _ = staffing.apportion_pcn_staff(PCN_STAFF, practices)
    measures = staffing.team_measures(practices.merge(shares.drop(columns="pcn_code")))
    membership = pd.DataFrame(
        {"practice_code": ["A", "B", "A", "C"], "area_code": ["P1", "P1", "INT1", "INT1"]}
    )
    areas = attribution.aggregate_measures(measures, membership, "practice_code").set_index(
        "area_code"
    )
    # PCN neighbourhood: its practices' own DPC (1.0 + 0.2) plus all 8 PCN DPC FTE
    assert areas.loc["P1", "team_dpc_fte_per_10k__num"] == pytest.approx(9.2)
    # custom neighbourhood with A only from P1 (and C, whose PCN made no return: left out)
    assert areas.loc["INT1", "team_dpc_fte_per_10k__num"] == pytest.approx(1.0 + 6.0)
    assert areas.loc["INT1", "team_dpc_fte_per_10k__den"] == pytest.approx(3000.0)
    assert areas.loc["P1", "pcn_fte_per_10k__num"] == pytest.approx(9.0)


def test_whole_team_per_register_entry_is_a_qof_measure_built_with_pcn_staff():
    from pophealth import prevalence

    practices = _practices()
    shares, _ = staffing.apportion_pcn_staff(PCN_STAFF, practices)
    joined = practices.merge(shares.drop(columns="pcn_code"))
    # the team measures are per patient; per register entry is a QOF measure
    assert not any(c.startswith("team_fte_per_1k_register") for c in staffing.team_measures(joined))
    qof = pd.DataFrame(
        {
            "practice_code": ["A", "A", "B", "C", "D"],
            "group_code": ["HYP", "DM", "HYP", "HYP", "HYP"],
            "register": [600.0, 300.0, 300.0, 1500.0, 400.0],
            "list_size": [3000.0, 2400.0, 1000.0, 5000.0, 2000.0],
            "list_type": ["TOTAL", "17OV", "TOTAL", "TOTAL", "TOTAL"],
        }
    )
    team = staffing.whole_team_fte(joined)
    by_code = prevalence.practice_qof_measures(qof, joined).set_index("practice_code")
    on_registers = pd.Series({"A": 900.0, "B": 300.0, "C": 1500.0, "D": 400.0})
    for code in "ABCD":
        counts = not np.isnan(team[code])
        row = by_code.loc[code]
        assert row["team_fte_per_1k_register__den"] == (on_registers[code] if counts else 0.0)
        assert row["team_fte_per_1k_register__num"] == pytest.approx(team[code] if counts else 0)
    # practice A: its own staff plus its share of P1's PCN-employed staff
    own = sum(practices.set_index("practice_code").loc["A", f"{g}_fte"] for g in GROUPS)
    assert team["A"] == pytest.approx(own + 9.0 * 3000 / 4000)
    # without PCN workforce the whole team is not known: no such measure
    assert "team_fte_per_1k_register__num" not in prevalence.practice_qof_measures(qof, practices)


def test_missing_practice_figures_leave_the_rates_with_both_numerator_and_denominator():
    practices = _practices(nurse_fte=[1.0, np.nan, 1.5, 0.5])
    shares, _ = staffing.apportion_pcn_staff(PCN_STAFF, practices)
    measures = staffing.team_measures(practices.merge(shares.drop(columns="pcn_code")))
    row = measures.set_index("practice_code").loc["B"]
    assert row["team_nurse_fte_per_10k__num"] == 0 and row["team_nurse_fte_per_10k__den"] == 0
    assert row["team_gp_fte_per_10k__den"] == 1000.0  # other groups still count
    assert row["team_fte_per_10k__den"] == 0  # the whole team needs every group


def test_team_measures_and_apportion_check_their_inputs():
    with pytest.raises(StaffingInputError, match="pcn_status"):
        staffing.team_measures(_practices())
    with pytest.raises(StaffingInputError, match="registered_patients"):
        staffing.apportion_pcn_staff(PCN_STAFF, _practices().drop(columns="registered_patients"))


@st.composite
def _systems(draw):
    n = draw(st.integers(min_value=1, max_value=30))
    n_pcn = draw(st.integers(min_value=1, max_value=6))
    pcn = draw(st.lists(st.integers(-1, n_pcn - 1), min_size=n, max_size=n))
    patients = draw(st.lists(st.integers(0, 20_000), min_size=n, max_size=n))
    fte = st.floats(0, 40, allow_nan=False)
    practices = pd.DataFrame(
        {
            "practice_code": [f"P{i:03d}" for i in range(n)],
            "pcn_code": [f"U{k}" if k >= 0 else None for k in pcn],
            "registered_patients": np.array(patients, dtype=float),
            "place": draw(st.lists(st.sampled_from(["L1", "L2", "L3"]), min_size=n, max_size=n)),
            "custom": draw(st.lists(st.sampled_from(["N1", "N2"]), min_size=n, max_size=n)),
            **{
                column: draw(st.lists(fte, min_size=n, max_size=n))
                for column in staffing.PRACTICE_GROUP_FTE.values()
            },
        }
    )
    practices["system"] = np.where(practices["place"] == "L3", "S2", "S1")
    rows = draw(
        st.lists(
            st.tuples(st.integers(0, n_pcn + 1), st.sampled_from(GROUPS), fte),
            min_size=0,
            max_size=15,
        )
    )
    staff = pd.DataFrame(
        [(f"U{k}", g, f) for k, g, f in rows], columns=["pcn_code", "group", "fte"]
    )
    return practices, staff


@settings(max_examples=60, deadline=None)
@given(_systems())
def test_rollups_conserve_fte_from_practice_to_england(system):
    """Practice + PCN FTE: the same total at every level, and nothing lost to apportionment."""
    practices, staff = system
    shares, unattributed = staffing.apportion_pcn_staff(staff, practices)
    # every PCN FTE is either shared to practices or reported as unattributed
    shared = shares[[staffing.pcn_fte_column(g) for g in GROUPS]].to_numpy().sum()
    assert shared + unattributed["fte"].sum() == pytest.approx(staff["fte"].sum(), abs=1e-6)
    measures = staffing.team_measures(practices.merge(shares.drop(columns="pcn_code")))
    # practices whose PCN made no return are left out of the team rates (and say so)
    counted = (shares["pcn_status"] != staffing.PCN_STATUS_NO_RETURN).to_numpy()
    own = practices[list(staffing.PRACTICE_GROUP_FTE.values())].to_numpy()[counted].sum()
    total = measures["team_fte_per_10k__num"].sum()
    assert total == pytest.approx(own + shared, abs=1e-6)
    levels = {
        "neighbourhood": practices["pcn_code"].fillna("UNALIGNED"),
        "custom": practices["custom"],
        "place": practices["place"],
        "system": practices["system"],
        "england": pd.Series("ALL", index=practices.index),
    }
    for level, area in levels.items():
        membership = pd.DataFrame({"practice_code": practices["practice_code"], "area_code": area})
        rolled = attribution.aggregate_measures(measures, membership, "practice_code")
        for column in ("team_fte_per_10k__num", "team_dpc_fte_per_10k__num"):
            assert rolled[column].sum() == pytest.approx(measures[column].sum(), abs=1e-6), level


def test_demo_pcn_neighbourhoods_hold_exactly_their_pcn_staff(demo_data):
    shares, unattributed = demo_data.pcn_apportionment
    assert unattributed.empty
    columns = [staffing.pcn_fte_column(g) for g in GROUPS]
    held = shares.groupby("pcn_code")[columns].sum().sum(axis=1)
    published = demo_data.pcn_staff.groupby("pcn_code")["fte"].sum()
    pd.testing.assert_series_equal(
        held.reindex(published.index), published, check_names=False, atol=1e-9
    )
    table = demo_data.indicator_table
    system = table[(table["level"] == "system") & (table["basis"] == "registered")]
    hoods = table[(table["level"] == "neighbourhood") & (table["area_type"] == "pcn")]
    code = system["area_code"].iloc[0]
    for indicator in ("pcn_fte_per_10k", "team_fte_per_10k_weighted"):
        in_system = hoods[(hoods["system_code"] == code) & (hoods["indicator_id"] == indicator)]
        sys_row = system[(system["area_code"] == code) & (system["indicator_id"] == indicator)]
        unassigned = demo_data.unassigned_practices.get(code, (0, 0))[0]
        if unassigned == 0:
            assert in_system["numerator"].sum() == pytest.approx(sys_row["numerator"].iloc[0])
    assert (table.loc[table["indicator_id"].str.startswith("team_"), "lower_ci"].isna()).all()


def test_fair_share_gap_is_weighted_patients_times_the_benchmark_rate():
    areas = pd.DataFrame(
        {
            "area_code": ["X", "X", "Y"],
            "group": ["gp", "dpc", "gp"],
            "fte": [6.0, 12.0, 2.0],
            "weighted_patients": [10_000.0, 10_000.0, 0.0],
        }
    )
    bench = pd.DataFrame(
        {"group": ["gp", "dpc"], "fte": [70.0, 80.0], "weighted_patients": [100_000.0] * 2}
    )
    gaps = staffing.fair_share_gaps(areas, bench)
    x = gaps[gaps["area_code"] == "X"].set_index("group")
    assert x.loc["gp", "fair_share_fte"] == pytest.approx(7.0)
    assert x.loc["gp", "gap_fte"] == pytest.approx(-1.0)
    assert x.loc["gp", "gap_pct"] == pytest.approx(-100 / 7)
    assert x.loc["dpc", "gap_fte"] == pytest.approx(4.0)
    assert x.loc["gp", "benchmark_per_10k"] == pytest.approx(7.0)
    assert np.isnan(gaps.loc[gaps["area_code"] == "Y", "gap_fte"]).all()  # no weighted list
    with pytest.raises(StaffingInputError, match="more than one row"):
        staffing.fair_share_gaps(areas, pd.concat([bench, bench]))


def test_largest_gap_findings_rank_shortfalls_relative_to_need():
    gaps = pd.DataFrame(
        {
            "group": ["gp", "nurse", "dpc", "admin", "team"],
            "actual_fte": [9.0, 4.0, 10.0, 20.0, 43.0],
            "fair_share_fte": [10.0, 5.0, 8.0, 20.0, 50.0],
            "gap_fte": [-1.0, -1.0, 2.0, 0.0, -7.0],
            "gap_pct": [-10.0, -20.0, 25.0, 0.0, -14.0],
        }
    )
    findings = staffing.largest_gap_findings(gaps, "Demo PCN", "England")
    assert [f["group"] for f in findings] == ["nurse", "gp"]  # team row left out, dpc not short
    assert findings[0]["rank"] == 1 and findings[0]["kind"] == "workforce_gap"
    assert findings[0]["text"] == (
        "Demo PCN has 1.0 FTE fewer nurses than its fair share at the England rate per "
        "weighted patient (20% short)"
    )
    assert staffing.largest_gap_findings(gaps.iloc[2:4], "Demo PCN", "England") == []
