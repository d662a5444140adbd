"""Work done in a forked child while this process does other work: a second core, no reload.

A batch run's own process works out the store-wide tables its kernels then read
(:mod:`pophealth.shared_tables`); with a long history that is most of the run's start, and the
second core would idle. A forked child sees this process's loaded store as it is (copy on
write), so it can take half the work without loading anything. The result comes back pickled
through a pipe. The caller never depends on the child: a child that fails, dies or does not
answer in time gives ``None``, and the caller does the work itself.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def can_fork() -> bool:
    """Whether forking a worker is possible and worth it here (POSIX, two cores, not a daemon)."""
    return (
        os.name == "posix"
        and (os.cpu_count() or 1) > 1
        and "fork" in multiprocessing.get_all_start_methods()
        and not multiprocessing.current_process().daemon
    )


def _run_and_send(work: Callable[[], Any], connection: Any) -> None:
    try:
        value = work()
    except BaseException as error:  # noqa: BLE001 - reported; the parent does the work itself
        connection.send((False, f"{type(error).__name__}: {error}"))
    else:
        connection.send((True, value))
    finally:
        connection.close()


class ForkedWork(Generic[T]):
    """``work()`` run in a forked child from ``with`` until :meth:`result`.

    Example::

        with ForkedWork(lambda: expensive(second_half)) as child:
            first = expensive(first_half)
            second = child.result() or expensive(second_half)
    """

    def __init__(self, work: Callable[[], T], *, min_wait: float = 30.0) -> None:
        """Set up the child (it starts on ``with``).

        Args:
            work: What the child computes; its result must pickle.
            min_wait: Seconds :meth:`result` waits at least; it waits at least twice as long as
                the parent took between ``with`` and asking (the halves are alike).
        """
        self._work = work
        self._min_wait = min_wait
        self._process: Any = None
        self._receive: Any = None
        self._started = 0.0
        self.error: str | None = None

    def __enter__(self) -> ForkedWork[T]:
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_run_and_send, args=(self._work, send))
        self._started = time.monotonic()
        self._process.start()
        send.close()  # the child's end: EOF here once the child has gone
        return self

    def result(self) -> T | None:
        """The child's result, or None when it failed, died or took too long (then stopped)."""
        waited = max(self._min_wait, 2 * (time.monotonic() - self._started))
        try:
            if not self._receive.poll(waited):
                self.error = f"no answer within {waited:.0f} s"
                return None
            ok, value = self._receive.recv()
        except (EOFError, OSError) as error:
            self.error = f"the child stopped ({type(error).__name__})"
            return None
        if not ok:
            self.error = value
            return None
        return value

    def __exit__(self, *_exc: object) -> None:
        if self._receive is not None:
            self._receive.close()
        if self._process is not None:
            if self._process.is_alive():
                self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
            self._process.join()
