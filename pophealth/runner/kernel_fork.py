"""Kernels forked from one warmed-up process: a batch run's kernels start with the store loaded.

Every kernel of a batch run imports pophealth, loads the same store and builds the same
store-wide tables before its first profile, and its first profile then builds the tables that
come from the run's shared tables (:mod:`pophealth.shared_tables`): at England scale about 5 s
and 1.5 s of CPU, for each kernel. The *fork server* does that work once. It is a process
started with the run that

1. runs the run's warm-up code (``warm_code``: imports, the store, the tables that need no
   shared table);
2. waits until the run's own process has written the shared tables, then runs ``ready_code``
   (the tables built from them);
3. forks a child for each kernel a worker asks for. The child becomes an ordinary ipykernel:
   ``IPKernelApp`` started with the very command line ``jupyter_client`` built (connection
   file, the batch kernel's settings) in the environment and folder the worker gave, so the
   notebooks, messages and outputs are those of a launched kernel. The store and tables are
   shared copy-on-write; before forking, the server's objects are moved out of the garbage
   collector's reach (:func:`gc.freeze`), so the kernels' collections neither scan nor copy
   them.

The workers ask through a Unix socket (:class:`ForkedKernelManager`, a
``jupyter_client.AsyncKernelManager`` whose documented launch hook asks the server instead of
starting a process). Nothing depends on the server: when it is not running, fails, or the
kernel asked for is not this Python's ipykernel, the kernel is launched as usual. A kernel the
run replaces (after a timeout or a crash) is forked afresh from the warmed-up state.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

#: The command a kernel spec's ``argv`` starts with for a kernel this server can fork.
_IPYKERNEL_LAUNCHER = ("-m", "ipykernel_launcher")

#: Seconds a forked child has to say it is in its own session before the fork counts as failed.
_CHILD_START_SECONDS = 30.0


# --------------------------------------------------------------------------- the server
def fork_server_main(
    conn: Any,
    address: str,
    environment: dict[str, str],
    warm_code: str,
    folder: str | None,
) -> None:
    """Entry point of the fork server process (a ``spawn`` child of the run's process).

    Args:
        conn: Pipe to the run's process: it sends ``("ready", code)`` once the shared tables
            exist and ``None`` (or closes the pipe) to stop the server.
        address: Path of the Unix socket the workers ask on.
        environment: The kernels' environment (the run's ``kernel_env`` and the batch kernel's
            settings), set before ``warm_code`` runs so the store is loaded as a kernel would.
        warm_code: The run's warm-up code, run in ``folder``.
        folder: The folder the code runs in (the notebooks' folder), or None.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's process's to handle
    server = _ForkServer(conn, address)
    signal.signal(signal.SIGTERM, server.on_terminate)
    signal.signal(signal.SIGCHLD, server.reap)
    try:
        server.listen()
        os.environ.update(environment)
        if folder and os.path.isdir(folder):
            os.chdir(folder)
        # what every kernel imports before its first line: done once here
        import ipykernel.kernelapp  # noqa: F401

        server.run_code(warm_code, "warm-up")
        message = server.wait_for_ready()
        if message is None:
            return
        server.run_code(message, "ready")
        gc.collect()
        gc.freeze()  # the kernels' collections leave what they inherit alone
        server.serve()
    finally:
        server.close()


class _ForkServer:
    def __init__(self, conn: Any, address: str) -> None:
        self.conn = conn
        self.address = address
        self.sock: socket.socket | None = None
        self.children: set[int] = set()
        self.errors: list[str] = []

    def listen(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.address)
        # workers that ask before the server is warm wait in the backlog
        self.sock.listen(64)

    def run_code(self, code: str, what: str) -> None:
        """Run ``code``; an error is kept (the kernels then meet it in their own warm-up)."""
        if not code:
            return
        try:
            exec(compile(code, f"<pophealth {what}>", "exec"), {"__name__": "__pophealth__"})
        except Exception as error:  # noqa: BLE001 - reported with each kernel it forks
            self.errors.append(f"{what}: {type(error).__name__}: {error}")

    def wait_for_ready(self) -> str | None:
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            return None
        if not message:
            return None
        return str(message[1] or "")

    def serve(self) -> None:
        from multiprocessing.connection import wait

        assert self.sock is not None
        while True:
            ready = wait([self.conn, self.sock])
            if self.conn in ready:
                try:
                    if self.conn.recv() is None:
                        return
                except (EOFError, OSError):
                    return  # the run's process is gone
                continue
            client, _ = self.sock.accept()
            with client:
                self._answer(client)

    def _answer(self, client: socket.socket) -> None:
        client.settimeout(_CHILD_START_SECONDS)
        with client.makefile("rwb") as stream:
            try:
                request = json.loads(stream.readline() or b"{}")
                # what its own code raised (the kernels run the warm-up again and meet it;
                # the ready code only ran here)
                reply = {"pid": self._fork_kernel(request, client), "errors": self.errors}
            except Exception as error:  # noqa: BLE001 - the worker launches the kernel itself
                reply = {"error": f"{type(error).__name__}: {error}"}
            stream.write(json.dumps(reply).encode() + b"\n")
            stream.flush()

    def _fork_kernel(self, request: dict[str, Any], client: socket.socket) -> int:
        argv = [str(part) for part in request.get("argv") or []]
        if tuple(argv[1:3]) != _IPYKERNEL_LAUNCHER or not _same_python(argv[0]):
            raise ValueError(f"not this Python's ipykernel: {argv[:3]}")
        environment = {str(k): str(v) for k, v in (request.get("env") or {}).items()}
        cwd = request.get("cwd")
        started_r, started_w = os.pipe()
        inherited = [client.fileno(), self.conn.fileno(), started_r]
        if self.sock is not None:
            inherited.append(self.sock.fileno())
        # a child that ends at once is collected only after it is on the list
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
            if pid == 0:  # the child: never returns
                _become_kernel(argv, environment, cwd, started_w, inherited)
            self.children.add(pid)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        os.close(started_w)
        try:
            # the child answers once it leads its own session (the worker signals the group)
            ready = _read_with_timeout(started_r, _CHILD_START_SECONDS)
        finally:
            os.close(started_r)
        if not ready:
            _kill_group(pid)
            raise RuntimeError("the forked kernel did not start")
        return pid

    def reap(self, *_: Any) -> None:
        """SIGCHLD: collect every kernel that ended (none is left a zombie)."""
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)

    def on_terminate(self, *_: Any) -> None:
        raise SystemExit(0)

    def close(self) -> None:
        for pid in list(self.children):  # kernels its workers did not shut down
            _kill_group(pid)
        if self.sock is not None:
            self.sock.close()
        try:
            os.unlink(self.address)
        except OSError:
            pass


def _same_python(executable: str) -> bool:
    try:
        return os.path.samefile(executable, sys.executable)
    except OSError:
        return False


def _read_with_timeout(fd: int, seconds: float) -> bool:
    import select

    readable, _, _ = select.select([fd], [], [], seconds)
    return bool(readable) and os.read(fd, 1) == b"1"


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
            return
        except OSError:
            continue


def _become_kernel(
    argv: list[str], environment: dict[str, str], cwd: str | None, started: int, close: list[int]
) -> None:
    """In the forked child: become the kernel ``argv`` describes; exit when it stops."""
    code = 1
    try:
        os.setsid()  # its own process group, as jupyter_client launches kernels
        for fd in close:  # the server's socket and pipes are not the kernel's
            os.close(fd)
        for number in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # interrupts raise again
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.environ.clear()
        os.environ.update(environment)
        server = os.getppid()
        # as jupyter_client tells a kernel it launches (ipykernel read the variable when the
        # server imported it, so the app is told too): it stops when its parent, the server,
        # has gone, and prints no connection banner
        os.environ["JPY_PARENT_PID"] = str(server)
        if cwd:
            os.chdir(cwd)
        os.write(started, b"1")
        os.close(started)
        from ipykernel.kernelapp import IPKernelApp

        sys.argv = [_IPYKERNEL_LAUNCHER[1], *argv[3:]]
        IPKernelApp.launch_instance(argv=argv[3:], parent_handle=server)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0
    except BaseException:  # noqa: BLE001 - the child must never return into the server
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


# --------------------------------------------------------------------------- the run's side
class ForkServer:
    """The run's handle on its fork server process (see the module docstring)."""

    def __init__(
        self,
        warm_code: str,
        environment: dict[str, str],
        folder: str | Path | None,
    ) -> None:
        """Start the server; it warms up at once.

        Args:
            warm_code: The run's warm-up code.
            environment: Variables the kernels get on top of this process's environment.
            folder: The folder the warm-up code runs in.
        """
        import multiprocessing

        # a short path: a Unix socket's name has ~100 characters at most
        self._dir = tempfile.mkdtemp(prefix="phf-", dir="/tmp" if os.path.isdir("/tmp") else None)
        self._stopped = False
        self.address = os.path.join(self._dir, "fork.sock")
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe(duplex=True)
        self.process = context.Process(
            target=fork_server_main,
            args=(child_conn, self.address, environment, warm_code, str(folder or "")),
            daemon=True,
        )
        self.process.start()
        child_conn.close()

    def ready(self, code: str | None) -> None:
        """Tell the server the shared tables exist: it runs ``code``, then forks kernels."""
        try:
            self._conn.send(("ready", code or ""))
        except (BrokenPipeError, OSError):
            pass  # the server is gone: workers launch their kernels themselves

    def stop(self) -> None:
        """Stop the server (after the workers, whose kernels it forked, have stopped)."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self._conn.close()
        try:
            os.rmdir(self._dir)
        except OSError:
            pass


async def request_kernel_fork(
    address: str, argv: list[str], env: dict[str, str], cwd: str | None, timeout: float
) -> tuple[int, list[str]]:
    """Ask the fork server at ``address`` for a kernel.

    Returns:
        The kernel's process id, and the errors the server's own code (warm-up, ready) raised.

    Raises:
        OSError: The server is not there or did not answer in ``timeout`` seconds.
        RuntimeError: The server could not fork this kernel.
    """
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(address), timeout)
    except TimeoutError as late:
        raise OSError("the fork server did not accept in time") from late
    try:
        request = {"argv": argv, "env": env, "cwd": cwd}
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        try:
            line = await asyncio.wait_for(reader.readline(), timeout)
        except TimeoutError as late:
            raise OSError("the fork server did not answer in time") from late
    finally:
        writer.close()
    reply = json.loads(line or b"{}")
    if "pid" not in reply:
        raise RuntimeError(reply.get("error") or "the fork server gave no kernel")
    return int(reply["pid"]), [str(error) for error in reply.get("errors") or []]


class ForkedProcess:
    """What ``jupyter_client``'s local provisioner needs of a ``Popen``, for a forked kernel.

    The kernel is the fork server's child, not this process's: it is watched and signalled by
    its process id (and group), and the server collects its exit status.
    """

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """None while the kernel runs; its "exit code" (0, not known here) once it has ended."""
        if self.returncode is None and not _alive(self.pid):
            self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait until the kernel has ended (``subprocess.TimeoutExpired`` after ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout or 0)
            time.sleep(0.02)
        return self.returncode or 0

    def send_signal(self, number: int) -> None:
        """Send the kernel signal ``number`` (nothing once it has ended)."""
        if self.poll() is None:
            try:
                os.kill(self.pid, number)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """Kill the kernel (SIGKILL)."""
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        """Ask the kernel to stop (SIGTERM)."""
        self.send_signal(signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (not yet collected by the server) has ended
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


class ForkedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernels come from a fork server when one answers.

    Set :attr:`fork_server` to the server's socket path. ``_async_launch_kernel`` is
    jupyter_client's documented hook for launching kernels differently; everything else
    (connection file, ports, the command line, the environment, shutdown) is the manager's own.
    """

    fork_server: str | None = None
    fork_timeout: float = 300.0
    #: Why the last kernel was launched as usual instead (None when it was forked).
    fork_error: str | None = None
    #: What the server's warm-up and ready code raised, as the server last said.
    server_errors: list[str] = []

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if not self.fork_server:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        try:
            pid, self.server_errors = await request_kernel_fork(
                self.fork_server,
                list(kernel_cmd),
                dict(kw.get("env") or os.environ),
                str(kw.get("cwd") or os.getcwd()),  # where a launched kernel would start
                self.fork_timeout,
            )
        except (OSError, RuntimeError, ValueError) as error:
            self.fork_error = f"{type(error).__name__}: {error}"
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        self.fork_error = None
        provisioner = self.provisioner
        assert provisioner is not None
        provisioner.process = ForkedProcess(pid)
        provisioner.pid = pid
        provisioner.pgid = pid  # the child leads its own session before the server answers
        provisioner.cwd = kw.get("cwd", Path.cwd())
        self._reconcile_connection_info(provisioner.connection_info)
