"""How the ``feedlake`` command ends: at once when nothing is left to finish, else the normal way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from feedlake.flows.cli import EXIT_CANNOT_RUN, EXIT_OK
from tests.conftest import write_sources
from tests.support.shell_env import shell_without_prefect

FEEDLAKE = Path(sys.executable).parent / "feedlake"

# An exit handler leaves a mark: it runs on the normal exit and is skipped by the quick one.
ENDING = """
import atexit, sys, threading, time
from pathlib import Path
from feedlake.flows.process_exit import exit_process
mark = Path(sys.argv[1])
atexit.register(lambda: mark.with_suffix(".atexit").write_text("ran"))
case = sys.argv[2]
if case == "thread":
    def late() -> None:
        time.sleep(0.3)
        mark.with_suffix(".thread").write_text("finished")
    threading.Thread(target=late).start()
elif case == "child":
    import multiprocessing
    multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0.3,)).start()
elif case == "prefect":
    import prefect  # noqa: F401
print("said before the exit", flush=False)
exit_process(3)
"""


def end(tmp_path: Path, case: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    mark = tmp_path / case
    done = subprocess.run(
        [sys.executable, "-c", ENDING, str(mark), case], capture_output=True, text=True, timeout=120
    )
    return done, mark


def test_nothing_left_ends_at_once_with_its_output_and_status(tmp_path: Path) -> None:
    done, mark = end(tmp_path, "idle")
    assert done.returncode == 3
    assert done.stdout == "said before the exit\n"  # buffered output is flushed first
    assert not mark.with_suffix(".atexit").exists()  # the interpreter's teardown was skipped


def test_a_running_thread_is_waited_for(tmp_path: Path) -> None:
    done, mark = end(tmp_path, "thread")
    assert done.returncode == 3 and "said before the exit" in done.stdout
    assert mark.with_suffix(".thread").read_text() == "finished"
    assert mark.with_suffix(".atexit").read_text() == "ran"


def test_a_child_process_or_prefect_gets_the_normal_exit(tmp_path: Path) -> None:
    for case in ("child", "prefect"):
        done, mark = end(tmp_path, case)
        assert done.returncode == 3, done.stderr[-2000:]
        assert mark.with_suffix(".atexit").read_text() == "ran", case


def test_the_installed_command_prints_the_whole_summary_into_a_pipe(
    tmp_path: Path, snapshot_base_url: str
) -> None:
    sources = write_sources(
        tmp_path / "s.yaml", [("centcom", f"{snapshot_base_url}/centcom/centcom-press-releases.RSS.ashx.xml")]
    )
    env = shell_without_prefect(tmp_path, FEEDLAKE_ALLOW_PRIVATE_NETWORKS="true")
    lake = tmp_path / "lake"
    command = [str(FEEDLAKE), "poll", "--sources", str(sources), "--lake", str(lake)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    assert "3 rows committed" in done.stdout
    assert done.stdout.rstrip().endswith('count_rows())"')  # the last line of the summary, not cut off
    from deltalake import DeltaTable

    assert DeltaTable(str(lake / "articles")).version() == 1
    broken = tmp_path / "broken.yaml"
    broken.write_text("sources: [")
    done = subprocess.run(
        [str(FEEDLAKE), "poll", "--sources", str(broken)], env=env, capture_output=True, text=True
    )
    assert done.returncode == EXIT_CANNOT_RUN and "broken.yaml" in done.stderr
