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
