"""A real `prefect server start` (SQLite) in its own process: events and automations included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.paths import REPO


@contextmanager
def prefect_server(home: Path, port: int) -> Iterator[str]:
    """Start a Prefect server with its own home and database; yield its API URL."""
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
    }
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(
                    f"prefect server did not start: {(home / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)
        yield api
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def api_post(api: str, path: str, body: dict[str, Any]) -> Any:
    """POST to the Prefect REST API (plain HTTP: prefect 3.8's client sends nulls this server refuses)."""
    for attempt in range(10):
        try:
            response = httpx.post(f"{api}{path}", json=body, timeout=30)
        except httpx.ReadTimeout:
            # A busy SQLite server can also stall a read past the timeout: a query (/filter) is safe to
            # ask again; anything that creates something is not, so it fails as before.
            if not path.endswith("/filter") or attempt == 9:
                raise
            continue
        # SQLite under load answers 503 (database locked) now and then: ask again.
        if response.status_code != 503:
            break
        time.sleep(1)
    response.raise_for_status()
    return response.json()


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    """Poll ``condition()`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


ROOT = REPO


def feedlake_env(api: str, home: Path, **settings: str) -> dict[str, str]:
    """Environment for a feedlake or prefect process that talks to ``api``."""
    return {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(home), **settings}


@contextmanager
def running(
    command: list[str], env: dict[str, str], log: Path, stop_timeout: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` from the repository root, logging to ``log``; SIGTERM it on the way out.

    After the block, the process has exited and ``returncode`` says how.
    """
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
