"""The run folder's ``index.html`` (every area, grouped by level) and ``manifest.json``."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pophealth.files import atomic_write_text
from pophealth.runner.html import TEMPLATES_DIR
from pophealth.runner.jobs import (
    STATUS_EARLIER,
    STATUS_FAILED,
    STATUS_NOT_RUN,
    STATUS_OK,
    STATUS_SKIPPED,
    JobResult,
    RunRecord,
)

LEVEL_ORDER = ("system", "place", "neighbourhood")


def _link(out_dir: Path, path: Path | None) -> str | None:
    if path is None:
        return None
    return quote(path.relative_to(out_dir).as_posix())


def _counts(results: list[JobResult]) -> dict[str, int]:
    """Counts of this run's jobs by status; ``earlier`` counts profiles carried over."""
    statuses = [result.status for result in results]
    earlier = statuses.count(STATUS_EARLIER)
    return {
        "total": len(results) - earlier,
        "ok": statuses.count(STATUS_OK),
        "skipped": statuses.count(STATUS_SKIPPED),
        "failed": statuses.count(STATUS_FAILED),
        "not_run": statuses.count(STATUS_NOT_RUN),
        "earlier": earlier,
    }


def _inside(out_dir: Path, relative: Any) -> Path | None:
    """``out_dir / relative`` if it is a plain relative path that stays inside ``out_dir``."""
    if not isinstance(relative, str) or not relative:
        return None
    path = (out_dir / relative).resolve()
    return path if path.is_relative_to(out_dir.resolve()) else None


def earlier_results(out_dir: Path, current_keys: set[str]) -> list[JobResult]:
    """Profiles from earlier runs into ``out_dir`` that this run did not touch.

    A re-run of some levels or areas (``--levels``/``--areas``) would otherwise rewrite
    ``index.html`` and ``manifest.json`` with only its own areas, hiding profiles that are still
    in the folder. Entries of the previous manifest whose key is not in this run and whose HTML
    (and sidecar) still exist are returned with status ``earlier``; everything else is dropped.

    Args:
        out_dir: The run folder.
        current_keys: Job keys of this run.

    Returns:
        Results to show on the index and keep in the manifest (not counted as this run's).
    """
    try:
        previous = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return []
    carried = []
    for job in previous.get("jobs") or []:
        if not isinstance(job, dict) or job.get("key") in current_keys:
            continue
        if job.get("status") not in (STATUS_OK, STATUS_SKIPPED, STATUS_EARLIER):
            continue
        html = _inside(out_dir, job.get("html"))
        ipynb = _inside(out_dir, job.get("ipynb"))
        if html is None or not html.is_file() or not html.with_suffix(".json").is_file():
            continue
        headline = job.get("headline") if isinstance(job.get("headline"), dict) else {}
        carried.append(
            JobResult(
                key=str(job["key"]),
                area_code=str(job.get("area_code", "")),
                area_name=str(job.get("area_name", "")),
                level=str(job.get("level", "")),
                status=STATUS_EARLIER,
                html_path=html,
                ipynb_path=ipynb if ipynb is not None and ipynb.is_file() else None,
                fingerprint=str(job.get("fingerprint", "")),
                input_fingerprint=str(job.get("input_fingerprint", "")),
                headline={str(k): str(v) for k, v in headline.items()},
                group=str(job.get("group") or ""),
                finished_at=job.get("finished_at") or previous.get("finished_at"),
            )
        )
    return carried


def render_index(
    out_dir: Path,
    results: list[JobResult],
    *,
    title: str,
    started_at: str,
    finished_at: str,
    seconds: float,
    version: str,
    run_info: dict[str, Any] | None = None,
) -> str:
    """Render ``index.html`` with jinja2 autoescaping (area names/codes/messages are data).

    Args:
        out_dir: The run folder (links are relative to it).
        results: Job results.
        title: Page title.
        started_at: ISO start time.
        finished_at: ISO end time.
        seconds: Total run seconds.
        version: pophealth version.
        run_info: The caller's run description; ``synthetic`` adds a banner and
            ``prepared_manifest.sources`` a table of the data releases and checksums.

    Returns:
        The HTML text.
    """
    from jinja2 import Environment, FileSystemLoader

    env = Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True)
    rows = []
    for result in results:
        ok_like = result.status in (STATUS_OK, STATUS_SKIPPED, STATUS_EARLIER)
        rows.append(
            {
                "level": result.level,
                "group": result.group,
                "finished_at": result.finished_at,
                "area_name": result.area_name,
                "area_code": result.area_code,
                "status": result.status,
                "headline": result.headline,
                "link": _link(out_dir, result.html_path) if ok_like else None,
                "failed_link": _link(out_dir, result.failed_ipynb_path),
                "error_cell_index": result.error_cell_index,
                "error_execution_count": result.error_execution_count,
                "error_ename": result.error_ename,
                "error_message": result.error_message,
            }
        )
    levels = sorted(
        {row["level"] for row in rows},
        key=lambda level: (LEVEL_ORDER.index(level) if level in LEVEL_ORDER else 99, level),
    )
    # National runs: a System column, and rows sorted by system first.
    show_group = len({row["group"] for row in rows}) > 1
    groups = []
    for level in levels:
        level_rows = sorted(
            (row for row in rows if row["level"] == level),
            key=lambda row: (
                str(row["group"]).casefold() if show_group else "",
                str(row["area_name"]).casefold(),
                str(row["area_code"]),
            ),
        )
        headline_keys: list[str] = []
        for row in level_rows:
            for key in row["headline"]:
                if key not in headline_keys:
                    headline_keys.append(key)
        groups.append({"level": level, "rows": level_rows, "headline_keys": headline_keys})
    template = env.get_template("index.html.j2")
    return template.render(
        title=title,
        started_at=started_at,
        finished_at=finished_at,
        seconds=seconds,
        version=version,
        counts=_counts(results),
        failures=[row for row in rows if row["status"] == STATUS_FAILED],
        groups=groups,
        show_group=show_group,
        filterable=len(rows) > 30,
        synthetic=bool((run_info or {}).get("synthetic")),
        notes=[str(n) for n in (run_info or {}).get("index_notes", [])],
        sources=_source_rows(run_info),
    )


def _source_rows(run_info: dict[str, Any] | None) -> list[dict[str, str]]:
    """Data releases and checksums from the prepared store's manifest, for provenance."""
    sources = ((run_info or {}).get("prepared_manifest") or {}).get("sources") or {}
    rows = []
    for name, info in sorted(sources.items()):
        for f in info.get("files", []):
            rows.append(
                {
                    "source": name,
                    "file": str(f.get("name", "")),
                    "release": str(info.get("release", "")),
                    "sha256": str(f.get("sha256", "")),
                    "rows": f"{info.get('rows', 0):,}",
                }
            )
    return rows


def build_manifest(out_dir: Path, results: list[JobResult], record: RunRecord) -> dict[str, Any]:
    """Return the manifest: the caller's ``run_info`` merged with the engine's run record."""
    manifest: dict[str, Any] = dict(record.run_info or {})
    manifest.update(
        {
            "pophealth_version": record.version,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "total_seconds": round(record.seconds, 3),
            "engine": record.engine,
            "counts": _counts(results),
            "jobs": [result.to_json(out_dir) for result in results],
        }
    )
    return manifest


def write_index_and_manifest(
    out_dir: Path, results: list[JobResult], *, title: str, record: RunRecord
) -> tuple[Path, Path]:
    """Write ``index.html`` and ``manifest.json`` atomically; return their paths."""
    index_path = out_dir / "index.html"
    manifest_path = out_dir / "manifest.json"
    atomic_write_text(
        index_path,
        render_index(
            out_dir,
            results,
            title=title,
            started_at=record.started_at,
            finished_at=record.finished_at,
            seconds=record.seconds,
            version=record.version,
            run_info=record.run_info,
        ),
    )
    manifest = build_manifest(out_dir, results, record)
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, default=str) + "\n")
    return index_path, manifest_path
