"""Reconcile sources against each other before anything is stored: nothing lost silently.

Pure functions on the loaded source frames (``prepare`` calls them between loading and
writing). Each either raises :class:`ReconciliationError` naming the file, column, rows and the
fix, or returns a plain-dict record for the manifest's ``reconciliation`` section, which
``prepare`` prints and each profile's data-quality section draws on.

Tolerance for practice totals: the LSOA file, the practice totals file and the age files of one
extract date are cut from the same registration list on the same day, so a practice's patients
must agree between them. NHS England publishes no rounding or suppression in these files; the only
known differences are patients of indeterminate sex, who are in the ALL totals but in no
MALE/FEMALE band (a handful per practice at most). :data:`TOLERANCE_PATIENTS` /
:data:`TOLERANCE_SHARE` allow that and no more: a difference above both means a truncated file,
two months mixed, or the wrong file, and is an error. When two files describe the same practices
(at least :data:`SAME_POPULATION_SHARE` of all their practices in both), a practice missing from
one counts as 0 there, so a file that lost whole practices fails too; files of largely different
practices (a regional extract against national totals) have their missing practices listed by
code, with their patients, instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pophealth.codes import isin
from pophealth.errors import InputError
from pophealth.sources import SOURCES

TOLERANCE_PATIENTS = 10
TOLERANCE_SHARE = 0.001  # 0.1% of the practice's list
# Two files describe the same practices when at least this share of all their practices is in
# both; then a practice missing from one of them is an error (its patients would vanish).
SAME_POPULATION_SHARE = 0.5

# Practice-level sources compared with the practice totals of the same extract date.
_PRACTICE_COUNT_SOURCES = {
    "registrations_lsoa": "patients summed over LSOAs",
    "practice_age_bands": "patients summed over MALE/FEMALE five-year bands",
    "practice_single_age": "patients summed over single years of age (male + female files)",
}
# Practice-level sources whose practice lists are compared with the registration list.
_PRACTICE_SOURCES = (
    "practice_totals",
    "registrations_lsoa",
    "practice_age_bands",
    "practice_single_age",
    "workforce",
    "payments",
    "practice_map",
)


class ReconciliationError(InputError):
    """Two sources disagree beyond tolerance, or one source contradicts itself."""


def _file(files: Mapping[str, Any], name: str) -> str:
    entry = files.get(name) or {}
    names = [f["name"] for f in entry.get("files", [])]
    return ", ".join(names) or name


def _examples(frame: pd.DataFrame, limit: int = 5) -> str:
    rows = [
        "(" + ", ".join(f"{k}={v}" for k, v in record.items()) + ")"
        for record in frame.head(limit).to_dict("records")
    ]
    more = f" and {len(frame) - limit} more" if len(frame) > limit else ""
    return "; ".join(rows) + more


def check_duplicate_keys(loaded: Mapping[str, Any], files: Mapping[str, Any]) -> None:
    """Duplicate keys are an error: the same practice+LSOA twice, an LSOA under two ICBs...

    Each source's key is its :attr:`~pophealth.sources.SourceSpec.unique_key`.

    Raises:
        ReconciliationError: Naming the file, the key columns and example rows.
    """
    for name, frame in loaded.items():
        spec = SOURCES.get(name)
        columns = list(spec.unique_key) if spec is not None else []
        if not isinstance(frame, pd.DataFrame) or not columns:
            continue
        if not set(columns) <= set(frame.columns):
            continue
        repeated = frame[frame.duplicated(columns, keep=False)]
        if not len(repeated):
            continue
        shown = repeated[columns + [c for c in ("patients", "icb_code") if c in frame]]
        what = "an LSOA under two sub-ICBs/ICBs" if name == "lsoa21_lookup" else "a repeated key"
        raise ReconciliationError(
            f"{_file(files, name)}: {repeated[columns].drop_duplicates().shape[0]} "
            f"{'/'.join(columns)} value(s) appear more than once ({what}); "
            f"examples: {_examples(shown.sort_values(columns))}. "
            "Fix: use the official file as published (one row per key); a file with two "
            "extracts concatenated or rows repeated cannot be used."
        )


def check_categories(loaded: Mapping[str, Any], files: Mapping[str, Any]) -> None:
    """A category larger than its total (Census categories, counts below zero) is an error.

    Raises:
        ReconciliationError: Naming file, column and rows.
    """
    for name, frame in loaded.items():
        if not name.startswith("census_") or not isinstance(frame, pd.DataFrame):
            continue
        total_cols = [c for c in frame.columns if c.endswith("_total")]
        if not total_cols:
            continue
        total = frame[total_cols[0]].astype("Float64")
        for column in frame.columns:
            if column in total_cols or column == "lsoa21_code":
                continue
            values = frame[column].astype("Float64")
            over = (values > total).fillna(False).to_numpy(bool)
            if over.any():
                shown = frame.loc[over, ["lsoa21_code", column, total_cols[0]]]
                raise ReconciliationError(
                    f"{_file(files, name)}: category {column!r} is larger than its total "
                    f"{total_cols[0]!r} in {int(over.sum())} row(s); examples: "
                    f"{_examples(shown)}. Fix: download the table again from Nomis "
                    "(a column may have been shifted or edited)."
                )


def _practice_sums(loaded: Mapping[str, Any], name: str) -> pd.Series | None:
    frame = loaded.get(name)
    if not isinstance(frame, pd.DataFrame) or not len(frame):
        return None
    latest = frame[frame["extract_date"] == frame["extract_date"].max()]
    return latest.groupby("practice_code")["patients"].sum()


def _extract_date(frame: Any) -> str | None:
    if isinstance(frame, pd.DataFrame) and "extract_date" in frame and len(frame):
        return pd.Timestamp(frame["extract_date"].max()).strftime("%Y-%m-%d")
    return None


def reconcile_practice_totals(
    loaded: Mapping[str, Any], files: Mapping[str, Any]
) -> dict[str, Any]:
    """Compare each practice's patients across the registration files of the same extract date.

    Returns:
        Per compared source: practices compared, practices within tolerance but not equal (with
        their totals), practices missing from either side (by code), or why it was not compared.

    Raises:
        ReconciliationError: When any practice differs beyond the tolerance (practices named with
            both totals).
    """
    totals_frame = loaded.get("practice_totals")
    report: dict[str, Any] = {
        "tolerance": f"max({TOLERANCE_PATIENTS} patients, {TOLERANCE_SHARE:.1%} of the list)"
    }
    if not isinstance(totals_frame, pd.DataFrame):
        report["note"] = "no practice totals file: nothing to reconcile against"
        return report
    totals = totals_frame.set_index("practice_code")["patients"].astype(float)
    totals_date = _extract_date(totals_frame)
    for name, label in _PRACTICE_COUNT_SOURCES.items():
        sums = _practice_sums(loaded, name)
        if sums is None:
            continue
        date = _extract_date(loaded[name])
        entry: dict[str, Any] = {"what": label, "extract_date": date}
        report[name] = entry
        if date != totals_date:
            entry["compared"] = False
            entry["note"] = (
                f"not compared: extract date {date} differs from the practice totals' {totals_date}"
            )
            continue
        both = pd.concat([sums.astype(float), totals], axis=1, keys=["source", "total"])
        entry["compared"] = True
        entry["practices_compared"] = int(both.dropna().shape[0])
        entry["missing_from_source"] = sorted(both.index[both["source"].isna()].astype(str))
        entry["missing_from_totals"] = sorted(both.index[both["total"].isna()].astype(str))
        common = both.dropna()
        missing_patients = both["source"].isna() * both["total"].fillna(0) + both[
            "total"
        ].isna() * both["source"].fillna(0)
        entry["patients_of_missing_practices"] = int(missing_patients.sum())
        # Same population (most practices in both): a practice missing from one side counts as
        # 0 there, so a file that lost whole practices fails. Largely different populations (a
        # regional extract against national totals): missing practices are listed, not errors.
        same_population = len(common) >= SAME_POPULATION_SHARE * len(both)
        entry["same_population"] = bool(same_population)
        paired = both.fillna(0.0) if same_population else common
        difference = paired["source"] - paired["total"]
        allowed = np.maximum(TOLERANCE_PATIENTS, TOLERANCE_SHARE * paired["total"])
        beyond = paired[difference.abs() > allowed]
        if len(beyond):
            shown = beyond.assign(difference=difference).reset_index(names="practice_code")
            raise ReconciliationError(
                f"{_file(files, name)} disagrees with {_file(files, 'practice_totals')} "
                f"(both extract {date}) for {len(beyond)} practice(s) beyond the tolerance of "
                f"{report['tolerance']} (a practice missing from one file counts as 0 there): "
                f"{_examples(shown.astype({'source': int, 'total': int}))}. A short total "
                "usually means a truncated file or two months mixed. Fix: "
                "download both files of the same month again."
            )
        within = paired[difference != 0]
        entry["within_tolerance"] = {
            str(code): {"source": int(row["source"]), "total": int(row["total"])}
            for code, row in within.head(50).iterrows()
        }
        entry["patients_difference"] = int(difference.sum())
    return report


def practice_presence(loaded: Mapping[str, Any]) -> dict[str, Any]:
    """Practice codes present in each practice-level source and those missing from each.

    Returns:
        ``{"counts": {source: n}, "missing": {source: [codes in the registration list but not
        in this source]}, "extra": {source: [codes in this source but not registered]}}``.
    """
    sets: dict[str, set[str]] = {}
    for name in _PRACTICE_SOURCES:
        frame = loaded.get(name)
        if isinstance(frame, pd.DataFrame) and "practice_code" in frame:
            # the distinct codes first: a million-row source names a few thousand practices
            sets[name] = set(frame["practice_code"].dropna().astype(str).unique())
    register_name = next(
        (n for n in ("practice_totals", "registrations_lsoa", "workforce") if n in sets), None
    )
    out: dict[str, Any] = {"counts": {n: len(s) for n, s in sets.items()}, "missing": {}}
    out["extra"] = {}
    if register_name is None:
        return out
    register = sets[register_name]
    out["register"] = register_name
    for name, codes in sets.items():
        if name == register_name:
            continue
        missing, extra = sorted(register - codes), sorted(codes - register)
        if missing:
            out["missing"][name] = missing
        if extra:
            out["extra"][name] = extra
    return out


def source_rows(
    loaded: Mapping[str, Any],
    lsoa_codes: set[str],
    practice_codes: set[str],
    lsoa_status: pd.Series | None = None,
) -> dict[str, dict[str, Any]]:
    """Rows read, rows used and rows set aside by reason, per source.

    Args:
        loaded: Loaded source frames.
        lsoa_codes: LSOA 2021 codes of the stored LSOA table (English LSOAs).
        practice_codes: Practice codes of the stored practice table.
        lsoa_status: LSOA status of each registrations row (matched, closed, ...), if any.

    Returns:
        ``{source: {"rows_read": n, "rows_used": n, "set_aside": {reason: n}}}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, frame in loaded.items():
        if hasattr(frame, "memberships"):
            frame = frame.memberships
        if not isinstance(frame, pd.DataFrame):
            continue
        read = len(frame)
        aside: dict[str, int] = {}
        if name == "registrations_lsoa" and lsoa_status is not None:
            counts = lsoa_status.value_counts()
            aside = {
                f"LSOA {status} (patients kept, shown as not placed)": int(n)
                for status, n in counts.items()
                if status != "matched"
            }
        elif name.startswith("census_") or name == "iod2025":
            outside = ~isin(frame["lsoa21_code"], lsoa_codes)
            if outside.any():
                aside["LSOA not in the LSOA 2021 lookup (Wales or another release)"] = int(
                    outside.sum()
                )
        elif name in ("workforce", "payments", "practice_age_bands", "practice_single_age"):
            unknown = ~isin(frame["practice_code"], practice_codes)
            if unknown.any():
                aside["practice not in the registered practice list"] = int(unknown.sum())
        out[name] = {"rows_read": read, "rows_used": read - sum(aside.values()), "set_aside": aside}
    return out


def patients_by_lsoa_status(registrations: pd.DataFrame) -> dict[str, int]:
    """Registered patients by LSOA status (matched, closed, unknown, wales, outside)."""
    if not len(registrations):
        return {}
    sums = registrations.groupby("lsoa_status")["patients"].sum()
    return {str(k): int(v) for k, v in sums.items()}


def summary_lines(reconciliation: Mapping[str, Any]) -> list[str]:
    """The reconciliation report as short lines for ``prepare`` to print."""
    lines = []
    for name, entry in reconciliation.get("sources", {}).items():
        aside = entry["set_aside"]
        detail = "; ".join(f"{n:,} {why}" for why, n in aside.items()) if aside else "none"
        lines.append(
            f"  {name:<28} read {entry['rows_read']:>9,}  used {entry['rows_used']:>9,}  "
            f"set aside: {detail}"
        )
    patients = reconciliation.get("patients_by_lsoa_status") or {}
    if patients:
        total = sum(patients.values())
        parts = ", ".join(f"{k} {v:,}" for k, v in sorted(patients.items()))
        lines.append(f"  registered patients by LSOA status: {parts} (total {total:,})")
    presence = reconciliation.get("practices") or {}
    for name, codes in (presence.get("missing") or {}).items():
        lines.append(
            f"  {len(codes)} practice(s) of {presence.get('register')} missing from {name}: "
            + ", ".join(codes[:8])
            + (" ..." if len(codes) > 8 else "")
        )
    totals = reconciliation.get("practice_totals") or {}
    for name, entry in totals.items():
        if isinstance(entry, dict) and entry.get("compared"):
            lines.append(
                f"  {name} vs practice totals: {entry['practices_compared']} practices, "
                f"{len(entry['within_tolerance'])} within tolerance but not equal "
                f"(difference {entry['patients_difference']:+,} patients)"
            )
            for side in ("missing_from_source", "missing_from_totals"):
                codes = entry.get(side) or []
                if codes:
                    where = name if side == "missing_from_source" else "practice totals"
                    lines.append(
                        f"    {len(codes)} practice(s) missing from {where}: "
                        + ", ".join(codes[:8])
                        + (" ..." if len(codes) > 8 else "")
                    )
        elif isinstance(entry, dict) and entry.get("note"):
            lines.append(f"  {name}: {entry['note']}")
    shapes = reconciliation.get("boundaries") or {}
    if shapes:
        lines.append(
            f"  boundaries: {shapes['kept']:,} of {shapes['rows']:,} kept; "
            f"{shapes['null_or_empty']:,} empty or missing geometries, {shapes['repaired']:,} "
            f"repaired, {shapes['lsoas_without_boundary']:,} LSOAs without a boundary"
            + (f" (e.g. {', '.join(shapes['examples'][:5])})" if shapes["examples"] else "")
        )
    if reconciliation.get("practices_without_icb"):
        lines.append(
            f"  {reconciliation['practices_without_icb']} practice(s) whose sub-ICB location is "
            "not in the LSOA lookup: in no sub-ICB or ICB profile"
        )
    fixes = reconciliation.get("code_fixes") or {}
    for name, n in fixes.items():
        if n:
            lines.append(f"  {name}: {n:,} code(s) trimmed or upper-cased")
    return lines
