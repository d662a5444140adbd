"""Counts of the demo's ratings by level: how the profiles judge each area against its benchmark.

Usage:
    python benchmarks/demo_ratings.py                 # generate + prepare the demo in a temp dir
    python benchmarks/demo_ratings.py --prepared DIR  # an existing prepared demo store

Prints one markdown table per rating column: rows are ratings, columns are levels
(neighbourhood, place, system), cells count indicator rows (area x basis x indicator). The
rating is the table's ``rating`` column when it has one (ratings by kind), else the 95%
benchmark comparison ``comparison_95``; a per-kind breakdown follows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LEVELS = ["neighbourhood", "place", "system"]


def rating_counts(table: pd.DataFrame, column: str, by_kind: bool = False) -> pd.DataFrame:
    """Rating x level counts of the indicator table (areas below England only)."""
    rows = table[table["level"].isin(LEVELS)]
    index = ["kind", column] if by_kind else [column]
    counts = rows.fillna({column: "(none)"}).pivot_table(
        index=index, columns="level", values="indicator_id", aggfunc="count", fill_value=0
    )
    return counts.reindex(columns=LEVELS, fill_value=0)


def markdown(frame: pd.DataFrame) -> str:
    """A plain markdown table of a counts frame (index columns first)."""
    flat = frame.reset_index()
    lines = ["| " + " | ".join(map(str, flat.columns)) + " |", "|" + "---|" * flat.shape[1]]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in flat.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, help="prepared demo store (default: build one)")
    args = parser.parse_args(argv)
    import pophealth
    from pophealth.indicators import load_catalogue

    with tempfile.TemporaryDirectory() as tmp:
        prepared = args.prepared
        if prepared is None:
            from pophealth.demo import write_demo_dataset
            from pophealth.prepare import prepare

            write_demo_dataset(Path(tmp) / "raw", seed=42)
            prepared = Path(tmp) / "prepared"
            try:
                from pophealth.demo import DEMO_SYSTEMS

                prepare(Path(tmp) / "raw", prepared, progress=None, systems=DEMO_SYSTEMS)
            except (ImportError, TypeError):  # before issue 11: no systems, no rest of England
                prepare(Path(tmp) / "raw", prepared, progress=None)
        data = pophealth.load(prepared, cache=False)
        table = data.indicator_table
    kinds = load_catalogue().set_index("id")["kind"]
    table = table.assign(kind=table["indicator_id"].map(kinds))
    column = "rating" if "rating" in table else "comparison_95"
    print(f"Comparator: {data.comparator}; rating column: {column}\n")
    print(markdown(rating_counts(table, column)))
    print()
    print(markdown(rating_counts(table, column, by_kind=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
