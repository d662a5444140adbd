"""Is the explorer live? Times area selection and neighbourhood regrouping once a store is loaded.

Generates (or reuses) a synthetic store with ``pophealth demo-data --scale SCALE`` + ``prepare``,
loads it, then times, without a browser (the widgets' own Python callbacks):

* load: reading the store and computing every indicator (once per session);
* the explorer's first draw (area centres, map, rank chart);
* selecting an area: profile frames, headline, profile sections, map/rank highlight;
* changing the indicator or level (map + rank redraw);
* the designer: moving practices between candidate neighbourhoods of the largest system and
  recomputing every candidate's indicators, headline and fair share.

The target is under 1 s per interaction at England scale on a 2-core machine.

Usage::

    .venv/bin/python benchmarks/bench_explore.py --work /tmp/ph-explore --scale ics
    .venv/bin/python benchmarks/bench_explore.py --work /tmp/ph-england --scale england
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 1.0


def _store(work: Path, scale: str, seed: int) -> Path:
    raw, prepared = work / f"raw-{scale}", work / f"prepared-{scale}"
    if not (prepared / "manifest.json").exists():
        pophealth = [sys.executable, "-m", "pophealth.cli"]
        started = time.perf_counter()
        subprocess.run(
            pophealth + ["demo-data", "--out", str(raw), "--seed", str(seed), "--scale", scale],
            check=True,
        )
        subprocess.run(pophealth + ["prepare", str(raw), "--out", str(prepared)], check=True)
        print(f"generated and prepared the {scale} store in {time.perf_counter() - started:.1f} s")
    else:
        print(f"reusing {prepared}")
    return prepared


def _timed(label: str, action, repeat: int, results: dict) -> None:
    times = []
    for i in range(repeat):
        with contextlib.redirect_stdout(io.StringIO()):  # Output widgets print outside a kernel
            started = time.perf_counter()
            action(i)
            times.append(time.perf_counter() - started)
    results[label] = times
    flag = "ok" if max(times) < TARGET_SECONDS else "SLOW"
    print(
        f"{label:<46} median {statistics.median(times):6.3f} s  max {max(times):6.3f} s"
        f"  (n={repeat}) {flag}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/ph-explore", help="folder for the stores")
    parser.add_argument("--scale", default="england", choices=["ics", "england"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions per action")
    args = parser.parse_args()

    import pophealth
    from pophealth import designer, explore

    prepared = _store(Path(args.work), args.scale, args.seed)
    started = time.perf_counter()
    data = pophealth.load(prepared, cache=False)
    _ = data.indicator_table
    print(f"load + all indicators: {time.perf_counter() - started:.2f} s (once per session)")
    results: dict[str, list[float]] = {}

    holder: dict = {}

    def build_explorer(_i):
        holder["explorer"] = explore.Explorer(data)

    _timed("explorer first draw (incl. first area)", build_explorer, 1, results)
    explorer = holder["explorer"]
    areas = data.areas("neighbourhood")
    step = max(1, len(areas) // args.repeat)
    picks = areas.iloc[::step].head(args.repeat)
    _timed(
        "select a neighbourhood (profile + highlight)",
        lambda i: explorer.select(picks["area_code"].iloc[i], picks["basis"].iloc[i]),
        len(picks),
        results,
    )
    indicator_ids = [v for _, v in explorer.indicator.options][: args.repeat]
    _timed(
        "change indicator (map + rank redraw)",
        lambda i: setattr(explorer.indicator, "value", indicator_ids[i % len(indicator_ids)]),
        args.repeat,
        results,
    )
    levels = ["place", "system", "neighbourhood"]
    _timed(
        "change level (options, map, rank, first area)",
        lambda i: setattr(explorer.level, "value", levels[i % 3]),
        3,
        results,
    )

    sizes = data.practices.groupby("icb_code")["practice_code"].count()
    system = str(sizes.idxmax())
    tool = designer.NeighbourhoodDesigner(data, system=system)
    _timed(
        "designer: start from PCNs (all candidates)", lambda _i: tool.start_from_pcns(), 1, results
    )
    codes = list(tool.groups)
    practices = tool.practices["practice_code"].tolist()

    def regroup(i):
        # move a different practice into another candidate each time
        tool.current.value = codes[(i + 1) % len(codes)]
        tool.assign([practices[(7 * i) % len(practices)]])

    _timed(
        f"designer: move a practice ({len(codes)} candidates, {len(practices)} practices)",
        regroup,
        args.repeat,
        results,
    )
    _timed(
        "API: profile_of_practices (10 practices)",
        lambda i: data.profile_of_practices(practices[i : i + 10], name="bench", code="BENCH"),
        args.repeat,
        results,
    )
    slow = [k for k, v in results.items() if "first draw" not in k and max(v) >= TARGET_SECONDS]
    print("all interactions under 1 s" if not slow else f"over 1 s: {', '.join(slow)}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
