"""The Prefect server that ``feedlake serve`` runs beside itself when no ``PREFECT_API_URL`` is set.

Prefect's embedded (ephemeral) API runs no scheduler, so served deployments would never get a run.
``feedlake serve`` therefore starts a real ``prefect server start`` as a child process, with its own
SQLite database under ``FEEDLAKE_HOME/prefect``, restarts it if it dies, and stops it on the way
out. On Linux the child dies with its parent even on SIGKILL (``PR_SET_PDEATHSIG``), and a server
still shutting down (or left behind) is found by its pid file, checked in ``/proc`` to be a Prefect
server on the recorded port, and stopped at the next start. Elsewhere, stop a left-behind server by
hand: ``FEEDLAKE_HOME/prefect/server.pid`` names it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO

import httpx
from packaging.version import Version

from feedlake.tasks.errors import ConfigError
from feedlake.tasks.settings import FeedlakeSettings

log = logging.getLogger("feedlake.serve")

START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 10.0


def server_environment(settings: FeedlakeSettings, home: Path, port: int) -> dict[str, str]:
    """The environment of the child ``prefect server start``: its own database, history bounded."""
    history = str(int(settings.history_days * 86400))
    return {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home}/prefect.db",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        # Prefect's own vacuum keeps the database bounded: finished flow runs (with their logs and
        # artifacts) and events older than the history window are deleted hourly.
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": "events,flow_runs,orphans",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": history,
        "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": f"PT{history}S",
    }


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask Linux to SIGTERM it when serve dies, even by SIGKILL.
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop_leftover(pid_file: Path) -> None:
    # A server of a killed serve that is still shutting down, or was left behind: it holds our database.
    try:
        pid_text, port_text = pid_file.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError, FileNotFoundError):
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        # The pid may have been reused since: only a Prefect server on the recorded port is ours.
        if b"prefect" in words and b"server" in words and port_text.encode() in words:
            log.warning("stopping a Prefect server (pid %d) left behind by a previous feedlake serve", pid)
            os.kill(pid, signal.SIGTERM)
            for _ in range(int(STOP_TIMEOUT_SECONDS * 10)):
                time.sleep(0.1)
                os.kill(pid, 0)
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def serve_lock(home: Path) -> Iterator[None]:
    """Hold ``home``'s lock while serving: two serves on one database would fight over it."""
    home.mkdir(parents=True, exist_ok=True)
    handle = (home / "serve.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ConfigError(
            f"another feedlake serve is running with {home}; stop it, or set FEEDLAKE_HOME to another folder"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def installed_versions(names: Iterable[str]) -> dict[str, Version]:
    """The installed version of each distribution in ``names`` that is installed."""
    found = {}
    for name in names:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = Version(version(name))
    return found


def server_dependency_problems(versions: Mapping[str, Version]) -> list[str]:
    """Why Prefect 3.8's server cannot schedule with these versions (empty when it can).

    pip resolves the newest SQLAlchemy and fastapi unless told otherwise (infra/constraints.txt),
    and Prefect 3.8.8 runs with neither: the server would start and never create a run.
    """
    prefect = versions.get("prefect")
    if prefect is None or not Version("3.8") <= prefect < Version("3.9"):
        return []
    problems = []
    if versions.get("sqlalchemy", Version("0")) >= Version("2.1"):
        problems.append(
            f"Prefect {prefect}'s scheduler fails every cycle with SQLAlchemy {versions['sqlalchemy']}"
        )
    if versions.get("fastapi", Version("0")) >= Version("0.151"):
        problems.append(
            f"Prefect {prefect}'s server refuses its own client's requests with fastapi {versions['fastapi']}"
        )
    return problems


class ManagedPrefectServer:
    """A ``prefect server start`` child process, restarted if it exits while serve runs."""

    def __init__(self, settings: FeedlakeSettings, home: Path) -> None:
        self.settings = settings
        self.home = home
        self.port = settings.serve_port or _free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        """Start the server and wait until its API answers; then keep it alive. Stops it on failure."""
        problems = server_dependency_problems(installed_versions(("prefect", "sqlalchemy", "fastapi")))
        if problems:
            raise ConfigError(
                "this Prefect server would not run scheduled polls: "
                + "; ".join(problems)
                + ". Install with the constraints file: pip install -c infra/constraints.txt feedlake"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        _stop_leftover(self.home / "server.pid")
        if not _port_is_free(self.port):
            raise ConfigError(
                f"port {self.port} for feedlake serve's Prefect server is in use; set FEEDLAKE_SERVE_PORT "
                "to a free port (0 picks one), or set PREFECT_API_URL to use a server that already runs"
            )
        try:
            self._spawn()
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        self._watcher = threading.Thread(target=self._keep_alive, name="prefect-server-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        if self._log is not None:
            self._log.close()
        self._log = (self.home / "server.log").open("ab")
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
        self._process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            env=server_environment(self.settings, self.home, self.port),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: Ctrl-C reaches serve, which stops the server last, after its runs.
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (no threads run Python code in the child)
        )
        (self.home / "server.pid").write_text(f"{self._process.pid} {self.port}\n")

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        process = self._process
        assert process is not None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ConfigError(
                    f"the Prefect server exited with status {process.returncode} while starting; "
                    f"see {self.home / 'server.log'}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.25)
        raise ConfigError(f"the Prefect server did not answer within {START_TIMEOUT_SECONDS:.0f} s")

    def _keep_alive(self) -> None:
        while not self._stopping.wait(1.0):
            process = self._process
            if process is None or process.poll() is None:
                continue
            log.warning("the Prefect server exited (status %s); starting it again", process.returncode)
            try:
                self._spawn()
                self._wait_healthy()
            except Exception as exc:  # keep watching: the next loop tries again
                log.warning("the Prefect server did not come back (%s); trying again", exc)

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after a grace period."""
        self._stopping.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            # A restart in progress finishes first, so no child it spawns outlives serve.
            self._watcher.join(timeout=START_TIMEOUT_SECONDS)
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(FileNotFoundError):
            (self.home / "server.pid").unlink()
        if self._log is not None:
            self._log.close()
            self._log = None


def configured_api_url() -> str | None:
    """The Prefect API the user configured: ``PREFECT_API_URL``, or the active Prefect profile's."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import get_current_settings

    return get_current_settings().api.url or None


@contextlib.contextmanager
def prefect_api(settings: FeedlakeSettings) -> Iterator[str]:
    """The Prefect API that serve uses: the configured one, else a server started here."""
    configured = configured_api_url()
    if configured:
        yield configured
        return
    server = ManagedPrefectServer(settings, Path(settings.home).expanduser() / "prefect")
    server.start()
    try:
        yield server.api_url
    finally:
        server.stop()
