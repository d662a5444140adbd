"""Benchmark: papermill (2-process pool) vs the warm-kernel pool, same jobs, HTML included.

Usage:
    python benchmarks/bench_runner.py                      # synthetic notebook, 40 areas
    python benchmarks/bench_runner.py --areas 100 --workers 2
    python benchmarks/bench_runner.py --notebook nb.ipynb --param-file params.json

``--param-file`` holds a JSON list of parameter dicts (one per area; each needs ``area_code``)
or a dict mapping area code -> parameter dict. The synthetic notebook is pandas + 5 plotly
figures over 10k rows, displayed as text/html (no plotly.js) + the plotly JSON mimetype.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pophealth.runner import ProfileJob, run_profiles  # noqa: E402
from pophealth.runner.html import install_plotly_asset  # noqa: E402

NATIONAL_PROFILES = 1600

SYNTHETIC_BODY = [
    """
    import numpy as np
    import pandas as pd
    import plotly.express as px
    from IPython.display import display

    def show(fig):
        display({"text/html": fig.to_html(full_html=False, include_plotlyjs=False),
                 "application/vnd.plotly.v1+json": fig.to_plotly_json()}, raw=True)
    """,
    """
    rng = np.random.default_rng(seed)
    n = 10_000
    df = pd.DataFrame({
        "age": rng.integers(0, 100, n),
        "sex": rng.choice(["male", "female"], n),
        "imd_decile": rng.integers(1, 11, n),
        "practice": rng.choice([f"P{i:03d}" for i in range(25)], n),
        "value": rng.gamma(2.0, 10.0, n),
    })
    df["age_band"] = pd.cut(df["age"], range(0, 105, 5), right=False).astype(str)
    """,
    """
    pyramid = df.groupby(["age_band", "sex"], observed=True).size().reset_index(name="patients")
    show(px.bar(pyramid, x="patients", y="age_band", color="sex", orientation="h",
                title=f"Age profile {area_code}"))
    """,
    """
    show(px.histogram(df, x="imd_decile", nbins=10, title="Deprivation"))
    """,
    """
    by_practice = df.groupby("practice")["value"].agg(["mean", "count"]).reset_index()
    show(px.scatter(by_practice, x="count", y="mean", hover_name="practice", title="Practices"))
    """,
    """
    show(px.box(df.sample(2000, random_state=1), x="sex", y="value", title="Distribution"))
    """,
    """
    trend = df.groupby("age")["value"].mean().reset_index()
    show(px.line(trend, x="age", y="value", title="By age"))
    display(by_practice.head(10))
    """,
]


def write_synthetic_notebook(path: Path) -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    parameters = new_code_cell("area_code = 'X'\nseed = 0\n")
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [new_markdown_cell("# Synthetic profile"), parameters]
    nb.cells += [new_code_cell(textwrap.dedent(src).strip()) for src in SYNTHETIC_BODY]
    nbformat.write(nb, path)
    return path


def load_parameters(param_file: Path | None, areas: int) -> list[dict]:
    if param_file is None:
        return [{"area_code": f"B{i:05d}", "seed": i} for i in range(areas)]
    data = json.loads(param_file.read_text())
    if isinstance(data, dict):
        data = [{"area_code": code, **params} for code, params in data.items()]
    return data[:areas]


# ----------------------------------------------------------------------------- papermill
_EXPORTER = None


def _papermill_one(args: tuple[str, str, dict, str]) -> int:
    """Execute one notebook with papermill and export HTML (exporter cached per process)."""
    global _EXPORTER
    import papermill

    from pophealth.runner.html import export_html, make_html_exporter

    notebook, out_dir, params, code = args
    if _EXPORTER is None:
        _EXPORTER = make_html_exporter()
    output = Path(out_dir) / f"{code}.ipynb"
    nb = papermill.execute_notebook(notebook, str(output), parameters=params, progress_bar=False)
    html = export_html(_EXPORTER, nb, code, "assets/plotly.min.js")
    output.with_suffix(".html").write_text(html)
    return len(html)


def bench_papermill(notebook: Path, params: list[dict], out_dir: Path, workers: int) -> float:
    out_dir.mkdir(parents=True, exist_ok=True)
    install_plotly_asset(out_dir)
    tasks = [(str(notebook), str(out_dir), p, p["area_code"]) for p in params]
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(_papermill_one, tasks))
    return time.perf_counter() - start


def bench_warm(notebook: Path, params: list[dict], out_dir: Path, workers: int) -> tuple:
    jobs = [
        ProfileJob(
            key=f"neighbourhood/{p['area_code']}",
            area_code=str(p["area_code"]),
            area_name=str(p.get("area_name", p["area_code"])),
            level="neighbourhood",
            notebook=notebook,
            parameters=p,
            headline={},
            input_fingerprint="bench",
        )
        for p in params
    ]
    start = time.perf_counter()
    summary = run_profiles(jobs, out_dir, workers=workers, force=True, progress=False)
    return time.perf_counter() - start, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--areas", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--notebook", type=Path)
    parser.add_argument("--param-file", type=Path)
    parser.add_argument("--out", type=Path, help="keep outputs here (default: temp folder)")
    parser.add_argument("--skip-papermill", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-runner-") as tmp:
        base = args.out or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        notebook = args.notebook or write_synthetic_notebook(base / "synthetic.ipynb")
        params = load_parameters(args.param_file, args.areas)
        n = len(params)
        print(f"{n} areas, {args.workers} workers, notebook {notebook}")

        warm_seconds, summary = bench_warm(notebook, params, base / "warm", args.workers)
        if summary.failed:
            first = next(r for r in summary.results if r.status == "failed")
            print(
                f"warm pool: {summary.failed} failed, e.g. {first.error_ename}: "
                f"{first.error_message}"
            )
        warm_per = warm_seconds / n
        html_sizes = [r.html_path.stat().st_size for r in summary.results if r.html_path]
        ipynb_sizes = [r.ipynb_path.stat().st_size for r in summary.results if r.ipynb_path]
        job_seconds = [r.seconds for r in summary.results if r.status == "ok"]
        print(
            f"warm pool     : {warm_seconds:7.1f} s total, {warm_per:.3f} s/profile "
            f"(median job {statistics.median(job_seconds):.3f} s incl. HTML export), "
            f"1,600 profiles ~ {warm_per * NATIONAL_PROFILES / 60:.1f} min"
        )
        if job_seconds:
            ok = [r for r in summary.results if r.status == "ok"]
            steady = statistics.median(job_seconds) / min(args.workers, n)
            execute = statistics.median(r.timings.get("execute_seconds", 0) for r in ok)
            export = statistics.median(r.timings.get("export_seconds", 0) for r in ok)
            print(
                f"warm steady   : {steady:.3f} s/profile once warm (median job: execute "
                f"{execute:.3f} s + HTML export {export:.3f} s + reset/IO), 1,600 profiles ~ "
                f"{steady * NATIONAL_PROFILES / 60:.1f} min"
            )
        if html_sizes:
            print(
                f"typical HTML  : {statistics.median(html_sizes) / 1024:.0f} KiB "
                f"(ipynb {statistics.median(ipynb_sizes) / 1024:.0f} KiB); plotly.min.js "
                f"{(base / 'warm' / 'assets' / 'plotly.min.js').stat().st_size / 1e6:.1f} MB "
                "shared once"
            )
        if not args.skip_papermill:
            pm_seconds = bench_papermill(notebook, params, base / "papermill", args.workers)
            pm_per = pm_seconds / n
            print(
                f"papermill pool: {pm_seconds:7.1f} s total, {pm_per:.3f} s/profile, "
                f"1,600 profiles ~ {pm_per * NATIONAL_PROFILES / 60:.1f} min"
            )
            print(f"speed-up      : {pm_per / warm_per:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
