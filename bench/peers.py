"""Benchmark (figure 19): feedlake against the tools users would pick instead, whole processes.

Every captured feed of tests/cases/corpus (166 files, 5,207 articles) is served over local HTTP by
one server process. Each contestant is a fresh process, timed from its start to its exit (imports
included, as a user waits for them), on a fresh lake; the contestants take turns, ``--runs``
rounds, and the medians are compared:

- ``feedlake poll --sources S --lake L``, as a user runs it from the shell: no Prefect API
  configured, so in-process (``full_text: never``: the peers fetch no pages either; the per-host
  politeness gap off, since the corpus's 166 sites are all served from one loopback host);
- the dlt peer (bench/peer_dlt.py): requests + ``feedparser.parse`` + a dlt 1.31 pipeline into its
  filesystem destination as Parquet, a stable id per entry; in a virtual environment of its own
  (``bench/.venvs/dlt``, created on first use from the package registry);
- bare ``feedparser.parse()`` over the same bytes read from disk: parse only, nothing stored.

And the one-feed poll (the af.mil news feed, 20 items, into a fresh lake) from the shell: wall time
and peak RSS (``wait4``), in-process and, once, as a Prefect flow run on Prefect's temporary API
(``--prefect``), which is what ``feedlake poll`` did before.

Run: ``.venv/bin/python bench/peers.py [--runs 3]`` (about 4 minutes, plus the peer's install once).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus_poll import CASES, corpus_files, source_id  # noqa: E402
from bench.table import Figure, measure_and_publish  # noqa: E402

PEER_VENV = ROOT / "bench" / ".venvs" / "dlt"
PEER_REQUIREMENTS = ["dlt[parquet]==1.31.0", "feedparser>=6,<7", "requests>=2.31"]
ONE_FEED = "corpus/af.mil-mirror_TecnologiaNova/RSS3a26.ashx.xml"
DLT_TARGET, ONE_FEED_SECONDS, ONE_FEED_MIB = 3.0, 1.5, 200.0
FEEDPARSER_SCRIPT = """
import sys
from pathlib import Path
import feedparser
entries = sum(len(feedparser.parse(Path(p).read_bytes()).entries) for p in sys.argv[1:])
print(entries)
"""


def peer_python() -> Path:
    """The dlt peer's interpreter, its environment created and installed on first use."""
    python = PEER_VENV / "bin" / "python"
    marker = PEER_VENV / "installed.txt"
    if marker.exists() and marker.read_text() == "\n".join(PEER_REQUIREMENTS):
        return python
    print(f"installing the dlt peer into {PEER_VENV} ({', '.join(PEER_REQUIREMENTS)})", flush=True)
    venv.create(PEER_VENV, with_pip=True, clear=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS], check=True)
    marker.write_text("\n".join(PEER_REQUIREMENTS))
    return python


def timed(command: list[str], env: dict[str, str], log: Path) -> tuple[float, float, str]:
    """Run ``command`` to its end: wall seconds, peak RSS in MiB (its own, from wait4), its stdout."""
    started = time.perf_counter()
    with log.open("wb") as errors:
        child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors)
        assert child.stdout is not None
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed ({child.returncode}): {log.read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out.decode()


def write_sources(path: Path, entries: list[tuple[str, str]]) -> Path:
    """A sources file, one news source per (id, url), pages never fetched."""
    lines = ["sources:"]
    for sid, url in entries:
        lines += [f"  - id: {sid}", f'    url: "{url}"', f"    name: {sid}", "    publisher: bench"]
        lines += ["    kind: news", "    full_text: never"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def measure(args: argparse.Namespace, scratch: Path) -> tuple[list[Figure], dict[str, Any]]:
    """Serve the corpus, run the contestants in turns, and turn the medians into figures."""
    from feedlake.tasks.demo.snapshot_server import serve_snapshots

    python = peer_python()
    feedlake = str(ROOT / ".venv" / "bin" / "feedlake")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        # The corpus stands for 166 sites but is served from one loopback host: the politeness gate
        # (2 at a time, 0.25 s apart per host) would time the gate, not the tool.
        FEEDLAKE_PER_HOST_MIN_GAP_SECONDS="0",
        FEEDLAKE_PER_HOST_CONCURRENCY="16",
        FEEDLAKE_ALLOW_PRIVATE_NETWORKS="true",
        GX_ANALYTICS_ENABLED="false",
        PREFECT_HOME=str(scratch / "prefect-home"),
    )
    files = corpus_files()
    runs: dict[str, list[dict[str, Any]]] = {"feedlake": [], "dlt": [], "feedparser": [], "one": []}
    with serve_snapshots(CASES) as base:
        entries = [(source_id(p), f"{base}/{p.relative_to(CASES).as_posix()}") for p in files]
        sources = write_sources(scratch / "corpus.yaml", entries)
        urls = scratch / "urls.txt"
        urls.write_text("\n".join(url for _, url in entries), encoding="utf-8")
        one = write_sources(scratch / "one.yaml", [("af-mil-news", f"{base}/{ONE_FEED}")])
        for run in range(args.runs):
            lake = scratch / f"feedlake-{run}"
            wall, rss, out = timed(
                [feedlake, "poll", "--sources", str(sources), "--lake", str(lake)], env, scratch / "f.log"
            )
            rows = int(
                next(line for line in out.splitlines() if "rows committed" in line).split(": ")[1].split()[0]
            )
            runs["feedlake"].append({"wall": wall, "rss": rss, "rows": rows})
            command = [
                str(python),
                str(ROOT / "bench" / "peer_dlt.py"),
                str(urls),
                str(scratch / f"dlt-{run}"),
                str(scratch / f"dlt-work-{run}"),
            ]
            wall, rss, out = timed(command, env, scratch / "d.log")
            runs["dlt"].append({"wall": wall, "rss": rss, **json.loads(out.strip().splitlines()[-1])})
            command = [str(ROOT / ".venv" / "bin" / "python"), "-c", FEEDPARSER_SCRIPT, *map(str, files)]
            wall, rss, out = timed(command, env, scratch / "p.log")
            runs["feedparser"].append({"wall": wall, "rss": rss, "entries": int(out.strip())})
            wall, rss, _ = timed(
                [feedlake, "poll", "--sources", str(one), "--lake", str(scratch / f"one-{run}")],
                env,
                scratch / "o.log",
            )
            runs["one"].append({"wall": wall, "rss": rss})
            for name in ("feedlake", "dlt", "feedparser", "one"):
                print(f"  run {run + 1}/{args.runs} {name}: {json.dumps(runs[name][-1])}", flush=True)
        command = [
            feedlake,
            "poll",
            "--prefect",
            "--sources",
            str(one),
            "--lake",
            str(scratch / "one-prefect"),
        ]
        wall, rss, _ = timed(command, env, scratch / "op.log")
        prefect_one = {"wall": wall, "rss": rss}
        print(f"  one feed as a Prefect flow run (temporary API): {json.dumps(prefect_one)}", flush=True)

    def median(name: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[name]))

    ours, peer, parse = median("feedlake", "wall"), median("dlt", "wall"), median("feedparser", "wall")
    one_wall, one_rss = median("one", "wall"), median("one", "rss")
    rows = int(median("feedlake", "rows"))
    table = [
        Figure(
            "19a",
            f"whole-corpus `feedlake poll` from the shell ({rows:,} articles): wall",
            ours,
            "s",
            baseline=peer,
            baseline_name="dlt peer: feedparser + dlt filesystem/Parquet",
            ratio=peer / ours,
            target=f"peer/feedlake >= {DLT_TARGET:g}x",
            met=peer / ours >= DLT_TARGET,
        ),
        Figure(
            "19a",
            "whole-corpus `feedlake poll` from the shell: wall",
            ours,
            "s",
            baseline=parse,
            baseline_name="bare feedparser.parse(), parse only",
            ratio=parse / ours,
            target="feedparser/feedlake >= 1x",
            met=parse / ours >= 1.0,
        ),
        Figure(
            "19b",
            "one-feed `feedlake poll` (20 new items) from the shell: wall",
            one_wall,
            "s",
            baseline=prefect_one["wall"],
            baseline_name="the same as a Prefect flow run (temporary API)",
            ratio=one_wall / prefect_one["wall"],
            target=f"< {ONE_FEED_SECONDS:g} s",
            met=one_wall < ONE_FEED_SECONDS,
        ),
        Figure(
            "19b",
            "one-feed `feedlake poll` from the shell: peak RSS",
            one_rss,
            "MiB",
            baseline=prefect_one["rss"],
            baseline_name="the same as a Prefect flow run (temporary API)",
            ratio=one_rss / prefect_one["rss"],
            target=f"< {ONE_FEED_MIB:g} MiB",
            met=one_rss < ONE_FEED_MIB,
        ),
    ]
    return table, {"runs": runs, "prefect_one_feed": prefect_one, "peer_requirements": PEER_REQUIREMENTS}


def main() -> int:
    """Run the contestants and publish the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="rounds (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="1 round: for development")
    args = parser.parse_args()
    if args.quick:
        args.runs = 1
    return measure_and_publish("peers", measure, args)


if __name__ == "__main__":
    sys.exit(main())
