"""The CLI: errors raised on purpose print one line and exit 2; bugs keep their traceback."""

from __future__ import annotations

import json

import pytest

from pophealth import STORE_FORMAT, cli
from pophealth.errors import PopHealthError


def test_a_bad_source_file_is_one_line_naming_file_column_and_fix(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    # an official name, but the LSOA column is missing
    (raw / "gp-reg-pat-prac-lsoa-all.csv").write_text(
        "PUBLICATION,EXTRACT_DATE,PRACTICE_CODE,PRACTICE_NAME,SEX,NUMBER_OF_PATIENTS\n"
        "GP_PRAC_PAT_LIST,01OCT2025,A81001,THE DENSHAM SURGERY,ALL,4\n",
        encoding="utf-8",
    )
    assert cli.main(["prepare", str(raw), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pophealth: error: gp-reg-pat-prac-lsoa-all")
    assert "fix:" in err and "Traceback" not in err


def test_a_missing_store_exits_2(tmp_path, capsys):
    assert cli.main(["areas", "--data", str(tmp_path)]) == 2
    assert "not a prepared store" in capsys.readouterr().err


def test_unexpected_errors_keep_their_traceback(tmp_path):
    # a store whose parquet file is corrupt is not an error pophealth raises on purpose
    manifest = {"imd_releases": ["2025"], "store_format": STORE_FORMAT}  # a current store's
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    for name in ("lsoa", "practices", "registrations", "practice_age_sex"):
        (tmp_path / f"{name}.parquet").write_bytes(b"not parquet")
    with pytest.raises(Exception) as caught:
        cli.main(["areas", "--data", str(tmp_path)])
    assert not isinstance(caught.value, PopHealthError)


def test_error_line_joins_a_multi_line_message():
    exc = PopHealthError("a.csv: bad\n  column: 'X'\n  fix: use Y")
    assert cli.error_line(exc) == "pophealth: error: a.csv: bad; column: 'X'; fix: use Y"
