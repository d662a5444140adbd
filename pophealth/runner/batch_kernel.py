"""What the runner's batch kernels run besides the notebooks: faster, with the same outputs.

ipykernel flushes stdout and stderr before every display and at the end of every cell, and each
flush waits for two hand-offs to the kernel's I/O thread even when nothing was printed. A
profile displays ~30 outputs over ~16 cells: ~130 empty flushes, about a tenth of the kernel's
time per profile (measured on the England store, 2 cores). :func:`install` makes a flush with
nothing pending return at once; text that was printed is still flushed, in order, before the
next display (a write marks the stream pending until its I/O-thread flush has sent it).

Installed by the kernel's start-up line (``executor.BATCH_KERNEL_ARGUMENTS``); an interactive
kernel is left as it is.

:func:`run_notebook` is what the runner asks the kernel to run for each notebook: the reset and
every code cell in one request, with the cells' boundaries marked on IOPub.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
from typing import Any

_INSTALLED = False

#: IOPub message type of :func:`run_notebook`'s cell boundaries (``state``: start / end).
CELL_MESSAGE = "pophealth_cell"


def install() -> bool:
    """Skip ipykernel's stream flushes when nothing is waiting to be sent.

    Returns:
        True when installed (or already), False when this ipykernel's streams lack the flags the
        check relies on (then nothing is changed).
    """
    global _INSTALLED
    if _INSTALLED:
        return True
    from ipykernel.iostream import OutStream

    original = OutStream.flush
    probe = OutStream.__init__.__code__.co_names
    if "_flush_pending" not in probe or "_subprocess_flush_pending" not in probe:
        return False

    def flush(self: Any) -> None:
        if not (self._flush_pending or self._subprocess_flush_pending):
            return  # nothing written since the last flush was sent
        original(self)

    flush.__doc__ = original.__doc__
    flush.__wrapped__ = original  # type: ignore[attr-defined]
    OutStream.flush = flush
    _INSTALLED = True
    return True


def _flush_streams() -> None:
    """Send what the cell printed before the next boundary (the same I/O thread orders both)."""
    for stream in (sys.stdout, sys.stderr):
        flush = getattr(stream, "flush", None)
        if flush is not None:
            flush()


def run_notebook(spec: str) -> None:
    """Run a notebook's code cells, in order, in this kernel's shell: one request for them all.

    The runner (:meth:`pophealth.runner.executor.WarmKernelExecutor._run_cells`) sends one
    execute request calling this, instead of one request per cell: each request cost the
    kernel and the runner ~3 ms of messages (busy, input, idle, reply) and a notebook has ~15
    cells, a fifth of a warm profile's CPU. Each cell still runs through
    ``InteractiveShell.run_cell``, as ipykernel runs it (its own execution count, display hook,
    tracebacks published as ``error`` messages); between cells (and before the first and after
    the last) one :data:`CELL_MESSAGE` message on IOPub says how the last cell ended
    (``ended``: index, status, error) and which cell the outputs that follow belong to
    (``started``: index, execution count).

    First the namespace is reset for the notebook (a new session: counts start at 1) and what
    survives is frozen for the garbage collector (``reset`` ends with a full collection, which
    would otherwise walk the loaded store again at every later collection).

    Args:
        spec: JSON: ``cwd`` (folder to run in, or null) and ``cells``, a list of
            ``[cell index, source, errors allowed]``. A failed cell ends the run unless it
            allows errors (nbclient's ``raises-exception`` tag).
    """
    from IPython import get_ipython

    wanted = json.loads(spec)
    shell = get_ipython()
    kernel = shell.kernel
    parent = kernel.get_parent("shell")

    socket = kernel.iopub_socket
    io_thread = getattr(socket, "io_thread", None)

    def tell(content: dict[str, Any]) -> None:
        _flush_streams()
        kernel.session.send(
            socket, CELL_MESSAGE, content, parent, ident=kernel._topic(CELL_MESSAGE)
        )
        if io_thread is not None:
            # wait until the I/O thread has sent it: a cell that kills the kernel (os._exit, a
            # crash) must not take the message saying it started with it
            sent = threading.Event()
            io_thread.schedule(sent.set)
            sent.wait(10)

    if wanted.get("cwd") and os.path.isdir(wanted["cwd"]):
        os.chdir(wanted["cwd"])
    shell.reset(new_session=True)
    gc.freeze()
    ended: dict[str, Any] | None = None  # how the previous cell ended (one message for both)
    for index, source, errors_allowed in wanted["cells"]:
        started = {"index": index, "execution_count": shell.execution_count}
        tell({"ended": ended, "started": started})
        shell._last_traceback = None
        result = shell.run_cell(source, store_history=True, silent=False)
        error = result.error_before_exec or result.error_in_exec
        ended = {"index": index, "status": "ok"}
        if error is not None:
            ended.update(
                status="error",
                ename=type(error).__name__,
                evalue=str(error),
                traceback=shell._last_traceback or [],
            )
            if not errors_allowed:
                break
    tell({"ended": ended, "started": None})


__all__ = ["CELL_MESSAGE", "install", "run_notebook"]
