"""Readers for analysts' own configuration files (neighbourhood groupings).

A neighbourhood groupings file names groups of practices, e.g. Integrated Neighbourhood Teams::

    name: Demo ICS integrated neighbourhood teams
    neighbourhoods:
      - code: INT01
        name: North Demoton INT
        practices: [Y90001, Y90002, Y90003]
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from pophealth.errors import PopHealthError


class ConfigError(PopHealthError, ValueError):
    """A configuration file that cannot be used, with the file and the fault named."""


def load_neighbourhood_groupings(path: str | Path) -> pd.DataFrame:
    """Read a neighbourhood groupings YAML file.

    Args:
        path: The YAML file.

    Returns:
        ``neighbourhood_code, neighbourhood_name, practice_code`` one row per practice.

    Raises:
        ConfigError: when the file is malformed, a code repeats or a practice is in two groups.
    """
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read neighbourhood groupings: {exc}") from exc
    return neighbourhood_groupings_frame(doc, source=str(path))


def neighbourhood_groupings_frame(doc, source: str = "neighbourhood groupings") -> pd.DataFrame:
    """Check a parsed groupings document (as in the YAML file) and tabulate it.

    Args:
        doc: ``{"name": ..., "neighbourhoods": [{"code", "name", "practices"}, ...]}``.
        source: Where the document came from, for error messages.

    Returns:
        ``neighbourhood_code, neighbourhood_name, practice_code`` one row per practice.

    Raises:
        ConfigError: when the document is malformed, a code repeats or a practice is in two
            groups.
    """
    path = source
    groups = (doc or {}).get("neighbourhoods") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or not groups:
        raise ConfigError(
            f"{path}: expected a top-level 'neighbourhoods:' list of "
            "{code, name, practices} entries."
        )
    rows = []
    for i, group in enumerate(groups, start=1):
        if not isinstance(group, dict) or not {"code", "name", "practices"} <= set(group):
            raise ConfigError(
                f"{path}: neighbourhood entry {i} must have 'code', 'name' and 'practices'; "
                f"found {sorted(group) if isinstance(group, dict) else type(group).__name__}."
            )
        practices = group["practices"]
        if not isinstance(practices, list) or not practices:
            raise ConfigError(f"{path}: neighbourhood {group['code']!r} lists no practices.")
        for code in practices:
            rows.append((str(group["code"]), str(group["name"]), str(code).strip().upper()))
    frame = pd.DataFrame(
        rows, columns=["neighbourhood_code", "neighbourhood_name", "practice_code"]
    )
    names = frame.drop_duplicates(["neighbourhood_code", "neighbourhood_name"])
    repeated = names["neighbourhood_code"][names["neighbourhood_code"].duplicated()]
    if len(repeated):
        raise ConfigError(f"{path}: neighbourhood code(s) used twice: {sorted(set(repeated))}.")
    twice = frame[frame["practice_code"].duplicated(keep=False)]
    if len(twice):
        listing = "; ".join(
            f"{code} in {', '.join(sorted(g['neighbourhood_code']))}"
            for code, g in twice.groupby("practice_code")
        )
        raise ConfigError(
            f"{path}: each practice may belong to one neighbourhood only; found {listing}."
        )
    return frame


def neighbourhood_groupings_yaml(frame: pd.DataFrame, name: str) -> str:
    """The YAML text of groupings that :func:`load_neighbourhood_groupings` reads back.

    Args:
        frame: ``neighbourhood_code, neighbourhood_name, practice_code`` (checked first).
        name: Title of the set of groupings.

    Returns:
        YAML text with a top-level ``name`` and ``neighbourhoods`` list.
    """
    doc = {
        "name": str(name),
        "neighbourhoods": [
            {
                "code": str(code),
                "name": str(group["neighbourhood_name"].iloc[0]),
                "practices": [str(p) for p in group["practice_code"]],
            }
            for code, group in frame.groupby("neighbourhood_code", sort=False)
        ],
    }
    neighbourhood_groupings_frame(doc, source="groupings to save")
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
