"""Kernels forked from the run's warmed-up fork server (pophealth.runner.kernel_fork)."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import nbformat
import pytest
from test_runner_engine import (
    DIE_ONCE,
    DIE_ONCE_PARAMETERS,
    FIGURES,
    make_job,
    write_notebook,
)

from pophealth.forked import can_fork
from pophealth.runner import run_profiles

pytestmark = pytest.mark.skipif(not can_fork(), reason="kernels fork on POSIX, 2+ cores")

# run in the server first (the server's pid sticks), then again in each kernel's warm-up
WARM = "import builtins, os\nbuiltins.__dict__.setdefault('_ph_first_pid', os.getpid())\n"
READY = "import builtins\nbuiltins._ph_ready = 'shared tables read'\n"
WHERE = """\
import builtins, json, os
print(json.dumps({"pid": os.getpid(), "parent": os.getppid(),
                  "first": builtins._ph_first_pid, "ready": getattr(builtins, "_ph_ready", None)}))
"""


def _run_two(tmp_path: Path, ready: str, **options):
    """Two jobs reporting their kernel (:data:`WHERE`) on two workers, warmed up by WARM."""
    notebook = write_notebook(tmp_path / "plain.ipynb", [WHERE])
    return run_profiles(
        [make_job(notebook, "J1"), make_job(notebook, "J2")],
        tmp_path / "out",
        workers=2,
        progress=False,
        warm_code=WARM,
        warm_ready_code=ready,
        **options,
    )


def _where(result) -> dict:
    nb = nbformat.read(result.ipynb_path, as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("name") == "stdout" and '"pid"' in output.get("text", ""):
                return json.loads(output["text"])
    raise AssertionError("no kernel report")


@pytest.mark.slow
def test_kernels_are_forked_from_the_warmed_up_server_and_recover(tmp_path):
    """With warm-up code and two workers, each kernel is a child of the fork server and
    starts with what the server's ``warm_code`` and ``warm_ready_code`` (run after
    ``before_jobs``, while ``while_kernels_start`` runs here) built. A kernel that dies is
    replaced by a new fork and the job retried; a job that times out fails and the next job
    runs on a new fork."""
    plain = write_notebook(tmp_path / "plain.ipynb", [WHERE, FIGURES])
    die_once = write_notebook(
        tmp_path / "die_once.ipynb", [DIE_ONCE, WHERE], parameters=DIE_ONCE_PARAMETERS
    )
    sleeper = write_notebook(tmp_path / "sleeper.ipynb", ["import time\ntime.sleep(60)"])
    order = []
    jobs = [
        make_job(plain, "P1"),
        make_job(die_once, "D1", marker_path=str(tmp_path / "marker")),
        make_job(sleeper, "SLOW"),
        make_job(plain, "P2"),
        make_job(plain, "P3"),
    ]
    summary = run_profiles(
        jobs,
        tmp_path / "out",
        workers=2,
        timeout=8,
        progress=False,
        warm_code=WARM,
        warm_ready_code=READY,
        before_jobs=lambda: order.append("before_jobs") or {},
        while_kernels_start=lambda: order.append("while kernels start") or {"workbooks": 5},
    )
    assert order == ["before_jobs", "while kernels start"]
    results = summary.by_key()
    assert results["neighbourhood/SLOW"].status == "failed"
    assert results["neighbourhood/SLOW"].error_ename == "TimeoutError"
    assert results["neighbourhood/D1"].status == "ok" and results["neighbourhood/D1"].attempts == 2
    reports = [_where(results[f"neighbourhood/{code}"]) for code in ("P1", "D1", "P2", "P3")]
    servers = {report["first"] for report in reports}
    # one server forked every kernel, D1's replacement for the kernel that died too
    assert len(servers) == 1, reports
    for report in reports:
        assert report["parent"] == report["first"] != report["pid"], report
        assert report["ready"] == "shared tables read"
    manifest = json.loads(summary.manifest_path.read_text(encoding="utf-8"))
    assert manifest["workbooks"] == 5
    engine = manifest["engine"]
    assert engine["kernels_forked"] == 2 and "kernel_fork_errors" not in engine


@pytest.mark.slow
def test_without_a_fork_server_the_kernel_is_launched(tmp_path):
    """A worker told of a fork server that is not there launches its kernel as usual and says
    why; ``fork_kernels=False`` launches every kernel (``warm_code`` then runs in each)."""
    from pophealth.runner.executor import WarmKernelExecutor

    executor = WarmKernelExecutor()
    try:
        missing = str(tmp_path / "no-server.sock")
        answer = executor.warm_up(
            {"warm_code": WARM, "fork_server": missing, "timeout": 60, "notebook_dir": None}
        )
        assert answer["status"] == "ok" and answer["forked"] is False
        assert (
            "FileNotFoundError" in answer["fork_error"] or "No such file" in (answer["fork_error"])
        )
        assert executor.kernel_pid is not None
    finally:
        executor.close()

    summary = _run_two(tmp_path, READY, fork_kernels=False)
    for result in summary.results:
        report = _where(result)
        assert report["first"] == report["pid"]  # warmed up in its own process
        assert report["ready"] is None
    engine = json.loads(summary.manifest_path.read_text(encoding="utf-8"))["engine"]
    assert engine["kernels_forked"] == 0


def _comparable_page(path: Path) -> str:
    """A page or notebook without what differs between any two runs (times, ids, counters)."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"\d{4}-\d\d-\d\d[T ][\d:.]+(Z| UTC)?", "<time>", text)
    text = re.sub(r"cell-id=[0-9a-f]{8}|\"id\": ?\"[0-9a-f-]+\"", "<id>", text)
    text = re.sub(r"(ph-[a-z-]+-[0-9a-f]{8})-\d+", r"\1", text)  # the kernel's table counter
    text = re.sub(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", "<uuid>", text)  # plotly's divs
    return re.sub(r"\"(iopub|shell)\.[a-z._]+\": \"[^\"]*\"", "<timing>", text)


@pytest.mark.slow
def test_forked_and_launched_kernels_build_the_same_profiles(demo_prepared, tmp_path):
    """The demo's profiles (every level, shared tables as ``pophealth run`` shares them) are
    the same notebooks and pages from forked kernels as from launched ones."""
    import pophealth
    from pophealth.cli import build_jobs, default_notebook_dir, warm_up_code_for
    from pophealth.shared_tables import SHARED_TABLES_ENV

    store = str(Path(demo_prepared).resolve())
    data = pophealth.load(demo_prepared, cache=False)
    system = data.areas("system")["area_code"].iloc[0]
    jobs = build_jobs(data, system, ["neighbourhood", "place", "system"], default_notebook_dir())
    jobs = [jobs[0], jobs[1], jobs[-1]]
    pages = {}
    for fork in (True, False):
        with tempfile.TemporaryDirectory() as shared:
            summary = run_profiles(
                jobs,
                tmp_path / f"fork-{fork}",
                workers=2,
                progress=False,
                kernel_env={SHARED_TABLES_ENV: shared},
                warm_code=warm_up_code_for(store, None, "2025"),
                warm_ready_code=warm_up_code_for(store, None, "2025", shared=True),
                before_jobs=lambda folder=shared: data.share_tables(folder) and None,
                fork_kernels=fork,
            )
        assert summary.ok == len(jobs), [r.error_message for r in summary.results]
        engine = json.loads(summary.manifest_path.read_text(encoding="utf-8"))["engine"]
        assert engine["kernels_forked"] == (2 if fork else 0)
        pages[fork] = {
            (r.key, suffix): _comparable_page(getattr(r, f"{suffix}_path"))
            for r in summary.results
            for suffix in ("html", "ipynb")
        }
    assert pages[True].keys() == pages[False].keys()
    differ = [key for key in pages[True] if pages[True][key] != pages[False][key]]
    assert not differ, differ


@pytest.mark.slow
def test_when_before_jobs_fails_the_server_workers_and_kernels_are_gone(tmp_path):
    """An error writing the shared tables (``before_jobs``) stops the fork server first, so
    the workers waiting for their kernels do not wait out their stop time; nothing is left."""
    import time

    import psutil

    def failing() -> dict:
        raise ValueError("the shared tables could not be written")

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    started = time.monotonic()
    with pytest.raises(ValueError, match="could not be written"):
        _run_two(tmp_path, None, before_jobs=failing)
    from pophealth.runner.engine import WORKER_STOP_SECONDS

    assert time.monotonic() - started < WORKER_STOP_SECONDS

    def left() -> dict:
        # multiprocessing's resource tracker, started by the first spawned process, stays
        found = {}
        for process in psutil.Process().children(recursive=True):
            try:
                command = " ".join(process.cmdline())
            except psutil.Error:
                continue
            if process.pid not in before and "resource_tracker" not in command:
                found[process.pid] = command
        return found

    deadline = time.monotonic() + 5
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left(), left()


@pytest.mark.slow
def test_an_error_in_the_servers_ready_code_is_recorded_and_kernels_still_fork(tmp_path):
    """The ready code runs only in the server: what it raises reaches ``manifest.json``
    (``engine.fork_server_errors``); the kernels are still forked and the jobs run."""
    summary = _run_two(tmp_path, "raise ValueError('the shared tables are unreadable')")
    assert summary.ok == 2
    engine = json.loads(summary.manifest_path.read_text(encoding="utf-8"))["engine"]
    assert engine["kernels_forked"] == 2
    assert engine["fork_server_errors"] == ["ready: ValueError: the shared tables are unreadable"]
