"""What every worker process feedlake spawns does first: end when its parent ends.

A pool's workers hold both ends of their job queue, so a parent that is killed (SIGKILL, the
OOM killer) never closes it for them: they would wait for jobs for ever, holding the parent's
stdout and stderr open, so that whoever waited for the killed command would wait too. Each worker
watches its parent's sentinel in a thread and exits the moment the parent is gone.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor


def exit_with_parent() -> None:
    """Pool initializer: end this worker process as soon as the process that started it ends."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="feedlake-parent-watch", daemon=True).start()


def spawned_pool(processes: int) -> Executor:
    """A pool of ``processes`` spawned worker processes (never forked: delta-rs, loaded in the
    parent, panics in forked children) that end with their parent."""
    spawn = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(processes, mp_context=spawn, initializer=exit_with_parent)


class KeptPools:
    """A process's executors by size, each made on first use and kept for the life of the process
    (``feedlake serve`` pays the workers' start once); a broken one is replaced on the next use."""

    def __init__(self, make: Callable[[int], Executor]) -> None:
        self._make = make
        self._pools: dict[int, Executor] = {}
        self._lock = threading.Lock()

    def get(self, processes: int) -> Executor:
        """The pool of this size, made now if there is none or the last one broke."""
        with self._lock:
            pool = self._pools.get(processes)
            if pool is None or getattr(pool, "_broken", False):
                pool = self._make(processes)
                self._pools[processes] = pool
            return pool

    def drop(self, processes: int) -> None:
        """Forget the pool of this size (a worker died): the next use makes a new one."""
        with self._lock:
            self._pools.pop(processes, None)

    def shutdown(self) -> None:
        """Stop every pool and wait for its workers (a later use makes new ones)."""
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.shutdown(wait=True, cancel_futures=True)
