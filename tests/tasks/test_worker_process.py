"""Every pool of worker processes feedlake spawns ends with its parent, and lets go of its output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.paths import REPO

# Each pool as feedlake builds it: feed reading, page extraction, and a backfill's parse workers.
POOLS = {
    "reading": "from feedlake.tasks.pipeline.feed_reading import reading_pool as make\npool = make(2)",
    "extraction": "from feedlake.tasks.full_text.extract import extraction_pool as make\npool = make(2)",
    "backfill": (
        "import multiprocessing\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from feedlake.tasks.backfill.engine import lower_priority\n"
        "spawn = multiprocessing.get_context('spawn')\n"
        "pool = ProcessPoolExecutor(2, mp_context=spawn, initializer=lower_priority)"
    ),
}
PARENT = """
import os, time
if __name__ == "__main__":
{pool}
    print(pool.submit(os.getpid).result(), flush=True)
    time.sleep(120)
"""


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"  # exited, waiting for init (this container's may not reap)


@pytest.mark.parametrize("kind", sorted(POOLS))
def test_killing_the_parent_ends_its_workers_and_its_output(kind: str, tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT.format(pool="\n".join("    " + line for line in POOLS[kind].splitlines())))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env, text=True)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    assert worker != parent.pid and not gone(worker)
    parent.send_signal(signal.SIGKILL)
    try:
        # Whoever waits for a killed command's output (a shell pipe, a scheduler) is not kept waiting.
        out, _ = parent.communicate(timeout=30)
        assert out == ""
        deadline = time.monotonic() + 30
        while not gone(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gone(worker)
    finally:
        if not gone(worker):  # a failed test leaves no orphan behind
            os.kill(worker, signal.SIGKILL)
