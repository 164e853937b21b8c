"""Installing feedlake: the metadata states feedlake's needs, infra/constraints.txt the registry's.

With the constraints file (what the Makefile, CI and the image use) pip resolves a Prefect set whose
server schedules runs. The metadata alone carries no registry workaround, and ``feedlake serve``
refuses, naming the constraints file, to start a Prefect 3.8 server with versions it cannot run with.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from feedlake.flows.prefect_server import server_dependency_problems
from tests.support.paths import REPO

CONSTRAINTS = REPO / "infra" / "constraints.txt"


def dependencies() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {Requirement(line).name.lower(): Requirement(line) for line in project["dependencies"]}


def test_the_metadata_carries_no_registry_workaround() -> None:
    needs = dependencies()
    assert "fastapi" not in needs and "sqlalchemy" not in needs
    assert Version("3.9.0") in needs["prefect"].specifier, "prefect<3.9 belongs in infra/constraints.txt"
    assert "prefect-dask" not in needs, "prefect-dask is the 'dask' extra"


@pytest.mark.slow
def test_the_constrained_install_resolves_versions_prefects_server_runs_with(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    done = subprocess.run(
        [*command, "-c", str(CONSTRAINTS), "--report", str(report), str(REPO)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    resolved = {
        item["metadata"]["name"].lower(): Version(item["metadata"]["version"])
        for item in json.loads(report.read_text())["install"]
    }
    assert Version("3.8") <= resolved["prefect"] < Version("3.9")
    assert server_dependency_problems(resolved) == []


def test_serve_refuses_versions_prefect_38s_server_cannot_run_with() -> None:
    bad = {"prefect": Version("3.8.8"), "sqlalchemy": Version("2.1.0"), "fastapi": Version("0.155.1")}
    problems = server_dependency_problems(bad)
    assert len(problems) == 2
    assert "SQLAlchemy 2.1.0" in problems[0] and "fastapi 0.155.1" in problems[1]
    good = {**bad, "sqlalchemy": Version("2.0.36"), "fastapi": Version("0.150.0")}
    assert server_dependency_problems(good) == []
    # Prefect 3.9 pins what it needs itself: nothing to refuse.
    assert server_dependency_problems({**bad, "prefect": Version("3.9.1")}) == []


def test_serve_names_the_constraints_file_when_it_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import feedlake.flows.prefect_server as prefect_server
    from feedlake.tasks.errors import ConfigError
    from feedlake.tasks.settings import FeedlakeSettings

    monkeypatch.setattr(
        prefect_server,
        "installed_versions",
        lambda names: {"prefect": Version("3.8.8"), "sqlalchemy": Version("2.1.1")},
    )
    server = prefect_server.ManagedPrefectServer(FeedlakeSettings(), tmp_path)
    with pytest.raises(ConfigError, match="infra/constraints.txt"):
        server.start()
    assert not (tmp_path / "server.pid").exists(), "nothing was started"
