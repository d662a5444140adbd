"""The bad-input suite: one defect per case in otherwise good raw files, through the CLI.

Each case copies the session's demo raw folder, damages one thing, runs ``pophealth prepare``
(or ``pophealth run``) and asserts either

* **refused**: exit code 2, one clear message (file, column or rows, and the fix) matching the
  case's pattern, no traceback, and no store written; or
* **handled and shown**: exit code 0, the defect visible in the manifest's reconciliation
  report, and registered patients conserved (the store's total equals the raw LSOA file's
  total, and every patient is in some LSOA status).
"""

from __future__ import annotations

import errno
import gzip
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from pophealth import cli
from pophealth.demo._model import SCALES

LSOA_FILE = "gp-reg-pat-prac-lsoa-all.csv"
TOTALS_FILE = "gp-reg-pat-prac-all.csv"
AGE_FILE = "gp-reg-pat-prac-quin-age.csv"
LOOKUP_FILE = "LSOA21_SICBL23_ICB23_LAD23_EN_LU.csv"
IOD_FILE = "File_7_IoD2025_All_Ranks_Scores_Deciles_Population_Denominators.csv"
WORKFORCE_FILE = "1 General Practice – October 2025 Practice Level - Detailed.csv"
PAYMENTS_FILE = "nhspaymentsgp-24-25-prac-csv.csv"
SHAPE = "LSOA_2021_EW_BSC_V4"


# --------------------------------------------------------------------------------------------
# Helpers to damage one file
# --------------------------------------------------------------------------------------------


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _write(frame: pd.DataFrame, path: Path) -> None:
    bom = path.read_bytes()[:3] == b"\xef\xbb\xbf"
    frame.to_csv(path, index=False, encoding="utf-8-sig" if bom else "utf-8")


def edit(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def damage(raw: Path) -> None:
        _write(change(_read(raw / name)), raw / name)

    return damage


def cut_mid_row(name: str) -> Callable[[Path], None]:
    """Cut the file 20 characters into one of its last rows (a download that stopped)."""

    def damage(raw: Path) -> None:
        data = (raw / name).read_bytes()
        start = data.rfind(b"\n", 0, len(data) - len(data) // 50) + 1
        (raw / name).write_bytes(data[: start + 20])

    return damage


def drop_last_lines(name: str, n: int) -> Callable[[Path], None]:
    """Cut the file at a row boundary, losing its last ``n`` rows."""

    def damage(raw: Path) -> None:
        lines = (raw / name).read_bytes().splitlines(keepends=True)
        (raw / name).write_bytes(b"".join(lines[:-n]))

    return damage


def replace_text(name: str, old: bytes, new: bytes, count: int = 1) -> Callable[[Path], None]:
    def damage(raw: Path) -> None:
        data = (raw / name).read_bytes()
        assert old in data, f"{old!r} not in {name}"
        (raw / name).write_bytes(data.replace(old, new, count))

    return damage


def copy_over(source: str, target: str) -> Callable[[Path], None]:
    def damage(raw: Path) -> None:
        shutil.copyfile(raw / source, raw / target)

    return damage


def remove(*names: str) -> Callable[[Path], None]:
    def damage(raw: Path) -> None:
        for name in names:
            (raw / name).unlink()

    return damage


def write_bytes(name: str, data: bytes) -> Callable[[Path], None]:
    def damage(raw: Path) -> None:
        (raw / name).write_bytes(data)

    return damage


def truncate_bytes(name: str, keep_fraction: float) -> Callable[[Path], None]:
    def damage(raw: Path) -> None:
        data = (raw / name).read_bytes()
        (raw / name).write_bytes(data[: int(len(data) * keep_fraction)])

    return damage


def _first_row_repeated(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[[0]]], ignore_index=True)


def _set(column: str, value: str, row: int = 0) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame.loc[frame.index[row], column] = value
        return frame

    return change


def _set_in_practice(
    practice: str, column: str, value: str, row: int
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Set ``column`` on the ``row``-th row of one practice (the files also hold the rest of
    England's practices, so a position in the whole file is not a demo ICS practice)."""

    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        rows = frame.index[frame.iloc[:, :4].eq(practice).any(axis=1)]
        frame.loc[rows[row], column] = value
        return frame

    return change


def _lsoa_under_two_icbs(frame: pd.DataFrame) -> pd.DataFrame:
    twin = frame.iloc[[0]].copy()
    twin["ICB23CD"], twin["ICB23CDH"] = "E54000998", "QZY"
    return pd.concat([frame, twin], ignore_index=True)


def _move_one_patient(frame: pd.DataFrame) -> pd.DataFrame:
    """One patient moved between two practices' LSOA rows: within tolerance for both."""
    frame = frame.copy()
    counts = frame["NUMBER_OF_PATIENTS"].astype(int)
    first = frame.index[frame["PRACTICE_CODE"] == "Y90001"][0]
    other = frame.index[frame["PRACTICE_CODE"] == "Y90002"][0]
    frame.loc[first, "NUMBER_OF_PATIENTS"] = str(counts[first] + 1)
    frame.loc[other, "NUMBER_OF_PATIENTS"] = str(max(counts[other] - 1, 0))
    return frame


def _mangle_codes(column: str, how: Callable[[str], str]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        rows = frame.index[:40]
        frame.loc[rows, column] = frame.loc[rows, column].map(how)
        return frame

    return change


def _drop_practice(code: str, column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame[frame[column].str.strip() != code]


def _add_practice_row(column: str, code: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        extra = frame.iloc[[0]].copy()
        extra[column] = code
        return pd.concat([frame, extra], ignore_index=True)

    return change


def _null_geometry(raw: Path) -> None:
    import geopandas as gpd

    shapes = gpd.read_file(raw / f"{SHAPE}.shp")
    shapes.loc[0, "geometry"] = None
    shapes.to_file(raw / f"{SHAPE}.shp")


def _census_category_over_total(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    total = int(frame.loc[0, "General health: Total: All usual residents"])
    frame.loc[0, "General health: Bad health"] = str(total + 5)
    return frame


def _lsoa_outside_lookup(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame.index[0], "LSOA_CODE"] = "E01999999"
    return frame


def _listing_missing_file(raw: Path) -> None:
    (raw / "sources.yaml").write_text(
        "sources:\n  registrations_lsoa: {path: not-there.csv}\n", encoding="utf-8"
    )


# --------------------------------------------------------------------------------------------
# The cases: (id, damage, expectation). Refused: a regex the message must match. Handled: a
# check on the manifest (the reconciliation report shows the defect).
# --------------------------------------------------------------------------------------------


def shown(check: Callable[[dict], bool]) -> Callable[[dict], bool]:
    return check


def _rec(manifest: dict) -> dict:
    return manifest["reconciliation"]


REFUSED = [
    ("lsoa-file-cut-mid-row", cut_mid_row(LSOA_FILE), r"cut short.*download the file again"),
    ("totals-file-cut-mid-row", cut_mid_row(TOTALS_FILE), r"cut short"),
    ("age-file-cut-mid-row", cut_mid_row(AGE_FILE), r"cut short"),
    ("lookup-cut-mid-row", cut_mid_row(LOOKUP_FILE), r"cut short"),
    ("iod-cut-mid-row", cut_mid_row(IOD_FILE), r"cut short"),
    ("census-cut-mid-row", cut_mid_row("census2021-ts037-lsoa.csv"), r"cut short"),
    ("workforce-cut-mid-row", cut_mid_row(WORKFORCE_FILE), r"cut short"),
    (
        "lsoa-file-lost-last-rows",
        drop_last_lines(LSOA_FILE, 300),
        # the file's last rows are the synthetic rest of England's practices (Y8...)
        r"gp-reg-pat-prac-lsoa-all\.csv disagrees with gp-reg-pat-prac-all\.csv"
        r".*practice_code=Y[89]",
    ),
    (
        "totals-last-number-cut",
        lambda raw: (raw / TOTALS_FILE).write_bytes(
            (raw / TOTALS_FILE).read_bytes().rstrip(b"\r\n")[:-2]
        ),
        r"disagrees with gp-reg-pat-prac-all\.csv.*source=\d+, total=\d+",
    ),
    (
        "practice-missing-from-totals",
        edit(TOTALS_FILE, _drop_practice("Y90005", "CODE")),
        r"disagrees.*practice_code=Y90005.*total=0",
    ),
    (
        "practice-missing-from-lsoa-file",
        edit(LSOA_FILE, _drop_practice("Y90007", "PRACTICE_CODE")),
        r"practice_code=Y90007, source=0",
    ),
    (
        "age-band-larger-than-its-all-row",
        # Y90071: Y90072 closed in the demo's planted merger (pophealth/demo/_successors.py)
        edit(AGE_FILE, _set_in_practice("Y90071", "NUMBER_OF_PATIENTS", "9999", row=-2)),
        r"gp-reg-pat-prac-quin-age\.csv: .*age bands add up to more than.*Y90071: bands",
    ),
    (
        "age-file-all-rows-and-bands-short",
        edit(AGE_FILE, lambda f: f[~((f["ORG_CODE"] == "Y90010") & (f["SEX"] == "FEMALE"))]),
        r"gp-reg-pat-prac-quin-age\.csv disagrees with gp-reg-pat-prac-all\.csv.*Y90010",
    ),
    (
        "lsoa-file-practice-lsoa-twice",
        edit(LSOA_FILE, _first_row_repeated),
        r"practice_code/lsoa_code value\(s\) appear more than once.*Y90001",
    ),
    (
        "lookup-lsoa-under-two-icbs",
        edit(LOOKUP_FILE, _lsoa_under_two_icbs),
        r"LSOA21_SICBL23_ICB23_LAD23_EN_LU\.csv.*lsoa21_code.*uniqueness: 'E01100001'",
    ),
    (
        "iod-lsoa-twice",
        edit(IOD_FILE, _first_row_repeated),
        r"File_7_IoD2025.*lsoa21_code.*uniqueness: 'E01100001'",
    ),
    (
        "census-lsoa-twice",
        edit("census2021-ts038-lsoa.csv", _first_row_repeated),
        r"census2021-ts038-lsoa\.csv.*lsoa21_code.*uniqueness: 'E01100001'",
    ),
    ("workforce-practice-twice", edit(WORKFORCE_FILE, _first_row_repeated), r"more than once"),
    (
        "payments-practice-twice",
        edit(PAYMENTS_FILE, _first_row_repeated),
        r"nhspaymentsgp.*repeat a practice code.*Y90001",
    ),
    (
        "census-category-over-total",
        edit("census2021-ts037-lsoa.csv", _census_category_over_total),
        r"census2021-ts037-lsoa\.csv: category 'health_bad' is larger than its total.*E01100001",
    ),
    (
        "census-table-under-another-name",
        copy_over("census2021-ts037-lsoa.csv", "census2021-ts038-lsoa.csv"),
        r"census2021-ts038-lsoa\.csv is named as census_ts038.*content is census_ts037",
    ),
    (
        "practice-level-file-as-lsoa-file",
        copy_over(TOTALS_FILE, LSOA_FILE),
        r"named as registrations_lsoa.*content is practice_totals",
    ),
    (
        "epcn-corrupt-zip",
        truncate_bytes("ePCN.xlsx", 0.5),
        r"ePCN\.xlsx: could not be read.*download it again",
    ),
    ("epcn-not-a-workbook", write_bytes("ePCN.xlsx", b"<html>Error 404</html>"), r"ePCN\.xlsx"),
    ("shapefile-without-prj", remove(f"{SHAPE}.prj"), r"no coordinate reference system"),
    ("shapefile-without-dbf", remove(f"{SHAPE}.dbf"), r"\.shp: the shapefile's \.dbf part"),
    ("shapefile-without-shx", remove(f"{SHAPE}.shx"), r"\.shp: the shapefile's \.shx part"),
    (
        "lsoa-count-not-a-number",
        edit(LSOA_FILE, _set("NUMBER_OF_PATIENTS", "12a")),
        r"NUMBER_OF_PATIENTS.*12a",
    ),
    (
        "lsoa-count-negative",
        edit(LSOA_FILE, _set("NUMBER_OF_PATIENTS", "-4")),
        r"gp-reg-pat-prac-lsoa-all\.csv.*'patients'.*-4",
    ),
    ("lsoa-file-empty", write_bytes(LSOA_FILE, b""), r"empty"),
    (
        "lsoa-file-is-an-error-page",
        write_bytes(LSOA_FILE, b"<!DOCTYPE html>\n<html><body>Service unavailable</body></html>\n"),
        r"gp-reg-pat-prac-lsoa-all\.csv: this is a web page.*download the file again",
    ),
    (
        "totals-file-still-gzipped",
        lambda raw: (raw / TOTALS_FILE).write_bytes(
            gzip.compress((raw / TOTALS_FILE).read_bytes())
        ),
        r"gp-reg-pat-prac-all\.csv: this is a compressed",
    ),
    (
        "lsoa-file-missing-column",
        edit(LSOA_FILE, lambda f: f.drop(columns=["LSOA_CODE"])),
        r"LSOA_CODE",
    ),
    (
        "iod-score-not-a-number",
        edit(IOD_FILE, _set("Index of Multiple Deprivation (IMD) Score", "n/a")),
        r"Index of Multiple Deprivation",
    ),
    (
        "two-files-for-one-source",
        copy_over(LSOA_FILE, "gp-reg-pat-prac-lsoa-all-copy.csv"),
        r"Two or more files for source 'registrations_lsoa'",
    ),
    ("listing-names-missing-file", _listing_missing_file, r"not-there\.csv, which does not exist"),
    (
        "single-age-female-file-missing",
        remove("gp-reg-pat-prac-sing-age-female.csv"),
        r"gp-reg-pat-prac-sing-age-male\.csv disagrees with gp-reg-pat-prac-all\.csv",
    ),
    (
        "lsoa-file-two-months-concatenated",
        lambda raw: (raw / LSOA_FILE).write_bytes(
            (raw / LSOA_FILE).read_bytes()
            + b"".join((raw / LSOA_FILE).read_bytes().splitlines(keepends=True)[1:50]).replace(
                b"2025-10-01", b"2025-09-01"
            )
        ),
        r"practice_code/lsoa_code value\(s\) appear more than once",
    ),
]


def _code_fixes_counted(manifest: dict) -> bool:
    return _rec(manifest)["code_fixes"]["registrations_lsoa"] >= 40


HANDLED = [
    ("practice-codes-lower-case", edit(LSOA_FILE, _mangle_codes("PRACTICE_CODE", str.lower))),
    ("lsoa-codes-padded", edit(LSOA_FILE, _mangle_codes("LSOA_CODE", lambda c: f" {c.lower()} "))),
    ("one-patient-moved-within-tolerance", edit(LSOA_FILE, _move_one_patient)),
    ("lsoa-not-in-lookup", edit(LSOA_FILE, _lsoa_outside_lookup)),
    (
        "practice-missing-from-workforce",
        edit(WORKFORCE_FILE, _drop_practice("Y90003", "PRAC_CODE")),
    ),
    (
        "practice-missing-from-payments",
        edit(PAYMENTS_FILE, _drop_practice("Y90004", "Practice Code")),
    ),
    (
        "unknown-practice-in-workforce",
        edit(WORKFORCE_FILE, _add_practice_row("PRAC_CODE", "Y99999")),
    ),
    ("boundary-null-geometry", _null_geometry),
    ("shapefile-shp-truncated", truncate_bytes(f"{SHAPE}.shp", 0.4)),
    (
        "census-lsoa-not-in-lookup",
        edit("census2021-ts054-lsoa.csv", _set("geography code", "E01999998")),
    ),
    (
        "age-file-other-extract-date",
        replace_text(AGE_FILE, b"2025-10-01", b"2025-09-01", count=10**6),
    ),
    ("unrecognised-extra-file", write_bytes("notes-from-analyst.csv", b"a,b\n1,2\n")),
    ("totals-codes-lower-case", edit(TOTALS_FILE, _mangle_codes("CODE", str.lower))),
    (
        "lsoa-file-of-other-practices",
        edit(LSOA_FILE, lambda f: f[f["PRACTICE_CODE"].between("Y90001", "Y90020")]),
    ),
    (
        "lookup-codes-padded",
        edit(LOOKUP_FILE, _mangle_codes("LSOA21CD", lambda c: f"{c.lower()} ")),
    ),
]

#: The demo's synthetic rest of England (its practices and LSOAs are in the national files).
REST_OF_ENGLAND = SCALES["rest"]

HANDLED_CHECKS: dict[str, Callable[[dict], bool]] = {
    "practice-codes-lower-case": _code_fixes_counted,
    "lsoa-codes-padded": lambda m: (
        _rec(m)["code_fixes"]["registrations_lsoa"] >= 40
        and _rec(m)["patients_by_lsoa_status"].get("outside", 0) < 1000
    ),
    "one-patient-moved-within-tolerance": lambda m: (
        set(_rec(m)["practice_totals"]["registrations_lsoa"]["within_tolerance"])
        == {"Y90001", "Y90002"}
    ),
    "lsoa-not-in-lookup": lambda m: _rec(m)["patients_by_lsoa_status"]["outside"] > 0,
    "practice-missing-from-workforce": lambda m: (
        _rec(m)["practices"]["missing"]["workforce"] == ["Y90003"]
    ),
    "practice-missing-from-payments": lambda m: (
        _rec(m)["practices"]["missing"]["payments"] == ["Y90004"]
    ),
    "unknown-practice-in-workforce": lambda m: (
        _rec(m)["sources"]["workforce"]["set_aside"]
        == {"practice not in the registered practice list": 1}
        and _rec(m)["practices"]["extra"]["workforce"] == ["Y99999"]
    ),
    "boundary-null-geometry": lambda m: (
        _rec(m)["boundaries"]["null_or_empty"] == 1
        # the synthetic rest of England's LSOAs have no boundaries in the demo
        and _rec(m)["boundaries"]["lsoas_without_boundary"] == 1 + REST_OF_ENGLAND.n_core_lsoa
    ),
    "shapefile-shp-truncated": lambda m: (
        _rec(m)["boundaries"]["null_or_empty"] > 100
        and _rec(m)["boundaries"]["kept"] + _rec(m)["boundaries"]["null_or_empty"]
        == _rec(m)["boundaries"]["rows"]
    ),
    "census-lsoa-not-in-lookup": lambda m: (
        sum(_rec(m)["sources"]["census_ts054"]["set_aside"].values()) == 1
    ),
    "age-file-other-extract-date": lambda m: (
        _rec(m)["practice_totals"]["practice_age_bands"]["compared"] is False
    ),
    "unrecognised-extra-file": lambda m: "notes-from-analyst.csv" in m["unrecognised_files"],
    "lsoa-file-of-other-practices": lambda m: (
        len(_rec(m)["practice_totals"]["registrations_lsoa"]["missing_from_source"])
        == 51 + REST_OF_ENGLAND.n_practices  # 71 demo practices today (one merged)
        and _rec(m)["practice_totals"]["registrations_lsoa"]["patients_of_missing_practices"] > 0
    ),
    "totals-codes-lower-case": lambda m: (
        _rec(m)["code_fixes"]["practice_totals"] >= 40
        and _rec(m)["practice_totals"]["registrations_lsoa"]["missing_from_totals"] == []
    ),
    "lookup-codes-padded": lambda m: (
        _rec(m)["code_fixes"]["lsoa21_lookup"] >= 40
        and m["counts"]["lsoas"] == 839 + REST_OF_ENGLAND.n_core_lsoa
    ),
}


@pytest.fixture
def raw_copy(demo_raw, tmp_path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(demo_raw, raw)
    return raw


def _prepare(raw: Path, out: Path, capsys) -> tuple[int, str, str]:
    code = cli.main(["prepare", str(raw), "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _lsoa_file_patients(raw: Path) -> int:
    frame = _read(raw / LSOA_FILE)
    if "SEX" in frame:
        frame = frame[frame["SEX"].str.upper() == "ALL"]
    return int(frame["NUMBER_OF_PATIENTS"].astype(int).sum())


@pytest.mark.parametrize("damage, pattern", [pytest.param(d, p, id=i) for i, d, p in REFUSED])
def test_refused_with_one_clear_message(raw_copy, tmp_path, capsys, damage, pattern):
    damage(raw_copy)
    out = tmp_path / "prepared"
    code, _, err = _prepare(raw_copy, out, capsys)
    assert code == 2, err
    assert err.startswith("pophealth: error: ")
    assert "Traceback" not in err
    assert re.search(pattern, err, flags=re.S), err
    assert not (out / "manifest.json").exists()  # refused: no store
    assert not list(out.glob("*.parquet")) if out.exists() else True


@pytest.mark.parametrize("damage", [pytest.param(d, id=i) for i, d in HANDLED])
def test_handled_shown_and_patients_conserved(raw_copy, tmp_path, capsys, damage, request):
    case = request.node.callspec.id
    damage(raw_copy)
    code, printed, err = _prepare(raw_copy, tmp_path / "prepared", capsys)
    assert code == 0, err
    manifest = json.loads((tmp_path / "prepared" / "manifest.json").read_text("utf-8"))
    assert HANDLED_CHECKS[case](manifest), json.dumps(manifest["reconciliation"], indent=1)[:3000]
    # conserved: every patient of the raw LSOA file is in the store, in some LSOA status
    raw_total = _lsoa_file_patients(raw_copy)
    assert manifest["counts"]["registered_patients"] == raw_total
    assert sum(_rec(manifest)["patients_by_lsoa_status"].values()) == raw_total
    stored = pd.read_parquet(tmp_path / "prepared" / "registrations.parquet")
    assert int(stored["patients"].sum()) == raw_total
    # and prepare printed its reconciliation report
    assert "Reconciliation" in printed and "registered patients by LSOA status" in printed


def test_codes_as_published_never_matched_unless_they_join(raw_copy, tmp_path, capsys):
    """Lower-cased, padded LSOA codes are fixed (counted) and then really join the LSOA table."""
    edit(LSOA_FILE, _mangle_codes("LSOA_CODE", lambda c: f" {c.lower()} "))(raw_copy)
    code, _, err = _prepare(raw_copy, tmp_path / "prepared", capsys)
    assert code == 0, err
    stored = pd.read_parquet(tmp_path / "prepared" / "registrations.parquet")
    lsoa = set(pd.read_parquet(tmp_path / "prepared" / "lsoa.parquet")["lsoa21_code"])
    matched = stored[stored["lsoa_status"] == "matched"]
    assert matched["lsoa_code"].isin(lsoa).all()
    assert not stored.loc[~stored["lsoa_code"].isin(lsoa), "lsoa_status"].eq("matched").any()


# --------------------------------------------------------------------------------------------
# Faults in runs: one clear line, exit 2, no traceback, no partial outputs
# --------------------------------------------------------------------------------------------


def _run(demo_prepared: Path, out: Path, capsys, *extra: str) -> tuple[int, str]:
    argv = ["run", "--data", str(demo_prepared), "--system", "QZZ", "--out", str(out)]
    code = cli.main([*argv, "--areas", "E54000999", "--no-progress", *extra])
    return code, capsys.readouterr().err


def _assert_one_clear_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pophealth: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def _no_partial_files(folder: Path) -> None:
    if folder.exists():
        leftovers = [p for p in folder.rglob("*") if p.is_file() and ".tmp" in p.name]
        assert not leftovers, leftovers


def _tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def test_run_output_path_under_a_file(demo_prepared, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    code, err = _run(demo_prepared, tmp_path / "a-file" / "site", capsys)
    _assert_one_clear_line(code, err, str(tmp_path / "a-file"), "is a file", "Fix:")


def test_run_read_only_output_folder(demo_prepared, tmp_path, capsys):
    target = tmp_path / "ro"
    if not _tmpfs(target, "ro,size=64k"):
        target.mkdir(exist_ok=True)
        target.chmod(0o500)
        try:
            (target / "probe").touch()
        except PermissionError:
            pass
        else:
            pytest.skip("cannot make a read-only folder here (root without mount)")
    try:
        code, err = _run(demo_prepared, target / "site", capsys)
        _assert_one_clear_line(code, err, str(target), "Fix:")
        assert "read-only" in err or "permission denied" in err
    finally:
        subprocess.run(["umount", str(target)], capture_output=True, check=False)


def test_run_disk_full(demo_prepared, tmp_path, capsys, monkeypatch):
    target = tmp_path / "tiny"
    mounted = _tmpfs(target, "size=512k")
    if not mounted:
        # no real small disk here: inject ENOSPC at the atomic-write helper's OS call
        import os

        def full(_fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fsync", full)
    try:
        code, err = _run(demo_prepared, target / "site", capsys)
        _assert_one_clear_line(code, err, "the disk is full", "Fix:")
        _no_partial_files(target)
        assert not list(target.rglob("*.html"))
    finally:
        if mounted:
            subprocess.run(["umount", str(target)], capture_output=True, check=False)


def test_run_missing_notebook(demo_prepared, tmp_path, capsys):
    code, err = _run(demo_prepared, tmp_path / "site", capsys, "--notebooks", str(tmp_path))
    _assert_one_clear_line(code, err, "_profile.ipynb not found", "--notebooks")
    assert not (tmp_path / "site" / "index.html").exists()


def _store_copy(demo_prepared: Path, tmp_path: Path) -> Path:
    store = tmp_path / "store"
    shutil.copytree(demo_prepared, store)
    return store


def test_run_store_from_another_pophealth_version(demo_prepared, tmp_path, capsys):
    store = _store_copy(demo_prepared, tmp_path)
    manifest = json.loads((store / "manifest.json").read_text("utf-8"))
    manifest["store_format"], manifest["pophealth_version"] = 1, "0.0.1"
    (store / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    code, err = _run(store, tmp_path / "site", capsys)
    _assert_one_clear_line(
        code, err, "prepared by pophealth 0.0.1", "pophealth prepare", str(store)
    )
    assert not (tmp_path / "site").exists()


def test_run_store_manifest_damaged(demo_prepared, tmp_path, capsys):
    store = _store_copy(demo_prepared, tmp_path)
    (store / "manifest.json").write_text('{"pophealth_version": "0.1', encoding="utf-8")
    code, err = _run(store, tmp_path / "site", capsys)
    _assert_one_clear_line(code, err, "manifest.json cannot be read", "pophealth prepare")


def test_run_store_missing_a_table(demo_prepared, tmp_path, capsys):
    store = _store_copy(demo_prepared, tmp_path)
    (store / "practices.parquet").unlink()
    code, err = _run(store, tmp_path / "site", capsys)
    _assert_one_clear_line(code, err, "practices.parquet missing", "pophealth prepare")


def test_run_unknown_system(demo_prepared, tmp_path, capsys):
    argv = ["run", "--data", str(demo_prepared), "--system", "E54999999"]
    code = cli.main([*argv, "--out", str(tmp_path / "site"), "--no-progress"])
    err = capsys.readouterr().err
    _assert_one_clear_line(code, err, "E54999999")


def test_prepare_missing_raw_folder(tmp_path, capsys):
    code, _, err = _prepare(tmp_path / "nowhere", tmp_path / "prepared", capsys)
    _assert_one_clear_line(code, err, "does not exist")


def test_neighbourhoods_practice_in_two_groups(demo_prepared, tmp_path, capsys):
    groups = tmp_path / "groups.yaml"
    groups.write_text(
        "neighbourhoods:\n"
        "  - {code: A, name: A, practices: [Y90001, Y90002]}\n"
        "  - {code: B, name: B, practices: [Y90002]}\n",
        encoding="utf-8",
    )
    code, err = _run(demo_prepared, tmp_path / "site", capsys, "--neighbourhoods", str(groups))
    _assert_one_clear_line(code, err, "Y90002 in A, B")


def test_profile_data_quality_shows_what_concerns_its_area(raw_copy, tmp_path, capsys):
    """Reconciliation findings reach the data-quality notes of the areas they concern."""
    import pophealth

    _null_geometry(raw_copy)
    edit(LSOA_FILE, _move_one_patient)(raw_copy)
    edit(LSOA_FILE, _mangle_codes("PRACTICE_CODE", str.lower))(raw_copy)
    code, _, err = _prepare(raw_copy, tmp_path / "prepared", capsys)
    assert code == 0, err
    data = pophealth.load(tmp_path / "prepared", cache=False)
    pcn = data.practices.set_index("practice_code").loc["Y90001", "pcn_code"]
    notes = " ".join(data.profile(pcn).notes)
    assert "Y90001 (" in notes and "within the tolerance" in notes
    assert "trimmed and upper-cased" in notes
    import geopandas as gpd

    first_lsoa = gpd.read_file(raw_copy / f"{SHAPE}.shp").iloc[0]["LSOA21CD"]
    lad = data.lsoa.set_index("lsoa21_code").loc[first_lsoa, "lad_code"]
    resident = data.profile(lad, basis="resident")
    assert "no usable boundary" in " ".join(resident.notes)
    # a practice far from that LSOA has no note about it
    other = data.practices.set_index("practice_code").loc["Y90040", "pcn_code"]
    assert "Y90001 (" not in " ".join(data.profile(other).notes)
