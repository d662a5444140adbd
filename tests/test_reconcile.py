"""Unit tests of the reconciliation functions, the code clean-up count and run-fault errors."""

from __future__ import annotations

import errno

import pandas as pd
import pytest

from pophealth import reconcile
from pophealth.errors import OutputError, PopHealthError, output_error
from pophealth.files import atomic_path, atomic_write_text
from pophealth.sources.common import clean_codes, counting_code_fixes

DATE = pd.Timestamp("2025-10-01")


def _totals(**patients: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"extract_date": DATE, "practice_code": list(patients), "patients": list(patients.values())}
    )


def _lsoa_rows(**patients: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "extract_date": DATE,
            "practice_code": list(patients),
            "lsoa_code": "E01000001",
            "patients": list(patients.values()),
        }
    )


def test_totals_equal_within_and_beyond_tolerance():
    loaded = {"practice_totals": _totals(A=5000, B=20000), "registrations_lsoa": _lsoa_rows(A=5000)}
    loaded["registrations_lsoa"] = pd.concat(
        [_lsoa_rows(A=5000), _lsoa_rows(B=20015)], ignore_index=True
    )
    report = reconcile.reconcile_practice_totals(loaded, {})
    entry = report["registrations_lsoa"]
    # 15 of 20,000 is within max(10, 0.1% = 20)
    assert entry["within_tolerance"] == {"B": {"source": 20015, "total": 20000}}
    assert entry["patients_difference"] == 15
    loaded["registrations_lsoa"] = _lsoa_rows(A=4980, B=20000)
    with pytest.raises(reconcile.ReconciliationError, match=r"practice_code=A, source=4980"):
        reconcile.reconcile_practice_totals(loaded, {})


def test_practice_missing_from_one_side_counts_as_zero():
    loaded = {"practice_totals": _totals(A=5000, B=3), "registrations_lsoa": _lsoa_rows(A=5000)}
    # B has 3 patients: within tolerance, recorded as missing, not an error
    entry = reconcile.reconcile_practice_totals(loaded, {})["registrations_lsoa"]
    assert entry["missing_from_source"] == ["B"]
    loaded["practice_totals"] = _totals(A=5000, B=300)
    with pytest.raises(reconcile.ReconciliationError, match="B"):
        reconcile.reconcile_practice_totals(loaded, {})


def test_other_extract_date_is_not_compared_and_says_so():
    other = _lsoa_rows(A=1).assign(extract_date=pd.Timestamp("2025-09-01"))
    loaded = {"practice_totals": _totals(A=5000), "registrations_lsoa": other}
    entry = reconcile.reconcile_practice_totals(loaded, {})["registrations_lsoa"]
    assert entry["compared"] is False and "2025-09-01" in entry["note"]


def test_duplicate_keys_and_category_over_total_are_errors():
    files = {"registrations_lsoa": {"files": [{"name": "lsoa.csv"}]}}
    twice = pd.concat([_lsoa_rows(A=5), _lsoa_rows(A=6)], ignore_index=True)
    with pytest.raises(reconcile.ReconciliationError, match=r"lsoa\.csv: 1 practice_code/lsoa"):
        reconcile.check_duplicate_keys({"registrations_lsoa": twice}, files)
    census = pd.DataFrame(
        {"lsoa21_code": ["E01000001", "E01000002"], "health_total": [10, 10], "health_bad": [3, 11]}
    )
    with pytest.raises(reconcile.ReconciliationError, match=r"health_bad.*E01000002"):
        reconcile.check_categories({"census_ts037": census}, {})


def test_presence_and_rows_set_aside():
    loaded = {
        "practice_totals": _totals(A=1, B=2),
        "workforce": pd.DataFrame({"practice_code": ["A", "Z"]}),
    }
    presence = reconcile.practice_presence(loaded)
    assert presence["missing"] == {"workforce": ["B"]}
    assert presence["extra"] == {"workforce": ["Z"]}
    rows = reconcile.source_rows(loaded, set(), {"A", "B"})
    assert rows["workforce"] == {
        "rows_read": 2,
        "rows_used": 1,
        "set_aside": {"practice not in the registered practice list": 1},
    }


def test_clean_codes_trims_upper_cases_and_counts():
    with counting_code_fixes() as fixes:
        cleaned = clean_codes(pd.Series([" y90001", "Y90002", "", None, "e01000001 "]))
    assert cleaned.tolist()[:2] == ["Y90001", "Y90002"]
    assert cleaned.isna().tolist() == [False, False, True, True, False]
    assert cleaned.iloc[4] == "E01000001"
    assert fixes[0] == 2
    clean_codes(pd.Series(["a"]))  # outside a counting block: nothing counted, no error


@pytest.mark.parametrize(
    "number, words",
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EROFS, "read-only"),
        (errno.ENOTDIR, "is a file"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_output_error_names_path_problem_and_fix(number, words):
    error = output_error("/out/x.html", OSError(number, "os text"))
    assert isinstance(error, OutputError) and isinstance(error, PopHealthError)
    assert error.errno == number
    assert str(error).startswith("cannot write /out/x.html: ") and words in str(error)
    assert "Fix: " in str(error) and "\n" not in str(error)


def test_atomic_path_turns_write_faults_into_one_output_error(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(OutputError, match="a file stands where a folder should be"):
        atomic_write_text(tmp_path / "a-file" / "out.html", "<p>x</p>")
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(OutputError, match="the disk is full"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "out.csv"]  # no temp file


def test_atomic_path_leaves_errors_about_other_files_alone(tmp_path):
    # reading an input inside the block fails about that input, not about the output
    with pytest.raises(FileNotFoundError) as caught, atomic_path(tmp_path / "out.csv"):
        (tmp_path / "missing-input.csv").read_text()
    assert not isinstance(caught.value, OutputError)
    assert not list(tmp_path.iterdir())
