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

QOF is yearly: every QOF year found (the top level's, and any ``releases/<label>/`` folder holding
a QOF year's files) is kept in ``history/qof_prevalence.parquet`` (the current QOF table's columns
plus ``period``), with its recorded-vs-expected model (``history/qof_expected.parquet``) and its
practice geography (``history/qof_geographies.parquet``). A QOF year's period is the month its
year ends (:func:`qof_period`: QOF 2024-25, April 2024 to March 2025 -> ``2025-03``); the
manifest lists them under ``"history" -> "qof_years"``.

:func:`add_release` (``pophealth prepare --add RELEASE_DIR --out PREPARED``) loads one new
release, appends (or replaces) its period (or QOF year) and, when it is the newest month (or QOF
year), makes it the current store's; the result equals a full rebuild with that release in the
raw folder (a newer QOF year: with it at the top level).
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.parquet as pq

from pophealth import membership
from pophealth import prepare as prep
from pophealth.contracts import validate_store_table
from pophealth.files import atomic_path
from pophealth.releases import IMD_YEARS
from pophealth.sources import epcn as src_epcn
from pophealth.sources import ods_successors as src_successors
from pophealth.sources import pcn_workforce as src_pcn_workforce
from pophealth.sources import qof as src_qof

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
# the yearly source kept per QOF year (see qof_period)
QOF_SOURCE = "qof"
QOF_TABLES = ("qof_prevalence", "qof_expected", "qof_geographies")
HISTORY_DIR = "history"
# temporary folder (in history/) of the period files a full rebuild or --add writes
PARTS_PREFIX = ".parts-"
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


_QOF_YEAR = re.compile(r"^(\d{4})-(\d{2})$")


def qof_period(year: str) -> str:
    """The history period of a QOF year: the month the year ends (its achievement date).

    A QOF year runs from April to March and its registers are counted on 31 March, so
    ``"2024-25"`` -> ``"2025-03"``. Each QOF year has this one period; it is never shown in a
    month it does not cover.

    Raises:
        HistoryError: ``year`` is not a QOF year label (``YYYY-YY``).
    """
    match = _QOF_YEAR.match(str(year))
    if not match or (int(match.group(1)) + 1) % 100 != int(match.group(2)):
        raise HistoryError(
            f"QOF year {year!r} is not a year label like '2024-25' (read from the file names "
            "PREVALENCE_<YYYY>.csv); keep the official file names."
        )
    return f"{int(match.group(1)) + 1}-03"


def qof_year_of(period: str) -> str:
    """The QOF year of a QOF period (:func:`qof_period` reversed): ``"2025-03"`` -> ``2024-25``."""
    end = int(str(period)[:4])
    return f"{end - 1}-{end % 100:02d}"


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


def load_release(folder: Path, say=None) -> tuple[str | None, dict, dict, str, dict]:
    """Load the time-varying sources (and any QOF year) of one release folder, as prepare does.

    Returns:
        (period, loaded, files, note, reconciliation) with only time-varying sources and
        ``qof`` kept; ``period`` is ``None`` for a folder holding only a QOF year;
        ``reconciliation`` holds the practice-totals report and the code fixes per source.

    Raises:
        HistoryError: The folder has no time-varying file that says its month and no QOF year.
        ReconciliationError: Duplicate keys, impossible categories or totals beyond tolerance.
    """
    raw = prep.discover_raw_files(folder)
    loaded, files, code_fixes = prep.load_raw_sources(raw, say)
    # the same reconciliation as the full prepare: an error before anything is written
    totals_report = prep.reconcile_sources(loaded, files)
    kept = (*TIME_VARYING_SOURCES, QOF_SOURCE)
    loaded = {k: v for k, v in loaded.items() if k in kept}
    files = {k: v for k, v in files.items() if k in kept}
    period, note = release_period(_monthly(loaded), _monthly(files))
    if period is None and QOF_SOURCE not in loaded:
        raise HistoryError(
            f"{folder}: cannot tell which month this release is: no registrations file with an "
            "EXTRACT_DATE, no workforce file named '… <Month YYYY> Practice Level …' and no QOF "
            "year (PREVALENCE_<YYYY>.csv). Add the month's registrations or workforce files, or "
            "a QOF year's files, to the folder."
        )
    absent = [name for name in TIME_VARYING_SOURCES if name not in loaded]
    if period is not None and absent:
        # what a release lacks is empty for its period (never carried from another month)
        note = "; ".join(filter(None, [note, f"release {period} has no {', '.join(absent)}"]))
    fixed = {k: n for k, n in code_fixes.items() if n and k in kept}
    if fixed:
        counts = ", ".join(f"{n:,} in {k}" for k, n in sorted(fixed.items()))
        label = f"release {period}" if period is not None else f"QOF folder {Path(folder).name}"
        note = "; ".join(filter(None, [note, f"{label}: codes trimmed/upper-cased: {counts}"]))
    reconciliation = {"practice_totals": totals_report, "code_fixes": code_fixes}
    return period, loaded, files, note, reconciliation


def _monthly(sources: dict) -> dict:
    """The time-varying (monthly) sources of a loaded release or its manifest entries."""
    return {k: v for k, v in sources.items() if k in TIME_VARYING_SOURCES}


def _release_entry(period: str, files: dict) -> dict:
    return {
        "period": period,
        "sources": {
            name: {"files": entry["files"], "rows": entry["rows"]} for name, entry in files.items()
        },
    }


def _write_period_parts(out: Path, parts: Path, period: str, tables: dict) -> None:
    """Write one period's history tables to ``parts/<table>/<period>.arrow``, each checked.

    A full rebuild holds one period's tables at a time: each is written here as soon as it is
    built and the files are joined, in period order, by :func:`_join_period_parts`. Empty tables
    (a release without that source) are not written, as in the joined table. The files are
    :func:`_write_part` files (temporary: only the joined tables are parquet).
    """
    for table in HISTORY_TABLES:
        frame = tables[table]
        if not len(frame):
            continue
        name = f"{HISTORY_DIR}/{table}.parquet"
        frame = frame.assign(period=period)
        validate_store_table(name, frame, f"prepare writing {out / name} ({period})")
        folder = parts / table
        folder.mkdir(parents=True, exist_ok=True)
        _write_part(frame, folder / f"{period}{PART_SUFFIX}")


# a period's part: an uncompressed Arrow IPC file, written and read back ~10x faster than parquet
PART_SUFFIX = ".arrow"


def _write_part(frame: pd.DataFrame, path: Path) -> None:
    """Write the Arrow table ``frame.to_parquet(path, index=False)`` would store, as Arrow IPC."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if frame.attrs:  # DataFrame.to_parquet keeps them so
        metadata = {**table.schema.metadata, b"PANDAS_ATTRS": json.dumps(frame.attrs)}
        table = table.replace_schema_metadata(metadata)
    feather.write_feather(table, path, compression="uncompressed")


def _read_part(path: Path) -> pa.Table:
    """A part's Arrow table (as ``pq.read_table`` of the parquet file would give it)."""
    return feather.read_table(path, memory_map=False)


def _part_schema(path: Path) -> pa.Schema:
    with pa.ipc.open_file(path) as reader:
        return reader.schema


def _part_frame(path: Path) -> pd.DataFrame:
    """A part as ``pd.read_parquet`` would read it from parquet (for the rare aligned joins)."""
    buffer = pa.BufferOutputStream()
    pq.write_table(_read_part(path), buffer)
    return pd.read_parquet(pa.BufferReader(buffer.getvalue()))


# folder (in a rebuild's parts folder) of the periods staged ahead of their turn
STAGING_DIR = ".staged"


def _move_period_parts(staged: Path, parts: Path, period: str) -> None:
    """Move a staged period's files (:func:`stage_release`) to the rebuild's ``parts``."""
    for table in HISTORY_TABLES:
        source = staged / table / f"{period}{PART_SUFFIX}"
        if source.exists():
            (parts / table).mkdir(parents=True, exist_ok=True)
            os.replace(source, parts / table / source.name)


def _join_period_parts(out: Path, parts: Path) -> None:
    """Write ``history/<table>.parquet`` from the period files of :func:`_write_period_parts`.

    Period files with one schema (the usual case) are copied into one file, a row group per
    period, without going through pandas; periods whose columns differ (a release without a
    workforce file has fewer practice columns) are aligned by ``pd.concat`` as before.
    """
    jobs = []
    for table in HISTORY_TABLES:
        folder = parts / table
        paths = sorted(folder.glob(f"*{PART_SUFFIX}")) if folder.is_dir() else []
        if paths:
            jobs.append((paths, out / HISTORY_DIR / f"{table}.parquet"))
    # two tables at a time, the largest first: pyarrow encodes parquet without holding the GIL,
    # and the worker process that shared the releases has finished
    jobs.sort(key=lambda job: -sum(path.stat().st_size for path in job[0]))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for joined in [pool.submit(_concat_parts, *job) for job in jobs]:
            joined.result()


def _concat_parts(paths: list[Path], target: Path) -> None:
    """Write parts (in order) into the parquet file ``target``, as ``pd.concat`` of their frames."""
    schemas = [_part_schema(path) for path in paths]
    with atomic_path(target) as tmp:
        if all(schema.equals(schemas[0], check_metadata=True) for schema in schemas):
            with pq.ParquetWriter(tmp, schemas[0]) as writer:
                for path in paths:
                    writer.write_table(_read_part(path))
        else:
            frames = [_part_frame(path) for path in paths]
            pd.concat(frames, ignore_index=True).to_parquet(tmp, index=False)


def _replace_period(target: Path, part: Path | None, period: str) -> set[str]:
    """Put one period's rows (``part``; ``None`` for none) in a stored history table.

    The stored table (in period order) is read a row group at a time: its rows of earlier
    periods, then the period's new rows, then its rows of later periods; rows it held for the
    period are dropped. Only a row group is in memory at once. A part whose columns differ from
    the stored table's is aligned with it by ``pd.concat`` of the periods, as a full rebuild
    does. A table left without rows is removed (a full rebuild would not write it).

    Returns:
        The periods of the stored table other than ``period``.
    """
    if not target.exists():
        if part is not None:
            _concat_parts([part], target)
        return set()
    stored = pq.ParquetFile(target)
    schema = stored.schema_arrow
    if part is not None and not _part_schema(part).equals(schema, check_metadata=True):
        return _replace_period_aligned(target, part, period)
    periods: set[str] = set()
    rows = 0
    with atomic_path(target) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            for group in _row_groups(stored, pc.less, period, periods):
                writer.write_table(group)
                rows += len(group)
            if part is not None:
                new = _read_part(part)
                writer.write_table(new)
                rows += len(new)
            if any(p > period for p in periods):
                for group in _row_groups(stored, pc.greater, period):
                    writer.write_table(group)
                    rows += len(group)
    if not rows:
        target.unlink()
    return periods - {period}


def _row_groups(stored: pq.ParquetFile, compare, period: str, seen: set | None = None):
    """The stored row groups' rows whose period ``compare``s to ``period`` (periods to ``seen``)."""
    for index in range(stored.num_row_groups):
        group = stored.read_row_group(index)
        if seen is not None:
            seen.update(pc.unique(group["period"]).to_pylist())
        kept = group.filter(compare(group["period"], period))
        if len(kept):
            yield kept


def _replace_period_aligned(target: Path, part: Path, period: str) -> set[str]:
    """:func:`_replace_period` for a part with other columns: the periods concatenated by pandas."""
    stored = pd.read_parquet(target)
    pieces = {
        p: rows.drop(columns="period").reset_index(drop=True)
        for p, rows in stored.groupby("period", sort=True)
        if p != period
    }
    periods = set(pieces)
    pieces[period] = _part_frame(part).drop(columns="period")
    frame = pd.concat(
        [pieces[p].assign(period=p) for p in sorted(pieces) if len(pieces[p])], ignore_index=True
    )
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)
    return periods


def prepare_history(
    raw_dir: Path,
    out: Path,
    loaded: dict,
    files: dict,
    lsoa: pd.DataFrame,
    say,
    national: prep.NationalInputs,
    *,
    pool: ReleasePool | None = None,
):
    """Build the history of every release in ``raw_dir`` (full rebuild); called by prepare.

    The current (top-level) release is one period; each ``releases/<label>/`` folder another.
    A release folder of the same month as the current release is skipped (the top level wins,
    and the manifest says so). Every QOF year found (the top level's and each release folder's)
    is kept at its :func:`qof_period`; a folder may hold only a QOF year.

    Args:
        raw_dir: The raw folder.
        out: The prepared store.
        loaded: The current release's sources as loaded.
        files: Their manifest entries.
        lsoa: The store's LSOA table.
        say: One-line progress messages.
        national: What prepare derived from the national files (the recorded-vs-expected
            model's covariates and the current QOF year's fit), kept for ``--add``.
        pool: Shares the earlier releases with a worker process (:class:`ReleasePool`, from
            :func:`prepare_store`); without one each release is read here in turn.

    Returns:
        The manifest's ``history`` entry (``periods``, ``releases`` with files per period,
        ``qof_years``, ``notes``), or None when the raw folder has no dated time-varying source.
    """
    folder = Path(out) / HISTORY_DIR
    if folder.exists():
        shutil.rmtree(folder)  # a full rebuild never keeps periods of an earlier raw folder
    current = _monthly(loaded)
    current_files = _monthly(files)
    current_period, note = release_period(current, current_files)
    if current_period is None:
        return None
    notes = [note] if note else []
    write_static_inputs(loaded, out)
    write_qof_covariates(national, out)
    write_national_tables(national, out)
    successions = write_successors(
        loaded.get("ods_successors"), out, _first_file(files, "ods_successors")
    )
    static = read_static_inputs(out)
    qof_years: dict[str, dict] = {}
    if loaded.get(QOF_SOURCE) is not None:
        year = loaded[QOF_SOURCE]
        qof_years[qof_period(year.year)] = {
            "data": year,
            "files": files[QOF_SOURCE],
            "folder": ".",
            # the current QOF year was fitted by prepare on the same inputs: not fitted twice
            "expected": national.qof_expected,
            "fit": national.qof_fit,
        }
    # period by period: each period's tables are written as soon as they are built, so only one
    # release's files are in memory at a time (twelve national releases would not fit)
    folder.mkdir(parents=True, exist_ok=True)
    parts = Path(tempfile.mkdtemp(prefix=PARTS_PREFIX, dir=folder))
    try:
        staged: dict[Path, StagedRelease] = {}
        context = HistoryContext(Path(out), parts / STAGING_DIR, static, lsoa, current_period)
        sharing = pool is not None and pool.active
        if sharing:
            pool.share(context)  # the worker stages releases while the current period is written
        _write_period_parts(out, parts, current_period, period_tables(static, current, lsoa))
        if sharing:
            staged = pool.stage_all()
        releases = {current_period: current_files}
        root = Path(raw_dir) / prep.RELEASES_DIR
        # releases are accepted in label order, whichever process staged them (same notes,
        # same checks, same errors as one at a time)
        for release_dir in release_folders(raw_dir):
            release = staged.get(release_dir.resolve())
            monthly = None
            if release is None:  # not staged: read here (a failed one raises its error here)
                period, loaded_release, release_files, note, _ = load_release(release_dir)
                release = StagedRelease(
                    period, release_files, note, loaded_release.get(QOF_SOURCE), None
                )
                monthly = _monthly(loaded_release)
                del loaded_release
            period = release.period
            notes += [release.note] if release.note else []
            if release.qof is not None:
                notes += _collect_qof_year(
                    qof_years, {QOF_SOURCE: release.qof}, release.files, release_dir
                )
            if period is None:
                continue  # a folder holding only a QOF year
            if period == current_period:
                notes.append(f"{release_dir.name}: same month as the current release, not used")
                continue
            if period in releases:
                raise HistoryError(
                    f"{root}: two release folders hold {period} (one is {release_dir.name}); "
                    "keep one."
                )
            releases[period] = _monthly(release.files)
            if release.parts is not None:
                _move_period_parts(release.parts, parts, period)
                continue
            tables = period_tables(static, monthly, lsoa)
            del monthly  # the release's files are no longer needed: free them before the next
            _write_period_parts(out, parts, period, tables)
            del tables
        _join_period_parts(out, parts)
    finally:
        if pool is not None:
            pool.stop()  # it writes in the parts folder: never after the folder is removed
        shutil.rmtree(parts, ignore_errors=True)
    say(f"  history: {len(releases)} period(s), {min(releases)} to {max(releases)}")
    entry = {
        "periods": sorted(releases),
        "releases": [_release_entry(p, releases[p]) for p in sorted(releases)],
        "notes": notes,
    }
    if qof_years:
        stored = _qof_year_tables(qof_years, read_qof_covariates(out), read_successors(out))
        _write_qof_history(out, stored)
        entry["qof_years"] = [
            _qof_entry(p, qof_years[p], stored[p]["fit"]) for p in sorted(qof_years)
        ]
        say(f"  QOF history: {len(qof_years)} year(s), {', '.join(_qof_labels(qof_years))}")
    if successions:
        entry["successions"] = successions
    return entry


def _collect_qof_year(years: dict, release: dict, files: dict, folder: Path) -> list[str]:
    """Add a release folder's QOF year to ``years`` (period -> year); notes on what was skipped.

    Raises:
        HistoryError: Two release folders hold the same QOF year.
    """
    year = release[QOF_SOURCE]
    period = qof_period(year.year)
    if period in years and years[period]["folder"] == ".":
        return [f"{folder.name}: QOF {year.year} is the top level's QOF year, not used"]
    if period in years:
        raise HistoryError(
            f"{folder.parent}: two release folders hold QOF {year.year} ({years[period]['folder']}"
            f" and {folder.name}); keep one."
        )
    years[period] = {"data": year, "files": files[QOF_SOURCE], "folder": folder.name}
    return []


def _qof_labels(years: dict) -> list[str]:
    return [f"{years[p]['data'].year} ({p})" for p in sorted(years)]


def _qof_entry(period: str, year: dict, fit: dict) -> dict:
    """The manifest's record of one QOF year: year, period, folder, files (sha256), rows, fit."""
    return {
        "year": year["data"].year,
        "period": period,
        "folder": year["folder"],
        "files": year["files"]["files"],
        "rows": year["files"]["rows"],
        "model": fit,
    }


def _first_file(files: dict, name: str) -> str:
    """The (first) file name of a loaded source, for messages."""
    listed = files.get(name, {}).get("files") or [{"name": name}]
    return listed[0]["name"]


QOF_COVARIATES = {
    "age_sex": f"{STATIC_DIR}/qof_age_sex.parquet",
    "imd_scores": f"{STATIC_DIR}/qof_imd.parquet",
}


def write_qof_covariates(national: prep.NationalInputs, out: Path) -> None:
    """Store the recorded-vs-expected model's covariates of every practice in the national files.

    The five-year age-sex lists and patient-weighted IMD scores of the current release (the
    covariates the current QOF year's model uses), so a QOF year added with ``--add`` is fitted
    on the same national practices and covariates as a full rebuild.
    """
    _write_covariates(national.age_sex, national.imd_scores, out)


def _write_covariates(age_sex: pd.DataFrame, imd_scores: pd.DataFrame, out: Path) -> None:
    if not len(imd_scores) or not len(age_sex):
        return
    (Path(out) / STATIC_DIR).mkdir(parents=True, exist_ok=True)
    _write_store_table(age_sex.reset_index(drop=True), out, QOF_COVARIATES["age_sex"])
    _write_store_table(imd_scores.reset_index(drop=True), out, QOF_COVARIATES["imd_scores"])


def read_qof_covariates(out: Path) -> dict[str, pd.DataFrame]:
    """The stored model covariates (``age_sex``, ``imd_scores``); empty frames without them."""
    return {
        name: _read_store_table(out, path) if (Path(out) / path).exists() else pd.DataFrame()
        for name, path in QOF_COVARIATES.items()
    }


def _qof_year_tables(
    years: dict[str, dict], covariates: dict[str, pd.DataFrame], successors: pd.DataFrame | None
) -> dict[str, dict]:
    """Per QOF period: the stored tables (prevalence, expected, geographies) and the model fit.

    The prevalence rows and geographies are kept as published (a practice that closed later under
    its own code); the membership rule carries it when indicators are computed. The model is
    fitted, like prepare's, on every practice of the year's file with closed practices carried
    by their successors (today's list: the practices the covariates cover).
    """
    age_sex, scores = covariates["age_sex"], covariates["imd_scores"]
    today = set(scores["practice_code"]) if len(scores) else set()
    mapping = membership.successor_mapping(successors, today)
    # in prepare's order of IoD releases (the current year's fit lists them so)
    stored = set(scores["imd"].unique()) if len(scores) else set()
    releases = [imd for imd in IMD_YEARS if imd in stored]
    out = {}
    for period, year in years.items():
        qof = year["data"]
        expected, fit = year.get("expected"), year.get("fit", {})
        if expected is None:
            carried = membership.carry_to_successors(qof.prevalence, mapping)
            fits = {imd: prep.fit_qof_expected(carried, age_sex, scores, imd) for imd in releases}
            expected = prep.expected_rows({imd: e for imd, (e, _) in fits.items()})
            fit = {imd: f for imd, (_, f) in fits.items() if f}
        out[period] = {
            "qof_prevalence": qof.prevalence.assign(year=qof.year),
            "qof_expected": expected,
            "qof_geographies": qof.geographies,
            "fit": fit,
        }
    return out


def _write_qof_history(out: Path, years: dict[str, dict]) -> None:
    """Write ``history/qof_<table>.parquet`` from QOF period -> tables (sorted by period).

    A table no year has (no expected registers without IoD, no geography file) is not written.
    """
    folder = Path(out) / HISTORY_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for table in QOF_TABLES:
        frames = [
            years[period][table].assign(period=period)
            for period in sorted(years)
            if years[period][table] is not None and len(years[period][table])
        ]
        target = f"{HISTORY_DIR}/{table}.parquet"
        if frames:
            frame = pd.concat(frames, ignore_index=True)
            _write_store_table(frame[["period", *frame.columns[:-1]]], out, target)
        else:
            (Path(out) / target).unlink(missing_ok=True)


def read_qof_history(prepared_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The store's QOF years: ``qof_prevalence``, ``qof_expected``, ``qof_geographies``.

    Each with a ``period`` column (:func:`qof_period`); an empty dict when the store keeps none.
    """
    folder = Path(prepared_dir) / HISTORY_DIR
    return {
        table: _read_store_table(prepared_dir, f"{HISTORY_DIR}/{table}.parquet")
        for table in QOF_TABLES
        if (folder / f"{table}.parquet").exists()
    }


def qof_years(manifest: dict) -> dict[str, str]:
    """QOF period -> QOF year label of the store's QOF history (from the manifest)."""
    return {
        str(entry["period"]): str(entry["year"])
        for entry in manifest.get("history", {}).get("qof_years", [])
    }


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
    National-size earlier releases are read by a worker process while prepare builds the
    current store, and shared between both processes once the history starts
    (:class:`ReleasePool`).

    Returns:
        The manifest, with ``history`` when the raw folder has dated time-varying sources.
    """
    with ReleasePool(release_folders(raw_dir)) as pool:
        return prep.prepare(
            raw_dir,
            out_dir,
            listing=listing,
            as_of=as_of,
            progress=progress,
            systems=systems,
            extensions={"history": functools.partial(prepare_history, pool=pool)},
        )


def release_folders(raw_dir: str | Path) -> list[Path]:
    """The earlier releases' folders (``releases/<label>/``) of a raw folder, in label order."""
    root = Path(raw_dir) / prep.RELEASES_DIR
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


# earlier releases at least this large (all files) are shared with a worker process: below it,
# starting one (importing pandas) costs more than it saves
WORKER_MIN_BYTES = 100_000_000
# how often a process waiting for the other one looks again (seconds)
_POLL_SECONDS = 0.05
# The worker allocates and frees national-size tables release after release; its allocators
# keep freed memory for the next release instead of handing it back to the kernel, which
# saves a page fault per 4 KB page touched again (seconds of system time over a year of
# releases). Settings of the user's own environment win.
WORKER_ENVIRONMENT = {
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),  # glibc: blocks up to 32 MB from the heap
    "MALLOC_TRIM_THRESHOLD_": str(8 << 30),  # glibc: do not give the heap's top back
    "MALLOC_TOP_PAD_": str(64 << 20),
    "MIMALLOC_PURGE_DELAY": "-1",  # Arrow's mimalloc: keep freed pages
}


@dataclass(frozen=True)
class StagedRelease:
    """One earlier release loaded and its period's tables written, waiting to be accepted.

    :func:`prepare_history` accepts releases in label order (notes, QOF years, the same-month
    and two-folders checks); a release staged ahead of its turn keeps what that needs.

    Attributes:
        period: The release's period (``None`` for a folder holding only a QOF year).
        files: Its sources' manifest entries (time-varying sources and ``qof``).
        note: Its note from :func:`load_release` ("" for none).
        qof: Its QOF year as loaded, or ``None``.
        parts: Folder holding ``<table>/<period>.arrow`` (:func:`_write_period_parts`), or
            ``None`` when no tables were built (no period, or the current release's period).
    """

    period: str | None
    files: dict
    note: str
    qof: object | None
    parts: Path | None


@dataclass(frozen=True)
class HistoryContext:
    """What building an earlier period's tables needs (:func:`stage_release`).

    Attributes:
        out: The prepared store (named by validation errors).
        staging: Folder for staged periods' tables (``<staging>/<key>/<table>/<period>``).
        static: The stored static inputs (:func:`read_static_inputs`).
        lsoa: The store's LSOA table.
        current_period: The current release's period (its tables are the prepare's own).
    """

    out: Path
    staging: Path
    static: dict
    lsoa: pd.DataFrame
    current_period: str


def stage_release(key: str, release: tuple, context: HistoryContext) -> StagedRelease:
    """Build and write one loaded release's period tables ahead of its turn.

    Args:
        key: Names the release's folder in ``context.staging``.
        release: What :func:`load_release` returned for it.
        context: The history being built.

    Returns:
        The release as :func:`prepare_history` accepts it.
    """
    period, loaded, files, note, _ = release
    parts = None
    if period is not None and period != context.current_period:
        tables = period_tables(context.static, _monthly(loaded), context.lsoa)
        parts = context.staging / key
        _write_period_parts(context.out, parts, period, tables)
    return StagedRelease(period, files, note, loaded.get(QOF_SOURCE), parts)


def _dump(value: object, target: Path) -> None:
    """Pickle ``value`` to ``target`` atomically (the other process never sees half a file).

    The data of Arrow and numpy arrays go out of band: written after the pickle as they are,
    not copied into it first (a national release is ~200 MB of them).
    """
    raws: list[memoryview] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        try:
            raws.append(buffer.raw())
        except BufferError:  # not contiguous: in the pickle
            return True
        return False

    data = pickle.dumps(value, protocol=5, buffer_callback=out_of_band)
    tmp = target.with_name(f".{target.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(
            struct.pack(f"<QQ{len(raws)}Q", len(data), len(raws), *(r.nbytes for r in raws))
        )
        handle.write(data)
        for raw in raws:
            handle.write(raw)
    os.replace(tmp, target)


def _undump(path: Path) -> object:
    """What :func:`_dump` wrote; array data in fresh, aligned and writable Arrow buffers."""
    with path.open("rb") as handle:
        size, count = struct.unpack("<QQ", handle.read(16))
        lengths = struct.unpack(f"<{count}Q", handle.read(8 * count))
        data = handle.read(size)
        buffers = []
        for length in lengths:
            buffer = pa.allocate_buffer(length)
            view = memoryview(buffer)
            done = 0
            while done < length:
                read = handle.readinto(view[done:])
                if not read:
                    raise EOFError(f"{path} ends early")
                done += read
            buffers.append(buffer)
    return pickle.loads(data, buffers=buffers)


def _claim(path: Path) -> bool:
    """Create ``path`` if nobody has: exactly one process claims each release."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _take_loaded(cache: Path, count: int, taker: str) -> tuple[int, Path] | None:
    """Take the first release the worker pickled before the context existed, if any is left.

    Renaming the file to a name of ``taker``'s is atomic: one process takes each.

    Returns:
        (the release's index, its pickle under the new name), or None.
    """
    for index in range(count):
        taken = cache / f"{index}.loaded.{taker}"
        try:
            os.rename(cache / f"{index}.loaded", taken)
        except FileNotFoundError:
            continue
        return index, taken
    return None


class ReleasePool:
    """Earlier releases shared between prepare's process and one worker process.

    Cache folder protocol (each file written atomically): ``<i>.claim`` (created once, by the
    process loading the i-th folder), ``<i>.loaded`` (a release the worker loaded before the
    history's :class:`HistoryContext` existed, taken by renaming), ``context`` (the context,
    written by :meth:`share`), ``<i>.staged`` (a :class:`StagedRelease` from the worker)
    and ``<i>.failed`` (the worker could not load or stage it).

    While prepare builds the current store, the worker (a fresh interpreter running
    :func:`release_worker`) loads the earlier releases, oldest first. When the history starts
    (:meth:`share`, then :meth:`stage_all`), both processes stage releases
    (:func:`stage_release`): the worker the next oldest, prepare's process the newest not yet
    claimed, then both those the worker loaded early. Each process holds one release at a
    time. A release that could not be loaded or staged has no result: :func:`prepare_history`
    reads it again in its turn, raising its error as without a worker. Without a second core
    or for small releases there is no worker.
    """

    def __init__(self, folders: list[Path]) -> None:
        self.folders = list(folders)
        self._process: subprocess.Popen | None = None
        self._cache: tempfile.TemporaryDirectory | None = None
        self._context: HistoryContext | None = None
        size = sum(f.stat().st_size for d in folders for f in d.rglob("*") if f.is_file())
        if folders and size >= WORKER_MIN_BYTES and (os.cpu_count() or 1) > 1:
            self._cache = tempfile.TemporaryDirectory(prefix="pophealth-releases-")
            code = "import sys; from pophealth.history import release_worker as w; w(sys.argv[1:])"
            self._process = subprocess.Popen(
                [sys.executable, "-c", code, self._cache.name, *map(str, self.folders)],
                stdout=subprocess.DEVNULL,
                env={**WORKER_ENVIRONMENT, **os.environ},
            )

    @property
    def active(self) -> bool:
        """Whether a worker shares the releases (else :func:`prepare_history` reads them)."""
        return self._process is not None

    def __enter__(self) -> ReleasePool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
        if self._cache is not None:
            self._cache.cleanup()

    def stop(self) -> None:
        """Stop the worker (if it still runs: prepare failed before the history needed it)."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
            self._process.wait()  # reaped, so its resource use counts as this process's child

    def share(self, context: HistoryContext) -> None:
        """Give the worker the history's context: from now on it stages what it loads."""
        if self._cache is not None:
            self._context = context
            _dump(context, Path(self._cache.name) / "context")

    def stage_all(self) -> dict[Path, StagedRelease]:
        """Stage the releases with the worker; returns the staged ones by resolved folder.

        Call :meth:`share` first. Returns once every release is staged or failed (or the worker
        stopped: what it held has no result). Failures are left out, for
        :func:`prepare_history` to read again and raise in turn.
        """
        context = self._context
        if self._process is None or self._cache is None or context is None:
            return {}
        results = share_releases(
            Path(self._cache.name),
            self.folders,
            context,
            worker_stopped=lambda: self._process.poll() is not None,
        )
        return {
            self.folders[i].resolve(): staged for i, staged in results.items() if staged is not None
        }


def share_releases(
    cache: Path, folders: list[Path], context: HistoryContext, *, worker_stopped
) -> dict[int, StagedRelease | None]:
    """Prepare's side of :class:`ReleasePool`: stage releases until none is left to anyone.

    Claims the newest release nobody has claimed, then takes the releases the worker loaded
    before the context existed, until every release is staged or failed, or the worker stopped.

    Args:
        cache: The pool's cache folder (holding ``context``).
        folders: The release folders, in label order.
        context: The history being built.
        worker_stopped: Whether the worker has stopped (its last files are then all written).

    Returns:
        Index -> staged release, ``None`` for one that failed; none for a release the worker
        held when it stopped.
    """
    results: dict[int, StagedRelease | None] = {}
    newest_first = list(reversed(range(len(folders))))
    while True:
        # read before collecting: whatever the worker wrote before it stopped is then seen
        stopped = worker_stopped()
        for index in range(len(folders)):
            if index in results:
                continue
            if (cache / f"{index}.staged").exists():
                results[index] = _undump(cache / f"{index}.staged")
            elif (cache / f"{index}.failed").exists():
                results[index] = None
        # the largest tasks first, the small ones fill in at the end so that both processes
        # finish together: loading the newest release nobody has claimed, then building the
        # tables of a release the worker loaded before the context existed
        index = next((i for i in newest_first if _claim(cache / f"{i}.claim")), None)
        if index is not None:
            try:
                release = load_release(folders[index])
            except Exception:  # noqa: BLE001 - read again in its turn, raising the error there
                results[index] = None
                continue
            results[index] = _stage_safely(index, release, context)
            del release
            continue
        loaded = _take_loaded(cache, len(folders), "main")
        if loaded is not None:
            index, path = loaded
            results[index] = _stage_safely(index, _undump(path), context)
            path.unlink()
            continue
        if len(results) == len(folders) or stopped:
            return results
        time.sleep(_POLL_SECONDS)


def _stage_safely(index: int, release: tuple, context: HistoryContext) -> StagedRelease | None:
    """:func:`stage_release`, or ``None`` when it fails (raised again in the release's turn)."""
    try:
        return stage_release(str(index), release, context)
    except Exception:  # noqa: BLE001 - prepare_history builds it again in turn, raising there
        shutil.rmtree(context.staging / str(index), ignore_errors=True)
        return None


def release_worker(argv: list[str]) -> None:
    """The :class:`ReleasePool` worker: ``CACHE FOLDER...``.

    Loads the folders oldest first (each claimed, so none is loaded twice). A release loaded
    before prepare's process wrote the history's context is pickled (``<i>.loaded``; the first
    such waits in memory instead), else staged (``<i>.staged``); once none is left to load, it
    stages the one in memory and the pickled ones that prepare's process has not taken.
    ``<i>.failed`` marks a release it could not load or stage. Exits when its parent does.
    """
    cache, folders = Path(argv[0]), [Path(a) for a in argv[1:]]
    parent = os.getppid()
    context: HistoryContext | None = None
    # one release loaded before the context existed waits in memory rather than pickled
    # (writing and reading back 200 MB costs more than half a second); the others are pickled
    held: tuple[int, tuple] | None = None
    for index, folder in enumerate(folders):
        if not _claim(cache / f"{index}.claim"):
            continue
        try:
            release = load_release(folder)
        except Exception:  # noqa: BLE001 - prepare's process reads the folder again to raise it
            (cache / f"{index}.failed").touch()
            continue
        if context is None and (cache / "context").exists():
            context = _undump(cache / "context")
        if context is not None:
            if held is not None:
                _worker_stage(cache, *held, context)
                held = None
            _worker_stage(cache, index, release, context)
        elif held is None:
            held = (index, release)
        else:
            _dump(release, cache / f"{index}.loaded")
        del release
    while os.getppid() == parent:
        if context is None:
            if not (cache / "context").exists():
                time.sleep(_POLL_SECONDS)
                continue
            context = _undump(cache / "context")
        if held is not None:
            _worker_stage(cache, *held, context)
            held = None
            continue
        taken = _take_loaded(cache, len(folders), "worker")
        if taken is None:
            return
        index, path = taken
        _worker_stage(cache, index, _undump(path), context)
        path.unlink()


def _worker_stage(cache: Path, index: int, release: tuple, context: HistoryContext) -> None:
    """Stage one release in the worker: ``<i>.staged``, or ``<i>.failed`` when it fails."""
    staged = _stage_safely(index, release, context)
    if staged is None:
        (cache / f"{index}.failed").touch()
    else:
        _dump(staged, cache / f"{index}.staged")


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

    Loads only the release's files. A month's time-varying files build its period with the
    stored LSOA table and static inputs, appended to (or replacing) the period in ``history/``;
    when the period is the newest, it becomes the current store (practices, registrations,
    age-sex tables and the manifest's as-of date, sources and counts). A QOF year's files add (or
    replace) that year in the QOF history, its model fitted on the stored national covariates;
    a year newer than the current QOF year, or the current year again, also becomes the current
    QOF year exactly as a full prepare with it at the top level makes it (``qof_prevalence``,
    ``qof_expected``, England's and the regions' QOF values in ``national.parquet``, the
    manifest's QOF notes, source and model: :func:`_make_qof_current`); an older year is added
    to the history only.

    Args:
        release_dir: Folder with one release's files (e.g. ``raw/releases/2025-11``, or a QOF
            year's ``QOF2526.zip`` or CSVs).
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
            "release": f"with release {period or Path(release_dir).name}",
            "rows": int(len(loaded_successors)),
        }
    entry = manifest["history"]
    entry["notes"] = [*entry.get("notes", []), *([note] if note else [])]
    if period is not None:
        noted = len(entry["notes"])
        _add_month(out, manifest, period, _monthly(release), _monthly(files), reconciliation)
        say(f"  added {period}: history now {entry['periods'][0]} to {entry['periods'][-1]}")
        for note in entry["notes"][noted:]:  # e.g. England's values could not be recomputed
            say(f"  note: {note}")
    if QOF_SOURCE in release:
        year = _add_qof_year(
            out, manifest, release[QOF_SOURCE], files[QOF_SOURCE], release_dir, reconciliation
        )
        now = manifest.get("notes", {}).get("qof_year")
        say(
            f"  added QOF {year}: QOF history {', '.join(qof_years(manifest).values())}; "
            f"current QOF year {now or 'none'}"
        )
    manifest["added_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    manifest["add_seconds"] = round(time.perf_counter() - started, 2)
    manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def _add_month(
    out: Path, manifest: dict, period: str, release: dict, files: dict, reconciliation: dict
) -> None:
    """Append (or replace) one month in ``history/``; the newest month becomes the current store."""
    lsoa = _read_store_table(out, "lsoa.parquet")
    new = period_tables(read_static_inputs(out), release, lsoa)
    # the stored history is rewritten a row group at a time, never read whole
    folder = out / HISTORY_DIR
    folder.mkdir(parents=True, exist_ok=True)
    parts = Path(tempfile.mkdtemp(prefix=PARTS_PREFIX, dir=folder))
    periods = {period}
    try:
        _write_period_parts(out, parts, period, new)
        for table in HISTORY_TABLES:
            part = parts / table / f"{period}{PART_SUFFIX}"
            periods |= _replace_period(
                folder / f"{table}.parquet", part if part.exists() else None, period
            )
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    entry = manifest["history"]
    releases = [r for r in entry["releases"] if r["period"] != period]
    releases.append(_release_entry(period, files))
    entry["releases"] = sorted(releases, key=lambda r: r["period"])
    entry["periods"] = sorted(periods)
    if period == max(periods):
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
        _make_month_national(out, manifest, period, release, new)


def _make_month_national(
    out: Path, manifest: dict, period: str, release: dict, new: dict[str, pd.DataFrame]
) -> None:
    """England's and the regions' values (``national.parquet``) of a month made current.

    Summed again, as a full prepare with the month at the top level sums them
    (:func:`pophealth.prepare.national_measures`), over every practice and LSOA of the
    month's national files: the store's own tables when it is not cut by ``--systems``, else
    the month's files on the kept national LSOA table (``history/static/national/``). What a
    full prepare derives from the current month's national files follows too: the QOF model's
    covariates and a cut store's national tables (:func:`_refresh_month_inputs`), every QOF
    year's recorded-vs-expected fit and the current QOF year's tables and England's and the
    regions' QOF values (:func:`_refit_qof_years`). A cut store prepared without its national
    LSOA table keeps its England values, and the manifest says so.
    """
    if not (out / "national.parquet").exists():
        return
    cut = bool(manifest.get("national", {}).get("systems_kept"))
    if cut:
        path = out / NATIONAL_DIR / NATIONAL_TABLES["lsoa"]
        if not path.exists():
            manifest["history"]["notes"].append(
                f"England's and the regions' values stay those of the store's earlier current "
                f"month, not {period}: the store was cut by --systems without keeping the "
                f"national tables ({NATIONAL_DIR}/). Fix: prepare the raw folder again (with "
                "this version)."
            )
            return
        lsoa = validate_store_table("lsoa.parquet", pd.read_parquet(path), path)
        tables = period_tables(read_static_inputs(out), release, lsoa)
    else:
        lsoa, tables = _read_store_table(out, "lsoa.parquet"), new
    # as prepare: PCN-employed staff shared to practices only when the month has the file
    pcn_fte = tables["pcn_workforce"] if release.get("pcn_workforce") is not None else None
    national = _refresh_month_inputs(out, manifest, lsoa, tables, pcn_fte, cut)
    if _refit_qof_years(out, manifest, national):
        return  # the current QOF year made current again wrote the whole national table
    recomputed = prep.national_measures(
        lsoa,
        prep.with_team(tables["practices"], pcn_fte),
        tables["registrations"],
        tables["practice_age_sex"],
        list(manifest.get("imd_releases", [])),
    )
    stored = _read_store_table(out, "national.parquet")
    prep._write_parquet(prep.with_stored_qof(recomputed, stored), out / "national.parquet")


def _refresh_month_inputs(
    out: Path,
    manifest: dict,
    lsoa: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    pcn_fte: pd.DataFrame | None,
    cut: bool,
) -> dict[str, pd.DataFrame | None]:
    """Store again the model covariates and national tables of a month made current.

    As a full prepare with the month at the top level stores them: the QOF model's covariates
    (every practice's five-year age-sex list and patient-weighted IMD scores:
    :func:`write_qof_covariates`) and, for a store cut by ``--systems``, its national practices,
    registrations and PCN staff (:func:`write_national_tables`; the LSOA table is the fixed one
    kept). :func:`_refit_qof_years` then fits the QOF years on those covariates.

    Returns:
        The month's national tables as :func:`_national_tables` gives them, with the practices'
        ``imd_scores``.
    """
    practices, registrations = tables["practices"], tables["registrations"]
    today = prep.practices_present(practices, registrations)
    imd_releases = list(manifest.get("imd_releases", []))
    age_sex = tables["practice_age_sex"][["practice_code", "sex", "age_band", "patients"]]
    scores = prep.practice_imd_scores(registrations, lsoa, imd_releases, today)
    _write_covariates(age_sex, scores, out)
    if cut:
        folder = Path(out) / NATIONAL_DIR
        kept = {"practices": practices, "registrations": registrations, "pcn_workforce": pcn_fte}
        for name, frame in kept.items():
            target = folder / NATIONAL_TABLES[name]
            if frame is not None:
                prep._write_parquet(frame, target, table=NATIONAL_TABLES[name])
            else:
                target.unlink(missing_ok=True)
    return {
        "lsoa": lsoa,
        "practices": practices,
        "registrations": registrations,
        "pcn_workforce": pcn_fte,
        "age_sex": age_sex,
        "imd_scores": scores,
    }


def _stored_qof_years(out: Path) -> dict[str, src_qof.QofData]:
    """The QOF years of the QOF history as loaded years (prevalence and geographies)."""
    stored = read_qof_history(out)
    if "qof_prevalence" not in stored:
        return {}
    geographies = stored.get("qof_geographies")
    years = {}
    for period, rows in stored["qof_prevalence"].groupby("period", sort=True):
        geo = (
            geographies[geographies["period"] == period].drop(columns="period")
            if geographies is not None
            else pd.DataFrame()
        )
        years[period] = src_qof.QofData(
            year=str(rows["year"].iloc[0]),
            prevalence=rows.drop(columns=["period", "year"]).reset_index(drop=True),
            indicators=pd.DataFrame(),
            geographies=geo.reset_index(drop=True),
            achievement=None,
            files=(),
        )
    return years


def _refit_qof_years(out: Path, manifest: dict, tables: dict) -> bool:
    """Make the current QOF year current again; fit every other stored year again.

    On the stored covariates; the current year's history fit is the current one (as in prepare:
    not fitted twice).

    Args:
        out: The store.
        manifest: Its manifest (updated).
        tables: The current month's national tables (:func:`_refresh_month_inputs`).

    Returns:
        True when the current QOF year was made current again, which wrote the whole of
        ``national.parquet`` (:func:`_make_qof_current`).
    """
    loaded = _stored_qof_years(out)
    if not loaded:
        return False
    years: dict[str, dict] = {period: {"data": qof} for period, qof in loaded.items()}
    label = manifest.get("notes", {}).get("qof_year")
    made_current = False
    for period, qof in loaded.items():
        if label and qof.year == label and QOF_SOURCE in manifest.get("sources", {}):
            files = manifest["sources"][QOF_SOURCE]
            current = _make_qof_current(out, manifest, qof, files, None, tables)
            made_current = current is not None
            if current is not None:  # not fitted twice
                years[period] |= {
                    "expected": prep.expected_rows(current.expected),
                    "fit": current.fit,
                }
    refitted = _qof_year_tables(years, read_qof_covariates(out), read_successors(out))
    _write_qof_history(out, refitted)
    for record in manifest["history"].get("qof_years", []):
        if record["period"] in refitted:
            record["model"] = refitted[record["period"]]["fit"]
    return made_current


def _add_qof_year(
    out: Path,
    manifest: dict,
    qof,
    files: dict,
    release_dir: str | Path,
    reconciliation: dict | None = None,
) -> str:
    """Add (or replace) one QOF year in the QOF history; returns its year label.

    A year newer than the store's current QOF year, or the same year again, also becomes the
    current QOF year (:func:`_make_qof_current`); an older year is added to the history only.
    """
    period = qof_period(qof.year)
    stored = read_qof_history(out)
    entry = manifest["history"]
    fits = {e["period"]: e.get("model", {}) for e in entry.get("qof_years", [])}
    years: dict[str, dict] = {}
    for table, frame in stored.items():
        for old_period, rows in frame.groupby("period", sort=True):
            if old_period != period:
                years.setdefault(
                    old_period, {t: None for t in QOF_TABLES} | {"fit": fits.get(old_period, {})}
                )
                years[old_period][table] = rows.drop(columns="period").reset_index(drop=True)
    year = {"data": qof, "files": files, "folder": Path(release_dir).name}
    years.update(_qof_year_tables({period: year}, read_qof_covariates(out), read_successors(out)))
    _write_qof_history(out, years)
    others = [e for e in entry.get("qof_years", []) if e["period"] != period]
    entry["qof_years"] = sorted(
        [*others, _qof_entry(period, year, years[period]["fit"])], key=lambda e: e["period"]
    )
    current = manifest.get("notes", {}).get("qof_year", "")
    if not current or qof.year >= current:
        _make_qof_current(out, manifest, qof, files, reconciliation)
    return qof.year


# the national tables of a store cut by --systems, for England's values of a QOF year added later
NATIONAL_DIR = f"{STATIC_DIR}/national"
NATIONAL_TABLES = {
    "lsoa": "lsoa.parquet",
    "practices": "practices.parquet",
    "registrations": "registrations.parquet",
    "pcn_workforce": "pcn_workforce.parquet",
}


def write_national_tables(national: prep.NationalInputs, out: Path) -> None:
    """Keep the national tables of a store cut by ``--systems`` (``history/static/national/``).

    England's and the regions' QOF values (``national.parquet``) are summed over every practice
    and LSOA of the national files; a store cut to some ICBs no longer holds them, so
    :func:`_make_qof_current` reads these copies (each checked against the contract of the
    store table of the same name). A store that is not cut keeps none: its own tables are
    national.
    """
    folder = Path(out) / NATIONAL_DIR
    shutil.rmtree(folder, ignore_errors=True)
    if not national.tables:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for name, file_name in NATIONAL_TABLES.items():
        frame = national.tables.get(name)
        if frame is not None:
            prep._write_parquet(frame, folder / file_name, table=file_name)


def _national_tables(out: Path, manifest: dict) -> dict | None:
    """The national tables England's QOF values are summed from, or None when not kept.

    A store not cut by ``--systems``: its own current tables (and age-sex lists); a cut store:
    :func:`write_national_tables`'s copies with the stored model covariates' age-sex lists
    (every practice of the national files); ``None`` for a cut store prepared without them.
    """
    cut = bool(manifest.get("national", {}).get("systems_kept"))
    folder = Path(out) / NATIONAL_DIR if cut else Path(out)
    if not (folder / NATIONAL_TABLES["practices"]).exists():
        return None
    # each checked against the contract of the store table of its name
    tables = {
        name: validate_store_table(
            file_name, pd.read_parquet(folder / file_name), folder / file_name
        )
        if (folder / file_name).exists()
        else None
        for name, file_name in NATIONAL_TABLES.items()
    }
    if cut:
        tables["age_sex"] = read_qof_covariates(out)["age_sex"]
    else:
        tables["age_sex"] = _read_store_table(out, "practice_age_sex.parquet")
    return tables


def _make_qof_current(
    out: Path,
    manifest: dict,
    qof,
    files: dict,
    reconciliation: dict | None,
    month_tables: dict | None = None,
) -> prep.CurrentQof | None:
    """Make an added QOF year the store's current one, as a full prepare with it would.

    The same steps as :func:`pophealth.prepare.prepare` (:func:`prepare.derive_current_qof`,
    :func:`prepare.write_current_qof`, :func:`prepare.national_measures`) on the national
    tables (:func:`_national_tables`): ``qof_prevalence.parquet``, ``qof_expected.parquet``, the
    QOF columns of England's and the regions' rows in ``national.parquet`` (its other columns
    are kept), and the manifest's QOF notes, ``sources["qof"]``, ``qof_model`` and the
    indicators it makes available. A store without its national tables (cut by ``--systems`` by
    an earlier version) keeps its current QOF year, and the manifest says so.

    With ``month_tables`` (a month made current: :func:`_refresh_month_inputs`), those national
    tables are used and every column of ``national.parquet`` is written from them, as a full
    prepare with the month at the top level writes it.

    Returns:
        The derived current QOF year (:func:`prepare.derive_current_qof`), or ``None`` when the
        store has no national tables.
    """
    tables = month_tables if month_tables is not None else _national_tables(out, manifest)
    current_year = manifest.get("notes", {}).get("qof_year", "")
    if tables is None:
        manifest["history"]["notes"].append(
            f"QOF {qof.year} is in the QOF history only: the store was cut by --systems without "
            f"keeping the national tables ({NATIONAL_DIR}/) England's QOF values are summed "
            f"from, so the current QOF tables stay QOF {current_year or 'none'}. Fix: prepare "
            "the raw folder again (with this version) with the QOF year at the top level."
        )
        return None
    lsoa, practices, registrations = tables["lsoa"], tables["practices"], tables["registrations"]
    imd_releases = list(manifest.get("imd_releases", []))
    today = prep.practices_present(practices, registrations)
    team = prep.with_team(practices, tables["pcn_workforce"])
    scores = tables.get("imd_scores")  # a month made current brings them
    if scores is None:
        scores = prep.practice_imd_scores(registrations, lsoa, imd_releases, today)
    current = prep.derive_current_qof(
        qof, read_successors(out), today, tables["age_sex"], scores, imd_releases, team
    )
    recomputed = prep.national_measures(
        lsoa, team, registrations, tables["age_sex"], imd_releases, current.measures
    )
    if month_tables is None:
        stored = _read_store_table(out, "national.parquet")
        recomputed = prep.with_national_qof(stored, recomputed)
    prep._write_parquet(recomputed, out / "national.parquet")
    kept = _read_store_table(out, "practices.parquet")
    national_practices = set(practices["practice_code"]) if len(practices) else set()
    notes = prep.write_current_qof(current, kept, out, national_practices)
    store_notes = manifest.setdefault("notes", {})
    for key in prep.QOF_NOTES:
        store_notes.pop(key, None)
    store_notes.update(notes)
    manifest["sources"][QOF_SOURCE] = files
    manifest["qof_model"] = current.fit
    missing = prep.unavailable_indicators(set(manifest["sources"]))
    manifest["indicators_unavailable"] = missing
    checks = manifest.setdefault("reconciliation", {})
    if "indicators_unavailable" in checks:
        checks["indicators_unavailable"] = missing
    fixed = (reconciliation or {}).get("code_fixes", {})
    if QOF_SOURCE in fixed and "code_fixes" in checks:
        checks["code_fixes"][QOF_SOURCE] = fixed[QOF_SOURCE]
    return current


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


# an ODS PCN code: U and five digits
PCN_CODE_PATTERN = r"U\d{5}"


def qof_year_practices(
    registers: pd.DataFrame, geographies: pd.DataFrame, lsoa: pd.DataFrame
) -> pd.DataFrame:
    """The practice table of one QOF year, for :func:`apply_membership_rule`.

    Args:
        registers: The year's QOF prevalence rows (``practice_code, list_type, list_size``).
        geographies: The year's ``MAPPING_NHS_GEOGRAPHIES`` rows (may be empty).
        lsoa: The store's LSOA table (sub-ICB and ICB ODS codes -> ONS codes and names).

    Returns:
        One row per practice of the year: ``practice_code, practice_name, registered_patients``
        (the year's ``TOTAL`` list) and the :data:`MEMBERSHIP_COLUMNS`: the year's sub-ICB and ICB
        where the store knows them (the rule keeps them for a practice not in today's list), and
        the year's PCN code where the geography file gives it (``pcn_code``, no name: the rule
        gives today's practices today's PCN, and reports those whose PCN was another; a code
        that is not an ODS PCN code, such as ``U`` for "Unallocated", is no PCN).
    """
    codes = pd.Index(registers["practice_code"].unique(), dtype=object)
    total = registers[registers["list_type"] == "TOTAL"].groupby("practice_code")["list_size"].max()
    out = pd.DataFrame(
        {
            "practice_code": codes,
            "registered_patients": total.reindex(codes).to_numpy(dtype=float),
        }
    )
    geo = geographies.drop_duplicates("practice_code") if len(geographies) else geographies
    columns = ["practice_code", "practice_name", "sicbl_ods"]
    if len(geo) and set(columns) <= set(geo.columns):
        year_pcn = ["pcn_code"] if "pcn_code" in geo else []
        out = out.merge(geo[[*columns, *year_pcn]], on="practice_code", how="left")
        if year_pcn:  # "U" / "Unallocated": in no PCN that year, as a month's table has it
            shaped = out["pcn_code"].astype("string").str.fullmatch(PCN_CODE_PATTERN)
            out["pcn_code"] = out["pcn_code"].where(shaped.fillna(False).astype(bool), pd.NA)
    else:
        out = out.assign(practice_name=pd.NA, sicbl_ods=pd.NA)
    if "pcn_code" not in out:
        out = out.assign(pcn_code=pd.NA)
    places = lsoa[["sicbl_code", "sicbl_ods", "sicbl_name", "icb_code", "icb_ods", "icb_name"]]
    places = places.dropna(subset=["sicbl_ods"]).drop_duplicates("sicbl_ods")
    out = out.merge(places, on="sicbl_ods", how="left").assign(pcn_name=pd.NA)
    return out[["practice_code", "practice_name", "registered_patients", *MEMBERSHIP_COLUMNS]]


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
        period: ``practices`` of one period plus its other practice-keyed tables
            (``registrations``, ``practice_age_sex``; a QOF year's ``qof`` and ``qof_expected``
            rows), each carried by the same succession step (:mod:`pophealth.membership`).
        current_practices: Today's practices table.
        successors: Optional ``predecessor_code, successor_code`` (ODS successions).

    Returns:
        (tables, changes): the period's tables under the rule, and one row per practice whose
        treatment differs from its own period (``practice_code, change, detail``).
    """
    mapping = membership.successor_mapping(successors, current_practices["practice_code"])
    tables = {
        name: membership.carry_to_successors(frame, mapping) for name, frame in period.items()
    }
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
