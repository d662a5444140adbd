"""Batch execution of a parameterised notebook for many areas on a pool of warm kernels.

``run_profiles`` plans the jobs (paths, fingerprints, resume), sends the ones that need work to
either a local pool of worker processes (each holding one warm kernel, see ``executor.py``) or
an existing Dask cluster, writes every output atomically as results arrive, and finishes with
``index.html`` and ``manifest.json``.

Output layout (``out_dir``)::

    assets/plotly.min.js, assets/jupyterlab.css, assets/profile.css  one copy each, linked
    profiles/<level>/<stem>.ipynb / .html      executed notebook and its HTML (code hidden)
    profiles/<level>/<stem>.json               sidecar (fingerprint + output sizes/sha256), last
    profiles/<level>/<stem>.failed.ipynb       partial notebook of a failed job, for debugging
    profiles/<level>/<stem>.pdf                A4 PDF of the page (``pdf=True``)
    profiles/<level>/<stem>.xlsx               the profile's workbook (written by the CLI first)
    indicators.xlsx, indicators.csv            every area of the run (written by the CLI)
    index.html, manifest.json                  every profile in the folder (this run's, plus
                                               earlier runs' still on disk, as "earlier")

Dask: the worker executes and returns the notebook/HTML text; the caller writes the files, so
no shared filesystem is needed for outputs. Workers must however be able to read the data the
notebooks read (a shared filesystem or object store) and should run one thread per worker
(``threads_per_worker=1``); extra threads just queue for the worker's single kernel.
"""

from __future__ import annotations

import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from pophealth.errors import MissingFileError
from pophealth.files import atomic_write_text
from pophealth.runner.html import install_page_stylesheets, install_plotly_js
from pophealth.runner.index import earlier_results, write_index_and_manifest
from pophealth.runner.jobs import (
    STATUS_FAILED,
    STATUS_NOT_RUN,
    STATUS_OK,
    STATUS_SKIPPED,
    JobPaths,
    JobResult,
    ProfileJob,
    RunRecord,
    RunSummary,
    check_output_folder,
    file_digest,
    job_fingerprint,
    job_paths,
    outputs_up_to_date,
    package_version,
    parameters_json,
    read_sidecar,
    remove_stale_temp_files,
)
from pophealth.runner.share import (
    DEFINITIONS_PAGE,
    ShareError,
    inline_assets,
    link_definitions,
    print_pdf,
)

WORKER_STOP_SECONDS = 15.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class _Planned:
    job: ProfileJob
    paths: JobPaths
    fingerprint: str
    notebook_text: str


def _plan(jobs: list[ProfileJob], out_dir: Path, version: str) -> list[_Planned]:
    """Validate jobs and compute paths and fingerprints (reads each notebook once)."""
    seen_keys: dict[str, ProfileJob] = {}
    seen_paths: dict[Path, ProfileJob] = {}
    notebook_bytes: dict[Path, bytes] = {}
    planned = []
    for job in jobs:
        if job.key in seen_keys:
            raise ValueError(f"Duplicate job key {job.key!r}: job keys must be unique.")
        seen_keys[job.key] = job
        paths = job_paths(out_dir, job)
        if paths.html in seen_paths:
            other = seen_paths[paths.html]
            raise ValueError(
                f"Jobs {other.key!r} and {job.key!r} would write the same file {paths.html}: "
                "area codes must be unique within a level."
            )
        seen_paths[paths.html] = job
        notebook = Path(job.notebook).resolve()
        if notebook not in notebook_bytes:
            if not notebook.is_file():
                raise MissingFileError(
                    f"notebook for {job.key!r} not found: {notebook}. Fix: pass --notebooks "
                    "with the folder holding the profile notebooks, or reinstall pophealth."
                )
            notebook_bytes[notebook] = notebook.read_bytes()
        parameters_json(job.parameters)  # fail early with a clear message
        raw = notebook_bytes[notebook]
        planned.append(
            _Planned(
                job=job,
                paths=paths,
                fingerprint=job_fingerprint(raw, job.parameters, version, job.input_fingerprint),
                notebook_text=raw.decode("utf-8"),
            )
        )
    return planned


def _payload(
    item: _Planned,
    timeout: float,
    retries: int,
    kernel_name: str,
    kernel_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    notebook = Path(item.job.notebook).resolve()
    return {
        "kernel_env": dict(kernel_env or {}),
        "key": item.job.key,
        "notebook_text": item.notebook_text,
        "notebook_path": str(notebook),
        "notebook_dir": str(notebook.parent),
        "parameters": item.job.parameters,
        "title": f"{item.job.area_name} ({item.job.area_code})",
        "plotly_src": item.paths.plotly_src,
        "timeout": timeout,
        "retries": retries,
        "attempts_before": 0,
        "kernel_name": kernel_name,
    }


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _store(
    item: _Planned, result: dict[str, Any], version: str, self_contained: bool = False
) -> JobResult:
    """Write a job's outputs atomically and return its JobResult.

    Order matters for kill-safety: the old sidecar goes first, the new sidecar last, so a
    sidecar only ever describes complete files under their final names.
    """
    job, paths = item.job, item.paths
    _remove(paths.sidecar)
    record = JobResult(
        key=job.key,
        area_code=job.area_code,
        area_name=job.area_name,
        level=job.level,
        status=result["status"],
        seconds=float(result.get("seconds", 0.0)),
        attempts=int(result.get("attempts", 1)),
        fingerprint=item.fingerprint,
        input_fingerprint=job.input_fingerprint,
        headline=dict(job.headline),
        group=job.group,
        timings=dict(result.get("timings") or {}),
    )
    if result["status"] == STATUS_OK:
        if self_contained:
            page = inline_assets(result["html"])
        else:
            # profiles/<level>/<area>.html, as plotly_src: the run folder is two levels up
            page = link_definitions(result["html"], f"../../{DEFINITIONS_PAGE}")
        ipynb = result["ipynb"].encode("utf-8")
        html = page.encode("utf-8")
        atomic_write_text(paths.ipynb, result["ipynb"])
        atomic_write_text(paths.html, page)
        _remove(paths.failed_ipynb)
        sidecar = {
            "key": job.key,
            "fingerprint": item.fingerprint,
            "input_fingerprint": job.input_fingerprint,
            "pophealth_version": version,
            "finished_at": _now(),
            "seconds": round(record.seconds, 4),
            "attempts": record.attempts,
            "ipynb": {"name": paths.ipynb.name, **file_digest(ipynb)},
            "html": {"name": paths.html.name, **file_digest(html)},
        }
        atomic_write_text(paths.sidecar, _json(sidecar))
        record.html_path, record.ipynb_path = paths.html, paths.ipynb
        record.finished_at = sidecar["finished_at"]
    else:
        # Outputs of an older successful run would no longer match this job: remove them.
        _remove(paths.html)
        _remove(paths.ipynb)
        if result.get("ipynb"):
            atomic_write_text(paths.failed_ipynb, result["ipynb"])
            record.failed_ipynb_path = paths.failed_ipynb
        error = result.get("error") or {}
        record.error_cell_index = error.get("cell_index")
        record.error_execution_count = error.get("execution_count")
        record.error_ename = error.get("ename") or "Error"
        record.error_message = error.get("message") or ""
    return record


def _json(data: dict) -> str:
    import json

    return json.dumps(data, indent=2) + "\n"


def _skipped(item: _Planned) -> JobResult:
    sidecar = read_sidecar(item.paths.sidecar) or {}
    return JobResult(
        finished_at=sidecar.get("finished_at"),
        key=item.job.key,
        area_code=item.job.area_code,
        area_name=item.job.area_name,
        level=item.job.level,
        status=STATUS_SKIPPED,
        attempts=0,
        html_path=item.paths.html,
        ipynb_path=item.paths.ipynb,
        fingerprint=item.fingerprint,
        input_fingerprint=item.job.input_fingerprint,
        headline=dict(item.job.headline),
        group=item.job.group,
        seconds=0.0,
    )


def _failed_without_output(item: _Planned, ename: str, message: str, attempts: int) -> dict:
    return {
        "key": item.job.key,
        "status": STATUS_FAILED,
        "ipynb": None,
        "html": None,
        "attempts": attempts,
        "seconds": 0.0,
        "error": {"cell_index": None, "execution_count": None, "ename": ename, "message": message},
    }


# --------------------------------------------------------------------------- local pool
class _Worker:
    def __init__(self, ctx: Any, kernel_name: str) -> None:
        from pophealth.runner.executor import pool_worker_main

        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=pool_worker_main, args=(child_conn, kernel_name), daemon=True
        )
        self.process.start()
        child_conn.close()
        self.item: _Planned | None = None
        self.payload: dict[str, Any] | None = None
        self.sent_at = 0.0
        self.group: str | None = None  # the system of its last job (_GroupedQueue)
        self._asked_to_stop = False

    def send(self, item: _Planned, payload: dict[str, Any]) -> None:
        self.item, self.payload, self.sent_at = item, payload, time.monotonic()
        try:
            self.conn.send(payload)
        except (BrokenPipeError, OSError):
            pass  # the worker died: the pool sees its exit and retries the job on a new one

    def ask_to_stop(self) -> None:
        """Tell the worker to shut its kernel down and exit (:meth:`stop` waits for it)."""
        if self._asked_to_stop:
            return
        self._asked_to_stop = True
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass

    def stop(self) -> None:
        self.ask_to_stop()
        self.process.join(WORKER_STOP_SECONDS)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self.conn.close()

    def terminate(self) -> None:
        """Stop at once, whatever it is doing; its kernel is shut down (the worker's SIGTERM)."""
        self.process.terminate()
        self.process.join(WORKER_STOP_SECONDS)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


class _GroupedQueue:
    """Jobs in order, handed out so that each system's jobs tend to go to one worker.

    A kernel keeps what a system's profiles share (its funnels, peers, team benchmark:
    ``PopHealthData.memo``); a worker takes the next job of the system it last worked on, else
    the first job of a system no other worker is on, else the first job. Every job is still
    run; only the order between workers changes.
    """

    def __init__(self, todo: list[tuple[_Planned, dict[str, Any]]]) -> None:
        self._by_group: dict[str, deque] = {}
        for entry in todo:
            self._by_group.setdefault(entry[0].job.group, deque()).append(entry)

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._by_group.values())

    def take(self, group: str | None, others: set) -> tuple[_Planned, dict[str, Any]]:
        """The next job for a worker last on ``group`` while others are on ``others``."""
        chosen = group if self._by_group.get(group) else None
        if chosen is None:
            chosen = next((g for g in self._by_group if g not in others), None)
        if chosen is None:
            chosen = next(iter(self._by_group))
        jobs = self._by_group[chosen]
        entry = jobs.popleft()
        if not jobs:
            del self._by_group[chosen]
        return entry

    def appendleft(self, entry: tuple[_Planned, dict[str, Any]]) -> None:
        """Put a job back at the front of its system's jobs (a retry)."""
        group = entry[0].job.group
        jobs = self._by_group.setdefault(group, deque())
        jobs.appendleft(entry)
        # a retried system comes first again
        self._by_group = {group: jobs, **{g: j for g, j in self._by_group.items() if g != group}}


def _warm_payload(
    warm_code: str,
    kernel_env: dict | None,
    folder: str | Path | None,
    timeout: float,
    fork_server: Any = None,
) -> dict[str, Any]:
    """What a worker's first message asks: start the kernel and run ``warm_code`` in ``folder``."""
    payload = {
        "warm_code": warm_code,
        "kernel_env": dict(kernel_env or {}),
        "notebook_dir": str(folder) if folder else None,
        "timeout": timeout,
    }
    if fork_server is not None:
        payload["fork_server"] = fork_server.address
    return payload


def _start_fork_server(
    warm_code: str, kernel_env: dict | None, folder: str | Path | None, kernels: int
) -> Any:
    """The run's fork server for ``kernels`` kernels (:mod:`pophealth.runner.kernel_fork`).

    None where forking is not possible or not worth it (one kernel).
    """
    from pophealth.forked import can_fork
    from pophealth.runner.executor import batch_kernel_environment
    from pophealth.runner.kernel_fork import ForkServer

    if kernels < 2 or not can_fork():
        return None
    # the kernels' environment, so the server loads the store as they would
    return ForkServer(warm_code, batch_kernel_environment(kernel_env), folder)


def _start_workers(count: int, kernel_name: str, warm: dict[str, Any] | None) -> list[_Worker]:
    """Start ``count`` local workers; with ``warm``, each starts its kernel and warms it up."""
    ctx = multiprocessing.get_context("spawn")
    pool = [_Worker(ctx, kernel_name) for _ in range(max(1, count))]
    if warm is not None:
        for worker in pool:
            worker.conn.send(warm)
    return pool


def _stop_workers(pool: list[_Worker]) -> None:
    idle = [worker for worker in pool if worker.item is None]
    for worker in idle:  # they shut their kernels down at the same time
        worker.ask_to_stop()
    for worker in pool:
        if worker.item is None:
            worker.stop()
        else:  # interrupted mid-job: do not wait for it
            worker.kill()


def _run_local(
    todo: list[tuple[_Planned, dict[str, Any]]],
    workers: int,
    hard_limit: float,
    kernel_name: str,
    on_result: Any,
    warm: dict[str, Any] | None = None,
    before_jobs: Callable[[], None] | None = None,
    pool: list[_Worker] | None = None,
) -> dict[str, Any]:
    """Run ``todo`` on a pool of local workers; returns what the engine record keeps.

    With ``warm``, each worker first starts its kernel and runs ``warm["warm_code"]``
    (:meth:`WarmKernelExecutor.warm_up`) while this process runs ``before_jobs``; no job is
    sent before ``before_jobs`` has returned. ``pool``: workers already started (and sent
    ``warm``) by :func:`_start_workers`.
    """
    ctx = multiprocessing.get_context("spawn")
    queue = _GroupedQueue(todo)
    if pool is None:
        pool = _start_workers(min(workers, len(todo)), kernel_name, warm)
    warm_ups: list[dict[str, Any]] = []
    try:
        if before_jobs is not None:
            before_jobs()
        if warm is not None:
            # each worker answers its warm-up before its first job (one pipe, in order)
            for worker in pool:
                try:
                    warm_ups.append(worker.conn.recv())
                except (EOFError, OSError):
                    warm_ups.append({"status": "failed", "error": "the worker process died"})
        while queue or any(w.item is not None for w in pool):
            _send_next_jobs(pool, queue)
            busy = [w for w in pool if w.item is not None]
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=1.0)
            finished = []
            for index, worker in enumerate(pool):
                if worker.item is None:
                    continue
                item, payload = worker.item, worker.payload
                assert payload is not None
                result = None
                lost = None
                if worker.conn in ready:
                    try:
                        result = worker.conn.recv()
                    except (EOFError, OSError):
                        lost = "the worker process died"
                elif worker.process.sentinel in ready:
                    lost = f"the worker process died (exit code {worker.process.exitcode})"
                elif time.monotonic() - worker.sent_at > hard_limit:
                    lost = f"the worker did not answer within {hard_limit:g} s and was killed"
                if result is not None:
                    worker.item = worker.payload = None
                    finished.append((item, result))
                elif lost is not None:
                    worker.kill()
                    pool[index] = _Worker(ctx, kernel_name)
                    attempts = int(payload.get("attempts_before", 0)) + 1
                    if attempts <= int(payload.get("retries", 1)):
                        queue.appendleft((item, {**payload, "attempts_before": attempts}))
                    else:
                        on_result(item, _failed_without_output(item, "WorkerLost", lost, attempts))
            # the freed workers start their next jobs before this process writes the outputs
            # (atomic, flushed to disk: ~10 ms a profile), so no kernel waits for the disk
            _send_next_jobs(pool, queue)
            for item, result in finished:
                on_result(item, result)
    finally:
        _stop_workers(pool)
    return {"warm_ups": warm_ups} if warm is not None else {}


def _send_next_jobs(pool: list[_Worker], queue: _GroupedQueue) -> None:
    """Give each idle worker its next job (one of its group's when it can)."""
    for worker in pool:
        if worker.item is None and queue:
            others = {w.group for w in pool if w is not worker and w.item is not None}
            item, payload = queue.take(worker.group, others)
            worker.group = item.job.group
            worker.send(item, payload)


# --------------------------------------------------------------------------- Dask
def _run_dask(
    todo: list[tuple[_Planned, dict[str, Any]]], scheduler: Any, on_result: Any
) -> dict[str, Any]:
    from distributed import Client, as_completed

    from pophealth.runner.executor import dask_run_job

    own_client = not isinstance(scheduler, Client)
    client = Client(scheduler) if own_client else scheduler
    try:
        by_key = {payload["key"]: item for item, payload in todo}
        futures = client.map(dask_run_job, [payload for _, payload in todo], pure=False)
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - worker lost beyond dask's own retries
                index = futures.index(future)
                item = todo[index][0]
                on_result(item, _failed_without_output(item, type(exc).__name__, str(exc), 1))
                continue
            on_result(by_key[result["key"]], result)
        return {"dask_scheduler": client.scheduler.address}
    finally:
        if own_client:
            client.close()


def _warm_up_summary(warm_ups: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The engine record's account of the kernels' warm-ups (seconds, any failure)."""
    if not warm_ups:
        return {}
    summary: dict[str, Any] = {
        "warm_up_seconds": [round(float(w.get("seconds", 0.0)), 2) for w in warm_ups]
    }
    errors = [w["error"] for w in warm_ups if w.get("error")]
    if errors:
        summary["warm_up_errors"] = errors
    # how each kernel started: forked from the run's warmed-up fork server, or launched
    summary["kernels_forked"] = sum(1 for w in warm_ups if w.get("forked"))
    fork_errors = sorted({w["fork_error"] for w in warm_ups if w.get("fork_error")})
    if fork_errors:
        summary["kernel_fork_errors"] = fork_errors
    server_errors = sorted({e for w in warm_ups for e in w.get("fork_server_errors") or []})
    if server_errors:
        summary["fork_server_errors"] = server_errors
    return summary


def _print_pdfs(results: list[JobResult], workers: int) -> dict[str, str]:
    """Print every built profile whose PDF is missing or older than its HTML; return errors."""
    from concurrent.futures import ThreadPoolExecutor

    todo = []
    for record in results:
        if record.status not in (STATUS_OK, STATUS_SKIPPED) or record.html_path is None:
            continue
        target = record.html_path.with_suffix(".pdf")
        if target.is_file() and target.stat().st_mtime >= record.html_path.stat().st_mtime:
            continue
        todo.append((record, target))

    def one(pair: tuple[JobResult, Path]) -> tuple[str, str | None]:
        record, target = pair
        try:
            print_pdf(record.html_path, target)  # type: ignore[arg-type]
        except ShareError as exc:
            return record.key, str(exc)
        return record.key, None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(one, todo))
    return {key: error for key, error in outcomes if error}


# --------------------------------------------------------------------------- public API
def _write_definitions_page(out_dir: Path) -> None:
    """The run folder's one page of every catalogue indicator's definition."""
    from pophealth.indicators import load_catalogue
    from pophealth.profile_frames import definitions_frame
    from pophealth.tables import definitions_page

    frame = definitions_frame(load_catalogue()["id"])
    atomic_write_text(out_dir / DEFINITIONS_PAGE, definitions_page(frame))


def run_profiles(
    jobs: Iterable[ProfileJob] | Callable[[], Iterable[ProfileJob]],
    out_dir: Path | str,
    *,
    workers: int = 2,
    timeout: float = 300,
    force: bool = False,
    scheduler: Any = None,
    retries: int = 1,
    progress: bool = True,
    run_info: dict | None = None,
    title: str | Callable[[], str] = "pophealth profiles",
    kernel_name: str = "python3",
    self_contained: bool = False,
    pdf: bool = False,
    kernel_env: dict[str, str] | None = None,
    warm_code: str | None = None,
    before_jobs: Callable[[], dict | None] | None = None,
    warm_dir: str | Path | None = None,
    warm_ready_code: str | None = None,
    fork_kernels: bool = True,
    while_kernels_start: Callable[[], dict | None] | None = None,
) -> RunSummary:
    """Execute a parameterised notebook per area on warm kernels; write HTML, index, manifest.

    Args:
        jobs: The profile jobs (unique keys; unique area codes within a level), or a function
            returning them: with ``warm_code`` and the local pool, the workers start (and their
            kernels warm up) first, while this process works out the jobs (a batch run loads
            its store meanwhile). What it raises stops the workers and is raised here.
        out_dir: Run folder (created if needed).
        workers: Local worker processes, each with one warm kernel (ignored with ``scheduler``).
        timeout: Seconds allowed per notebook (wall clock for all its cells; also nbclient's
            per-cell timeout). On timeout the job fails and that kernel is replaced.
        force: Re-run jobs even when their outputs are up to date.
        scheduler: ``"tcp://host:port"`` of a Dask scheduler, or a ``distributed.Client``, to
            run the jobs on an existing Dask cluster instead of the local pool.
        retries: Extra attempts after the kernel or worker died (not after notebook errors).
        progress: Show a tqdm progress bar.
        run_info: Caller's details (data release, CLI args...) merged into manifest.json.
        title: Title of index.html (or a function giving it, asked after the jobs).
        kernel_name: Jupyter kernel spec name.
        self_contained: Write each page with plotly.js and the stylesheet inlined, so one
            file works alone (e.g. emailed); the default links the run folder's assets.
            Make it part of each job's ``input_fingerprint`` so switching rebuilds pages.
        pdf: Also print each profile to an A4 PDF beside its HTML (needs Chromium).
        kernel_env: Environment variables for the kernels, e.g.
            ``{SHARED_TABLES_ENV: folder}`` so they read the store-wide tables this process
            computed (:mod:`pophealth.shared_tables`) instead of each building them.
        warm_code: Python run in each local worker's kernel as soon as it starts, before
            the first job (e.g. import the package and load the store), so kernels warm up
            while ``before_jobs`` runs here. Ignored with ``scheduler``.
        before_jobs: Work this process does before any job is sent (e.g. writing the tables
            ``kernel_env`` points the kernels at); runs even when every job is up to date.
            What it returns is merged into ``run_info`` for the manifest.
        warm_dir: Folder the kernels warm up in when ``jobs`` is a function (otherwise the
            first job's notebook folder).
        warm_ready_code: Python run once ``before_jobs`` has returned, before the first
            kernel is forked (e.g. building the tables that come from the shared ones).
        while_kernels_start: Work this process does after ``before_jobs``, while the fork
            server runs ``warm_ready_code`` and forks the kernels (e.g. writing workbooks the
            kernels do not read); no job is sent before it returns. What it returns is merged
            into ``run_info``.
        fork_kernels: With ``warm_code``, the local pool and two or more workers, fork the
            kernels from one process that has run ``warm_code`` and ``warm_ready_code``
            (:mod:`pophealth.runner.kernel_fork`) instead of launching each and warming it up;
            kernels are launched as usual where forking is not possible.

    Returns:
        A :class:`RunSummary`; ``summary.failed`` > 0 means the CLI should exit non-zero.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir).resolve()
    check_output_folder(out_dir)  # a clear error before any kernel starts
    remove_stale_temp_files(out_dir)
    started_at, start = _now(), time.perf_counter()
    version = package_version()
    early_pool, warm, fork_server = None, None, None

    def give_up() -> None:
        for worker in early_pool or []:
            worker.terminate()  # still warming up: the error need not wait for them
        if fork_server is not None:
            fork_server.stop()

    if callable(jobs):
        if warm_code and scheduler is None:
            # the kernels warm up while the jobs are worked out (e.g. the store loaded)
            if fork_kernels:
                fork_server = _start_fork_server(warm_code, kernel_env, warm_dir, workers)
            warm = _warm_payload(warm_code, kernel_env, warm_dir, timeout, fork_server)
            early_pool = _start_workers(workers, kernel_name, warm)
        try:
            job_list = list(jobs())
        except BaseException:
            give_up()
            raise
    else:
        job_list = list(jobs)
    if callable(title):
        title = title()
    try:
        planned = _plan(job_list, out_dir, version)
        # the largest asset first: a folder that cannot hold it fails the run before anything
        # else is written (the stylesheets, which need an exporter, wait for prepare_run)
        install_plotly_js(out_dir)
    except BaseException:
        give_up()
        raise

    results: dict[str, JobResult] = {}
    todo = []
    for item in planned:
        if not force and outputs_up_to_date(item.paths, item.fingerprint):
            results[item.job.key] = _skipped(item)
        else:
            todo.append((item, _payload(item, timeout, retries, kernel_name, kernel_env)))

    bar = tqdm(total=len(planned), disable=not progress, unit="profile", desc="profiles")
    bar.update(len(results))

    def on_result(item: _Planned, result: dict[str, Any]) -> None:
        record = _store(item, result, version, self_contained)
        results[item.job.key] = record
        bar.update(1)
        failed = sum(1 for r in results.values() if r.status == STATUS_FAILED)
        if failed:
            bar.set_postfix(failed=failed)

    engine: dict[str, Any] = {
        "mode": "dask" if scheduler is not None else "local",
        "workers": workers,
        "timeout": timeout,
        "retries": retries,
        "force": force,
        "kernel_name": kernel_name,
        "self_contained": self_contained,
        "pdf": pdf,
    }
    run_info = dict(run_info or {})

    def prepare_run() -> None:
        try:
            if before_jobs is not None:
                run_info.update(before_jobs() or {})
        except BaseException:
            if fork_server is not None:
                fork_server.stop()  # first: the workers waiting on it then stop at once
            raise
        if fork_server is not None:
            fork_server.ready(warm_ready_code)  # what the kernels read now exists
        if while_kernels_start is not None:
            run_info.update(while_kernels_start() or {})
        # while the kernels are made (pages link them; nothing reads them before)
        install_page_stylesheets(out_dir)

    try:
        if early_pool is not None and not todo:
            _stop_workers(early_pool)  # every profile is up to date
            early_pool = None
        if fork_server is not None and not todo:
            fork_server.stop()
            fork_server = None
        if todo and scheduler is None:
            hard_limit = timeout * (retries + 1) + 180.0
            if early_pool is None and warm_code:
                folder = todo[0][1]["notebook_dir"]
                if fork_kernels:
                    fork_server = _start_fork_server(
                        warm_code, kernel_env, folder, min(workers, len(todo))
                    )
                warm = _warm_payload(warm_code, kernel_env, folder, timeout, fork_server)
            if fork_server is not None:
                for _, payload in todo:  # a replaced kernel is forked again
                    payload["fork_server"] = fork_server.address
            local = _run_local(
                todo, workers, hard_limit, kernel_name, on_result, warm, prepare_run, early_pool
            )
            engine.update(_warm_up_summary(local.get("warm_ups")))
        else:
            prepare_run()
            if todo:
                engine.update(_run_dask(todo, scheduler, on_result))
        if pdf:
            engine["pdf_errors"] = _print_pdfs(list(results.values()), workers)
    finally:
        bar.close()
        if fork_server is not None:
            fork_server.stop()  # after the workers (and the kernels it forked) have stopped
        ordered = []
        for item in planned:
            record = results.get(item.job.key)
            if record is None:
                record = JobResult(
                    key=item.job.key,
                    area_code=item.job.area_code,
                    area_name=item.job.area_name,
                    level=item.job.level,
                    status=STATUS_NOT_RUN,
                    fingerprint=item.fingerprint,
                    input_fingerprint=item.job.input_fingerprint,
                    headline=dict(item.job.headline),
                    group=item.job.group,
                )
            ordered.append(record)
        seconds = time.perf_counter() - start
        finished_at = _now()
        ran = [r for r in ordered if r.status in (STATUS_OK, STATUS_FAILED)]
        engine["seconds_per_executed_profile"] = round(seconds / len(ran), 4) if ran else None
        # A partial re-run (--levels/--areas) must not drop the folder's other profiles.
        carried = earlier_results(out_dir, {record.key for record in ordered})
        record = RunRecord(started_at, finished_at, seconds, version, engine, run_info)
        index_path, manifest_path = write_index_and_manifest(
            out_dir, ordered + carried, title=title, record=record
        )
        _write_definitions_page(out_dir)
    return RunSummary(
        out_dir=out_dir,
        results=ordered,
        index_path=index_path,
        manifest_path=manifest_path,
        started_at=started_at,
        finished_at=finished_at,
        seconds=seconds,
    )


__all__ = ["run_profiles", "STATUS_OK", "STATUS_FAILED", "STATUS_SKIPPED"]
