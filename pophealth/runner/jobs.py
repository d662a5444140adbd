"""Job and result records, output paths, fingerprints and atomic file writes for the runner.

Everything here is pure bookkeeping (no kernels), so it is cheap to import in any process.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pophealth.errors import output_error
from pophealth.files import TEMP_SUFFIX, atomic_write_bytes

#: Statuses a job can end with.
STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_SKIPPED = "skipped"
STATUS_NOT_RUN = "not_run"  # only when a run is interrupted before the job finished
#: Not part of this run, but its outputs from an earlier run into the same folder are still there
#: (a partial re-run with ``--levels``/``--areas``): kept on the index, never counted as this run's.
STATUS_EARLIER = "earlier"

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_MAX_STEM_CHARS = 80


@dataclass(frozen=True)
class RunRecord:
    """When and how a run ran: recorded in ``manifest.json`` and shown on ``index.html``.

    Attributes:
        started_at: ISO start time.
        finished_at: ISO end time.
        seconds: Total run seconds.
        version: pophealth version.
        engine: The execution engine's description (workers, kernels).
        run_info: The caller's run description (e.g. ``synthetic``, ``prepared_manifest``).
    """

    started_at: str
    finished_at: str
    seconds: float
    version: str
    engine: dict[str, Any] = field(default_factory=dict)
    run_info: dict[str, Any] | None = None


@dataclass(frozen=True)
class ProfileJob:
    """One notebook execution for one area.

    Attributes:
        key: Unique job key, e.g. ``"neighbourhood/U12345"``.
        area_code: Area code (sanitised before use in any path).
        area_name: Human-readable area name (escaped before use in any HTML).
        level: ``neighbourhood``, ``place`` or ``system`` (sanitised before use in paths).
        notebook: Path of the parameterised notebook (must have a ``parameters``-tagged cell).
        parameters: JSON-serialisable values injected papermill-style after the parameters cell.
        headline: A few pre-formatted headline indicators shown on the index page.
        input_fingerprint: Hash of the prepared data the job reads (part of the resume key).
        group: What the area belongs to, e.g. its system (ICB) name; the index shows it as a
            column when a run covers several groups (a national run).
    """

    key: str
    area_code: str
    area_name: str
    level: str
    notebook: Path
    parameters: dict = field(default_factory=dict)
    headline: dict[str, str] = field(default_factory=dict)
    input_fingerprint: str = ""
    group: str = ""


@dataclass
class JobResult:
    """Outcome of one job.

    Attributes:
        key: The job key.
        area_code: The job's area code.
        area_name: The job's area name.
        level: The job's level.
        status: ``ok``, ``failed``, ``skipped`` (or ``not_run`` if the run was interrupted).
        seconds: Wall-clock seconds spent executing and exporting (0 for skipped jobs).
        attempts: Number of executions (2 when a dead kernel forced a retry).
        html_path: Final HTML path (None unless ok/skipped).
        ipynb_path: Final executed notebook path (None unless ok/skipped).
        failed_ipynb_path: Partial executed notebook kept for debugging when the job failed.
        fingerprint: Resume fingerprint of the job.
        input_fingerprint: The caller-supplied data fingerprint.
        headline: Headline indicators copied from the job.
        error_cell_index: 0-based index of the failing cell in the executed notebook.
        error_execution_count: Execution count (``In [n]``) of the failing cell, if known.
        error_ename: Exception class name (``TimeoutError``/``DeadKernelError`` for those cases).
        error_message: Exception message.
        timings: Worker-side split of ``seconds`` (``execute_seconds``, ``export_seconds``).
        group: The job's group (e.g. its system), shown on the index of multi-group runs.
        finished_at: ISO time the outputs were written (for results carried over from an
            earlier run into the same folder).
    """

    key: str
    area_code: str
    area_name: str
    level: str
    status: str
    seconds: float = 0.0
    attempts: int = 0
    html_path: Path | None = None
    ipynb_path: Path | None = None
    failed_ipynb_path: Path | None = None
    fingerprint: str = ""
    input_fingerprint: str = ""
    headline: dict[str, str] = field(default_factory=dict)
    error_cell_index: int | None = None
    error_execution_count: int | None = None
    error_ename: str | None = None
    error_message: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    group: str = ""
    finished_at: str | None = None

    def to_json(self, out_dir: Path) -> dict[str, Any]:
        """Return a JSON-serialisable dict with paths relative to ``out_dir``."""

        def rel(path: Path | None) -> str | None:
            return None if path is None else path.relative_to(out_dir).as_posix()

        return {
            "key": self.key,
            "area_code": self.area_code,
            "area_name": self.area_name,
            "level": self.level,
            "group": self.group,
            "status": self.status,
            "finished_at": self.finished_at,
            "headline": self.headline,
            "seconds": round(self.seconds, 4),
            "attempts": self.attempts,
            "timings": self.timings,
            "html": rel(self.html_path),
            "ipynb": rel(self.ipynb_path),
            "failed_ipynb": rel(self.failed_ipynb_path),
            "fingerprint": self.fingerprint,
            "input_fingerprint": self.input_fingerprint,
            "error": None
            if self.error_ename is None
            else {
                "cell_index": self.error_cell_index,
                "execution_count": self.error_execution_count,
                "ename": self.error_ename,
                "message": self.error_message,
            },
        }


@dataclass
class RunSummary:
    """What a batch run did.

    Attributes:
        out_dir: The run folder.
        results: One result per job, in job order.
        index_path: Path of ``index.html``.
        manifest_path: Path of ``manifest.json``.
        started_at: ISO-8601 UTC start time.
        finished_at: ISO-8601 UTC end time.
        seconds: Total wall-clock seconds.
    """

    out_dir: Path
    results: list[JobResult]
    index_path: Path
    manifest_path: Path
    started_at: str
    finished_at: str
    seconds: float

    def _count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def ok(self) -> int:
        """Number of jobs executed successfully in this run."""
        return self._count(STATUS_OK)

    @property
    def failed(self) -> int:
        """Number of failed jobs (the CLI exits non-zero when this is > 0)."""
        return self._count(STATUS_FAILED)

    @property
    def skipped(self) -> int:
        """Number of jobs skipped because their outputs were up to date."""
        return self._count(STATUS_SKIPPED)

    @property
    def not_run(self) -> int:
        """Number of jobs not finished because the run was interrupted."""
        return self._count(STATUS_NOT_RUN)

    @property
    def exit_code(self) -> int:
        """0 when every job is ok or skipped, else 1."""
        return 0 if self.failed == 0 and self.not_run == 0 else 1

    def by_key(self) -> dict[str, JobResult]:
        """Return results keyed by job key."""
        return {result.key: result for result in self.results}


def safe_stem(text: str) -> str:
    """Return a file-name stem made only of ``[A-Za-z0-9_-]``.

    If anything had to be changed (unsafe characters, empty or over-long input), a short hash of
    the original text is appended so distinct inputs keep distinct stems.

    Args:
        text: Raw text such as an area code.

    Returns:
        A stem safe to use in any path on any platform.
    """
    cleaned = _UNSAFE_CHARS.sub("", text)[:_MAX_STEM_CHARS]
    if cleaned == text and cleaned:
        return cleaned
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned}-{digest}" if cleaned else f"x-{digest}"


@dataclass(frozen=True)
class JobPaths:
    """Output paths of one job inside a run folder."""

    html: Path
    ipynb: Path
    failed_ipynb: Path
    sidecar: Path
    plotly_src: str  # relative URL from the HTML file to assets/plotly.min.js


def job_paths(out_dir: Path, job: ProfileJob) -> JobPaths:
    """Return where a job's outputs go: ``profiles/<level>/<safe_stem>.*``."""
    folder = out_dir / "profiles" / safe_stem(job.level)
    stem = safe_stem(job.area_code)
    return JobPaths(
        html=folder / f"{stem}.html",
        ipynb=folder / f"{stem}.ipynb",
        failed_ipynb=folder / f"{stem}.failed.ipynb",
        sidecar=folder / f"{stem}.json",
        plotly_src="../../assets/plotly.min.js",
    )


def package_version() -> str:
    """Return the installed pophealth version (``0+unknown`` when not installed)."""
    try:
        from pophealth._version import __version__

        return str(__version__)
    except ImportError:
        pass
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("pophealth")
    except PackageNotFoundError:
        return "0+unknown"


def parameters_json(parameters: dict) -> str:
    """Return canonical JSON of job parameters, with a clear error if not serialisable."""
    try:
        return json.dumps(parameters, sort_keys=True, separators=(",", ":"), allow_nan=True)
    except TypeError as exc:
        raise TypeError(
            f"Job parameters must be JSON-serialisable ({exc}); convert dates/paths/numpy "
            "values to str/int/float before building the ProfileJob."
        ) from exc


def job_fingerprint(notebook_bytes: bytes, parameters: dict, version: str, input_fp: str) -> str:
    """Return sha256 over notebook bytes, parameters JSON, package version and input fingerprint.

    Each part is length-prefixed so that moving bytes between parts changes the hash.
    """
    digest = hashlib.sha256()
    for part in (notebook_bytes, parameters_json(parameters).encode(), version.encode()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    encoded = input_fp.encode()
    digest.update(len(encoded).to_bytes(8, "big"))
    digest.update(encoded)
    return digest.hexdigest()


def check_output_folder(folder: Path) -> None:
    """Create ``folder`` if needed and prove a file can be written there, before any work.

    Raises:
        OutputError: The folder cannot be created or written (a parent is a file, read-only,
            permission denied, disk full), naming the path and the fix.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise output_error(folder, error) from error
    probe = folder / ".pophealth-write-check"
    atomic_write_bytes(probe, b"pophealth write check\n" * 64)
    probe.unlink()


def remove_stale_temp_files(folder: Path) -> int:
    """Delete temp files left by a killed run under ``folder``; return how many."""
    removed = 0
    if not folder.exists():
        return 0
    for tmp in folder.rglob(f".*{TEMP_SUFFIX}"):
        try:
            tmp.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def file_digest(data: bytes) -> dict[str, Any]:
    """Return size and sha256 of some bytes (stored in sidecars)."""
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """Return the sidecar JSON, or None when missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def outputs_up_to_date(paths: JobPaths, fingerprint: str) -> bool:
    """Return True when the sidecar matches ``fingerprint`` and both outputs exist intact.

    Sizes are compared (cheap); the sidecar also carries sha256 for deeper checks.
    """
    sidecar = read_sidecar(paths.sidecar)
    if not sidecar or sidecar.get("fingerprint") != fingerprint:
        return False
    for name, path in (("ipynb", paths.ipynb), ("html", paths.html)):
        recorded = sidecar.get(name) or {}
        try:
            if path.stat().st_size != recorded.get("size"):
                return False
        except FileNotFoundError:
            return False
    return True
