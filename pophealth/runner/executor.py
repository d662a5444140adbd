"""A warm Jupyter kernel that executes many parameterised notebooks one after another.

One :class:`WarmKernelExecutor` lives in each worker process (a local pool process or a Dask
worker). It starts one ipykernel once, builds one nbconvert HTML exporter once, and for each
job: injects the parameters with papermill's ``parameterize_notebook``, sends the kernel one
request that resets its namespace (``get_ipython().reset(new_session=True)``) and runs the code
cells one by one (:func:`pophealth.runner.batch_kernel.run_notebook`), files each output under
its cell with nbclient's message handling, and exports HTML.

The batch kernel is an ordinary ipykernel with four settings (:data:`BATCH_KERNEL_ARGUMENTS`
and :data:`pophealth.charts.FIGURE_HTML_ENV`): no input history, no output cache, no empty
stream flushes (:mod:`pophealth.runner.batch_kernel`), and figures sent as Plotly JSON plus
layout metadata, their page fragment written at export
(:func:`pophealth.runner.html.export_html`). The saved notebooks are what they were: figures as
Plotly JSON, which JupyterLab draws.

What a reset does NOT undo (notebooks must set what they use, every time): imported modules,
``pd.options``, plotly templates/renderers, random seeds, matplotlib state, ``functools`` caches,
environment variables and the working directory (the executor chdirs to the notebook's folder).

Jobs are plain dicts ("payloads") so they pickle cheaply to any process; results are plain dicts
holding the executed notebook and HTML as text, which the caller writes atomically.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from pophealth.errors import PopHealthError

KERNEL_STARTUP_TIMEOUT = 120.0

#: IPython settings of the batch kernel. A batch notebook has no use for its input history
#: (an SQLite write per cell: a tenth of a profile's kernel time) or the output cache, whose
#: flush on every namespace reset runs a full garbage collection of the loaded store.
BATCH_KERNEL_ARGUMENTS = (
    "--HistoryManager.enabled=False",
    "--InteractiveShell.cache_size=0",
    # no pause after each cell for the I/O thread: nbclient reads every output up to the
    # cell's idle status whatever the timing (~1.4 ms a cell as slept)
    "--IPythonKernel._execute_sleep=0",
    # stream flushes with nothing to send return at once (pophealth.runner.batch_kernel)
    "--IPKernelApp.exec_lines=from pophealth.runner.batch_kernel import install; install()",
)


class KernelDied(PopHealthError):
    """The kernel process died while executing a notebook."""

    def __init__(self, cell_index: int | None, partial_nb: Any) -> None:
        super().__init__("Kernel died")
        self.cell_index = cell_index
        self.partial_nb = partial_nb


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def output_from_display_msg(msg: dict[str, Any]) -> Any:
    """A notebook output from a kernel's IOPub message, as ``nbformat.v4.output_from_msg``.

    For ``display_data`` and ``execute_result`` (every figure and table of a profile) the
    output's ``data`` and ``metadata`` are wrapped as they came, not converted node by node
    and validated one output at a time: nbformat's conversion walks every number of a
    figure's JSON (every point of a map), a tenth of the runner's own time per profile. The
    exported notebook is still validated as a whole, once (``optimistic_validation`` in
    :func:`pophealth.runner.html.make_html_exporter`). Other messages go to nbformat.
    """
    from nbformat import NotebookNode
    from nbformat.v4 import output_from_msg

    msg_type = msg["header"]["msg_type"]
    if msg_type not in ("display_data", "execute_result"):
        return output_from_msg(msg)
    content = msg["content"]
    output = NotebookNode(output_type=msg_type)
    dict.__setitem__(output, "data", NotebookNode(content["data"]))
    dict.__setitem__(output, "metadata", NotebookNode(content["metadata"]))
    if msg_type == "execute_result":
        dict.__setitem__(output, "execution_count", content["execution_count"])
    return output


def timestamp_of(msg: dict[str, Any]) -> str:
    """A message's time as nbclient records it in ``metadata.execution``.

    The header's ``date`` is text here (:func:`_keep_message_dates_as_text`); nbclient's
    format is ``%Y-%m-%dT%H:%M:%S.%fZ`` in UTC.
    """
    date = msg.get("header", {}).get("date")
    if isinstance(date, str):
        try:
            date = datetime.fromisoformat(date)
        except ValueError:
            date = None
    if isinstance(date, datetime):
        if date.tzinfo is not None:
            date = date.astimezone(UTC).replace(tzinfo=None)
        return date.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return datetime.now(UTC).replace(tzinfo=None).isoformat() + "Z"


def _keep_message_dates_as_text() -> None:
    """Leave the dates in messages' headers as text (jupyter_client parses every one).

    Parsing the header, parent header and metadata dates of each message was a sixth of a
    worker's own time per profile; only the cell boundaries' times are used
    (:func:`timestamp_of` parses those). Done in the runner's worker processes only.
    """
    import jupyter_client.session

    jupyter_client.session.extract_dates = _unchanged


def _unchanged(value: Any) -> Any:
    return value


def _install_fast_outputs() -> None:
    """Make nbclient build display outputs with :func:`output_from_display_msg`.

    Done in the runner's worker processes only (by :class:`WarmKernelExecutor`).
    """
    import nbclient.client

    nbclient.client.output_from_msg = output_from_display_msg


def batch_kernel_environment(kernel_env: dict[str, str] | None) -> dict[str, str]:
    """What a batch kernel's environment adds to the worker's.

    ``kernel_env`` and the setting that leaves figures' page fragments to the export
    (:mod:`pophealth.runner.html`). The fork server (:mod:`pophealth.runner.kernel_fork`)
    loads the store in it too.
    """
    from pophealth.charts import FIGURE_HTML_ENV

    return {**(kernel_env or {}), FIGURE_HTML_ENV: "export"}


class WarmKernelExecutor:
    """Own one long-lived kernel and one HTML exporter; execute jobs on them sequentially.

    Not thread-safe on its own: callers that share one executor between threads must hold
    :attr:`lock` (the Dask entry point does).
    """

    def __init__(self, kernel_name: str = "python3") -> None:
        """Create the executor; the kernel starts lazily on the first job.

        Args:
            kernel_name: Jupyter kernel spec name.
        """
        from pophealth.runner.html import make_html_exporter

        _install_fast_outputs()
        _keep_message_dates_as_text()
        self.kernel_name = kernel_name
        # extra environment of the kernel, from the first job's ``kernel_env`` (e.g. the run's
        # shared store-wide tables, pophealth.shared_tables)
        self.kernel_env: dict[str, str] = {}
        # the run's fork server (pophealth.runner.kernel_fork), from the first payload: kernels
        # are forked from its warmed-up process instead of launched
        self.fork_server: str | None = None
        self.fork_timeout = KERNEL_STARTUP_TIMEOUT
        self.lock = threading.Lock()
        self.kernel_starts = 0
        self._loop = asyncio.new_event_loop()
        self._exporter = make_html_exporter()
        self._km: Any = None
        self._kc: Any = None
        self._ipc_dir: str | None = None
        self._language_info: dict | None = None

    # ------------------------------------------------------------------ kernel lifecycle
    def _kernel_settings(self, payload: dict[str, Any]) -> None:
        """The kernel's environment and fork server, from the payload that starts it."""
        self.kernel_env = dict(payload.get("kernel_env") or {})
        self.fork_server = payload.get("fork_server")
        self.fork_timeout = float(payload.get("timeout", KERNEL_STARTUP_TIMEOUT))

    async def _start_kernel(self) -> None:
        from pophealth.runner.kernel_fork import ForkedKernelManager

        if os.name == "posix":
            # IPC sockets in a private folder: kernels started at the same moment cannot
            # collide the way TCP port picking can.
            self._ipc_dir = tempfile.mkdtemp(prefix="phk-", dir="/tmp")
            km = ForkedKernelManager(
                kernel_name=self.kernel_name,
                transport="ipc",
                ip=os.path.join(self._ipc_dir, "k"),
            )
            km.connection_file = os.path.join(self._ipc_dir, "kernel.json")
        else:  # pragma: no cover - Windows has no IPC transport
            km = ForkedKernelManager(kernel_name=self.kernel_name)
        km.fork_server, km.fork_timeout = self.fork_server, self.fork_timeout
        env = {**os.environ, **batch_kernel_environment(self.kernel_env)}
        await km.start_kernel(extra_arguments=list(BATCH_KERNEL_ARGUMENTS), env=env)
        kc = km.client()
        kc.start_channels()
        try:
            await kc.wait_for_ready(timeout=KERNEL_STARTUP_TIMEOUT)
        except RuntimeError:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)
            raise
        self._km, self._kc = km, kc
        self.kernel_starts += 1
        msg_id = kc.kernel_info()
        reply = await kc.get_shell_msg(timeout=KERNEL_STARTUP_TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg_id:
            self._language_info = reply["content"].get("language_info")

    async def _stop_kernel(self) -> None:
        km, kc = self._km, self._kc
        self._km = self._kc = None
        try:
            if kc is not None:
                kc.stop_channels()
            if km is not None and km.has_kernel:
                await km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001 - a broken kernel must not stop the batch
            pass
        finally:
            if self._ipc_dir:
                shutil.rmtree(self._ipc_dir, ignore_errors=True)
                self._ipc_dir = None

    async def _ensure_kernel(self) -> None:
        if self._km is None or not await self._km.is_alive():
            await self._stop_kernel()
            await self._start_kernel()

    def replace_kernel(self) -> None:
        """Kill the current kernel and start a fresh one (after a timeout or a crash)."""
        self._loop.run_until_complete(self._stop_kernel())
        self._loop.run_until_complete(self._start_kernel())

    def close(self) -> None:
        """Shut the kernel down and close the event loop."""
        if self._loop.is_closed():
            return
        self._loop.run_until_complete(self._stop_kernel())
        self._loop.close()

    @property
    def kernel_pid(self) -> int | None:
        """PID of the running kernel process (None when not started)."""
        provisioner = getattr(self._km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        return getattr(process, "pid", None)

    # ------------------------------------------------------------------ execution
    async def _run_silently(self, code: str, timeout: float, late: str) -> dict[str, Any]:
        """Run ``code`` silently in the kernel; its execute reply's content.

        Raises:
            TimeoutError: No reply within ``timeout`` seconds (``late`` says what was late).
        """
        msg_id = self._kc.execute(code, silent=True, store_history=False)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(late)
            reply = await self._kc.get_shell_msg(timeout=remaining)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]

    async def _run_cells(
        self, nb: Any, timeout: float, progress: dict[str, Any], cwd: str | None = None
    ) -> None:
        """Execute the notebook's code cells in one request; ``timeout`` seconds for them all.

        The kernel runs them one by one (:func:`pophealth.runner.batch_kernel.run_notebook`,
        after resetting the namespace) and marks where each starts and ends on IOPub; each
        output goes to the cell it came from through nbclient's own message handling
        (``NotebookClient.process_message``), so outputs, execution counts and timing metadata
        are what nbclient would record cell by cell. Cells nbclient skips (empty, tagged
        ``skip-execution``) are skipped; a cell tagged ``raises-exception`` may fail.

        Raises:
            CellExecutionError: A cell failed (``progress['cell_index']`` is that cell).
            CellTimeoutError: The time ran out (the cell then running is in ``progress``).
            KernelDied: The kernel died (the cell then running is in ``progress``).
        """
        import json
        import queue

        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError

        from pophealth.runner.batch_kernel import CELL_MESSAGE

        client = NotebookClient(
            nb, km=self._km, kernel_name=self.kernel_name, allow_errors=False, record_timing=True
        )
        client.kc = self._kc
        client.reset_execution_trackers()
        cells = [
            [index, cell.source, "raises-exception" in cell.metadata.get("tags", [])]
            for index, cell in enumerate(nb.cells)
            if cell.cell_type == "code"
            and cell.source.strip()
            and client.skip_cells_with_tag not in cell.metadata.get("tags", [])
        ]
        may_fail = {index for index, _, errors_allowed in cells if errors_allowed}
        spec = json.dumps({"cwd": cwd if cwd and os.path.isdir(cwd) else None, "cells": cells})
        driver = "__import__('pophealth.runner.batch_kernel').runner.batch_kernel.run_notebook"
        code = f"{driver}({spec!r})"
        deadline = time.monotonic() + timeout
        msg_id = self._kc.execute(code, silent=False, store_history=False, allow_stdin=False)
        unfinished = [index for index, _, _ in cells]  # the first is the one running
        progress["cell_index"] = unfinished[0] if unfinished else None
        cell, index, failed = None, None, None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CellTimeoutError(
                    f"notebook time limit reached in cell {progress['cell_index']}"
                )
            try:
                msg = await self._kc.get_iopub_msg(timeout=min(remaining, 1.0))
            except queue.Empty:
                if not await self._km.is_alive():
                    raise KernelDied(progress["cell_index"], nb) from None
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            msg_type, content = msg["msg_type"], msg["content"]
            if msg_type == CELL_MESSAGE:
                when = timestamp_of(msg)
                ended, started = content["ended"], content["started"]
                if ended is not None:
                    cell.metadata["execution"]["shell.execute_reply"] = when
                    cell.metadata["execution"]["iopub.status.idle"] = when
                    unfinished.remove(ended["index"])
                    progress["cell_index"] = unfinished[0] if unfinished else ended["index"]
                    if ended["status"] == "error" and ended["index"] not in may_fail:
                        failed = (cell, ended)
                if started is not None:
                    index = started["index"]
                    cell = nb.cells[index]
                    cell.outputs = []
                    cell["execution_count"] = started["execution_count"]
                    client.clear_before_next_output = False
                    cell.metadata["execution"] = {
                        "iopub.status.busy": when,
                        "iopub.execute_input": when,
                    }
                continue
            if msg_type == "status":
                if content["execution_state"] == "idle":
                    break
                continue
            if msg_type == "execute_input":
                continue
            if cell is None:  # the request failed before any cell (e.g. pophealth missing)
                if msg_type == "error":
                    raise RuntimeError(
                        f"the kernel could not run the notebook: {content.get('ename')}: "
                        f"{content.get('evalue')}"
                    )
                continue
            client.process_message(msg, cell, index)
        await self._reply_to(msg_id, deadline)
        if failed is not None:
            progress["cell_index"] = failed[1]["index"]
            raise CellExecutionError.from_cell_and_msg(*failed)

    async def _reply_to(self, msg_id: str, deadline: float) -> dict[str, Any]:
        """The shell reply to request ``msg_id`` (read so the channel holds no stale replies)."""
        from nbclient.exceptions import CellTimeoutError

        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CellTimeoutError("no reply from the kernel in time")
            reply = await self._kc.get_shell_msg(timeout=remaining)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def warm_up(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Start the kernel and run ``payload['warm_code']`` in it before the first job arrives.

        A batch run sends this as soon as its workers exist, so the kernel imports and loads the
        store while the run's own process is still busy (shared tables, workbooks). The code
        runs silently in the notebook folder; what it builds is kept by the modules it uses
        (e.g. :func:`pophealth.load`'s cache), not by the namespace, which each job resets. A
        failed warm-up is reported, not raised: the first job then shows the real error.

        Args:
            payload: ``warm_code``, ``kernel_env`` (the kernel's extra environment),
                ``notebook_dir`` and ``timeout`` (seconds allowed).

        Returns:
            ``status`` ("ok" or "failed"), ``seconds``, ``error`` (a message or None),
            ``forked`` (the kernel came from the run's fork server), ``fork_error`` (why it
            was launched instead, when there was a server) and ``fork_server_errors`` (what the
            server's warm-up and ready code raised).
        """
        started = time.perf_counter()
        if self._km is None:
            self._kernel_settings(payload)
        try:
            self._loop.run_until_complete(self._warm_up(payload))
            status, error = "ok", None
        except Exception as exc:  # noqa: BLE001 - the first job reports the real error
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            if isinstance(exc, TimeoutError):  # still busy: the first job gets a fresh kernel
                self._loop.run_until_complete(self._stop_kernel())
        fork_error = getattr(self._km, "fork_error", None) if self.fork_server else None
        return {
            "status": status,
            "seconds": time.perf_counter() - started,
            "error": error,
            "forked": bool(self._km is not None and self.fork_server and not fork_error),
            "fork_error": fork_error,
            "fork_server_errors": list(getattr(self._km, "server_errors", None) or []),
        }

    async def _warm_up(self, payload: dict[str, Any]) -> None:
        await self._ensure_kernel()
        code = payload["warm_code"]
        cwd = payload.get("notebook_dir")
        if cwd and os.path.isdir(cwd):
            code = f"import os as _ph_os; _ph_os.chdir({cwd!r}); del _ph_os\n" + code
        content = await self._run_silently(
            code,
            float(payload.get("timeout", 300)),
            "the kernel's warm-up did not finish in time",
        )
        if content["status"] != "ok":
            raise RuntimeError(f"{content.get('ename')}: {content.get('evalue')}")

    def run_job(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Execute one job payload, retrying once on a dead kernel (see ``payload['retries']``).

        Args:
            payload: Dict with ``key, notebook_text, notebook_dir, parameters, title,
                plotly_src, timeout, retries, attempts_before`` and optionally ``kernel_env``
                (environment variables for the kernel, used when the job starts one).

        Returns:
            Result dict: ``key, status, seconds, attempts, ipynb, html, error, kernel_pid``.
        """
        started = time.perf_counter()
        if self._km is None:  # the kernel starts with this job: its environment
            self._kernel_settings(payload)
        attempts = int(payload.get("attempts_before", 0))
        retries = int(payload.get("retries", 1))
        while True:
            attempts += 1
            try:
                result = self._loop.run_until_complete(self._execute(payload))
            except KernelDied as died:
                self.replace_kernel()
                if attempts <= retries:
                    continue
                result = self._failure(
                    died.partial_nb,
                    died.cell_index,
                    "DeadKernelError",
                    f"the kernel died while executing cell {died.cell_index} "
                    f"(attempt {attempts}); it was restarted",
                )
            result["attempts"] = attempts
            result["seconds"] = time.perf_counter() - started
            result["kernel_pid"] = self.kernel_pid
            return result

    async def _execute(self, payload: dict[str, Any]) -> dict[str, Any]:
        import nbformat
        from nbclient.exceptions import CellExecutionError, CellTimeoutError
        from papermill.parameterize import parameterize_notebook

        from pophealth.runner.html import export_html

        timeout = float(payload["timeout"])
        nb = nbformat.reads(payload["notebook_text"], as_version=4)
        for cell in nb.cells:  # as papermill's load_notebook_node does
            cell.metadata.setdefault("tags", [])
            cell.metadata.setdefault("papermill", {})
        nb.metadata["papermill"] = nbformat.NotebookNode(
            {
                "default_parameters": {},
                "parameters": {},
                "environment_variables": {},
                "input_path": payload.get("notebook_path"),
                "start_time": _now(),
                "end_time": None,
                "exception": None,
            }
        )
        language = nb.metadata.get("kernelspec", {}).get("language") or "python"
        nb = parameterize_notebook(
            nb, payload["parameters"], kernel_name=self.kernel_name, language=language
        )
        await self._ensure_kernel()
        if self._language_info:
            nb.metadata["language_info"] = self._language_info
        progress: dict[str, Any] = {"cell_index": None}
        execute_started = time.perf_counter()
        try:
            await self._run_cells(nb, timeout, progress, payload.get("notebook_dir"))
        except CellExecutionError as exc:
            return self._failure(nb, progress["cell_index"], exc.ename, str(exc.evalue))
        except (CellTimeoutError, TimeoutError):
            await self._stop_kernel()  # interrupting is not enough for C loops; start afresh
            return self._failure(
                nb,
                progress["cell_index"],
                "TimeoutError",
                f"timed out: the notebook exceeded the {timeout:g} s limit while cell "
                f"{progress['cell_index']} was running",
            )
        nb.metadata.papermill["end_time"] = _now()
        export_started = time.perf_counter()
        html = export_html(self._exporter, nb, payload["title"], payload["plotly_src"])
        drop_duplicate_figure_html(nb)
        timings = {
            "execute_seconds": round(export_started - execute_started, 4),
            "export_seconds": round(time.perf_counter() - export_started, 4),
        }
        return {
            "key": payload["key"],
            "status": "ok",
            "ipynb": compact_notebook_text(nb),
            "html": html,
            "error": None,
            "timings": timings,
        }

    def _failure(self, nb: Any, cell_index: int | None, ename: str, message: str) -> dict:
        import nbformat

        execution_count = None
        if nb is not None and cell_index is not None and cell_index < len(nb.cells):
            execution_count = nb.cells[cell_index].get("execution_count")
        ipynb = None
        if nb is not None:
            nb.metadata.setdefault("papermill", {})["exception"] = True
            nb.metadata["papermill"]["end_time"] = _now()
            ipynb = nbformat.writes(nb)
        return {
            "key": None,
            "status": "failed",
            "ipynb": ipynb,
            "html": None,
            "error": {
                "cell_index": cell_index,
                "execution_count": execution_count,
                "ename": ename,
                "message": message,
            },
        }


PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"


def drop_duplicate_figure_html(nb: Any) -> int:
    """Drop the ``text/html`` copy of every plotly figure output from an exported notebook.

    A figure output carries the figure twice: as Plotly JSON (JupyterLab draws that) and as an
    HTML fragment with the same JSON inside (only the HTML export uses it, and it has run
    already). The saved ``.ipynb`` keeps the JSON, halving its size. Changes ``nb`` in place
    (the executor's own copy, after export); returns how many outputs were trimmed.
    """
    trimmed = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data and PLOTLY_MIMETYPE in data and "text/html" in data:
                del data["text/html"]
                trimmed += 1
    return trimmed


def compact_notebook_text(nb: Any) -> str:
    """The notebook as valid ``.ipynb`` JSON without indentation.

    Half the size of nbformat's one-space indent, which puts every number of a figure on its
    own line; nbformat and JupyterLab read it the same. Written with orjson straight from the
    executed notebook: ``nbformat.writes`` deep-copies the notebook and encodes it with
    Python's indenting JSON encoder, a fifth of a profile's run time. The outputs are
    nbclient's (``nbformat.v4.output_from_msg``); ``tests/test_runner*.py`` validate saved
    notebooks against the nbformat schema. Changes ``nb`` in place (transient fields are
    dropped, as nbformat does), like :func:`drop_duplicate_figure_html`.
    """
    import orjson
    from nbformat.v4.rwbase import strip_transient

    return orjson.dumps(strip_transient(nb), option=orjson.OPT_SORT_KEYS).decode("utf-8")


def run_job_safely(executor: WarmKernelExecutor, payload: dict[str, Any]) -> dict[str, Any]:
    """Run a job, turning any engine error (not a notebook error) into a failed result."""
    started = time.perf_counter()
    try:
        result = executor.run_job(payload)
    except Exception as exc:  # noqa: BLE001 - report, keep the worker alive
        try:
            executor.replace_kernel()
        except Exception:  # noqa: BLE001
            pass
        result = {
            "status": "failed",
            "ipynb": None,
            "html": None,
            "attempts": int(payload.get("attempts_before", 0)) + 1,
            "seconds": time.perf_counter() - started,
            "kernel_pid": None,
            "error": {
                "cell_index": None,
                "execution_count": None,
                "ename": type(exc).__name__,
                "message": f"runner error: {exc}\n{traceback.format_exc(limit=5)}",
            },
        }
    result["key"] = payload["key"]
    return result


# ---------------------------------------------------------------------- Dask entry point
_DASK_EXECUTORS: dict[int, WarmKernelExecutor] = {}
_DASK_LOCK = threading.Lock()


def dask_run_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Run a job on a Dask worker using that worker process's single cached warm kernel.

    The executor is created on first use and cached per process (so each Dask worker process
    holds ONE kernel); with several threads per worker, jobs on that worker run one at a time.
    """
    with _DASK_LOCK:
        executor = _DASK_EXECUTORS.get(os.getpid())
        if executor is None:
            skip_uri_grammar()
            executor = WarmKernelExecutor(kernel_name=payload.get("kernel_name", "python3"))
            _DASK_EXECUTORS[os.getpid()] = executor
            import atexit

            atexit.register(executor.close)
    with executor.lock:
        return run_job_safely(executor, payload)


# ---------------------------------------------------------------------- local pool worker
def skip_uri_grammar() -> None:
    """Keep jsonschema from building its optional URI grammar in a runner process.

    nbformat imports jsonschema, whose ``uri`` format checker builds a Lark grammar
    (``rfc3987_syntax``) as it is imported: 0.9 s of every worker's start, 90% of importing
    nbformat. Notebook validation never checks formats (nbformat passes no format checker),
    so a worker marks the module absent, as jsonschema allows, before importing nbformat.
    Only runner worker processes do this; a process that already imported it keeps it.
    """
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def _exit_on_terminate(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def pool_worker_main(conn: Any, kernel_name: str) -> None:
    """Entry point of a local pool worker process: receive payloads, send results.

    Exits (shutting its kernel down) on ``None`` or when the parent's pipe closes, e.g. after
    the parent was killed. Ctrl-C is left to the parent, which stops workers itself.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a parent that gives up on its workers (e.g. the jobs could not be worked out while they
    # warmed up) terminates them: leave through ``finally``, which shuts the kernel down
    signal.signal(signal.SIGTERM, _exit_on_terminate)
    skip_uri_grammar()
    executor = None
    try:
        executor = WarmKernelExecutor(kernel_name=kernel_name)
        while True:
            try:
                payload = conn.recv()
            except (EOFError, OSError):
                break
            if payload is None:
                break
            if "warm_code" in payload:
                result = executor.warm_up(payload)
            else:
                result = run_job_safely(executor, payload)
            try:
                conn.send(result)
            except (BrokenPipeError, OSError):
                break
    finally:
        if executor is not None:
            executor.close()
        sys.stdout.flush()
