"""How the ``feedlake`` console command ends its process.

A one-shot poll loads Great Expectations, pandas, pyarrow and delta-rs: thousands of modules whose
teardown at interpreter exit takes about half a second after the run is over (measured: 3.0 s
against 2.5 s for a one-feed poll), and delta-rs's runtime can abort during that teardown
(docs/reading.md). When the command has nothing left to finish, its output is flushed and the
process ends at once; otherwise it exits the normal way and every exit handler runs.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import NoReturn


def exit_process(code: int) -> NoReturn:
    """End the process with ``code``: at once when nothing is left to finish, else normally."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        # A closed pipe or stream: nothing more can be said, and the normal exit would fail the same way.
        sys.exit(code)
    if not nothing_left_to_finish():
        sys.exit(code)
    logging.shutdown()
    os._exit(code)


def nothing_left_to_finish() -> bool:
    """Whether no exit handler has work that matters: no Prefect, no child process, no live thread."""
    # Prefect sends its last logs and events to the API from exit handlers.
    if any(name == "prefect" or name.startswith("prefect.") for name in list(sys.modules)):
        return False
    # A process pool joins its workers at exit; leaving them would orphan them.
    if "multiprocessing" in sys.modules:
        import multiprocessing

        if multiprocessing.active_children():
            return False
    # A thread that is not a daemon is one the interpreter would wait for.
    return all(thread.daemon or thread is threading.main_thread() for thread in threading.enumerate())
