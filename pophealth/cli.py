"""The ``pophealth`` command line.

Commands: ``demo`` (everything on the embedded demo data), ``demo-data``, ``fetch``,
``prepare``, ``areas``, ``indicators``, ``run``, ``export`` (one self-contained profile) and
``lab`` (JupyterLab on the explorer).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from pophealth.errors import InputError, MissingFileError, PopHealthError
from pophealth.files import atomic_path

LEVEL_NOTEBOOKS = {
    "neighbourhood": "neighbourhood_profile.ipynb",
    "place": "place_profile.ipynb",
    "system": "system_profile.ipynb",
}


#: Where a wheel (non-editable install) puts the profile notebooks, under ``sys.prefix``.
INSTALLED_NOTEBOOKS = Path("share") / "pophealth" / "notebooks"


def default_notebook_dir() -> Path:
    """The profile notebooks: the source tree's ``notebooks/``, else the installed copies.

    An editable install or a clone uses ``<repo>/notebooks``; ``pip install`` of a wheel puts
    them in ``<sys.prefix>/share/pophealth/notebooks`` (``data-files`` in pyproject.toml).
    """
    source_tree = Path(__file__).resolve().parent.parent / "notebooks"
    if (source_tree / LEVEL_NOTEBOOKS["neighbourhood"]).is_file():
        return source_tree
    for prefix in dict.fromkeys([sys.prefix, sys.base_prefix]):
        installed = Path(prefix) / INSTALLED_NOTEBOOKS
        if (installed / LEVEL_NOTEBOOKS["neighbourhood"]).is_file():
            return installed
    return source_tree  # missing: build_jobs then says which file and suggests --notebooks


def _cmd_prepare(args: argparse.Namespace) -> int:
    from pophealth.history import prepare_store

    if args.add:
        return _cmd_prepare_add(args)
    print(f"Preparing {args.raw} -> {args.out}")
    systems = [c.strip().upper() for c in args.systems.split(",")] if args.systems else None
    manifest = prepare_store(
        args.raw, args.out, listing=args.listing, as_of=args.as_of, systems=systems
    )
    counts = manifest["counts"]
    print(
        f"Prepared {counts['practices']:,} practices, {counts['lsoas']:,} LSOAs, "
        f"{counts['registered_patients']:,} registered patients in {manifest['seconds']} s."
    )
    print(f"Manifest: {Path(args.out) / 'manifest.json'}")
    return 0


def _cmd_prepare_add(args: argparse.Namespace) -> int:
    from pophealth.history import add_release

    print(f"Adding the release in {args.raw} to {args.out}")
    manifest = add_release(args.raw, args.out)
    periods = manifest["history"]["periods"]
    years = [entry["year"] for entry in manifest["history"].get("qof_years", [])]
    print(
        f"History: {len(periods)} periods, {periods[0]} to {periods[-1]}"
        + (f"; QOF years {', '.join(years)}" if years else "")
        + f"; current store {manifest['as_of']} ({manifest['add_seconds']} s)."
    )
    return 0


def _load(args: argparse.Namespace):
    import pophealth

    # Absolute paths: the profile kernels run in the notebooks' folder, not the caller's.
    neighbourhoods = str(Path(args.neighbourhoods).resolve()) if args.neighbourhoods else None
    return pophealth.load(Path(args.data).resolve(), neighbourhoods=neighbourhoods, imd=args.imd)


def _cmd_areas(args: argparse.Namespace) -> int:
    import pandas as pd

    data = _load(args)
    areas = data.areas(args.level, system=args.system)
    cols = ["level", "area_type", "area_code", "area_name", "parent_code"]
    listing = areas[[c for c in cols if c in areas]].rename(
        columns={
            "level": "Level",
            "area_type": "Type",
            "area_code": "Code",
            "area_name": "Name",
            "parent_code": "Parent",
        }
    )
    headline = pd.DataFrame([_format_headline(row) for _, row in areas.iterrows()])
    listing = pd.concat([listing.reset_index(drop=True), headline], axis=1)
    with pd.option_context("display.max_rows", None, "display.width", 250):
        print(listing.to_string(index=False))
    return 0


def _cmd_indicators(args: argparse.Namespace) -> int:
    from pophealth.geography import UnknownAreaError

    data = _load(args)
    table = data.indicator_history if args.periods == "all" else data.indicator_table
    table = table[table["level"] == args.level] if args.level != "all" else table
    if args.area:
        area = data.resolve_area(args.area)
        if args.level != "all" and area["level"] != args.level:
            raise UnknownAreaError(
                f"Area {area['area_code']} ({area['area_name']}) is a {area['level']}, not a "
                f"{args.level}: use --level {area['level']} (or --level all), or give a "
                f"{args.level} code (`pophealth areas --level {args.level}` lists them)."
            )
        table = table[table["area_code"] == area["area_code"]]
    out = Path(args.out)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    print(f"Wrote {len(table):,} indicator rows to {out}")
    return 0


def _fingerprint(data, extra: str) -> str:
    digest = hashlib.sha256()
    digest.update((data.prepared_dir / "manifest.json").read_bytes())
    if data.neighbourhoods_file:
        digest.update(Path(data.neighbourhoods_file).read_bytes())
    digest.update(extra.encode())
    return digest.hexdigest()


def _format_headline(row) -> dict[str, str]:
    import pandas as pd

    def fmt(col: str, pattern: str) -> str:
        value = row.get(col)
        return pattern.format(value) if value is not None and pd.notna(value) else "–"

    return {
        "Basis": str(row.get("basis", "")),
        "Registered patients": fmt("list_size", "{:,.0f}"),
        "Core20 %": fmt("pct_core20", "{:.1f}"),
        "IMD score": fmt("imd_score", "{:.1f}"),
        "GP FTE / 10k weighted": fmt("gp_fte_per_10k_weighted", "{:.2f}"),
    }


def build_jobs(
    data,
    system: str | None,
    levels,
    notebook_dir: Path,
    areas_filter=None,
    downloads: tuple[str, ...] = ("xlsx",),
    extra_fingerprint: str = "",
) -> list:
    """One ProfileJob per area of the system (every system when ``None``) at each level.

    Each notebook gets ``page_links``: the index's URL, the levels run (so a profile links its
    parent and children only where their pages exist) and the downloads written beside it.
    """
    from pophealth.runner import ProfileJob

    jobs = []
    fingerprint = _fingerprint(data, f"imd={data.imd};{extra_fingerprint}")
    register = data.register
    system_names = (
        register[register["level"] == "system"]
        .drop_duplicates("area_code")
        .set_index("area_code")["area_name"]
        .to_dict()
    )
    for level in levels:
        areas = data.areas(level, system=system)
        if level == "system":
            # One system profile each: registered-based where the system has practices.
            areas = (
                areas.assign(_resident_first=areas["basis"] != "registered")
                .sort_values(["_resident_first", "area_code"], kind="stable")
                .drop_duplicates("area_code")
                .drop(columns="_resident_first")
            )
        if areas_filter:
            areas = areas[areas["area_code"].isin(areas_filter)]
        notebook = notebook_dir / LEVEL_NOTEBOOKS[level]
        if not notebook.exists():
            raise MissingFileError(f"Notebook {notebook} not found (use --notebooks DIR).")
        for _, row in areas.iterrows():
            system_code = row.get("system_code")
            jobs.append(
                ProfileJob(
                    key=f"{level}/{row['basis']}/{row['area_code']}",
                    area_code=str(row["area_code"]),
                    area_name=str(row["area_name"]),
                    level=level,
                    notebook=notebook,
                    parameters={
                        "area_code": str(row["area_code"]),
                        "basis": str(row["basis"]),
                        "data_path": str(data.prepared_dir),
                        "neighbourhoods": data.neighbourhoods_file,
                        "imd": data.imd,
                        "page_links": {
                            "index": "../../index.html",
                            "levels": list(levels),
                            "downloads": list(downloads),
                        },
                    },
                    headline=_format_headline(row),
                    input_fingerprint=fingerprint,
                    group=str(system_names.get(system_code, system_code or "")),
                )
            )
    return jobs


def warm_up_code(jobs: list) -> str | None:
    """What a batch kernel runs as it starts, before its first profile (``run_profiles``).

    It imports what the notebooks import and loads the store they load, with the same options
    (so :func:`pophealth.load`'s cache serves the notebooks), then builds the store-wide
    tables no shared table provides (:meth:`~pophealth.api.PopHealthData.warm_up`).
    """
    if not jobs:
        return None
    parameters = jobs[0].parameters
    return warm_up_code_for(
        parameters["data_path"], parameters["neighbourhoods"], parameters["imd"]
    )


def warm_up_code_for(
    data_path: str, neighbourhoods: str | None, imd: str, shared: bool = False
) -> str:
    """:func:`warm_up_code` for the store and options every job will name (known up front).

    With ``shared``, the code the run's fork server runs once the shared tables exist
    (``run_profiles(warm_ready_code=...)``): the tables built from them too.
    """
    arguments = "shared=True" if shared else ""
    return (
        "import pophealth\n"
        "from pophealth import sections\n"
        f"pophealth.load({data_path!r}, "
        f"neighbourhoods={neighbourhoods!r}, imd={imd!r}).warm_up({arguments})\n"
    )


ALL_SYSTEMS = ("all", "england")


def _cmd_run(args: argparse.Namespace) -> int:
    from pophealth.runner import run_profiles

    levels = [lvl.strip() for lvl in args.levels.split(",") if lvl.strip()]
    unknown = [lvl for lvl in levels if lvl not in LEVEL_NOTEBOOKS]
    if unknown:
        raise InputError(f"Unknown level(s) {unknown}; choose from {', '.join(LEVEL_NOTEBOOKS)}.")
    # a store that cannot be loaded is named before any folder or kernel is made (the store
    # itself is loaded while the kernels start)
    from pophealth.api import read_store_manifest

    read_store_manifest(Path(args.data).resolve())
    national = args.system.strip().lower() in ALL_SYSTEMS
    self_contained = bool(getattr(args, "self_contained", False))
    pdf = bool(getattr(args, "pdf", False))
    downloads = ("pdf", "xlsx") if pdf else ("xlsx",)
    run: dict = {}  # what working out the jobs finds: the store, the jobs, the run's details

    def make_jobs() -> list:
        # the kernels start and load the store meanwhile (warm_code): this process loads its
        # own copy, works out the indicator table (the manifest reports its time) and the jobs
        data = _load(args)
        system = None if national else data.resolve_system(args.system)
        if args.areas:
            wanted = [c.strip() for c in args.areas.split(",") if c.strip()]
            area_filter = [data.resolve_area(c)["area_code"] for c in wanted]
        else:
            area_filter = None
        started = time.perf_counter()
        _ = data.indicator_table
        jobs = build_jobs(
            data,
            system,
            levels,
            Path(args.notebooks),
            area_filter,
            downloads=downloads,
            extra_fingerprint=f"self_contained={self_contained}",
        )
        if national:
            n_systems = data.register.loc[data.register["level"] == "system", "area_code"].nunique()
            system_name = (
                f"England ({n_systems} systems)"
                if data.comparator == "England"
                else f"all {n_systems} systems in the loaded data"
            )
        else:
            register = data.register
            system_name = register.loc[register["area_code"] == system, "area_name"].iloc[0]
        run.update(data=data, jobs=jobs, system_name=system_name)
        run["info"] = {
            "system_code": system or "all",
            "system_name": system_name,
            "levels": levels,
            "prepared_dir": str(data.prepared_dir),
            "prepared_manifest": data.manifest,
            "imd_release": data.imd_release.name,
            "neighbourhoods": data.neighbourhoods_file,
            "synthetic": bool(data.manifest.get("synthetic")),
            "indicator_seconds": round(time.perf_counter() - started, 2),
            "index_notes": [
                f"Compared with: {data.comparator}. Deprivation: {data.imd_release.name}, "
                "national deciles.",
                "Places: local authority districts are resident-based (people living there); "
                "sub-ICB locations are registered-based (patients of their practices).",
            ],
        }
        print(
            f"Running {len(jobs)} profiles for {system_name} ({system or 'every system'}) "
            f"with {args.workers} workers"
        )
        return jobs

    # store-wide tables computed once here and read by every kernel (not rebuilt in each); kept
    # outside the run folder, which holds only what is published, and removed after the run
    import shutil
    import tempfile

    from pophealth.shared_tables import SHARED_TABLES_ENV

    shared = Path(tempfile.mkdtemp(prefix="pophealth-shared-tables-"))

    def before_jobs() -> dict:
        # the kernels are still warming up meanwhile
        written = run["data"].share_tables(shared)
        return {**run["info"], "shared_tables": sorted(path.name for path in written)}

    def while_kernels_start() -> None:
        # the kernels do not read the workbooks: written while they are forked
        _write_workbooks(run["data"], run["jobs"], Path(args.out).resolve(), run["info"])

    # the options every job will give pophealth.load (_load's), so the kernels' cache serves them
    neighbourhoods = str(Path(args.neighbourhoods).resolve()) if args.neighbourhoods else None
    try:
        summary = run_profiles(
            make_jobs,
            args.out,
            workers=args.workers,
            timeout=args.timeout,
            force=args.force,
            scheduler=args.scheduler,
            progress=not args.no_progress,
            title=lambda: f"Population health needs profiles: {run['system_name']}",
            self_contained=self_contained,
            pdf=pdf,
            kernel_env={SHARED_TABLES_ENV: str(shared)},
            warm_code=warm_up_code_for(str(Path(args.data).resolve()), neighbourhoods, args.imd),
            warm_ready_code=warm_up_code_for(
                str(Path(args.data).resolve()), neighbourhoods, args.imd, shared=True
            ),
            warm_dir=Path(args.notebooks).resolve(),
            before_jobs=before_jobs,
            while_kernels_start=while_kernels_start,
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    index = Path(args.out).resolve() / "index.html"
    print(f"{summary.ok} ok, {summary.skipped} unchanged, {summary.failed} failed")
    _print_failures(summary)
    print(index)
    return summary.exit_code


def _print_failures(summary) -> None:
    """Each failed area and its error, so a terminal user need not open the index."""
    import json

    try:
        engine = json.loads(Path(summary.manifest_path).read_text(encoding="utf-8"))["engine"]
    except (OSError, KeyError, ValueError):
        engine = {}
    for key, error in (engine.get("pdf_errors") or {}).items():
        print(f"PDF not written for {key}: {error}", file=sys.stderr)
    failed = [r for r in summary.results if r.status == "failed"]
    for record in failed:
        where = f" (cell {record.error_cell_index})" if record.error_cell_index is not None else ""
        message = " ".join(str(record.error_message or "").split())
        if len(message) > 300:
            message = message[:297] + "..."
        print(
            f"FAILED {record.level} {record.area_code} {record.area_name}{where}: "
            f"{record.error_ename}: {message}",
            file=sys.stderr,
        )
        if record.failed_ipynb_path is not None:
            print(f"  debug notebook: {record.failed_ipynb_path}", file=sys.stderr)


def _write_workbooks(data, jobs: list, out_dir: Path, run_info: dict) -> None:
    """One workbook per profile beside its page, and the run's workbook and CSV."""
    from pophealth.profile_frames import definitions_frame, provenance_frame
    from pophealth.runner.jobs import job_paths
    from pophealth.runner.workbook import write_workbooks

    targets = {
        (job.area_code, job.parameters["basis"]): job_paths(out_dir, job).html.with_suffix(".xlsx")
        for job in jobs
    }
    table = data.indicator_table
    about = [
        ("Profiles", str(run_info.get("system_name", ""))),
        ("Compared with", data.comparator),
        ("Deprivation", str(run_info.get("imd_release", ""))),
        ("Prepared store", str(data.manifest.get("prepared_at", ""))),
        (
            "Synthetic demo data",
            "YES: not real patients or places" if data.manifest.get("synthetic") else "no",
        ),
        ("Comparison", "95% confidence limits against the comparator (99.8% in its own column)"),
    ]
    write_workbooks(
        table,
        definitions_frame(table["indicator_id"].unique()),
        provenance_frame(data),
        targets,
        out_dir,
        comparator=data.comparator,
        about=about,
    )


def _cmd_export(args: argparse.Namespace) -> int:
    """One area's profile as a single self-contained HTML file (plus workbook, PDF)."""
    import shutil
    import tempfile

    from pophealth.runner import run_profiles

    data = _load(args)
    area = data.resolve_area(args.area, args.basis)
    out = Path(args.out).resolve()
    if out.suffix.lower() not in (".html", ".htm"):
        raise FileNotFoundError(f"--out must name an .html file, not {out}.")
    downloads = ("pdf", "xlsx") if args.pdf else ("xlsx",)
    system = None if area["level"] == "system" else area.get("system_code")
    jobs = build_jobs(
        data,
        system if isinstance(system, str) else None,
        [area["level"]],
        Path(args.notebooks),
        [area["area_code"]],
        downloads=downloads,
        extra_fingerprint="self_contained=True",
    )
    jobs = [job for job in jobs if job.parameters["basis"] == area["basis"]][:1]
    # A lone file has no index or neighbouring profiles to link; its downloads sit beside it.
    jobs[0].parameters["page_links"] = {
        "index": None,
        "levels": [],
        "downloads": list(downloads),
        "stem": out.stem,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pophealth-export-") as work:
        site = Path(work)
        summary = run_profiles(
            jobs,
            site,
            workers=1,
            timeout=args.timeout,
            progress=False,
            title=f"Profile: {area['area_name']}",
            self_contained=True,
            pdf=args.pdf,
            warm_code=warm_up_code(jobs),
            # written while the kernel starts
            before_jobs=lambda: _write_workbooks(
                data, jobs, site, {"system_name": area["area_name"]}
            ),
        )
        _print_failures(summary)
        if summary.failed:
            return summary.exit_code
        page = summary.results[0].html_path
        shutil.copyfile(page, out)
        written = [out]
        for suffix in (".xlsx", ".pdf"):
            if page.with_suffix(suffix).is_file():
                shutil.copyfile(page.with_suffix(suffix), out.with_suffix(suffix))
                written.append(out.with_suffix(suffix))
    for path in written:
        print(path)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pophealth.demo import DEMO_SYSTEMS, write_demo_dataset
    from pophealth.history import prepare_store

    out = Path(args.out)
    # The run folder is ``out`` itself: out/index.html and out/profiles/<level>/...
    raw, prepared, site = out / "raw", out / "prepared", out
    t0 = time.perf_counter()
    write_demo_dataset(raw, seed=args.seed)
    t1 = time.perf_counter()
    print(f"Demo raw files written to {raw} in {t1 - t0:.1f} s")
    # the files hold a synthetic rest of England; the store keeps the demo ICS (and the ring
    # of its neighbouring ICB) with England's and the regions' values
    prepare_store(raw, prepared, progress=None, systems=DEMO_SYSTEMS)
    t2 = time.perf_counter()
    print(f"Prepared store written to {prepared} in {t2 - t1:.1f} s")
    import pophealth

    data = pophealth.load(prepared)
    systems = data.register[data.register["level"] == "system"]
    # the demo ICS is the system with practices (the neighbouring ICB only has residents)
    system = systems[systems["basis"] == "registered"]["area_code"].iloc[0]
    run_args = argparse.Namespace(
        data=str(prepared),
        system=system,
        out=str(site),
        levels="neighbourhood,place,system",
        workers=args.workers,
        timeout=args.timeout,
        force=args.force,
        scheduler=None,
        no_progress=args.no_progress,
        neighbourhoods=None,
        imd="2025",
        notebooks=args.notebooks,
        areas=None,
        self_contained=args.self_contained,
        pdf=args.pdf,
    )
    code = _cmd_run(run_args)
    print(f"Demo finished in {time.perf_counter() - t0:.1f} s; open the index page:")
    print(site.resolve() / "index.html")
    return code


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lab_command(notebook: Path, port: int, token: str, *, browser: bool) -> list[str]:
    """The ``jupyter lab`` command line that opens ``notebook`` on ``port`` with ``token``."""
    import os

    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={notebook.parent}",
        f"--ServerApp.default_url=/lab/tree/{notebook.name}",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI run as root
    return command + ([] if browser else ["--no-browser"])


def _cmd_lab(args: argparse.Namespace) -> int:
    import os
    import secrets
    import signal
    import subprocess

    from pophealth.explore import NEIGHBOURHOODS_ENV, STORE_ENV

    if args.data:
        prepared = Path(args.data)
        if not (prepared / "manifest.json").exists():
            raise MissingFileError(
                f"{prepared} is not a prepared store (no manifest.json); run "
                f"`pophealth prepare RAW --out {prepared}` first, or omit --data for the demo."
            )
    else:
        prepared = Path(args.demo) / "prepared"
        if not (prepared / "manifest.json").exists():
            from pophealth.demo import write_demo_dataset
            from pophealth.prepare import prepare

            print(f"Building the demo store in {prepared} (first run only)")
            write_demo_dataset(Path(args.demo) / "raw", seed=42)
            prepare(Path(args.demo) / "raw", prepared, progress=None)
    notebook = Path(args.notebooks) / "explore.ipynb"
    if not notebook.is_file():
        raise MissingFileError(f"Explorer notebook {notebook} not found (use --notebooks DIR).")
    port = args.port or _free_port()
    token = secrets.token_hex(16)
    env = {**os.environ, STORE_ENV: str(prepared.resolve())}
    if args.neighbourhoods:
        env[NEIGHBOURHOODS_ENV] = str(Path(args.neighbourhoods).resolve())
    command = lab_command(notebook.resolve(), port, token, browser=not args.no_browser)
    server = subprocess.Popen(command, env=env)

    def stop(_signum, _frame):
        raise KeyboardInterrupt  # SIGTERM stops JupyterLab (and its kernels) too

    signal.signal(signal.SIGTERM, stop)
    print(f"JupyterLab: http://127.0.0.1:{port}/lab/tree/{notebook.name}?token={token}", flush=True)
    print(f"Explorer store: {prepared.resolve()}  (Ctrl-C stops the server)", flush=True)
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.terminate()
        try:
            return server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            return server.wait()


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="prepared store folder (from `pophealth prepare`)")
    p.add_argument(
        "--neighbourhoods", help="YAML of named practice groupings to use instead of PCNs"
    )
    p.add_argument(
        "--imd", default="2025", choices=["2025", "2019"], help="IoD release (default 2025)"
    )


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=2, help="warm kernels in parallel (default 2)")
    p.add_argument("--timeout", type=int, default=300, help="seconds allowed per profile")
    p.add_argument("--force", action="store_true", help="rebuild profiles even if unchanged")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--notebooks", default=str(default_notebook_dir()), help="notebook folder")
    p.add_argument(
        "--self-contained",
        action="store_true",
        help="write each profile as one HTML file with plotly.js and styles inside, to share "
        "on its own (default: pages link the run folder's assets/, smaller for national runs)",
    )
    p.add_argument(
        "--pdf", action="store_true", help="also print each profile to an A4 PDF (needs Chromium)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="pophealth", description="Population health needs profiles for NHS England ICSs."
    )
    from pophealth._version import __version__

    parser.add_argument("--version", action="version", version=f"pophealth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="generate demo data, prepare it and run every demo profile")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--seed", type=int, default=42)
    _add_run_options(p)
    p.set_defaults(func=_cmd_demo)

    from pophealth.demo import add_cli as add_demo_cli

    add_demo_cli(sub)
    try:
        from pophealth.fetch import add_cli as add_fetch_cli

        add_fetch_cli(sub)
    except ImportError:  # pragma: no cover - fetch is optional while developing
        pass

    p = sub.add_parser("prepare", help="raw official files -> prepared store")
    p.add_argument("raw", help="folder of raw official files")
    p.add_argument("--out", required=True, help="prepared store folder")
    p.add_argument("--listing", help="YAML listing source files and releases")
    p.add_argument("--as-of", help="date for PCN membership (default: registrations extract date)")
    p.add_argument(
        "--systems",
        help="comma-separated ICB codes (E54…) to keep; England's values still come from every "
        "row of the national files (default: keep every ICB)",
    )
    p.add_argument(
        "--add",
        action="store_true",
        help="RAW is one new release folder: add it to the existing store --out (monthly runs)",
    )
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("areas", help="list areas")
    _add_data_options(p)
    p.add_argument("--level", choices=["neighbourhood", "place", "system"])
    p.add_argument("--system", help="only areas in this ICB (ONS or ODS code)")
    p.set_defaults(func=_cmd_areas)

    p = sub.add_parser("indicators", help="write the tidy indicator table to CSV")
    _add_data_options(p)
    p.add_argument("--level", default="all", choices=["neighbourhood", "place", "system", "all"])
    p.add_argument("--area", help="one area code")
    p.add_argument(
        "--periods",
        default="latest",
        choices=["latest", "all"],
        help="'all' writes every period in the store's history (with a period column)",
    )
    p.add_argument("--out", required=True, help="CSV file to write")
    p.set_defaults(func=_cmd_indicators)

    p = sub.add_parser("run", help="run every profile of a system with papermill-style notebooks")
    _add_data_options(p)
    p.add_argument(
        "--system",
        required=True,
        help="ICB code (ONS E54… or ODS Q…), or 'all' for every system in the data",
    )
    p.add_argument("--out", required=True, help="output folder for the profiles site")
    p.add_argument(
        "--levels",
        default="neighbourhood,place,system",
        help="comma-separated levels to run, from neighbourhood, place, system "
        "(default: all three)",
    )
    p.add_argument("--areas", help="comma-separated area codes to run (default: all)")
    p.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT")
    _add_run_options(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "export", help="write one area's profile as a single self-contained HTML file to share"
    )
    _add_data_options(p)
    p.add_argument("--area", required=True, help="area code (ODS codes accepted)")
    p.add_argument("--basis", choices=["registered", "resident"], help="population basis")
    p.add_argument("--out", required=True, help="HTML file to write (FILE.xlsx goes beside it)")
    p.add_argument("--pdf", action="store_true", help="also write FILE.pdf (needs Chromium)")
    p.add_argument("--timeout", type=int, default=300, help="seconds allowed for the profile")
    p.add_argument("--notebooks", default=str(default_notebook_dir()), help="notebook folder")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("lab", help="start JupyterLab on the interactive explorer")
    p.add_argument("--data", help="prepared store (default: the demo store, built if missing)")
    p.add_argument("--demo", default="runs/demo", help="demo folder when no --data (runs/demo)")
    p.add_argument("--neighbourhoods", help="YAML of named practice groupings to explore")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="only print the URL")
    p.add_argument("--notebooks", default=str(default_notebook_dir()), help="notebook folder")
    p.set_defaults(func=_cmd_lab)
    return parser


def error_line(exc: BaseException) -> str:
    """One line for an error the user can fix: its message with line breaks joined by ``; ``."""
    parts = [part.strip() for part in str(exc).splitlines() if part.strip()]
    return f"pophealth: error: {'; '.join(parts) or type(exc).__name__}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pophealth`` command.

    Errors raised on purpose (:class:`pophealth.errors.PopHealthError`: bad input, bad
    configuration, a missing store) print one line and exit 2; anything else is a bug and keeps
    its traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PopHealthError as exc:
        print(error_line(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
