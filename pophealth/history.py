"""Release history: several releases of the time-varying sources in one prepared store.

Raw layout (documented in ``docs/history.md``): the raw folder holds the current release of every
source as before, and earlier releases of the time-varying sources in ``releases/<label>/``
sub-folders, one per release (the folder name is only a label; the period is read from the
files: the extract date of the registrations files, or the month in the workforce file name).

Time-varying sources (``TIME_VARYING_SOURCES``): patients registered by LSOA, practice totals,
five-year and single-year age lists, the practice mapping file and the practice-level workforce
CSV. Each period gets its own practices / registrations / age-sex tables, built with the same
functions as the current store (:func:`pophealth.prepare.build_practice_table` etc.) from that
period's files plus the practice-level static inputs (``STATIC_INPUTS``: ePCN memberships and
the payments year, stored under ``history/static/`` so that a new month can be added without the
rest of the raw folder). The store keeps them in ``history/<table>.parquet`` with a ``period``
column (``YYYY-MM``); ``manifest.json`` lists every period under ``"history"``.

:func:`add_release` (``pophealth prepare --add RELEASE_DIR --out PREPARED``) loads one new
release, appends (or replaces) its period and, when it is the newest, makes it the current store;
the result equals a full rebuild with that release in the raw folder.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pophealth import prepare as prep
from pophealth.contracts import validate_store_table
from pophealth.sources import epcn as src_epcn
from pophealth.sources import ods_successors as src_successors
from pophealth.sources import pcn_workforce as src_pcn_workforce

TIME_VARYING_SOURCES = (
    "registrations_lsoa",
    "practice_totals",
    "practice_age_bands",
    "practice_single_age",
    "practice_map",
    "workforce",
    "pcn_workforce",
)
STATIC_INPUTS = ("epcn", "payments", "ods_successors")
HISTORY_DIR = "history"
HISTORY_TABLES = ("practices", "registrations", "practice_age_sex", "pcn_workforce")
# history tables keyed by practice (the membership rule applies to them; PCN staff follow the
# practices when they are shared among a period's practices)
PRACTICE_TABLES = ("practices", "registrations", "practice_age_sex")
# PopHealthData attribute holding each history table's current version
STORE_ATTRIBUTES = {
    "practices": "practices",
    "registrations": "registrations",
    "practice_age_sex": "age_sex",
    "pcn_workforce": "pcn_staff",
}
# current-store file of each history table
CURRENT_FILES = {
    "practices": "practices.parquet",
    "registrations": "registrations.parquet",
    "practice_age_sex": "practice_age_sex.parquet",
}
_MONTHS = {
    name: i + 1
    for i, name in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ]
    )
}


class HistoryError(prep.PrepareError):
    """Releases that cannot be put in one history (no period, two releases of one period)."""


# the period of a release is read from these sources, first found wins
PERIOD_PRIORITY = TIME_VARYING_SOURCES


def release_period(loaded: dict, files: dict) -> tuple[str | None, str]:
    """The period (``YYYY-MM``) of one release, read from its files.

    The registrations files' EXTRACT_DATE wins; the workforce file's month (from its name) is
    used when no registrations file is present. Files of different months are not an error
    (a raw folder may hold October registrations with September workforce) but are reported.

    Returns:
        (period or None when no file says its month, note on disagreeing files or "").
    """
    found: dict[str, str] = {}
    for name in PERIOD_PRIORITY:
        frame = loaded.get(name)
        if frame is None:
            continue
        if isinstance(frame, pd.DataFrame) and "extract_date" in frame and len(frame):
            found[name] = pd.Timestamp(frame["extract_date"].max()).strftime("%Y-%m")
        elif name == "workforce":
            file_name = files[name]["files"][0]["name"]
            match = re.search(r"(\w+) (\d{4}) Practice Level", file_name)
            if match and match.group(1).lower() in _MONTHS:
                found[name] = f"{match.group(2)}-{_MONTHS[match.group(1).lower()]:02d}"
    if not found:
        return None, ""
    period = next(iter(found.values()))
    others = {name: p for name, p in found.items() if p != period}
    note = (
        f"release {period}: " + ", ".join(f"{n} is from {p}" for n, p in others.items())
        if others
        else ""
    )
    return period, note


def period_tables(static: dict, release: dict, lsoa: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Practices, registrations and age-sex tables of one period (same code as the current store).

    Args:
        static: Practice-level static inputs (``epcn``, ``payments``) as loaded.
        release: The period's time-varying sources as loaded.
        lsoa: The store's LSOA table (geography and LSOA codes).

    Returns:
        ``{"practices": …, "registrations": …, "practice_age_sex": …, "pcn_workforce": …}``
        (PCN-employed staff by PCN and group; empty when the release has no PCN workforce file).
    """
    loaded = {**static, **release}
    regs = release.get("registrations_lsoa")
    practices, _ = prep.build_practice_table(loaded, lsoa, prep.as_of_date(None, regs))
    pcn_staff = release.get("pcn_workforce")
    registrations = prep.registrations_table(regs, lsoa)
    age_sex = prep.age_sex_table(release.get("practice_age_bands"))
    pcn_fte = (
        src_pcn_workforce.pcn_fte_by_group(pcn_staff) if pcn_staff is not None else pd.DataFrame()
    )
    systems = _store_systems(lsoa)
    if systems and len(practices) and "icb_code" in practices:
        # a store cut by --systems keeps the same practices in every period
        practices = practices[practices["icb_code"].isin(systems)].reset_index(drop=True)
        kept = set(practices["practice_code"])
        registrations = registrations[registrations["practice_code"].isin(kept)]
        age_sex = age_sex[age_sex["practice_code"].isin(kept)]
        if len(pcn_fte):
            pcn_fte = pcn_fte[pcn_fte["pcn_code"].isin(set(practices["pcn_code"].dropna()))]
    return {
        "practices": practices,
        "registrations": registrations.reset_index(drop=True),
        "practice_age_sex": age_sex.reset_index(drop=True),
        "pcn_workforce": pcn_fte.reset_index(drop=True),
    }


def _store_systems(lsoa: pd.DataFrame) -> set[str]:
    """ICBs kept by ``prepare --systems`` (in ``lsoa.attrs``); empty when every ICB is kept."""
    return set(lsoa.attrs.get("systems_kept", ()))


STATIC_DIR = f"{HISTORY_DIR}/static"


def _static_dir(out: Path) -> Path:
    return out / STATIC_DIR


def _write_store_table(frame: pd.DataFrame, out: Path, name: str) -> None:
    """Write one history table (``name`` relative to the store) checked against its contract."""
    prep._write_parquet(frame, out / name, table=name)


def _read_store_table(out: Path, name: str) -> pd.DataFrame:
    """Read one history table (``name`` relative to the store), checked against its contract."""
    path = Path(out) / name
    return validate_store_table(name, pd.read_parquet(path), path)


def write_static_inputs(loaded: dict, out: Path) -> None:
    """Store the practice-level static inputs a later ``--add`` needs."""
    folder = _static_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    epcn = loaded.get("epcn")
    if epcn is not None:
        for name, frame in (("epcn_pcns", epcn.pcns), ("epcn_memberships", epcn.memberships)):
            _write_store_table(frame, out, f"{STATIC_DIR}/{name}.parquet")
    if loaded.get("payments") is not None:
        _write_store_table(loaded["payments"], out, f"{STATIC_DIR}/payments.parquet")


SUCCESSORS_FILE = f"{STATIC_DIR}/successors.parquet"


def write_successors(successors: pd.DataFrame | None, out: Path, path: str | Path) -> dict:
    """Store the GP practice successions of an ODS successor file for the membership rule.

    Args:
        successors: The loaded successor file (all organisation types), or ``None``.
        out: The prepared store.
        path: The successor file (for messages).

    Returns:
        The manifest's ``successions`` entry (practice successions kept and notes), or ``{}``
        when there is no successor file (an earlier table is removed: no file, no successions).
    """
    target = Path(out) / SUCCESSORS_FILE
    if successors is None:
        target.unlink(missing_ok=True)
        return {}
    practices, notes = src_successors.gp_practice_successions(successors, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_store_table(practices, Path(out), SUCCESSORS_FILE)
    return {
        "rows": int(len(successors)),
        "gp_practice_successions": int(len(practices)),
        "chains_resolved": int((practices["chain"].str.count(">") > 1).sum()),
        "notes": notes,
    }


def read_successors(prepared_dir: str | Path) -> pd.DataFrame | None:
    """The store's GP practice successions (``predecessor_code, successor_code, …``) or None."""
    if not (Path(prepared_dir) / SUCCESSORS_FILE).exists():
        return None
    return _read_store_table(Path(prepared_dir), SUCCESSORS_FILE)


def read_static_inputs(out: Path) -> dict:
    """The static inputs stored by :func:`write_static_inputs` (as loaders return them)."""
    folder = _static_dir(out)
    static: dict = {}
    if (folder / "epcn_memberships.parquet").exists():
        static["epcn"] = src_epcn.EpcnTables(
            pcns=_read_store_table(out, f"{STATIC_DIR}/epcn_pcns.parquet"),
            memberships=_read_store_table(out, f"{STATIC_DIR}/epcn_memberships.parquet"),
        )
    if (folder / "payments.parquet").exists():
        static["payments"] = _read_store_table(out, f"{STATIC_DIR}/payments.parquet")
    return static


def load_release(folder: Path, say=None) -> tuple[str, dict, dict, str, dict]:
    """Load the time-varying sources of one release folder, reconciled as prepare does.

    Returns:
        (period, loaded, files, note, reconciliation) with only time-varying sources kept;
        ``reconciliation`` holds the practice-totals report and the code fixes per source.

    Raises:
        HistoryError: The folder has no time-varying file, or none says its month.
        ReconciliationError: Duplicate keys, impossible categories or totals beyond tolerance.
    """
    raw = prep.discover_raw_files(folder)
    loaded, files, code_fixes = prep.load_raw_sources(raw, say)
    # the same reconciliation as the full prepare: an error before anything is written
    totals_report = prep.reconcile_sources(loaded, files)
    loaded = {k: v for k, v in loaded.items() if k in TIME_VARYING_SOURCES}
    files = {k: v for k, v in files.items() if k in TIME_VARYING_SOURCES}
    period, note = release_period(loaded, files)
    absent = [name for name in TIME_VARYING_SOURCES if name not in loaded]
    if period is not None and absent:
        # what a release lacks is empty for its period (never carried from another month)
        note = "; ".join(filter(None, [note, f"release {period} has no {', '.join(absent)}"]))
    fixed = {k: n for k, n in code_fixes.items() if n and k in TIME_VARYING_SOURCES}
    if period is not None and fixed:
        counts = ", ".join(f"{n:,} in {k}" for k, n in sorted(fixed.items()))
        note = "; ".join(
            filter(None, [note, f"release {period}: codes trimmed/upper-cased: {counts}"])
        )
    if period is None:
        raise HistoryError(
            f"{folder}: cannot tell which month this release is: no registrations file with an "
            "EXTRACT_DATE and no workforce file named '… <Month YYYY> Practice Level …'. Add the "
            "month's registrations or workforce files to the folder."
        )
    reconciliation = {"practice_totals": totals_report, "code_fixes": code_fixes}
    return period, loaded, files, note, reconciliation


def _release_entry(period: str, files: dict) -> dict:
    return {
        "period": period,
        "sources": {
            name: {"files": entry["files"], "rows": entry["rows"]} for name, entry in files.items()
        },
    }


def _write_history(out: Path, tables: dict[str, dict[str, pd.DataFrame]]) -> None:
    """Write ``history/<table>.parquet`` from period -> table frames (sorted by period)."""
    folder = out / HISTORY_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for table in HISTORY_TABLES:
        frames = [
            tables[period][table].assign(period=period)
            for period in sorted(tables)
            if len(tables[period][table])
        ]
        if frames:
            frame = pd.concat(frames, ignore_index=True)
            _write_store_table(frame, out, f"{HISTORY_DIR}/{table}.parquet")


def prepare_history(raw_dir: Path, out: Path, loaded: dict, files: dict, lsoa: pd.DataFrame, say):
    """Build the history of every release in ``raw_dir`` (full rebuild); called by prepare.

    The current (top-level) release is one period; each ``releases/<label>/`` folder another.
    A release folder of the same month as the current release is skipped (the top level wins,
    and the manifest says so).

    Returns:
        The manifest's ``history`` entry (``periods``, ``releases`` with files per period,
        ``notes``), or None when the raw folder has no dated time-varying source.
    """
    folder = Path(out) / HISTORY_DIR
    if folder.exists():
        shutil.rmtree(folder)  # a full rebuild never keeps periods of an earlier raw folder
    current = {k: v for k, v in loaded.items() if k in TIME_VARYING_SOURCES}
    current_files = {k: v for k, v in files.items() if k in TIME_VARYING_SOURCES}
    current_period, note = release_period(current, current_files)
    if current_period is None:
        return None
    notes = [note] if note else []
    write_static_inputs(loaded, out)
    successions = write_successors(
        loaded.get("ods_successors"), out, _first_file(files, "ods_successors")
    )
    static = read_static_inputs(out)
    releases = {current_period: (current, current_files)}
    root = Path(raw_dir) / prep.RELEASES_DIR
    for release_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        period, release, release_files, note, _ = load_release(release_dir)
        notes += [note] if note else []
        if period == current_period:
            notes.append(f"{release_dir.name}: same month as the current release, not used")
            continue
        if period in releases:
            raise HistoryError(
                f"{root}: two release folders hold {period} (one is {release_dir.name}); keep one."
            )
        releases[period] = (release, release_files)
    tables = {
        period: period_tables(static, release, lsoa) for period, (release, _) in releases.items()
    }
    _write_history(out, tables)
    say(f"  history: {len(tables)} period(s), {min(tables)} to {max(tables)}")
    entry = {
        "periods": sorted(tables),
        "releases": [_release_entry(p, releases[p][1]) for p in sorted(releases)],
        "notes": notes,
    }
    if successions:
        entry["successions"] = successions
    return entry


def _first_file(files: dict, name: str) -> str:
    """The (first) file name of a loaded source, for messages."""
    listed = files.get(name, {}).get("files") or [{"name": name}]
    return listed[0]["name"]


def prepare_store(
    raw_dir: str | Path,
    out_dir: str | Path,
    *,
    listing: str | Path | None = None,
    as_of: str | None = None,
    progress=print,
    systems: tuple[str, ...] | list[str] | None = None,
) -> dict:
    """``pophealth prepare``: the prepared store plus the release history of ``raw_dir``.

    :func:`pophealth.prepare.prepare` with :func:`prepare_history` as its ``history`` step
    (prepare itself does not know about history, so the modules do not import each other).

    Returns:
        The manifest, with ``history`` when the raw folder has dated time-varying sources.
    """
    return prep.prepare(
        raw_dir,
        out_dir,
        listing=listing,
        as_of=as_of,
        progress=progress,
        systems=systems,
        extensions={"history": prepare_history},
    )


def read_history(prepared_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The store's history tables (``period`` column); empty dict when it has none."""
    folder = Path(prepared_dir) / HISTORY_DIR
    return {
        table: _read_store_table(prepared_dir, f"{HISTORY_DIR}/{table}.parquet")
        for table in HISTORY_TABLES
        if (folder / f"{table}.parquet").exists()
    }


def add_release(release_dir: str | Path, prepared_dir: str | Path, *, progress=print) -> dict:
    """Add one new release to a prepared store without rebuilding the rest (``prepare --add``).

    Loads only the release's time-varying files, builds its period with the stored LSOA table and
    static inputs, appends (or replaces) the period in ``history/``, and, when the period is the
    newest, makes it the current store (practices, registrations, age-sex tables and the
    manifest's as-of date, sources and counts).

    Args:
        release_dir: Folder with one release's files (e.g. ``raw/releases/2025-11``).
        prepared_dir: An existing prepared store.
        progress: One-line progress messages (``None`` for silence).

    Returns:
        The updated manifest (also written).

    Raises:
        HistoryError: The store has no history to add to, or the release has no period.
    """
    say = progress or (lambda *_: None)
    started = time.perf_counter()
    out = Path(prepared_dir)
    manifest_path = out / "manifest.json"
    if not manifest_path.exists():
        raise HistoryError(
            f"{out} is not a prepared store (no manifest.json). Run `pophealth prepare RAW --out "
            f"{out}` first, then add releases with --add."
        )
    manifest = json.loads(manifest_path.read_text("utf-8"))
    if "history" not in manifest:
        raise HistoryError(
            f"{out} has no release history: it was prepared without it (prepare.prepare rather "
            "than history.prepare_store / `pophealth prepare`) or without registrations or "
            "workforce files. Prepare it again with `pophealth prepare RAW --out STORE`."
        )
    period, release, files, note, reconciliation = load_release(Path(release_dir), say)
    successor_files = prep.discover_raw_files(release_dir).paths.get("ods_successors")
    if successor_files:
        # a newer ODS successor file with the month replaces the stored successions
        loaded_successors = src_successors.load_ods_successors(successor_files)
        manifest["history"]["successions"] = write_successors(
            loaded_successors, out, successor_files[0]
        )
        manifest["sources"]["ods_successors"] = {
            "files": [
                {"name": p.name, "sha256": prep.sha256_of(p), "bytes": p.stat().st_size}
                for p in successor_files
            ],
            "release": f"with release {period}",
            "rows": int(len(loaded_successors)),
        }
    lsoa = _read_store_table(out, "lsoa.parquet")
    new = period_tables(read_static_inputs(out), release, lsoa)
    history = read_history(out)
    tables: dict[str, dict[str, pd.DataFrame]] = {}
    for table, frame in history.items():
        for old_period, rows in frame.groupby("period", sort=True):
            if old_period != period:
                tables.setdefault(old_period, {t: pd.DataFrame() for t in HISTORY_TABLES})
                tables[old_period][table] = rows.drop(columns="period").reset_index(drop=True)
    tables[period] = new
    _write_history(out, tables)
    entry = manifest["history"]
    releases = [r for r in entry["releases"] if r["period"] != period]
    releases.append(_release_entry(period, files))
    entry["releases"] = sorted(releases, key=lambda r: r["period"])
    entry["periods"] = sorted(tables)
    entry["notes"] = [*entry.get("notes", []), *([note] if note else [])]
    if period == max(tables):
        for table, name in CURRENT_FILES.items():
            prep._write_parquet(new[table], out / name)
        # the month's PCN-employed staff (none in the release: none for the month, not stale)
        prep.write_pcn_workforce(release.get("pcn_workforce"), out)
        manifest.setdefault("reconciliation", {}).update(reconciliation)
        manifest["as_of"] = prep.as_of_date(None, release.get("registrations_lsoa")).strftime(
            "%Y-%m-%d"
        )
        manifest["sources"].update(files)
        for name in TIME_VARYING_SOURCES:  # what the new month lacks is not in the store now
            if name not in files:
                manifest["sources"].pop(name, None)
        registrations = new["registrations"]
        manifest["counts"].update(
            practices=int(len(new["practices"])),
            registration_rows=int(len(registrations)),
            registered_patients=int(registrations["patients"].sum()) if len(registrations) else 0,
        )
    manifest["added_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    manifest["add_seconds"] = round(time.perf_counter() - started, 2)
    manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    say(f"  added {period}: history now {entry['periods'][0]} to {entry['periods'][-1]}")
    return manifest


# --------------------------------------------------------------------------------------
# Membership over time
# --------------------------------------------------------------------------------------

# practice columns that follow the practice's current membership in every period
MEMBERSHIP_COLUMNS = (
    "pcn_code",
    "pcn_name",
    "sicbl_code",
    "sicbl_ods",
    "sicbl_name",
    "icb_code",
    "icb_ods",
    "icb_name",
)


def _carry_to_successors(frame: pd.DataFrame, successors: dict[str, str]) -> pd.DataFrame:
    """Rename predecessor practices to their successor and add their rows together."""
    if frame.empty or not successors:
        return frame
    carried = frame["practice_code"].isin(list(successors))
    # the successor's own row first, so its name and other text fields win over its predecessor's
    renamed = frame.assign(practice_code=frame["practice_code"].replace(successors))
    renamed = pd.concat([renamed[~carried], renamed[carried]])
    keys = [
        c for c in ("practice_code", "lsoa_code", "lsoa_status", "sex", "age_band") if c in frame
    ]
    numeric = [
        c for c in renamed.columns if c not in keys and pd.api.types.is_numeric_dtype(renamed[c])
    ]
    others = [c for c in renamed.columns if c not in keys and c not in numeric]
    grouped = renamed.groupby(keys, sort=False, dropna=False)
    parts = [grouped[numeric].sum(min_count=1)] if numeric else []
    parts += [grouped[others].first()] if others else []
    if not parts:
        return grouped.size().reset_index()[frame.columns]
    return pd.concat(parts, axis=1).reset_index()[frame.columns]


def apply_membership_rule(
    period: dict[str, pd.DataFrame],
    current_practices: pd.DataFrame,
    successors: pd.DataFrame | None = None,
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """One period's tables seen through today's neighbourhood membership.

    Rule (``docs/history.md``): an area's history is the history of its **current** member
    practices. Each practice that exists today takes today's PCN, sub-ICB and ICB in every period,
    so a practice that moved PCN counts in its new PCN throughout. A practice that closed or merged
    is carried by its successor where a successor table (from ODS) says so: its patients, staff
    and registrations are added to the successor's in the periods before the merger. Any other
    practice that is not in today's list keeps its own period's geography (it counts in its place
    and system then) but belongs to no neighbourhood; these are reported.

    Args:
        period: ``practices``, ``registrations``, ``practice_age_sex`` of one period.
        current_practices: Today's practices table.
        successors: Optional ``predecessor_code, successor_code`` (ODS successions).

    Returns:
        (tables, changes): the period's tables under the rule, and one row per practice whose
        treatment differs from its own period (``practice_code, change, detail``).
    """
    mapping = {}
    if successors is not None and len(successors):
        known = set(current_practices["practice_code"])
        mapping = {
            str(a): str(b)
            for a, b in zip(
                successors["predecessor_code"], successors["successor_code"], strict=True
            )
            if str(b) in known and str(a) not in known
        }
    tables = {name: _carry_to_successors(frame, mapping) for name, frame in period.items()}
    practices = tables["practices"]
    if practices.empty:
        return tables, pd.DataFrame(columns=["practice_code", "change", "detail"])
    columns = [c for c in MEMBERSHIP_COLUMNS if c in practices and c in current_practices]
    today = current_practices.drop_duplicates("practice_code").set_index("practice_code")[columns]
    then = practices.set_index("practice_code")
    present = then.index.isin(today.index)
    changes = []
    if "pcn_code" in columns:
        old_pcn = then.loc[present, "pcn_code"]
        new_pcn = today.loc[then.index[present], "pcn_code"]
        moved = old_pcn.fillna("").to_numpy() != new_pcn.fillna("").to_numpy()
        for code, old, new in zip(
            old_pcn.index[moved], old_pcn[moved], new_pcn[moved], strict=True
        ):
            changes.append((code, "moved PCN", f"{old} then, {new} now: counted in {new}"))
    for predecessor, successor in mapping.items():
        if predecessor in set(period["practices"]["practice_code"]):
            changes.append((predecessor, "merged", f"carried by its successor {successor}"))
    for code in then.index[~present]:
        changes.append((code, "not in today's list", "counts in its place and system only"))
    updated = then.copy()
    updated.loc[present, columns] = today.loc[then.index[present], columns].to_numpy()
    pcn_columns = [c for c in ("pcn_code", "pcn_name") if c in updated]
    updated.loc[~present, pcn_columns] = pd.NA  # in no current neighbourhood
    tables["practices"] = updated.reset_index()[practices.columns]
    return tables, pd.DataFrame(changes, columns=["practice_code", "change", "detail"])
