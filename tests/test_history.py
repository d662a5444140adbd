"""Release history: full rebuild vs incremental --add, periods, membership rule, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pophealth import cli, history, indicators
from pophealth.demo import DEMO_SYSTEMS
from pophealth.files import sha256_of
from pophealth.prepare import prepare
from pophealth.reconcile import ReconciliationError


def _link_tree(source: Path, target: Path, skip: set[str]) -> None:
    """Copy a raw folder as symlinks (fast), leaving out the relative paths in ``skip``."""
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if path.is_dir() or any(str(relative).startswith(s) for s in skip):
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).symlink_to(path)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("period", "practice_code", "lsoa_code", "sex", "age_band") if c in frame]
    return frame.sort_values(keys).reset_index(drop=True)


def test_demo_store_has_twelve_monthly_periods(demo_prepared):
    manifest = json.loads((demo_prepared / "manifest.json").read_text())
    periods = manifest["history"]["periods"]
    assert len(periods) == 12
    assert periods[0] == "2024-11" and periods[-1] == "2025-10"
    tables = history.read_history(demo_prepared)
    assert set(tables) == set(history.HISTORY_TABLES)
    assert sorted(tables["practices"]["period"].unique()) == periods
    # the current store is the newest period
    current = pd.read_parquet(demo_prepared / "practices.parquet")
    latest = tables["practices"].query("period == '2025-10'").drop(columns="period")
    pd.testing.assert_frame_equal(
        _sorted(current), _sorted(latest), check_dtype=False, check_like=True
    )
    # lists drift between releases
    sizes = tables["practices"].groupby("period")["registered_patients"].sum()
    assert sizes.nunique() == 12


QOF_FOLDER = "releases/QOF-2023-24"  # the demo's earlier QOF year (2024-25 is at the top level)


def test_incremental_add_equals_full_rebuild(demo_raw, demo_prepared, tmp_path):
    raw = tmp_path / "raw"
    _link_tree(demo_raw, raw, skip={"releases/2025-03", QOF_FOLDER})
    partial = tmp_path / "prepared"
    manifest = history.prepare_store(raw, partial, progress=None, systems=DEMO_SYSTEMS)
    assert "2025-03" not in manifest["history"]["periods"]
    assert [y["year"] for y in manifest["history"]["qof_years"]] == ["2024-25"]
    history.add_release(demo_raw / "releases" / "2025-03", partial, progress=None)
    # the earlier QOF year, added on its own (a folder with only a QOF year's files)
    history.add_release(demo_raw / QOF_FOLDER, partial, progress=None)
    added = json.loads((partial / "manifest.json").read_text())
    full = json.loads((demo_prepared / "manifest.json").read_text())
    assert added["history"]["periods"] == full["history"]["periods"]
    assert added["history"]["releases"] == full["history"]["releases"]
    # each QOF year recorded with its files (sha256), rows and model fit, as a full rebuild does
    assert json.dumps(added["history"]["qof_years"]) == json.dumps(full["history"]["qof_years"])
    got, want = history.read_history(partial), history.read_history(demo_prepared)
    for table in history.HISTORY_TABLES:
        pd.testing.assert_frame_equal(_sorted(got[table]), _sorted(want[table]))
    got, want = history.read_qof_history(partial), history.read_qof_history(demo_prepared)
    assert set(got) == set(want) == set(history.QOF_TABLES)
    for table in history.QOF_TABLES:
        pd.testing.assert_frame_equal(got[table], want[table])
    current = ("qof_prevalence.parquet", "qof_expected.parquet", "national.parquet")
    for name in (*history.CURRENT_FILES.values(), *current):
        # an older month or QOF year leaves the current store alone
        pd.testing.assert_frame_equal(
            pd.read_parquet(partial / name), pd.read_parquet(demo_prepared / name)
        )
    for key in ("notes", "qof_model", "indicators_unavailable"):
        assert added[key] == full[key], key
    assert added["sources"]["qof"] == full["sources"]["qof"]


def test_adding_a_qof_year_again_replaces_it(demo_raw, demo_prepared, tmp_path):
    store = tmp_path / "prepared"
    shutil.copytree(demo_prepared, store)
    before = history.read_qof_history(store)
    manifest = history.add_release(demo_raw / QOF_FOLDER, store, progress=None)
    assert [y["period"] for y in manifest["history"]["qof_years"]] == ["2024-03", "2025-03"]
    after = history.read_qof_history(store)
    for table in history.QOF_TABLES:
        pd.testing.assert_frame_equal(after[table], before[table])
    assert manifest["history"]["periods"][-1] == "2025-10"  # the months are untouched


def _raw_with_older_qof_year_on_top(demo_raw: Path, raw: Path, newer: Path) -> None:
    """The demo raw folder with QOF 2023-24 at the top level and QOF 2024-25 in ``newer``."""
    latest = sorted(p.name for p in demo_raw.glob("*_2425.csv"))
    assert latest  # PREVALENCE_2425.csv, MAPPING_*, ACHIEVEMENT_*
    _link_tree(demo_raw, raw, skip={QOF_FOLDER, *latest})
    for path in (demo_raw / QOF_FOLDER).iterdir():
        (raw / path.name).symlink_to(path)
    newer.mkdir()
    for name in latest:
        (newer / name).symlink_to(demo_raw / name)


def _assert_current_qof_as_prepared(store, prepared, manifest: dict) -> dict:
    """The store's current QOF tables and notes are a full prepare's; its manifest returned."""
    full = json.loads((prepared / "manifest.json").read_text())
    for name in ("qof_prevalence.parquet", "qof_expected.parquet", "national.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(store / name), pd.read_parquet(prepared / name), obj=name
        )
    for key in ("notes", "qof_model", "indicators_unavailable"):
        assert manifest[key] == full[key], key
    return full


def test_adding_a_newer_qof_year_makes_it_the_current_qof_year(
    demo_raw, demo_prepared, demo_data, tmp_path
):
    import pophealth

    raw, newer, store = tmp_path / "raw", tmp_path / "QOF-2024-25", tmp_path / "prepared"
    _raw_with_older_qof_year_on_top(demo_raw, raw, newer)
    manifest = history.prepare_store(raw, store, progress=None, systems=DEMO_SYSTEMS)
    assert manifest["notes"]["qof_year"] == "2023-24"
    # a store cut by --systems keeps the national tables England's QOF values are summed from
    assert (store / history.NATIONAL_DIR / "registrations.parquet").exists()
    # a cut store prepared without them (an earlier version) keeps its QOF year and says why
    old = tmp_path / "old-store"
    shutil.copytree(store, old)
    shutil.rmtree(old / history.NATIONAL_DIR)
    kept = history.add_release(newer, old, progress=None)
    assert kept["notes"]["qof_year"] == "2023-24"
    assert [y["year"] for y in kept["history"]["qof_years"]] == ["2023-24", "2024-25"]
    assert any("history only" in n and "Fix:" in n for n in kept["history"]["notes"])
    for name in ("qof_prevalence.parquet", "national.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(old / name), pd.read_parquet(store / name))
    added = history.add_release(newer, store, progress=None)
    # the current QOF tables and England's and the regions' rows are a full prepare's
    full = _assert_current_qof_as_prepared(store, demo_prepared, added)
    assert added["sources"]["qof"] == full["sources"]["qof"]
    assert not any("stay QOF" in note for note in added["history"]["notes"])
    # both QOF years in the history, each as a full rebuild keeps it
    assert [y["year"] for y in added["history"]["qof_years"]] == ["2023-24", "2024-25"]
    got, want = history.read_qof_history(store), history.read_qof_history(demo_prepared)
    for table in history.QOF_TABLES:
        # (a year fitted in the history lists its IoD releases in another order than prepare)
        order = [c for c in ("period", "practice_code", "group_code", "imd") if c in want[table]]
        pd.testing.assert_frame_equal(
            got[table].sort_values(order).reset_index(drop=True),
            want[table].sort_values(order).reset_index(drop=True),
            obj=table,
        )
    # the profiles' QOF indicators (every area, both bases, England and regions)
    qof_ids = indicators.needing("qof")
    table = pophealth.load(store, cache=False).indicator_table
    keys = ["area_code", "level", "basis", "imd", "indicator_id"]

    def qof_rows(frame: pd.DataFrame) -> pd.DataFrame:
        rows = frame[frame["indicator_id"].isin(qof_ids)]
        return rows.sort_values([k for k in keys if k in rows]).reset_index(drop=True)

    got, want = qof_rows(table), qof_rows(demo_data.indicator_table)
    assert len(want) and set(want["basis"]) == {"registered", "resident"}
    pd.testing.assert_frame_equal(got, want)


def test_adding_a_newer_qof_year_to_a_store_not_cut_by_systems(demo_raw, tmp_path):
    raw, newer = tmp_path / "raw", tmp_path / "QOF-2024-25"
    _raw_with_older_qof_year_on_top(demo_raw, raw, newer)
    full_raw = tmp_path / "full"
    _link_tree(demo_raw, full_raw, skip=set())
    store, full = tmp_path / "prepared", tmp_path / "full-prepared"
    history.prepare_store(raw, store, progress=None)
    assert not (store / history.NATIONAL_DIR).exists()  # its own tables are national
    history.add_release(newer, store, progress=None)
    history.prepare_store(full_raw, full, progress=None)
    for name in ("qof_prevalence.parquet", "qof_expected.parquet", "national.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(store / name), pd.read_parquet(full / name), obj=name
        )


def test_adding_the_current_qof_year_again_leaves_the_current_store_as_it_was(
    demo_raw, demo_prepared, tmp_path
):
    store, again = tmp_path / "prepared", tmp_path / "QOF-2024-25"
    shutil.copytree(demo_prepared, store)
    again.mkdir()
    for path in demo_raw.glob("*_2425.csv"):
        (again / path.name).symlink_to(path)
    manifest = history.add_release(again, store, progress=None)
    _assert_current_qof_as_prepared(store, demo_prepared, manifest)
    got, want = history.read_qof_history(store), history.read_qof_history(demo_prepared)
    for table in history.QOF_TABLES:
        pd.testing.assert_frame_equal(got[table], want[table], obj=table)


def test_qof_period_is_the_month_the_qof_year_ends():
    assert history.qof_period("2024-25") == "2025-03"
    assert history.qof_period("2023-24") == "2024-03"
    assert history.qof_period("1999-00") == "2000-03"
    assert history.qof_year_of("2025-03") == "2024-25"
    for bad in ("2024-26", "2024", "24-25", ""):
        with pytest.raises(history.HistoryError, match="not a year label"):
            history.qof_period(bad)


def test_store_keeps_each_qof_year_per_practice_as_published(demo_raw, demo_prepared):
    from pophealth.sources.qof import load_qof

    manifest = json.loads((demo_prepared / "manifest.json").read_text())
    years = manifest["history"]["qof_years"]
    assert [(y["year"], y["period"], y["folder"]) for y in years] == [
        ("2023-24", "2024-03", "QOF-2023-24"),
        ("2024-25", "2025-03", "."),
    ]
    for year in years:
        for entry in year["files"]:
            assert entry["sha256"] == sha256_of(next(demo_raw.rglob(entry["name"])))
    stored = history.read_qof_history(demo_prepared)["qof_prevalence"]
    assert list(stored.columns[:1]) == ["period"]
    assert set(stored.columns) == {"period"} | set(
        pd.read_parquet(demo_prepared / "qof_prevalence.parquet")
    )
    for year, folder in (("2023-24", demo_raw / QOF_FOLDER), ("2024-25", demo_raw)):
        published = load_qof(sorted(folder.glob("*_2[34][0-9][0-9].csv"))).prevalence
        rows = stored[stored["period"] == history.qof_period(year)]
        assert (rows["year"] == year).all()
        key = ["practice_code", "group_code"]
        pd.testing.assert_frame_equal(
            rows[[*key, "list_type", "register", "list_size"]]
            .sort_values(key)
            .reset_index(drop=True),
            published[[*key, "list_type", "register", "list_size"]]
            .sort_values(key)
            .reset_index(drop=True),
            check_dtype=False,
        )
    # the merged practice existed through both QOF years: each lists it (the rest of England too)
    predecessor = _merger(demo_prepared)[0]
    assert set(stored.loc[stored["practice_code"] == predecessor, "year"]) == {"2023-24", "2024-25"}
    assert stored["practice_code"].str.startswith("Y8").any()  # England's practices are kept


def _merger(store: Path) -> tuple[str, str]:
    """The demo's planted merger (predecessor, successor) from the stored successions."""
    stored = history.read_successors(store)
    row = stored.loc[stored["chain"].str.count(">") == 1].iloc[0]
    return str(row["predecessor_code"]), str(row["successor_code"])


def test_closed_practice_is_carried_by_its_successor_in_each_qof_year(demo_data, demo_prepared):
    predecessor, successor = _merger(demo_prepared)
    raw = history.read_qof_history(demo_prepared)["qof_prevalence"]
    for period in ("2024-03", "2025-03"):
        published = raw[raw["period"] == period].set_index(["practice_code", "group_code"])
        ruled, _ = demo_data.qof_period_tables(period)
        registers = ruled["qof"].set_index(["practice_code", "group_code"])
        assert predecessor not in set(ruled["qof"]["practice_code"])
        assert predecessor not in set(ruled["practices"]["practice_code"])
        for column in ("register", "list_size"):
            # the successor holds both practices' registers and lists; nothing lost or invented
            both = published.loc[predecessor, column] + published.loc[successor, column]
            pd.testing.assert_series_equal(
                registers.loc[successor, column],
                both,
                check_names=False,
                check_dtype=False,
                check_index_type=False,  # text in Python or Arrow storage: the same values
            )
            assert registers[column].sum() == published[column].sum()
        # the successor's neighbourhood counts the predecessor's patients on its registers
        pcn = demo_data.practices.set_index("practice_code").loc[successor, "pcn_code"]
        members = demo_data.practice_members[pcn]
        rows = demo_data.qof_indicator_history
        dm = rows[
            (rows["period"] == period)
            & (rows["area_code"] == pcn)
            & (rows["indicator_id"] == "qof_prev_dm")
        ].iloc[0]
        dm_rows = published.xs("DM", level="group_code")
        assert dm["numerator"] == dm_rows.loc[[*members, predecessor], "register"].sum()
        assert dm["denominator"] == dm_rows.loc[[*members, predecessor], "list_size"].sum()


def test_qof_indicators_only_at_their_qof_years_with_england_per_year(demo_data, demo_prepared):
    table = demo_data.indicator_history
    qof_ids = indicators.needing("qof")
    qof = table[table["indicator_id"].isin(qof_ids)]
    # each QOF year at the month it ends, never in another month (not the current one either)
    assert set(qof["period"]) == {"2024-03", "2025-03"}
    assert set(table.loc[table["period"] == "2024-03", "indicator_id"]) <= qof_ids
    # the registered basis every QOF year; the resident basis only where the history holds
    # the month the year ends in (March 2025, not March 2024): test_resident_qof_history_...
    assert set(qof.loc[qof["period"] == "2024-03", "basis"]) == {"registered"}
    assert set(qof.loc[qof["period"] == "2025-03", "basis"]) == {"registered", "resident"}
    qof = qof[qof["basis"] == "registered"]
    # no zeros invented: the FTE-per-register indicators need the staff of the year's end
    # month, which the history holds for March 2025 only
    staffed = qof[
        qof["indicator_id"].isin(["gp_fte_per_1k_on_registers", "team_fte_per_1k_register"])
    ]
    assert set(staffed["period"]) == {"2025-03"}
    assert qof.loc[qof["denominator"] == 0, "value"].isna().all()  # no value from nothing
    # England's value of each year sums every practice of that year's national file
    raw = history.read_qof_history(demo_prepared)["qof_prevalence"]
    for period in ("2024-03", "2025-03"):
        dm = raw[(raw["period"] == period) & (raw["group_code"] == "DM")]
        england = qof[
            (qof["period"] == period)
            & (qof["area_code"] == "ALL")
            & (qof["indicator_id"] == "qof_prev_dm")
        ].iloc[0]
        assert (england["numerator"], england["denominator"]) == (
            dm["register"].sum(),
            dm["list_size"].sum(),
        )
        rows = qof[qof["period"] == period]
        assert (
            rows["comparator_value"]
            == rows["indicator_id"].map(
                rows[rows["area_code"] == "ALL"].set_index("indicator_id")["value"]
            )
        ).all()
    # the latest QOF year is the current table's QOF year: same values and England
    current = demo_data.indicator_table
    current = current[current["indicator_id"].isin(qof_ids) & (current["level"] != "region")]
    current = current[
        (current["basis"] == "registered") & current["indicator_id"].str.startswith("qof_")
    ]
    latest = qof[qof["period"] == "2025-03"].set_index(["area_code", "indicator_id"])
    got = latest.loc[pd.MultiIndex.from_frame(current[["area_code", "indicator_id"]])]
    for column in ("value", "lower_ci", "upper_ci", "comparator_value"):
        np.testing.assert_allclose(got[column], current[column], rtol=1e-9)
    assert (got["comparison_95"].to_numpy() == current["comparison_95"].to_numpy()).all()


def test_membership_changes_list_each_qof_year(demo_data):
    changes = demo_data.membership_changes
    assert list(changes.columns) == ["period", "practice_code", "change", "detail"]
    assert changes["period"].is_monotonic_increasing
    qof = changes[changes["detail"].str.startswith("QOF ")]
    # the demo practice that moved PCN in April 2025 was in its old PCN in both QOF years (the
    # years' MAPPING_NHS_GEOGRAPHIES), and the closed practice is carried in both
    moved = changes[(changes["change"] == "moved PCN")]["practice_code"].iloc[0]
    expected = []
    for period, year in (("2024-03", "2023-24"), ("2025-03", "2024-25")):
        _, own = demo_data.qof_period_tables(period)
        assert len(own) == 2 and set(own["change"]) == {"moved PCN", "merged"}
        expected += [(period, *pair) for pair in own[["practice_code", "change"]].values]
        rows = qof[qof["period"] == period]
        assert rows["detail"].str.startswith(f"QOF {year}: ").all()
        assert set(rows["detail"].str.removeprefix(f"QOF {year}: ")) == set(own["detail"])
    got = [tuple(row) for row in qof[["period", "practice_code", "change"]].values]
    assert sorted(got) == sorted(expected)
    assert moved in set(qof["practice_code"])
    # no practice is listed for a year whose file does not say its PCN, nor the national
    # file's practices outside the demo store's systems
    assert not (qof["change"] == "not in today's list").any()
    # the neighbourhood it moved to lists the move for the months and each QOF year
    new_pcn = qof.loc[qof["change"] == "moved PCN", "detail"].iloc[0].split("counted in ")[-1]
    listed = demo_data.profile(new_pcn).trends["membership"]
    assert listed["detail"].str.startswith("QOF 2023-24").sum() == 1
    assert listed["detail"].str.startswith("QOF 2024-25").sum() == 1


def test_resident_qof_history_shares_each_year_by_its_end_months_registrations(demo_data):
    history_rows = demo_data.indicator_history
    qof = history_rows[history_rows["indicator_id"].isin(indicators.needing("qof"))]
    resident = qof[qof["basis"] == "resident"]
    # QOF 2024-25 with March 2025's registrations; no March 2024 in the history: no values
    assert set(resident["period"]) == {"2025-03"}
    assert set(resident["level"]) == set(
        demo_data.register.loc[demo_data.register["basis"] == "resident", "level"]
    ) - {"region"}  # regions come from the national files at the current period only
    # said to be modelled as in the current table
    prevalence_rows = resident[resident["indicator_id"].str.startswith("qof_prev_")]
    assert prevalence_rows["method"].str.contains("modelled from practice registers").all()
    # a LAD's diabetes register: each practice's register shared by where its patients lived
    # in March 2025 (its patients in the LAD's matched LSOAs over all its patients)
    ruled, _ = demo_data.qof_period_tables("2025-03")
    registrations = demo_data.at_period("2025-03").registrations
    lad = sorted(resident.loc[resident["level"] == "place", "area_code"])[0]
    in_lad = set(demo_data.lsoa.loc[demo_data.lsoa["lad_code"] == lad, "lsoa21_code"])
    totals = registrations.groupby("practice_code")["patients"].sum()
    here = registrations[
        registrations["lsoa_code"].isin(in_lad) & (registrations["lsoa_status"] == "matched")
    ]
    share = (here.groupby("practice_code")["patients"].sum() / totals).fillna(0.0)
    dm = ruled["qof"][ruled["qof"]["group_code"] == "DM"].set_index("practice_code")
    expected = (
        (dm["register"] * share.reindex(dm.index).fillna(0.0)).sum(),
        (dm["list_size"] * share.reindex(dm.index).fillna(0.0)).sum(),
    )
    row = resident[(resident["area_code"] == lad) & (resident["indicator_id"] == "qof_prev_dm")]
    assert len(row) == 1
    np.testing.assert_allclose(
        (row["numerator"].iloc[0], row["denominator"].iloc[0]), expected, rtol=1e-9
    )
    # compared with all loaded LSOAs of the same year (the month's registrations are the store's)
    everyone = resident[(resident["area_code"] == "ALL")].set_index("indicator_id")["value"]
    assert (resident["comparator_value"] == resident["indicator_id"].map(everyone)).all()
    # (the demo's history holds one QOF year's end month, so a resident profile has one QOF
    # point: test_resident_profiles_get_a_qof_trend_when_both_end_months_are_held)


def test_resident_profiles_get_a_qof_trend_when_both_end_months_are_held(tmp_path):
    import pophealth
    from pophealth.demo import write_demo_dataset

    # 20 months back from October 2025: March 2024 and March 2025 both in the history
    write_demo_dataset(tmp_path / "raw", seed=42, history_months=20)
    store = tmp_path / "prepared"
    history.prepare_store(tmp_path / "raw", store, progress=None, systems=DEMO_SYSTEMS)
    data = pophealth.load(store, cache=False)
    assert {"2024-03", "2025-03"} <= set(data.periods)
    rows = data.indicator_history
    resident = rows[
        rows["indicator_id"].isin(indicators.needing("qof")) & (rows["basis"] == "resident")
    ]
    assert set(resident["period"]) == {"2024-03", "2025-03"}
    lad = sorted(resident.loc[resident["level"] == "place", "area_code"])[0]
    summary = data.profile(lad, basis="resident").trends["summary"].set_index("indicator_id")
    assert summary.loc["qof_prev_dm", "points"] == 2
    assert summary.loc["qof_prev_dm", "period_label"] == "QOF 2023-24 to 2024-25"


def _next_month_release(demo_raw: Path, target: Path) -> Path:
    """The current release's time-varying files re-dated to November 2025, one list +100."""
    target.mkdir(parents=True)
    for name in ("gp-reg-pat-prac-all.csv", "gp-reg-pat-prac-lsoa-all.csv"):
        text = (demo_raw / name).read_text()
        (target / name).write_text(text.replace("2025-10-01", "2025-11-01"))
    totals = pd.read_csv(target / "gp-reg-pat-prac-all.csv", dtype=str)
    totals.loc[0, "NUMBER_OF_PATIENTS"] = str(int(totals.loc[0, "NUMBER_OF_PATIENTS"]) + 100)
    totals.to_csv(target / "gp-reg-pat-prac-all.csv", index=False)
    # the LSOA file gains the same 100 patients, so the month still reconciles (issue10)
    lsoa = pd.read_csv(target / "gp-reg-pat-prac-lsoa-all.csv", dtype=str)
    row = lsoa.index[lsoa["PRACTICE_CODE"] == totals.loc[0, "CODE"]][0]
    lsoa.loc[row, "NUMBER_OF_PATIENTS"] = str(int(lsoa.loc[row, "NUMBER_OF_PATIENTS"]) + 100)
    lsoa.to_csv(target / "gp-reg-pat-prac-lsoa-all.csv", index=False)
    workforce = next(demo_raw.glob("1 General Practice*October 2025*.csv"))
    shutil.copy(workforce, target / workforce.name.replace("October 2025", "November 2025"))
    return target


def test_adding_a_newer_month_makes_it_the_current_store(demo_raw, demo_prepared, tmp_path):
    store = tmp_path / "prepared"
    shutil.copytree(demo_prepared, store)
    release = _next_month_release(demo_raw, tmp_path / "2025-11")
    code = cli.main(["prepare", str(release), "--out", str(store), "--add"])
    assert code == 0
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["history"]["periods"][-1] == "2025-11"
    assert manifest["as_of"] == "2025-11-01"
    practices = pd.read_parquet(store / "practices.parquet")
    before = pd.read_parquet(demo_prepared / "practices.parquet")
    first = pd.read_csv(release / "gp-reg-pat-prac-all.csv", dtype=str).loc[0, "CODE"]
    delta = (
        practices.set_index("practice_code")["registered_patients"]
        - before.set_index("practice_code")["registered_patients"]
    )
    assert delta[first] == 100 and (delta.drop(first) == 0).all()
    # England's list (national.parquet) is the new month's: 100 more patients
    england = {}
    for name, folder in (("before", demo_prepared), ("after", store)):
        national = pd.read_parquet(folder / "national.parquet")
        row = national.query("area_code == 'ALL' and basis == 'registered' and imd == '2025'")
        england[name] = float(row["list_size__num"].iloc[0])
    assert england["after"] - england["before"] == 100
    # the new month's age lists are not in the release: that table is empty for it, not stale
    assert len(pd.read_parquet(store / "practice_age_sex.parquet")) == 0


def test_add_reconciles_the_release_before_writing(demo_raw, demo_prepared, tmp_path):
    """``prepare --add`` goes through prepare's reconciliation: a short LSOA file is refused."""
    store = tmp_path / "prepared"
    shutil.copytree(demo_prepared, store)
    release = _next_month_release(demo_raw, tmp_path / "2025-11")
    lsoa = pd.read_csv(release / "gp-reg-pat-prac-lsoa-all.csv", dtype=str)
    lsoa.iloc[: len(lsoa) // 2].to_csv(release / "gp-reg-pat-prac-lsoa-all.csv", index=False)
    before = {p.name: p.read_bytes() for p in store.rglob("*.parquet")}
    with pytest.raises(ReconciliationError, match="disagrees with gp-reg-pat-prac-all.csv"):
        history.add_release(release, store, progress=None)
    assert {p.name: p.read_bytes() for p in store.rglob("*.parquet")} == before
    assert json.loads((store / "manifest.json").read_text())["history"]["periods"][-1] == "2025-10"


def test_history_release_with_duplicate_keys_is_refused(demo_raw, tmp_path):
    """Each release folder the full prepare reads is reconciled too (here: a repeated key)."""
    bad = shutil.copytree(demo_raw / "releases" / "2025-03", tmp_path / "2025-03")
    period, _, _, _, reconciliation = history.load_release(bad)
    assert (
        period == "2025-03" and reconciliation["practice_totals"]["registrations_lsoa"]["compared"]
    )
    lsoa_file = bad / "gp-reg-pat-prac-lsoa-all.csv"
    lines = lsoa_file.read_text().splitlines(keepends=True)
    lsoa_file.write_text("".join([*lines, lines[1]]))
    with pytest.raises(ReconciliationError, match="more than once"):
        history.load_release(bad)


def test_add_needs_a_store_and_a_dated_release(demo_prepared, tmp_path):
    with pytest.raises(history.HistoryError, match="not a prepared store"):
        history.add_release(tmp_path, tmp_path / "nowhere", progress=None)
    empty = tmp_path / "empty_release"
    empty.mkdir()
    store = tmp_path / "store"
    shutil.copytree(demo_prepared, store)
    with pytest.raises(history.HistoryError, match="cannot tell which month"):
        history.add_release(empty, store, progress=None)


def test_membership_rule_counts_a_moved_practice_in_its_current_pcn():
    practices_then = pd.DataFrame(
        {
            "practice_code": ["A", "B", "C", "D"],
            "pcn_code": ["P1", "P1", "P2", "P2"],
            "registered_patients": [100, 200, 300, 50],
        }
    )
    today = pd.DataFrame({"practice_code": ["A", "B", "C"], "pcn_code": ["P1", "P2", "P2"]})
    regs = pd.DataFrame(
        {
            "practice_code": ["A", "D"],
            "lsoa_code": ["E1", "E1"],
            "lsoa_status": "matched",
            "patients": [10, 5],
        }
    )
    period = {"practices": practices_then, "registrations": regs, "practice_age_sex": regs.iloc[:0]}
    tables, changes = history.apply_membership_rule(period, today)
    pcn = tables["practices"].set_index("practice_code")["pcn_code"]
    assert pcn["B"] == "P2"  # moved: counted in today's PCN throughout
    assert pd.isna(pcn["D"])  # closed, no successor: in no neighbourhood
    assert set(changes["change"]) == {"moved PCN", "not in today's list"}
    # with an ODS succession D -> C, D's list and registrations are carried by C
    successors = pd.DataFrame({"predecessor_code": ["D"], "successor_code": ["C"]})
    tables, changes = history.apply_membership_rule(period, today, successors)
    sizes = tables["practices"].set_index("practice_code")["registered_patients"]
    assert sizes["C"] == 350 and "D" not in sizes.index
    assert tables["registrations"].set_index("practice_code")["patients"]["C"] == 5
    assert "merged" in set(changes["change"])


def test_indicator_history_and_cli_periods_all(demo_data, demo_prepared, tmp_path):
    table = demo_data.indicator_history
    assert table["period"].nunique() == 13  # 12 months and QOF 2023-24's own period (2024-03)
    latest = table[table["period"] == "2025-10"].drop(columns="period").reset_index(drop=True)
    current = demo_data.indicator_table
    # the current month is the indicator table, its QOF year at that year's own period
    current = current[~current["indicator_id"].isin(indicators.needing("qof"))]
    pd.testing.assert_frame_equal(latest, current.reset_index(drop=True), check_dtype=False)
    changes = demo_data.membership_changes
    moved = changes[changes["change"] == "moved PCN"]
    assert moved["practice_code"].nunique() == 1
    months = moved[~moved["detail"].str.startswith("QOF ")]
    assert sorted(months["period"]) == ["2024-11", "2024-12", "2025-01", "2025-02", "2025-03"]
    out = tmp_path / "history.csv"
    argv = ["indicators", "--data", str(demo_prepared), "--level", "system", "--periods", "all"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    written = pd.read_csv(out)
    assert written["period"].nunique() == 13
    assert set(written["level"]) == {"system"}


def test_history_with_custom_neighbourhoods(demo_prepared):
    import pophealth

    groupings = Path(__file__).resolve().parents[1] / "docs" / "example_neighbourhoods.yaml"
    data = pophealth.load(demo_prepared, neighbourhoods=groupings, cache=False)
    p = data.profile("INT01")
    summary = p.trends["summary"].set_index("indicator_id")
    assert summary.loc["list_size", "points"] == 12
    history = data.indicator_history
    latest = history[(history["period"] == "2025-10") & (history["area_code"] == "INT01")]
    current = data.indicator_table[data.indicator_table["area_code"] == "INT01"]
    monthly = current[~current["indicator_id"].isin(indicators.needing("qof"))]
    assert latest["value"].tolist() == pytest.approx(monthly["value"].tolist(), nan_ok=True)
    # QOF indicators of the custom neighbourhood at each QOF year's period
    qof = history[(history["area_code"] == "INT01") & (history["indicator_id"] == "qof_prev_dm")]
    assert qof["period"].tolist() == ["2024-03", "2025-03"]
    now = current.set_index("indicator_id").loc["qof_prev_dm", "value"]
    assert qof["value"].iloc[-1] == pytest.approx(now)


def test_plain_prepare_has_no_history_and_add_says_so(demo_raw, tmp_path):
    store = tmp_path / "plain"
    manifest = prepare(demo_raw, store, progress=None)  # without the history step
    assert "history" not in manifest and not (store / history.HISTORY_DIR).exists()
    with pytest.raises(history.HistoryError, match="has no release history"):
        history.add_release(demo_raw / "releases" / "2025-03", store, progress=None)
    # without history the indicator history is the current table, its QOF year at its period
    import pophealth

    table = pophealth.load(store, cache=False).indicator_history
    is_qof = table["indicator_id"].isin(indicators.needing("qof"))
    assert set(table.loc[is_qof, "period"]) == {"2025-03"}
    assert set(table.loc[~is_qof, "period"]) == {"2025-10"}


def test_release_period_prefers_registrations_and_reports_disagreement():
    totals = pd.DataFrame({"extract_date": pd.to_datetime(["2025-10-01"]), "patients": [1]})
    files = {
        "workforce": {
            "files": [{"name": "1 General Practice – September 2025 Practice Level - Detailed.csv"}]
        }
    }
    period, note = history.release_period({"practice_totals": totals, "workforce": object()}, files)
    assert period == "2025-10"
    assert note == "release 2025-10: workforce is from 2025-09"
    period, note = history.release_period({"workforce": object()}, files)
    assert (period, note) == ("2025-09", "")
    assert history.release_period({}, {}) == (None, "")


def test_history_in_chunks_equals_one_stack(demo_data, demo_prepared, monkeypatch):
    import pophealth
    from pophealth import api

    monkeypatch.setattr(api, "HISTORY_ROWS_PER_CHUNK", 1)  # one period per computation
    chunked = pophealth.load(demo_prepared, cache=False).indicator_history
    pd.testing.assert_frame_equal(chunked, demo_data.indicator_history)


def test_release_worker_gives_the_same_store(demo_raw, demo_prepared, tmp_path, monkeypatch):
    # the worker process that shares national-size releases, forced for the demo's small ones
    monkeypatch.setattr(history, "WORKER_MIN_BYTES", 0)
    out = tmp_path / "prepared"
    manifest = history.prepare_store(demo_raw, out, progress=None, systems=DEMO_SYSTEMS)
    full = json.loads((demo_prepared / "manifest.json").read_text())
    assert manifest["history"] == full["history"]
    for path in sorted((demo_prepared / "history").glob("*.parquet")):
        pd.testing.assert_frame_equal(
            pd.read_parquet(out / "history" / path.name), pd.read_parquet(path)
        )
    assert not list((out / "history").glob(".parts-*"))


def _with_bad_releases(demo_raw: Path, raw: Path) -> None:
    """The demo's raw folder with 2025-01 unreadable and 2025-05 also held under another label."""
    _link_tree(demo_raw, raw, skip={"releases/2025-01"})
    bad = raw / "releases" / "2025-01"
    bad.mkdir(parents=True)
    (bad / "gp-reg-pat-prac-lsoa-all.csv").write_text("not,a,registrations,file\n1,2,3,4\n")
    _link_tree(demo_raw / "releases" / "2025-05", raw / "releases" / "2025-05-again", skip=set())


@pytest.mark.parametrize("first", ["unreadable", "two folders"])
def test_release_worker_errors_are_raised_as_without_it(demo_raw, tmp_path, monkeypatch, first):
    # whichever process meets a bad release, prepare raises the error of the first bad release
    # in label order, as without a worker: a release the worker could not read is read again
    raw = tmp_path / "raw"
    _with_bad_releases(demo_raw, raw)
    if first == "two folders":  # the copy of 2025-05 now comes before the unreadable folder
        (raw / "releases" / "2025-01").rename(raw / "releases" / "2025-99")
    errors = []
    for min_bytes in (10**15, 0):  # without, then with a worker
        monkeypatch.setattr(history, "WORKER_MIN_BYTES", min_bytes)
        errors.append(_raised(lambda: history.prepare_store(raw, tmp_path / "out", progress=None)))
        # nothing of the failed rebuild is left behind (the worker is stopped first)
        assert not list((tmp_path / "out" / "history").glob(".parts-*"))
    assert type(errors[0]) is type(errors[1]) and str(errors[0]) == str(errors[1])
    expected = history.HistoryError if first == "two folders" else Exception
    assert isinstance(errors[0], expected)
    if first == "unreadable":
        assert str(errors[0]) == str(
            _raised(lambda: history.load_release(raw / "releases" / "2025-01"))
        )
    else:
        assert "two release folders hold 2025-05" in str(errors[0])


def _history_context(demo_prepared: Path, staging: Path) -> history.HistoryContext:
    lsoa = history._read_store_table(demo_prepared, "lsoa.parquet")
    static = history.read_static_inputs(demo_prepared)
    return history.HistoryContext(demo_prepared, staging, static, lsoa, "2025-10")


def _assert_staged_as_built_here(staged, folder: Path, context, here: Path) -> None:
    """A staged release's files are those its tables, built here from the folder, would be."""
    period, loaded, files, note, _ = history.load_release(folder)
    assert (staged.period, staged.files, staged.note) == (period, files, note)
    tables = history.period_tables(context.static, history._monthly(loaded), context.lsoa)
    history._write_period_parts(context.out, here, period, tables)
    for table in history.HISTORY_TABLES:
        part, want = (f / table / f"{period}{history.PART_SUFFIX}" for f in (staged.parts, here))
        assert part.exists() == want.exists() == bool(len(tables[table]))
        if part.exists():
            assert history._read_part(part).equals(history._read_part(want), check_metadata=True)


def test_release_worker_skips_releases_claimed_by_prepare(demo_raw, demo_prepared, tmp_path):
    folders = history.release_folders(demo_raw)[:4]
    cache = tmp_path / "cache"
    cache.mkdir()
    context = _history_context(demo_prepared, tmp_path / "staging")
    history._dump(context, cache / "context")
    for index in (1, 3):  # prepare's process claimed these
        assert history._claim(cache / f"{index}.claim")
    assert not history._claim(cache / "1.claim")
    history.release_worker([str(cache), *map(str, folders)])
    assert sorted(p.name for p in cache.glob("*.staged")) == ["0.staged", "2.staged"]
    assert not list(cache.glob("*.failed")) and not list(cache.glob("*.loaded*"))
    for index in (0, 2):
        staged = history._undump(cache / f"{index}.staged")
        _assert_staged_as_built_here(staged, folders[index], context, tmp_path / f"here{index}")


def test_worker_and_prepare_share_the_releases_once(demo_raw, demo_prepared, tmp_path):
    """Releases the worker loaded before the context existed are staged by either process."""
    import threading

    folders = history.release_folders(demo_raw)[:5]
    cache = tmp_path / "cache"
    cache.mkdir()
    worker = threading.Thread(
        target=history.release_worker, args=([str(cache), *map(str, folders)],)
    )
    worker.start()  # no context yet: it loads every release, keeps one and pickles the others
    for _ in range(600):
        if len(list(cache.glob("*.loaded"))) == len(folders) - 1:
            break
        worker.join(0.1)
    assert len(list(cache.glob("*.loaded"))) == len(folders) - 1
    context = _history_context(demo_prepared, tmp_path / "staging")
    history._dump(context, cache / "context")
    results = history.share_releases(
        cache, folders, context, worker_stopped=lambda: not worker.is_alive()
    )
    worker.join(60)
    assert not worker.is_alive()
    assert sorted(results) == list(range(len(folders)))  # each release staged once
    assert not list(cache.glob("*.loaded*")) and not list(cache.glob("*.failed"))
    for index, staged in results.items():
        _assert_staged_as_built_here(staged, folders[index], context, tmp_path / f"here{index}")


def _raised(call) -> Exception:
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the test compares whatever is raised
        return error
    raise AssertionError("no error raised")


def test_period_parts_join_as_their_frames_concatenated(tmp_path):
    # the parts a rebuild writes are joined into what pd.concat of their frames would store
    frames = {
        "2025-01": pd.DataFrame(
            {"practice_code": ["A", None], "patients": [1, 2], "fte": [0.5, np.nan]}
        ),
        "2025-02": pd.DataFrame({"practice_code": ["B"], "patients": [3], "fte": [1.25]}),
        # a release without workforce figures: fewer columns
        "2025-03": pd.DataFrame({"practice_code": ["C"], "patients": [4]}),
    }
    for periods in (["2025-01", "2025-02"], ["2025-01", "2025-02", "2025-03"]):
        parts = []
        for period in periods:
            parts.append(tmp_path / f"{period}{history.PART_SUFFIX}")
            history._write_part(frames[period].assign(period=period), parts[-1])
        joined, reference = tmp_path / "joined.parquet", tmp_path / "reference.parquet"
        history._concat_parts(parts, joined)
        pd.concat([frames[p].assign(period=p) for p in periods], ignore_index=True).to_parquet(
            reference, index=False
        )
        pd.testing.assert_frame_equal(pd.read_parquet(joined), pd.read_parquet(reference))
        if len(periods) == 2:  # one schema: the same file schema too, a row group per period
            assert pq.read_schema(joined).equals(pq.read_schema(reference), check_metadata=True)
            assert pq.ParquetFile(joined).num_row_groups == 2


def test_pickled_release_comes_back_equal_and_writable(demo_raw, tmp_path):
    period, loaded, files, note, reconciliation = history.load_release(
        demo_raw / "releases" / "2025-03"
    )
    history._dump((period, loaded, files, note, reconciliation), tmp_path / "release")
    back = history._undump(tmp_path / "release")
    assert back[0] == period and back[2] == files and back[3] == note
    assert back[4] == reconciliation
    for name, frame in loaded.items():
        if isinstance(frame, pd.DataFrame):
            pd.testing.assert_frame_equal(back[1][name], frame)
    regs = back[1]["registrations_lsoa"]
    regs.loc[regs.index[0], "patients"] = -1  # the arrays are the process's own, writable
    assert regs["patients"].iloc[0] == -1 and loaded["registrations_lsoa"]["patients"].iloc[0] != -1


MONTHLY_FILES = (
    "gp-reg-pat-prac-all.csv",
    "gp-reg-pat-prac-lsoa-all.csv",
    "gp-reg-pat-prac-map.csv",
    "gp-reg-pat-prac-quin-age.csv",
    "gp-reg-pat-prac-sing-age-female.csv",
    "gp-reg-pat-prac-sing-age-male.csv",
    "1 General Practice",
    "1.Primary Care Networks",
)


@pytest.mark.parametrize("cut", [True, False], ids=["cut-by-systems", "every-icb"])
def test_adding_the_newest_month_gives_a_full_prepares_current_store(
    demo_raw, demo_prepared, tmp_path, cut
):
    """A store prepared up to September, with October added by ``--add``, is the store a full
    prepare with October at the top level makes: October's current tables, England's and the
    regions' October values (``national.parquet``, QOF columns too), the QOF model's covariates
    and every QOF year's fit refitted on October's lists, the current QOF tables and, for a
    store cut by ``--systems``, its national tables."""
    raw = tmp_path / "raw"
    _link_tree(demo_raw, raw, skip={*MONTHLY_FILES, "releases/2025-09"})
    for path in (demo_raw / "releases" / "2025-09").iterdir():
        (raw / path.name).symlink_to(path)
    october = tmp_path / "2025-10"
    october.mkdir()
    for path in demo_raw.iterdir():
        if path.is_file() and path.name.startswith(MONTHLY_FILES):
            (october / path.name).symlink_to(path)
    systems = DEMO_SYSTEMS if cut else None
    store = tmp_path / "prepared"
    before = history.prepare_store(raw, store, progress=None, systems=systems)
    assert before["history"]["periods"][-1] == "2025-09"
    key = ["area_code", "basis", "imd"]
    september = pd.read_parquet(store / "national.parquet").sort_values(key, ignore_index=True)
    september_fits = {e["period"]: e["model"] for e in before["history"]["qof_years"]}
    added = history.add_release(october, store, progress=None)
    if cut:
        full = demo_prepared
    else:
        full = tmp_path / "full"
        history.prepare_store(demo_raw, full, progress=None)
    want_manifest = json.loads((full / "manifest.json").read_text())
    stored = [*history.CURRENT_FILES.values(), "qof_prevalence.parquet", "qof_expected.parquet"]
    stored += [*history.QOF_COVARIATES.values()]
    stored += [f"{history.HISTORY_DIR}/{table}.parquet" for table in history.QOF_TABLES]
    if cut:
        stored += [f"{history.NATIONAL_DIR}/{name}" for name in history.NATIONAL_TABLES.values()]
    for name in stored:
        assert (store / name).exists() == (full / name).exists(), name
        if (full / name).exists():
            pd.testing.assert_frame_equal(
                _sorted(pd.read_parquet(store / name)),
                _sorted(pd.read_parquet(full / name)),
                obj=name,
            )
    got = pd.read_parquet(store / "national.parquet").sort_values(key, ignore_index=True)
    want = pd.read_parquet(full / "national.parquet").sort_values(key, ignore_index=True)
    assert list(got.columns) == list(september.columns)
    pd.testing.assert_frame_equal(got, want[got.columns])
    assert added["qof_model"] == want_manifest["qof_model"]
    fits = {e["period"]: e["model"] for e in added["history"]["qof_years"]}
    assert fits == {e["period"]: e["model"] for e in want_manifest["history"]["qof_years"]}
    assert added["notes"]["qof_year"] == want_manifest["notes"]["qof_year"]
    # and October is not September: England's values and the QOF fits moved with the month
    # (the demo's earlier releases hold the demo region only)
    england = got["area_code"].eq("ALL") & got["basis"].eq("registered")
    then = september["area_code"].eq("ALL") & september["basis"].eq("registered")
    assert (
        not got.loc[england]
        .reset_index(drop=True)
        .equals(september.loc[then].reset_index(drop=True))
    )
    assert fits != september_fits
