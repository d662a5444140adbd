"""England-scale benchmark: generate, prepare, indicators, and the batch run against papermill.

Prints, in one run:

* demo-data generation time at ``--scale england`` (6,300 practices, 33,755 LSOAs, ~63M patients);
* ``prepare`` wall time and peak memory (a child process, measured with getrusage);
* all indicators for all areas at all levels (seconds, in a fresh process);
* the batch: the same real profile notebooks for ``--areas`` areas run (a) with papermill in a
  2-process pool plus HTML export, and (b) with pophealth's warm-kernel pool; seconds per
  profile, the ratio, the projected national run and the size of a typical HTML profile.

Usage::

    .venv/bin/python benchmarks/bench_national.py --work /tmp/ph-england --areas 80 --national

``--national`` then also runs ``pophealth run --system all`` (~1,700 profiles, with their
workbooks, the index and the manifest) and reports the measured wall time of the whole run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _child(code: str) -> tuple[float, float, str]:
    """Run python code in a child process: wall seconds, peak RSS in GB, stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024 / 1024, done.stdout.strip()


def _set_environment(variables: dict[str, str]) -> None:
    """Pool initializer: environment variables for the papermill kernels this process starts."""
    os.environ.update(variables)


def _papermill_job(args: tuple[str, str, dict, str]) -> int:
    from bench_runner import _papermill_one

    # papermill's kernels log a TCP warning per notebook to the inherited stderr: keep the
    # benchmark's output readable (errors still raise in this process).
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    return _papermill_one(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ph-england")
    parser.add_argument("--areas", type=int, default=40, help="profiles timed per approach")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-papermill", action="store_true")
    parser.add_argument(
        "--papermill-shared",
        action="store_true",
        help="give papermill's kernels the tables our run shares (not how a user runs it)",
    )
    parser.add_argument(
        "--months",
        type=int,
        default=0,
        help="monthly releases of history to generate and load (issue 14's bar: 12); 0: none",
    )
    parser.add_argument(
        "--national",
        action="store_true",
        help="also run every profile of every system (as `pophealth run --system all`) and time it",
    )
    args = parser.parse_args(argv)
    raw, prepared = args.work / "raw", args.work / "prepared"
    print(f"Work folder: {args.work}")

    if not (raw / "gp-reg-pat-prac-lsoa-all.csv").exists():
        history = f", history_months={args.months}" if args.months else ""
        seconds, _, _ = _child(
            "from pophealth.demo import write_demo_dataset; "
            f"write_demo_dataset({str(raw)!r}, seed={args.seed}, scale='england'{history})"
        )
        print(f"generate (england scale, {args.months} monthly releases): {seconds:.1f} s")
    # what `pophealth prepare` runs (every release in the folder's history)
    seconds, peak_gb, out = _child(
        "import json; from pophealth.history import prepare_store; "
        f"m = prepare_store({str(raw)!r}, {str(prepared)!r}, progress=None); "
        "print(json.dumps({**m['counts'], "
        "'periods': len(m.get('history', {}).get('periods', []))}))"
    )
    counts = json.loads(out)
    print(
        f"prepare ({counts['periods']} periods of history): {seconds:.1f} s wall, "
        f"peak memory {peak_gb:.2f} GB "
        f"({counts['practices']:,} practices, {counts['lsoas']:,} LSOAs, "
        f"{counts['registration_rows']:,} registration rows, "
        f"{counts['registered_patients']:,} patients)"
    )
    _, _, out = _child(
        "import time, json, pophealth; t = time.perf_counter(); "
        f"d = pophealth.load({str(prepared)!r}, cache=False); t1 = time.perf_counter(); "
        "tab = d.indicator_table; t2 = time.perf_counter(); "
        "print(json.dumps({'load': t1 - t, 'indicators': t2 - t1, 'rows': len(tab), "
        "'areas': int(tab[['area_code', 'basis']].drop_duplicates().shape[0]), "
        "'profiles': int(len(d.areas('neighbourhood')) + len(d.areas('place')) + "
        "d.areas('system')['area_code'].nunique())}))"
    )
    ind = json.loads(out)
    print(
        f"indicators, all areas and levels: {ind['indicators']:.1f} s "
        f"(load {ind['load']:.1f} s; {ind['rows']:,} rows for {ind['areas']:,} area-bases)"
    )
    national = ind["profiles"]

    import pophealth
    from pophealth.cli import build_jobs, default_notebook_dir, warm_up_code_for
    from pophealth.runner import run_profiles
    from pophealth.runner.html import install_plotly_asset
    from pophealth.shared_tables import SHARED_TABLES_ENV

    def sample_jobs(data) -> list:
        jobs = []
        for system in data.areas("system")["area_code"].unique():
            levels = ["neighbourhood", "place", "system"]
            jobs += build_jobs(data, system, levels, default_notebook_dir())
            if len(jobs) >= args.areas:
                break
        return jobs[: args.areas]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # ours as `pophealth run` does it, timed from loading the store: the store-wide tables
        # computed once here and shared with the kernels, which warm up meanwhile
        # (the kernels start first and load the store while this process does: the jobs are
        # worked out meanwhile, as `pophealth run` does)
        start = time.perf_counter()
        kernel_env = {SHARED_TABLES_ENV: str(tmp / "shared")}
        shared = {}
        run = {}

        def make_jobs() -> list:
            run["data"] = pophealth.load(prepared, cache=False)
            run["jobs"] = sample_jobs(run["data"])
            return run["jobs"]

        def before_jobs() -> None:
            began = time.perf_counter()
            run["data"].share_tables(tmp / "shared")
            shared["seconds"] = time.perf_counter() - began

        summary = run_profiles(
            make_jobs,
            tmp / "warm",
            workers=args.workers,
            force=True,
            progress=False,
            kernel_env=kernel_env,
            warm_code=warm_up_code_for(str(Path(prepared).resolve()), None, "2025"),
            warm_ready_code=warm_up_code_for(
                str(Path(prepared).resolve()), None, "2025", shared=True
            ),
            warm_dir=default_notebook_dir(),
            before_jobs=before_jobs,
        )
        jobs = run["jobs"]
        warm = (time.perf_counter() - start) / len(jobs)
        systems = len({j.parameters["area_code"] for j in jobs if j.level == "system"})
        print(
            f"batch: {len(jobs)} profiles (all levels, {systems} systems), {args.workers} workers"
        )
        print(
            f"  store-wide tables shared with the kernels: {shared['seconds']:.1f} s "
            "(while they warm up)"
        )
        sizes = [p.stat().st_size for p in (tmp / "warm").glob("profiles/*/*.html")]
        steady = statistics.median(r.seconds for r in summary.results) / args.workers
        print(
            f"  warm-kernel pool: {warm:.2f} s/profile incl. loading the store, the shared "
            f"tables, kernel start-up and HTML ({summary.ok} ok, {summary.failed} failed); "
            f"once warm {steady:.2f} s/profile (median job / workers)"
        )
        papermill = None
        if not args.skip_papermill:
            out = tmp / "papermill"
            out.mkdir()
            install_plotly_asset(out)
            tasks = [
                (str(j.notebook), str(out), j.parameters, j.key.replace("/", "_")) for j in jobs
            ]
            start = time.perf_counter()
            # papermill as a user runs it: each notebook builds what it needs; with
            # --papermill-shared its kernels read our shared tables too (the stricter ratio)
            environment = kernel_env if args.papermill_shared else {}
            with ProcessPoolExecutor(
                args.workers,
                mp_context=get_context("spawn"),
                initializer=_set_environment,
                initargs=(environment,),
            ) as pool:
                list(pool.map(_papermill_job, tasks))
            papermill = (time.perf_counter() - start) / len(jobs)
            print(
                f"  papermill {args.workers}-process pool + nbconvert HTML"
                + (", reading our shared tables" if args.papermill_shared else "")
                + f": {papermill:.2f} s/profile"
            )
        print(
            f"  typical HTML profile: {statistics.median(sizes) / 1024:.0f} KiB "
            "(plotly.js once per run folder)"
        )
        if papermill:
            print(f"  speed-up: {papermill / warm:.1f}x")
        print(
            f"national run ({national:,} profiles) projected from the sample: warm pool "
            f"~{national * warm / 60:.1f} min"
            + (f", papermill ~{national * papermill / 60:.1f} min" if papermill else "")
        )
        if args.national:
            _national_run(prepared, tmp / "national", args.workers)
    return 0


def _national_run(prepared: Path, out: Path, workers: int) -> None:
    """The whole default national run, as a scheduled job runs it, timed end to end.

    ``pophealth run --system all`` in a child process: start-up, loading the store, the
    indicators, every profile's workbook and the run's workbook and CSV, every profile of every
    system and level (HTML and executed notebook), the index and the manifest.
    """
    command = [
        str(Path(sys.executable).with_name("pophealth")),
        "run",
        "--data",
        str(prepared),
        "--system",
        "all",
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--no-progress",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    jobs = manifest["jobs"]
    ok = sum(1 for job in jobs if job["status"] == "ok")
    sizes = [p.stat().st_size for p in out.glob("profiles/*/*.html")]
    books = list(out.glob("profiles/*/*.xlsx"))
    print(
        f"national run, measured (`pophealth run --system all`): {len(jobs):,} profiles in "
        f"{seconds / 60:.1f} min ({seconds / len(jobs):.2f} s/profile; {ok} ok, "
        f"{len(jobs) - ok} not ok; {len(books):,} workbooks); HTML "
        f"{sum(sizes) / 2**30:.2f} GiB in all, median {statistics.median(sizes) / 1024:.0f} KiB; "
        f"index.html {(out / 'index.html').stat().st_size / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    raise SystemExit(main())
