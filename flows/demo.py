"""The demo: serve bundled real feed snapshots over local HTTP and poll them into a local lake."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from feedlake.tasks.demo.snapshot_server import bundled_pages, serve_snapshots
from feedlake.tasks.errors import ConfigError
from feedlake.tasks.pipeline.summary import RunSummary

REPO_ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = REPO_ROOT / "tests" / "cases"
DEMO_SOURCES = REPO_ROOT / "infra" / "sources" / "demo.yaml"
SNAPSHOT_VARIABLE = "FEEDLAKE_VAR_SNAPSHOTS"
# Real af.mil article pages, and which feed item links each one answers (tests/cases/pages/).
PAGE_LINKS = SNAPSHOTS / "pages" / "af.mil" / "LINKS.tsv"


def run_demo(lake: str, poll: Callable[[str, str], RunSummary]) -> RunSummary:
    """Poll the demo catalog from a local snapshot server into ``lake`` with ``poll(sources, lake)``
    (``feedlake poll``'s: a Prefect flow run when a Prefect API is configured, else in-process)."""
    if not SNAPSHOTS.is_dir() or not DEMO_SOURCES.is_file():
        raise ConfigError(f"the demo needs a source checkout (missing {SNAPSHOTS} or {DEMO_SOURCES})")
    hosts = bundled_pages(PAGE_LINKS)
    pages = {target: path for by_path in hosts.values() for target, path in by_path.items()}
    with serve_snapshots(SNAPSHOTS, pages=pages) as base_url:
        print(f"serving bundled snapshots from {SNAPSHOTS} at {base_url}")
        # The demo catalog's URLs are ${FEEDLAKE_VAR_SNAPSHOTS}/...: point them at this server.
        os.environ[SNAPSHOT_VARIABLE] = base_url
        # The items of the af.mil feed link to www.af.mil: its bundled pages are on this server too,
        # reached without DNS the way curl --connect-to would (the URLs in the lake stay the real ones).
        address = base_url.removeprefix("http://")
        os.environ["FEEDLAKE_CONNECT_TO"] = ",".join(f"{host}:80={address}" for host in hosts)
        # The snapshot server is on loopback, which later hardening refuses by default.
        os.environ.setdefault("FEEDLAKE_ALLOW_PRIVATE_NETWORKS", "true")
        return poll(str(DEMO_SOURCES), lake)
