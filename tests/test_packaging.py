"""Packaging and repository hygiene: dependencies in sync, notebooks cleared, CI runs the README."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    wanted |= {_name(r) for r in project["optional-dependencies"]["test"]}
    # conda splits dask[distributed] into dask + distributed
    wanted |= {"distributed"} if "dask" in wanted else set()
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    listed = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    assert wanted == listed, (
        f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"
    )


def test_notebooks_are_committed_with_outputs_cleared():
    notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 4
    for path in notebooks:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell.get("outputs") == [], f"{path.name} has outputs"
                assert cell.get("execution_count") is None, f"{path.name} has execution counts"


def test_profile_notebooks_are_thin():
    """Notebooks only call the library: no joins, groupbys or data wrangling."""
    for path in (REPO / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text())
        source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        for forbidden in (".merge(", ".groupby(", ".join(", "pd.concat", ".pivot"):
            assert forbidden not in source, f"{path.name} does {forbidden}"
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one parameters cell"


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)\n(.*?)```", text, re.S)
    assert block, "README needs a fenced bash block with the two set-up commands"
    return [
        line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")
    ]


def test_readme_gives_two_setup_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci, "CI must run the README's test command verbatim"
    assert "pophealth demo" in commands[0]


def test_code_is_ruff_clean():
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    paths = ["pophealth", "tests", "benchmarks"]
    lint = subprocess.run([ruff, "check", *paths], cwd=REPO, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout[-3000:]
    fmt = subprocess.run(
        [ruff, "format", "--check", *paths], cwd=REPO, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout[-3000:]


def test_wheels_install_the_notebooks_where_the_cli_finds_them(tmp_path, monkeypatch):
    import shutil
    import sys

    from pophealth import cli

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["data-files"][cli.INSTALLED_NOTEBOOKS.as_posix()]
    shipped = {p.name for pattern in patterns for p in REPO.glob(pattern)}
    assert set(cli.LEVEL_NOTEBOOKS.values()) <= shipped

    # A wheel install: no source tree beside the package, notebooks under sys.prefix.
    package = tmp_path / "site-packages" / "pophealth"
    package.mkdir(parents=True)
    monkeypatch.setattr(cli, "__file__", str(package / "cli.py"))
    prefix = tmp_path / "prefix"
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.setattr(sys, "base_prefix", str(prefix))
    assert cli.default_notebook_dir() == tmp_path / "site-packages" / "notebooks"  # none yet
    installed = prefix / cli.INSTALLED_NOTEBOOKS
    installed.mkdir(parents=True)
    for name in shipped:
        shutil.copy(REPO / "notebooks" / name, installed / name)
    assert cli.default_notebook_dir() == installed
