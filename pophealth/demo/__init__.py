"""Synthetic demo data in the official file formats (``pophealth demo-data``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pophealth.demo._model import DEMO_SYSTEMS
from pophealth.demo.generator import FILE_NAMES, write_demo_dataset

__all__ = ["DEMO_SYSTEMS", "FILE_NAMES", "add_cli", "write_demo_dataset"]


def _run_demo_data(args: argparse.Namespace) -> int:
    written = write_demo_dataset(
        args.out, seed=args.seed, scale=args.scale, hostile_names=args.hostile_names
    )
    print(f"Wrote synthetic {args.scale} demo dataset (seed {args.seed}) to {Path(args.out)}:")
    for name, path in written.items():
        print(f"  {name:32s} {path}")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``demo-data`` subcommand on an argparse subparsers object.

    The handler is stored as ``func`` in the parsed namespace; it returns an exit code.

    Args:
        subparsers: the object returned by ``ArgumentParser.add_subparsers()``.

    Returns:
        The ``demo-data`` subparser.
    """
    parser = subparsers.add_parser(
        "demo-data",
        help="write a synthetic demo dataset in the official file formats",
        description=(
            "Write a synthetic ICS (or England-sized) dataset laid out exactly like the "
            "official publications, for demos and benchmarks. All data are fictional."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to write the files into")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--scale",
        choices=["ics", "england"],
        default="ics",
        help="'ics' (one demo ICS, default) or 'england' (national size, for benchmarks)",
    )
    parser.add_argument(
        "--hostile-names",
        action="store_true",
        help="prefix every name with a hostile string (script tags, javascript: links, ../ "
        "paths) to check that outputs escape them",
    )
    parser.set_defaults(func=_run_demo_data)
    return parser
