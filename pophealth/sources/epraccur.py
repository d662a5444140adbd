"""Loader for the ODS GP practices file ``epraccur.csv`` (no header, 27 columns).

Columns are positional by ODS definition (FORMATS.md section 3): 1 code, 2 name, 3 national
grouping, 4 high-level health geography (ICB), 5-9 address, 10 postcode, 11 open date, 12 close
date, 13 status (A active, C closed, D dormant, P proposed), 14 organisation sub-type,
15 commissioner (sub-ICB location), 26 prescribing setting (4 = GP practice).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from pophealth.sources.common import (
    SourceFormatError,
    canonical_schema,
    clean_codes,
    clean_text,
    code_column,
    code_columns,
    date_column,
    detect_encoding,
    headerless_fields,
    parse_dates,
    parse_numeric,
    validate_output,
)

__all__ = [
    "EPRACCUR_SCHEMA",
    "GP_PRACTICE_PRESCRIBING_SETTING",
    "N_COLUMNS",
    "active_gp_practices",
    "load_epraccur",
]

N_COLUMNS = 27
#: Prescribing setting 4 = GP practice (others: out of hours, walk-in centre, prison, …).
GP_PRACTICE_PRESCRIBING_SETTING = 4

# 1-based ODS field positions.
_FIELDS = {
    "practice_code": 1,
    "practice_name": 2,
    "icb_ods": 4,
    "postcode": 10,
    "open_date": 11,
    "close_date": 12,
    "status_code": 13,
    "sicbl_ods": 15,
    "prescribing_setting": 26,
}

EPRACCUR_SCHEMA = canonical_schema(
    "ODS epraccur",
    {
        "practice_code": code_column(),
        **code_columns("practice_name", "icb_ods", "postcode"),
        "open_date": date_column(),
        "close_date": date_column(),
        "status_code": pa.Column(str, pa.Check.isin(["A", "C", "D", "P"]), nullable=True),
        "sicbl_ods": code_column(nullable=True),
        "prescribing_setting": pa.Column("Int64", nullable=True),
    },
)


def load_epraccur(path: str | Path) -> pd.DataFrame:
    """Load ``epraccur.csv`` (all organisations in the file, every status and setting).

    A header row, if someone added one, is detected (first cell not an ODS code) and skipped.

    Args:
        path: The official header-less CSV.

    Returns:
        ``practice_code, practice_name, icb_ods, postcode, open_date, close_date, status_code,
        sicbl_ods, prescribing_setting`` (``Int64``). Filter with :func:`active_gp_practices`.

    Raises:
        SourceFormatError: Wrong number of columns, unknown status, unparseable dates.
    """
    path = Path(path)
    try:
        raw = pd.read_csv(
            path,
            header=None,
            dtype=str,
            keep_default_na=False,
            engine="c",
            encoding=detect_encoding(path),
        )
    except (pd.errors.ParserError, ValueError) as error:
        raise SourceFormatError(
            path, f"could not be read as CSV ({error})", fix="use the official epraccur.csv"
        ) from error
    if raw.shape[1] < _FIELDS["prescribing_setting"]:
        raise SourceFormatError(
            path,
            f"{raw.shape[1]} columns found, epraccur has {N_COLUMNS} (no header)",
            examples=f"first row: {raw.iloc[0].tolist()[:6] if len(raw) else []}",
            fix="use the ODS epraccur.csv (GP practices), not another ODS extract",
        )
    column, header_rows = headerless_fields(raw, _FIELDS)
    out = pd.DataFrame(
        {
            "practice_code": clean_codes(column["practice_code"]),
            "practice_name": clean_text(column["practice_name"]),
            "icb_ods": clean_codes(column["icb_ods"]),
            "postcode": clean_codes(column["postcode"]),
            "open_date": parse_dates(
                column["open_date"], path, "field 11 (open date)", header_rows=header_rows
            ),
            "close_date": parse_dates(
                column["close_date"], path, "field 12 (close date)", header_rows=header_rows
            ),
            "status_code": clean_codes(column["status_code"]).str.upper(),
            "sicbl_ods": clean_codes(column["sicbl_ods"]),
            "prescribing_setting": parse_numeric(
                column["prescribing_setting"],
                path,
                "field 26 (prescribing setting)",
                integer=True,
                allow_missing=True,
                header_rows=header_rows,
            ).astype("Int64"),
        }
    ).reset_index(drop=True)
    validate_output(out, EPRACCUR_SCHEMA, path)
    return out


def active_gp_practices(practices: pd.DataFrame) -> pd.DataFrame:
    """Rows that are active (status ``A``) GP practices (prescribing setting 4)."""
    keep = (practices["status_code"] == "A") & (
        practices["prescribing_setting"] == GP_PRACTICE_PRESCRIBING_SETTING
    )
    return practices.loc[keep.fillna(False)].reset_index(drop=True)
