"""Shared fixtures: the demo dataset, generated once per test session in the official formats."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def reference_dir() -> Path | None:
    """The real published reference files (../shared/reference), or None when absent."""
    env = os.environ.get("POPHEALTH_REFERENCE_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "reference"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory) -> Path:
    from pophealth.demo import write_demo_dataset

    out = tmp_path_factory.mktemp("demo") / "raw"
    write_demo_dataset(out, seed=42)
    return out


@pytest.fixture(scope="session")
def demo_prepared(demo_raw, tmp_path_factory) -> Path:
    from pophealth.demo import DEMO_SYSTEMS
    from pophealth.history import prepare_store

    out = tmp_path_factory.mktemp("demo_prepared") / "prepared"
    prepare_store(demo_raw, out, progress=None, systems=DEMO_SYSTEMS)
    return out


@pytest.fixture(scope="session")
def demo_data(demo_prepared):
    import pophealth

    return pophealth.load(demo_prepared, cache=False)


@pytest.fixture(scope="session")
def demo_site(demo_prepared, tmp_path_factory) -> Path:
    """Every profile of the demo system, run once per test session (``pophealth run``)."""
    from pophealth import cli

    out = tmp_path_factory.mktemp("site")
    argv = ["run", "--data", str(demo_prepared), "--system", "QZZ", "--out", str(out)]
    assert cli.main([*argv, "--no-progress"]) == 0
    return out
