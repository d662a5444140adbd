"""Long-term conditions: recorded prevalence, the recorded-vs-expected model, roll-ups, section."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pophealth import attribution, charts, prevalence, stats
from pophealth.demo._qof import planted_under_recording
from pophealth.sources.qof import GROUP_TITLES


@pytest.fixture(scope="module")
def expected(demo_data):
    frame, fit = demo_data.qof_expected
    return frame.assign(ratio=frame["observed"] / frame["expected"]), fit


@pytest.fixture(scope="module")
def national_data(demo_raw, tmp_path_factory):
    """The demo's national files prepared without ``--systems`` (every practice in England)."""
    import pophealth
    from pophealth.prepare import prepare

    out = tmp_path_factory.mktemp("national") / "prepared"
    prepare(demo_raw, out, progress=None)
    return pophealth.load(out, cache=False)


def test_model_recovers_the_planted_under_recording_practices(expected):
    frame, _ = expected
    planted = planted_under_recording(frame["practice_code"].unique())
    assert len(planted) == 4
    for row in planted.itertuples():
        group = frame[frame["group_code"] == row.group_code].sort_values("ratio")
        # the planted practice has the lowest ratio of all practices for that register ...
        assert group["practice_code"].iloc[0] == row.practice_code, row
        # ... close to the planted factor, and clearly apart from the next practice
        assert abs(group["ratio"].iloc[0] - row.factor) < 0.1, row
        assert group["ratio"].iloc[1] - group["ratio"].iloc[0] > 0.08, row
    # only the planted practice-register pairs are far below expected beyond chance: 99.8%
    # Byar upper limit below 0.8 (recording varies by practice, so a plain 1 would flag more)
    limits = stats.rate_byar(
        frame.dropna(subset=["expected"]).reset_index(drop=True),
        "observed",
        "expected",
        multiplier=1,
        confidence=(0.95, 0.998),
    )
    flagged = limits[limits["upper_99_8"] < 0.8]
    assert set(zip(flagged["practice_code"], flagged["group_code"], strict=True)) == set(
        zip(planted["practice_code"], planted["group_code"], strict=True)
    )


def test_ratios_average_one_nationally(expected, national_data):
    # the model is fitted on every practice in the national files (the demo ICS and the
    # synthetic rest of England), so the ratios are 1 over England ...
    national, _ = national_data.qof_expected
    national = national.assign(ratio=national["observed"] / national["expected"])
    assert national["practice_code"].nunique() > 2 * expected[0]["practice_code"].nunique()
    fitted = national.dropna(subset=["expected"])
    sums = fitted.groupby("group_code")[["observed", "expected"]].sum()
    np.testing.assert_allclose(sums["observed"] / sums["expected"], 1.0, rtol=1e-6)
    weighted = fitted.groupby("group_code").apply(
        lambda g: np.average(g["ratio"], weights=g["list_size"]), include_groups=False
    )
    assert (weighted.sub(1).abs() < 0.03).all(), weighted
    # ... and the profiled store keeps the national fit for its own practices: the demo
    # system's ratio is no longer 1 by construction
    frame, fit = expected
    key = ["group_code", "practice_code"]
    same = national.merge(frame, on=key, suffixes=("", "_store"))
    assert len(same) == len(frame)
    np.testing.assert_allclose(same["expected"], same["expected_store"], rtol=1e-9)
    local = frame.dropna(subset=["expected"]).groupby("group_code")[["observed", "expected"]].sum()
    assert not np.allclose(local["observed"] / local["expected"], 1.0, rtol=1e-4)
    assert set(fit["group_code"]) == set(GROUP_TITLES)
    assert fit["converged"].all() and (fit["dispersion"] > 0).all()
    assert fit["deviance_explained"].between(-0.5, 1).all()


def test_england_rows_compare_with_national_recording(demo_data, national_data):
    table = demo_data.indicator_table
    england = table[(table["level"] == "england") & (table["basis"] == "registered")]
    oe = england[england["indicator_id"].str.startswith("qof_oe_")]
    assert len(oe) == len(GROUP_TITLES)
    np.testing.assert_allclose(oe["value"], 1.0, rtol=1e-6)
    # England's values come from the national files, not the profiled store
    prev = england.set_index("indicator_id").loc["qof_prev_dm"]
    qof = national_data.qof[national_data.qof["group_code"] == "DM"]
    assert qof["register"].sum() > demo_data.qof.query("group_code == 'DM'")["register"].sum()
    assert prev["numerator"] == qof["register"].sum()
    assert prev["denominator"] == qof["list_size"].sum()  # its own (17+) denominator
    assert prev["method"] == "Wilson" and prev["lower_ci"] < prev["value"] < prev["upper_ci"]
    resident = table[(table["basis"] == "resident") & (table["indicator_id"] == "qof_prev_hyp")]
    assert resident["method"].str.contains("modelled from practice registers").all()


@settings(max_examples=25, deadline=None)
@given(
    n_practices=st.integers(3, 25),
    seed=st.integers(0, 10_000),
    n_neighbourhoods=st.integers(1, 4),
    n_places=st.integers(1, 3),
)
def test_rollups_conserve_registers_and_list_sizes(n_practices, seed, n_neighbourhoods, n_places):
    rng = np.random.default_rng(seed)
    codes = [f"P{i:04d}" for i in range(n_practices)]
    groups = list(GROUP_TITLES)
    list_size = rng.integers(0, 20_000, n_practices)
    rows = pd.DataFrame(
        {
            "practice_code": np.repeat(codes, len(groups)),
            "group_code": np.tile(groups, n_practices),
            "list_type": "TOTAL",
            "list_size": np.repeat(list_size, len(groups)),
        }
    )
    rows["register"] = rng.binomial(rows["list_size"], 0.05)
    practices = pd.DataFrame({"practice_code": codes, "gp_fte": rng.uniform(0, 8, n_practices)})
    measures = prevalence.practice_qof_measures(rows, practices)
    neighbourhood = rng.integers(0, n_neighbourhoods, n_practices)
    place = rng.integers(0, n_places, n_neighbourhoods)[neighbourhood]
    levels = {
        "neighbourhood": [f"N{k}" for k in neighbourhood],
        "place": [f"L{k}" for k in place],
        "system": ["S"] * n_practices,
        "england": ["ALL"] * n_practices,
    }
    totals = None
    for areas in levels.values():
        membership = pd.DataFrame({"practice_code": codes, "area_code": areas})
        summed = attribution.aggregate_measures(measures, membership, "practice_code")
        level_totals = summed.drop(columns="area_code").sum()
        if totals is None:
            totals = level_totals
        pd.testing.assert_series_equal(level_totals, totals, check_names=False)
    for group in groups:
        assert (
            totals[f"qof_prev_{group.lower()}__num"]
            == rows.loc[rows["group_code"] == group, "register"].sum()
        )
        assert totals[f"qof_prev_{group.lower()}__den"] == list_size.sum()
    assert totals["qof_registers_per_100__num"] == rows["register"].sum()


def test_demo_rollups_conserve_registers_across_levels(demo_data, national_data):
    table = demo_data.indicator_table
    rows = table[(table["indicator_id"] == "qof_prev_hyp") & (table["basis"] == "registered")]
    by_level = rows.groupby("level")[["numerator", "denominator"]].sum()
    assert by_level.loc["place"].tolist() == by_level.loc["system"].tolist()  # sub-ICBs
    qof = demo_data.qof[demo_data.qof["group_code"] == "HYP"]
    assert by_level.loc["system", "numerator"] == qof["register"].sum()
    assert by_level.loc["system", "denominator"] == qof["list_size"].sum()
    # England (national files) = the regions = every practice of the national QOF file
    national = national_data.qof[national_data.qof["group_code"] == "HYP"]
    assert by_level.loc["england", "numerator"] == national["register"].sum()
    assert by_level.loc["england", "denominator"] == national["list_size"].sum()
    regions = demo_data.national[
        (demo_data.national["level"] == "region")
        & (demo_data.national["basis"] == "registered")
        & (demo_data.national["imd"] == demo_data.imd)
    ]
    assert regions["qof_prev_hyp__num"].sum() == national["register"].sum()
    unassigned = sum(count for count, _ in demo_data.unassigned_practices.values())
    assert (by_level.loc["neighbourhood", "numerator"] < qof["register"].sum()) == (unassigned > 0)
    resident = table[(table["indicator_id"] == "qof_prev_hyp") & (table["basis"] == "resident")]
    lads = resident[resident["level"] == "place"]["numerator"].sum()
    # shared out by patients' LSOAs: registers of patients living outside the loaded LSOAs
    # (or with unknown residence) are not placed, never invented
    assert 0 < lads <= qof["register"].sum()


# the planted practice whose under-recording is large enough to show at its PCN by design: a
# third of a large practice's diabetes register (the planted hypertension practice is small, so
# its PCN's ratio is within the other practices' recording noise)
PCN_VISIBLE_GAP = "DM"


def test_profile_long_term_conditions_and_gaps(demo_data):
    planted = planted_under_recording(demo_data.qof["practice_code"].unique())
    practice = planted.loc[planted["group_code"] == PCN_VISIBLE_GAP, "practice_code"].iloc[0]
    pcn = demo_data.practices.set_index("practice_code").loc[practice, "pcn_code"]
    profile = demo_data.profile(pcn)
    ltc = profile.long_term_conditions
    assert list(ltc["table"]["missing_patients"].dropna()) == sorted(
        ltc["table"]["missing_patients"].dropna(), reverse=True
    )
    gaps = ltc["gaps"]
    planted_gap = [g for g in gaps if g["group_code"] == PCN_VISIBLE_GAP]
    assert planted_gap and planted_gap[0]["upper"] < 1
    assert "national average recording" in planted_gap[0]["benchmark"]
    assert [g["missing_patients"] for g in gaps] == sorted(
        (g["missing_patients"] for g in gaps), reverse=True
    )
    assert set(ltc["core20plus5"]["group_code"]) == set(prevalence.CORE20PLUS5_GROUPS)
    assert any("Poisson GLM" in note for note in profile.notes)
    assert any("Deviance explained" in note for note in profile.notes)
    assert not profile.spine["indicator_id"].str.startswith("qof_").any()
    assert ltc["spine"]["indicator_id"].str.startswith("qof_prev_").all()


def test_recorded_vs_expected_chart_escapes_and_marks_gaps():
    gaps = pd.DataFrame(
        {
            "condition": ["<b>Hypertension</b>", "Asthma"],
            "ratio": [0.8, 1.05],
            "ratio_low": [0.75, 1.01],
            "ratio_high": [0.85, 1.09],
            "expected": [1000.0, 500.0],
            "register": [800.0, 525.0],
            "missing_patients": [200.0, -25.0],
        }
    )
    fig = charts.recorded_vs_expected(gaps, "Recorded <i>vs</i> expected")
    trace = fig.data[0]
    assert "<b>" not in trace.y[0] and "&lt;b&gt;" in trace.y[0]
    assert trace.marker.color[0] == charts.COMPARISON_COLOURS["worse"]
    assert trace.marker.color[1] == charts.COMPARISON_COLOURS["higher"]
    assert "not on a register" in trace.hovertemplate
    assert fig.layout.meta["chart"] == "recorded_vs_expected"
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    with pytest.raises(ValueError, match="missing_patients"):
        charts.recorded_vs_expected(gaps.drop(columns="missing_patients"), "t")


def test_model_input_checks():
    with pytest.raises(prevalence.PrevalenceModelError, match="list_size"):
        prevalence.fit_expected_registers(
            pd.DataFrame({"practice_code": [], "group_code": [], "register": []}),
            pd.DataFrame(),
            pd.Series(dtype=float),
        )


def test_prepare_fits_once_and_the_api_refits_the_same_way(demo_data, demo_prepared, national_data):
    import pophealth

    assert (demo_prepared / "qof_expected.parquet").exists()
    # prepare fits on the national files; refitting from a national store gives the same
    stored, fit = national_data.qof_expected
    assert len(fit) == len(GROUP_TITLES)
    assert demo_data.qof_expected[1].equals(fit)  # the cut store keeps the national fit
    # the QOF year's rows as the api sees them: a closed practice carried by its successor
    refit, refit_summary = prevalence.expected_from_store(
        national_data.qof_registers, national_data.age_sex, national_data.base_practice_measures
    )
    key = ["group_code", "practice_code"]

    def text_as_objects(frame: pd.DataFrame) -> pd.DataFrame:
        # text is held in Python or Arrow storage (pophealth.store.python_strings): same values
        text = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c])]
        return frame.astype(dict.fromkeys(text, object))

    pd.testing.assert_frame_equal(
        text_as_objects(stored.sort_values(key).reset_index(drop=True)),
        text_as_objects(refit.sort_values(key).reset_index(drop=True)),
        rtol=1e-6,
        check_column_type=False,
    )
    np.testing.assert_allclose(fit["dispersion"], refit_summary["dispersion"], rtol=1e-6)
    stored = demo_data.qof_expected[0]
    other = pophealth.load(demo_prepared, imd="2019", cache=False)
    expected_2019, _ = other.qof_expected
    assert len(expected_2019) == len(stored)
    assert not np.allclose(expected_2019["expected"], stored["expected"])  # refitted


def test_national_fit_flags_only_the_planted_practices_in_all_england(national_data):
    # the rest of England's registers follow the same age and deprivation rates without
    # planted under-recording: across every practice, only the planted pairs stand out
    frame, _ = national_data.qof_expected
    frame = frame.dropna(subset=["expected"]).reset_index(drop=True)
    demo_codes = [c for c in frame["practice_code"].unique() if c.startswith("Y9")]
    planted = planted_under_recording(demo_codes)
    limits = stats.rate_byar(frame, "observed", "expected", multiplier=1, confidence=(0.95, 0.998))
    flagged = limits[limits["upper_99_8"] < 0.8]
    assert set(zip(flagged["practice_code"], flagged["group_code"], strict=True)) == set(
        zip(planted["practice_code"], planted["group_code"], strict=True)
    )
    rest = national_data.qof[~national_data.qof["practice_code"].isin(demo_codes)]
    assert rest["practice_code"].nunique() > 100 and set(rest["group_code"]) == set(GROUP_TITLES)


def test_gap_findings_name_the_largest_significant_gaps_in_the_headline(demo_data):
    from pophealth import headline

    table = demo_data.indicator_table
    planted = planted_under_recording(demo_data.practices["practice_code"])
    practice = planted[planted["group_code"] == PCN_VISIBLE_GAP]["practice_code"].iloc[0]
    area = table[(table["basis"] == "registered") & (table["level"] == "neighbourhood")]
    members = demo_data.practice_membership_table
    neighbourhood = members[members["practice_code"] == practice]["area_code"]
    rows = area[area["area_code"].isin(set(neighbourhood))]
    rows = rows[rows["area_code"] == rows["area_code"].iloc[0]]
    found = prevalence.gap_findings(rows, "Demo PCN")
    gaps = prevalence.significant_gaps(rows, "Demo PCN")
    # the planted practice's PCN
    assert f"qof_oe_{PCN_VISIBLE_GAP.lower()}" in {f.indicator_id for f in found}
    assert [f.indicator_id for f in found] == [g["indicator_id"] for g in gaps]
    for finding, gap in zip(found, gaps, strict=True):
        assert finding.kind == "recording" and finding.rating == "under-recorded"
        assert finding.size == pytest.approx(1 - gap["ratio"])
        assert finding.sentence == gap["text"]
    # a synthetic finding set: the recording gap is adverse, so the headline keeps it
    big = headline.Finding("outcome", "pct_bad_health", "worse", 0.9, "Worse health.")
    gap = headline.Finding("recording", "qof_oe_hyp", "under-recorded", 0.1, "HYP gap.")
    text = headline.headline_sentence("X", [big, gap], "England", limit=2)
    assert "HYP gap." in text and "Worse health." in text
