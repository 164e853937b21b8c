"""How fast `feedlake serve`'s Prefect database grows: bytes per poll run, per source per day.

Runs `feedlake serve` (its own Prefect server, SQLite) against the bundled corpus served on
loopback, with every source on a 30 s interval, once with 1 source and once with 20; measures the
database (with its WAL) after the first poll and after the last, and extrapolates to a day. With
FEEDLAKE_HISTORY_DAYS the database holds that many days of it; without a window it grows forever.

    .venv/bin/python bench/prefect_history.py [--minutes 4]
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.table import Figure, publish  # noqa: E402
from feedlake.tasks.demo.snapshot_server import serve_snapshots  # noqa: E402

INTERVAL = 30
CORPUS = ROOT / "tests" / "cases" / "corpus"


def corpus_routes(count: int) -> list[str]:
    """The first ``count`` corpus feeds of the manifest, as paths under tests/cases."""
    rows = (CORPUS / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [f"corpus/{row.split(chr(9))[0]}" for row in rows[:count]]


def database_bytes(home: Path) -> int:
    """The Prefect database's size on disk, its write-ahead log included."""
    return sum(p.stat().st_size for p in (home / "prefect").glob("prefect.db*"))


def finished_runs(home: Path) -> int:
    """Flow runs of feedlake-poll that finished."""
    with sqlite3.connect(f"file:{home / 'prefect' / 'prefect.db'}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT count(*) FROM flow_run JOIN flow ON flow.id = flow_run.flow_id "
            "WHERE flow.name = 'feedlake-poll' AND flow_run.state_type = 'COMPLETED'"
        ).fetchone()
    return int(row[0])


def measure(sources: int, minutes: float) -> tuple[float, int]:
    """Bytes the database grows per poll run with ``sources`` sources, and the runs measured."""
    with tempfile.TemporaryDirectory() as scratch, serve_snapshots(ROOT / "tests" / "cases") as base:
        root = Path(scratch)
        lines = ["sources:"]
        for n, route in enumerate(corpus_routes(sources)):
            lines += [f"  - id: s{n}", f'    url: "{base}/{route}"', f"    name: s{n}"]
            lines += ["    publisher: bench", "    kind: news", f"    poll_interval: {INTERVAL}s"]
            lines += ["    full_text: never"]  # the database growth of polls, not of page fetches
        (root / "sources.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env |= {
            "FEEDLAKE_HOME": str(root / "home"),
            "FEEDLAKE_SERVE_PORT": "0",
            "FEEDLAKE_ALLOW_PRIVATE_NETWORKS": "true",
            "FEEDLAKE_PER_HOST_MIN_GAP_SECONDS": "0",
            "PREFECT_HOME": str(root / "prefect-home"),
        }
        feedlake = str(Path(sys.executable).with_name("feedlake"))
        command = [feedlake, "serve", "--sources", str(root / "sources.yaml"), "--lake", str(root / "lake")]
        with (root / "serve.log").open("wb") as log:
            serve = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                home = root / "home"
                while not (home / "prefect" / "prefect.db").exists() or finished_runs(home) < 1:
                    time.sleep(2)
                first_runs, first_bytes = finished_runs(home), database_bytes(home)
                time.sleep(minutes * 60)
                last_runs, last_bytes = finished_runs(home), database_bytes(home)
            finally:
                serve.send_signal(signal.SIGTERM)
                serve.wait(timeout=60)
    runs = last_runs - first_runs
    return (last_bytes - first_bytes) / max(1, runs), runs


def main() -> None:
    """Measure 1 and 20 sources; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    args = parser.parse_args()
    figures = []
    for sources in (1, 20):
        per_run, runs = measure(sources, args.minutes)
        per_day = per_run * 86400 / INTERVAL
        label = f"{sources} sources"
        figures += [
            Figure(
                "H", f"Prefect database growth per poll run, {label} ({runs} runs)", per_run / 1024, "KiB"
            ),
            Figure("H", f"per day, one poll every {INTERVAL} s, {label}", per_day / 2**20, "MiB"),
            Figure("H", f"held with FEEDLAKE_HISTORY_DAYS=14, {label}", 14 * per_day / 2**20, "MiB"),
        ]
    publish("prefect_history", figures)


if __name__ == "__main__":
    main()
