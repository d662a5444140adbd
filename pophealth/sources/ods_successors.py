"""Loader for the ODS successor organisations file ``succ.csv`` (in ``succ.zip``, no header).

ODS publishes one row per succession (an organisation that closed legally and the organisation
that took over its work) for every organisation type, in ``succ.csv`` inside ``succ.zip`` on the
ODS data downloads ("Miscellaneous": successor organisations; also on TRUD), with older
successions in ``succarc.csv`` (``succarc.zip``) in the same layout. The file has no header; its
fields are positional (confirmed from public code that reads it, see ``docs/history.md``):

1. predecessor organisation code (the organisation that closed)
2. successor organisation code
3. reason for the succession: ``R`` reconfiguration, ``O`` organisation type change, ``F`` FMR
   code change
4. effective date of the succession, ``CCYYMMDD`` (a legal date)
5. further-succession indicator: ``F`` the successor itself has a successor, ``X`` the successor
   has closed, blank none

The loader returns every row (all organisation types). :func:`gp_practice_successions` keeps the
GP practice successions (both codes practice-shaped) and resolves chains (A -> B -> C gives
A -> C); that table is what the release history's membership rule uses
(:func:`pophealth.history.apply_membership_rule`).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

from pophealth.sources.common import (
    ODS_CODE,
    SourceFormatError,
    canonical_schema,
    clean_codes,
    code_column,
    date_column,
    headerless_fields,
    parse_dates,
    validate_output,
)

__all__ = [
    "GP_PRACTICE_CODE",
    "N_COLUMNS",
    "PRACTICE_SUCCESSIONS_SCHEMA",
    "SUCCESSORS_SCHEMA",
    "gp_practice_successions",
    "load_ods_successors",
    "resolve_chains",
]

#: Fields in the official file (no header).
N_COLUMNS = 5
# 1-based ODS field positions.
_FIELDS = {
    "predecessor_code": 1,
    "successor_code": 2,
    "reason": 3,
    "effective_date": 4,
    "further_succession": 5,
}
_LABELS = {
    "predecessor_code": "field 1 (predecessor organisation code)",
    "successor_code": "field 2 (successor organisation code)",
    "reason": "field 3 (reason for succession)",
    "effective_date": "field 4 (effective date)",
    "further_succession": "field 5 (further succession indicator)",
}
#: Reason codes seen in public code reading the file (R, O, F); others are kept as published.
REASONS = {"R": "reconfiguration", "O": "organisation type change", "F": "FMR code change"}
#: A GP practice code: one letter and five digits (``A81001``, ``Y02345``), not a PCN (``U``).
GP_PRACTICE_CODE = re.compile(r"^[A-TV-Z][0-9]{5}$")

SUCCESSORS_SCHEMA = canonical_schema(
    "ODS successor organisations",
    {
        "predecessor_code": code_column(),
        "successor_code": code_column(),
        "reason": pa.Column(str, pa.Check.str_matches(r"^[A-Z]$"), nullable=True),
        "effective_date": date_column(nullable=False),
        "further_succession": pa.Column(str, pa.Check.str_matches(r"^[A-Z]$"), nullable=True),
    },
)
PRACTICE_SUCCESSIONS_SCHEMA = canonical_schema(
    "GP practice successions",
    {
        "predecessor_code": code_column(),
        "successor_code": code_column(),
        "effective_date": date_column(nullable=False),
        "chain": code_column(),
    },
)


def _read_one(path: Path) -> tuple[pd.DataFrame, Path]:
    """The raw text cells of one ``succ*.csv`` (or the CSV inside ``succ*.zip``)."""
    shown = path
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [n for n in archive.namelist() if n.lower().endswith(".csv")]
                if len(members) != 1:
                    raise SourceFormatError(
                        path,
                        f"expected one CSV in the zip, found {members or 'none'}",
                        fix="use the official succ.zip (it holds succ.csv) or extract succ.csv",
                    )
                data = archive.read(members[0])
                shown = path / members[0]
        else:
            data = path.read_bytes()
    except zipfile.BadZipFile as error:
        raise SourceFormatError(
            path, f"is not a readable zip ({error})", fix="download succ.zip again"
        ) from error
    text = data.decode("utf-8-sig", errors="replace")
    try:
        raw = pd.read_csv(
            io.StringIO(text),
            header=None,
            dtype=str,
            keep_default_na=False,
            engine="c",
            skip_blank_lines=True,
        )
    except pd.errors.EmptyDataError:
        raw = pd.DataFrame(columns=range(N_COLUMNS), dtype=str)
    except (pd.errors.ParserError, ValueError) as error:
        raise SourceFormatError(
            shown,
            f"could not be read as CSV ({error})",
            examples="rows must have 5 comma-separated fields",
            fix="use the official ODS succ.csv (successor organisations, no header)",
        ) from error
    return raw, shown


def _load_one(path: Path) -> pd.DataFrame:
    raw, shown = _read_one(path)
    if raw.shape[1] != N_COLUMNS:
        raise SourceFormatError(
            shown,
            f"{raw.shape[1]} columns found, the successor organisations file has {N_COLUMNS} "
            "(predecessor, successor, reason, effective date, further-succession indicator; "
            "no header)",
            column=f"fields 1-{N_COLUMNS}",
            examples=f"first rows: {raw.head(2).to_numpy().tolist()}",
            fix="use the ODS succ.csv from succ.zip (Miscellaneous data downloads), not another "
            "ODS extract, and do not add or remove columns",
        )
    column, header_rows = headerless_fields(raw, _FIELDS)
    out = pd.DataFrame(
        {
            "predecessor_code": clean_codes(column["predecessor_code"]),
            "successor_code": clean_codes(column["successor_code"]),
            "reason": clean_codes(column["reason"]),
            "effective_date": parse_dates(
                column["effective_date"],
                shown,
                _LABELS["effective_date"],
                allow_missing=False,
                header_rows=header_rows,
            ),
            "further_succession": clean_codes(column["further_succession"]),
        }
    ).reset_index(drop=True)
    for name in ("predecessor_code", "successor_code"):
        bad = out[name].isna() | ~out[name].fillna("").str.match(ODS_CODE)
        if bad.any():
            rows = [
                f"line {int(i) + 1 + header_rows}: {raw.iloc[int(i) + header_rows].tolist()}"
                for i in bad[bad].index[:5]
            ]
            raise SourceFormatError(
                shown,
                "not an ODS organisation code (3-8 letters and digits)",
                column=_LABELS[name],
                examples="; ".join(rows),
                fix="every row needs a predecessor and a successor ODS code in fields 1 and 2",
            )
    validate_output(out, SUCCESSORS_SCHEMA, shown)
    return out


def load_ods_successors(paths: str | Path | Sequence[str | Path]) -> pd.DataFrame:
    """Load ODS successor organisations files (``succ.csv``, ``succarc.csv`` or their zips).

    A header row, if someone added one, is detected (first cell not an ODS code) and skipped.
    Several files (the current file and the archive) are read together; a row repeated in both
    is kept once.

    Args:
        paths: One file or several (``succ.csv`` and ``succarc.csv``; ``.zip`` holding one CSV).

    Returns:
        ``predecessor_code, successor_code, reason, effective_date, further_succession`` for
        every organisation type, one row per succession.

    Raises:
        SourceFormatError: Not 5 columns, a missing or malformed code, an unparseable or
            missing effective date (each naming the file, field, example rows and the fix).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames = [_load_one(Path(p)) for p in paths]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out = out.drop_duplicates(["predecessor_code", "successor_code"]).reset_index(drop=True)
    validate_output(out, SUCCESSORS_SCHEMA, Path(paths[0]))
    return out


def resolve_chains(successions: pd.DataFrame, path: str | Path = "succ.csv") -> pd.DataFrame:
    """Follow each predecessor to its last successor (A -> B -> C gives A -> C).

    Args:
        successions: ``predecessor_code, successor_code, effective_date`` with one successor per
            predecessor.
        path: The file the successions came from (for the error message).

    Returns:
        ``predecessor_code, successor_code, effective_date, chain``: the final successor, the
        predecessor's own effective date and the chain walked (``"A>B>C"``).

    Raises:
        SourceFormatError: The successions loop (A -> B -> A); the message names the codes.
    """
    step = dict(zip(successions["predecessor_code"], successions["successor_code"], strict=True))
    rows = []
    for start, date in zip(
        successions["predecessor_code"], successions["effective_date"], strict=True
    ):
        chain = [start]
        while chain[-1] in step:
            nxt = step[chain[-1]]
            if nxt in chain:
                loop = " -> ".join([*chain[chain.index(nxt) :], nxt])
                raise SourceFormatError(
                    path,
                    f"successions form a cycle: {loop}",
                    column="fields 1-2 (predecessor, successor)",
                    examples=", ".join(f"{a} -> {step[a]}" for a in chain[chain.index(nxt) :]),
                    fix="an organisation cannot succeed itself; use the official succ.csv, or "
                    "remove the row that closes the loop",
                )
            chain.append(nxt)
        rows.append((start, chain[-1], date, ">".join(chain)))
    out = pd.DataFrame(
        rows, columns=["predecessor_code", "successor_code", "effective_date", "chain"]
    )
    # typed even when empty (an England file may hold no GP practice succession)
    text = {c: "str" for c in ("predecessor_code", "successor_code", "chain")}
    return out.astype({**text, "effective_date": "datetime64[ns]"})


def gp_practice_successions(
    successors: pd.DataFrame, path: str | Path = "succ.csv"
) -> tuple[pd.DataFrame, list[str]]:
    """GP practice successions with chains resolved: the membership rule's input.

    Rule: a row is a GP practice succession when **both** codes are practice-shaped (one letter
    other than ``U`` and five digits, e.g. ``A81001``, ``Y02345``; ``U`` codes are PCNs). Other
    organisations (trusts, CCGs, sub-ICB locations, PCNs, pharmacies) are dropped. A predecessor
    with more than one practice successor (a split list) cannot be carried by one successor and
    is set aside with a note. Chains are then resolved (A -> B -> C gives A -> C); a cycle is an
    error.

    Args:
        successors: As :func:`load_ods_successors` returns.
        path: The file they came from (for messages).

    Returns:
        (successions, notes): ``predecessor_code, successor_code, effective_date, chain`` and
        notes on what was set aside.

    Raises:
        SourceFormatError: The practice successions form a cycle.
    """
    shaped = successors["predecessor_code"].str.match(GP_PRACTICE_CODE) & successors[
        "successor_code"
    ].str.match(GP_PRACTICE_CODE)
    practices = successors.loc[shaped.fillna(False)]
    notes = []
    counts = practices.groupby("predecessor_code")["successor_code"].nunique()
    split = sorted(counts.index[counts > 1])
    if split:
        notes.append(
            f"{len(split)} practice(s) with several successors not carried by any "
            f"(split lists): {', '.join(split[:10])}{' …' if len(split) > 10 else ''}"
        )
        practices = practices[~practices["predecessor_code"].isin(split)]
    practices = practices.sort_values(["effective_date", "predecessor_code"], kind="stable")
    out = resolve_chains(practices.reset_index(drop=True), path)
    validate_output(out, PRACTICE_SUCCESSIONS_SCHEMA, path)
    return out, notes
