"""England-scale release history: prepare with 12 monthly periods, ``prepare --add``, history.

Prints, in one run (each step in a fresh child process; each step's own peak memory, read by
the child itself with getrusage at its end, plus the peak of any worker process it started):

* generation of synthetic England with ``--months`` monthly releases of registrations and
  workforce (``write_demo_dataset(scale="england", history_months=...)``);
* ``prepare`` (``pophealth.history.prepare_store``) of all but one release: wall time, peak memory
  (the step's process, and its release-reading worker, which runs beside it);
* ``prepare --add`` (``pophealth.history.add_release``) of the release held back: one month;
* the store's size, and the history's share of it;
* loading the store and computing the indicator history of every area over every period.

Usage::

    .venv/bin/python benchmarks/bench_history.py --work /tmp/ph-history --months 12

The release held back is the oldest earlier month, so adding it leaves the current store alone
(the monthly run's usual case, a new current month, also rebuilds the current tables).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_national import _child  # noqa: E402

# appended to a step's code: the step's own peak RSS and its (waited-for) workers' largest, in KB
_PEAKS = (
    "; import resource as _r; "
    "print(json.dumps([_r.getrusage(_r.RUSAGE_SELF).ru_maxrss, "
    "_r.getrusage(_r.RUSAGE_CHILDREN).ru_maxrss]))"
)


def _step(code: str) -> tuple[float, float, float, str]:
    """Run one step in a fresh child: wall seconds, its own and its workers' peak GB, stdout.

    ``bench_national._child`` reads RUSAGE_CHILDREN in this process, the largest child so far,
    so a later step would show an earlier one's peak: the child reports its own instead (its
    last output line).
    """
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "import json; " + code + _PEAKS],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    seconds = time.perf_counter() - start
    *out, peaks = done.stdout.strip().splitlines()
    own, workers = (kb / 1024 / 1024 for kb in json.loads(peaks))
    return seconds, own, workers, "\n".join(out)


def _peak(own: float, workers: float) -> str:
    return f"peak memory {own:.2f} GB" + (f" (child processes {workers:.2f} GB)" if workers else "")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ph-history")
    parser.add_argument("--months", type=int, default=12, help="monthly releases to generate")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    raw, held, prepared = args.work / "raw", args.work / "held", args.work / "prepared"
    print(f"Work folder: {args.work}")
    if not (raw / "gp-reg-pat-prac-lsoa-all.csv").exists() and not held.exists():
        seconds, _, _ = _child(
            "from pophealth.demo import write_demo_dataset; "
            f"write_demo_dataset({str(raw)!r}, seed={args.seed}, scale='england', "
            f"history_months={args.months})"
        )
        print(f"generate (england scale, {args.months} monthly releases): {seconds:.1f} s")
    if not held.exists():
        oldest = sorted((raw / "releases").iterdir())[0]
        held.mkdir(parents=True)
        shutil.move(str(oldest), str(held / oldest.name))
    release = next(held.iterdir())
    shutil.rmtree(prepared, ignore_errors=True)
    # one history step per child: (function, its first argument) -> periods after it
    for label, function, source in (
        ("prepare", "prepare_store", raw),
        (f"prepare --add one month ({release.name})", "add_release", release),
    ):
        seconds, own, workers, out = _step(
            f"from pophealth.history import {function} as step; "
            f"m = step({str(source)!r}, {str(prepared)!r}, progress=None); "
            "print(json.dumps(m['history']['periods']))"
        )
        periods = json.loads(out)
        print(f"{label}: {seconds:.1f} s wall, {_peak(own, workers)}; {len(periods)} periods")
    total, history = _size(prepared), _size(prepared / "history")
    print(
        f"store: {total / 1e6:.1f} MB, of which history {history / 1e6:.1f} MB "
        f"(~{history / 1e6 / max(len(periods) - 1, 1):.1f} MB a month)"
    )
    seconds, own, workers, out = _step(
        "import time, pophealth; t = time.perf_counter(); "
        f"d = pophealth.load({str(prepared)!r}, cache=False); "
        "h = d.indicator_history; "
        "print(json.dumps({'rows': len(h), 'periods': int(h['period'].nunique()), "
        "'seconds': time.perf_counter() - t}))"
    )
    found = json.loads(out)
    print(
        f"load + indicator history: {found['seconds']:.1f} s, {_peak(own, workers)} "
        f"({found['rows']:,} rows over {found['periods']} periods)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
