"""ODS successor organisations (succ.csv): loader, bad input, chains, and the demo's merger."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from pophealth import history
from pophealth.demo import _successors
from pophealth.sources import SOURCES, identify_source
from pophealth.sources.common import SourceFormatError
from pophealth.sources.ods_successors import (
    gp_practice_successions,
    load_ods_successors,
    resolve_chains,
)


def _write(tmp_path: Path, text: str, name: str = "succ.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_successor_file_loads_in_the_official_layout(demo_raw):
    path = demo_raw / "succ.csv"
    assert identify_source(path) == "ods_successors"
    first = path.read_text().splitlines()[0].split(",")
    assert len(first) == 5 and first[0] == _successors.OLDER_PREDECESSOR  # no header
    frame = load_ods_successors(path)
    assert list(frame.columns) == [
        "predecessor_code",
        "successor_code",
        "reason",
        "effective_date",
        "further_succession",
    ]
    assert frame["effective_date"].dtype == "datetime64[ns]"
    assert set(frame["reason"]) == {"R"}
    SOURCES["ods_successors"].schema.validate(frame)
    practices, notes = gp_practice_successions(frame)
    # trust- and PCN-shaped codes are not practices; the chain Y99999 > Y90006 > Y90010 resolved
    assert not practices["predecessor_code"].str.startswith(("U", "Y9T")).any()
    successor = practices.set_index("predecessor_code")["successor_code"]
    assert successor[_successors.OLDER_PREDECESSOR] == successor.iloc[1]
    assert practices["chain"].str.count(">").max() == 2
    assert notes == []


def test_zip_and_archive_files_are_read_together(tmp_path):
    with zipfile.ZipFile(tmp_path / "succ.zip", "w") as archive:
        archive.writestr("succ.csv", "A81001,A81002,R,20240401,\n")
    archive_file = _write(
        tmp_path, "A81002,A81003,R,20250401,\nA81001,A81002,R,20240401,\n", "succarc.csv"
    )
    frame = load_ods_successors([tmp_path / "succ.zip", archive_file])
    assert len(frame) == 2  # the repeated row is kept once
    practices, _ = gp_practice_successions(frame)
    assert dict(zip(practices["predecessor_code"], practices["successor_code"], strict=True)) == {
        "A81001": "A81003",
        "A81002": "A81003",
    }


def test_wrong_column_count_names_file_fields_and_fix(tmp_path):
    path = _write(tmp_path, "A81001,A81002,R,20240401\nA81003,A81004,R,20240401\n")
    with pytest.raises(SourceFormatError) as caught:
        load_ods_successors(path)
    message = str(caught.value)
    assert "succ.csv" in message and "4 columns found" in message and "has 5" in message
    assert "A81001" in message and "fix:" in message


def test_bad_dates_name_the_field_and_line(tmp_path):
    path = _write(tmp_path, "A81001,A81002,R,20240401,\nA81003,A81004,R,31/13/2024x,\n")
    with pytest.raises(SourceFormatError) as caught:
        load_ods_successors(path)
    message = str(caught.value)
    assert "field 4 (effective date)" in message and "line 2" in message
    assert "31/13/2024x" in message


def test_missing_date_and_bad_code_are_refused(tmp_path):
    with pytest.raises(SourceFormatError, match="missing date"):
        load_ods_successors(_write(tmp_path, "A81001,A81002,R,,\n"))
    with pytest.raises(SourceFormatError, match="field 2"):
        load_ods_successors(_write(tmp_path, "A81001,A 81-002!,R,20240401,\n"))


def test_a_header_row_someone_added_is_skipped(tmp_path):
    path = _write(
        tmp_path, "Predecessor,Successor,Reason,Date,Indicator\nA81001,A81002,R,20240401,\n"
    )
    assert load_ods_successors(path)["predecessor_code"].tolist() == ["A81001"]


def test_chains_resolve_to_the_last_successor():
    frame = pd.DataFrame(
        {
            "predecessor_code": ["A81001", "A81002", "A81003", "B82001"],
            "successor_code": ["A81002", "A81003", "A81004", "B82002"],
            "effective_date": pd.to_datetime(
                ["2019-04-01", "2021-04-01", "2024-04-01"] * 1 + ["2020-01-01"]
            ),
        }
    )
    out = resolve_chains(frame).set_index("predecessor_code")
    assert out["successor_code"].to_dict() == {
        "A81001": "A81004",
        "A81002": "A81004",
        "A81003": "A81004",
        "B82001": "B82002",
    }
    assert out.loc["A81001", "chain"] == "A81001>A81002>A81003>A81004"
    assert out.loc["A81001", "effective_date"] == pd.Timestamp("2019-04-01")


def test_a_cycle_is_an_error_naming_the_codes(tmp_path):
    path = _write(
        tmp_path,
        "A81001,A81002,R,20240401,F\nA81002,A81003,R,20240501,F\nA81003,A81001,R,20240601,F\n",
    )
    with pytest.raises(SourceFormatError) as caught:
        gp_practice_successions(load_ods_successors(path), path)
    message = str(caught.value)
    assert "cycle" in message and "A81001 -> A81002 -> A81003 -> A81001" in message
    assert "succ.csv" in message and "fix:" in message


def test_split_lists_are_set_aside_with_a_note():
    frame = pd.DataFrame(
        {
            "predecessor_code": ["A81001", "A81001", "C83001"],
            "successor_code": ["A81002", "A81003", "C83002"],
            "effective_date": pd.to_datetime(["2024-04-01"] * 3),
        }
    )
    out, notes = gp_practice_successions(frame)
    assert out["predecessor_code"].tolist() == ["C83001"]
    assert "A81001" in notes[0] and "split" in notes[0]


def test_prepare_records_the_successor_file_and_carries_the_merged_list(demo_prepared, demo_data):
    manifest = json.loads((demo_prepared / "manifest.json").read_text())
    source = manifest["sources"]["ods_successors"]
    assert source["files"][0]["name"] == "succ.csv" and len(source["files"][0]["sha256"]) == 64
    assert source["release"].startswith("successions to 2025-06-01")
    assert manifest["history"]["successions"]["gp_practice_successions"] == 2
    stored = history.read_successors(demo_prepared)
    predecessor, successor = stored.loc[stored["chain"].str.count(">") == 1].iloc[0][
        ["predecessor_code", "successor_code"]
    ]
    closure = f"{_successors.closure_date('2025-10-01'):%Y-%m}"
    raw = history.read_history(demo_prepared)["practices"]
    own = raw[raw["practice_code"].isin([predecessor, successor])]
    assert own.loc[own["practice_code"] == predecessor, "period"].max() < closure  # it closed
    changes = demo_data.membership_changes
    merged = changes[changes["change"] == "merged"]
    assert set(merged["practice_code"]) == {predecessor}
    of_qof = merged["detail"].str.startswith("QOF ")
    assert set(merged.loc[~of_qof, "period"]) == {p for p in demo_data.periods if p < closure}
    # and in each QOF year (both end before the closure), at the year's period
    assert merged.loc[of_qof, ["period", "detail"]].values.tolist() == [
        ["2024-03", f"QOF 2023-24: carried by its successor {successor}"],
        ["2025-03", f"QOF 2024-25: carried by its successor {successor}"],
    ]
    assert merged["detail"].str.contains(f"carried by its successor {successor}").all()
    series = []
    for period in demo_data.periods:
        view = demo_data.at_period(period)
        # history totals conserve patients: the rule moves the list, it adds or loses nobody
        assert view.practices["registered_patients"].sum() == (
            raw.loc[raw["period"] == period, "registered_patients"].sum()
        )
        assert predecessor not in set(view.practices["practice_code"])
        assert (
            view.registrations["patients"].sum()
            == view.registrations.groupby("practice_code")["patients"].sum().sum()
        )
        series.append(
            view.practices.set_index("practice_code").loc[successor, "registered_patients"]
        )
    steps = pd.Series(series, index=demo_data.periods).diff().dropna()
    # no step at the merger: the successor's ruled list grows as smoothly as before it
    raw_successor = own[own["practice_code"] == successor].set_index("period")[
        "registered_patients"
    ]
    assert raw_successor.diff().max() > 2_000  # the published list jumps at the merger
    assert steps.abs().max() < 500


def test_a_file_without_gp_practice_successions_gives_an_empty_typed_table(tmp_path):
    """Only trusts and PCNs succeeded (as in the England-scale demo): no practice rows, and the
    table still meets its schema (prepare on such a file failed before)."""
    path = tmp_path / "succ.csv"
    path.write_text("RXX01,RXX02,R,20230401,\nU99901,U99902,R,20240401,\n")
    successions, notes = gp_practice_successions(load_ods_successors(path), path)
    assert successions.empty and not notes
    assert list(successions.columns) == [
        "predecessor_code",
        "successor_code",
        "effective_date",
        "chain",
    ]
