"""`pip install feedlake` on a fresh machine resolves a Prefect set whose server schedules runs.

pip resolves from the package metadata alone (no constraints file, nothing installed counted), as
a user's install does; the pins in pyproject.toml must keep it off the versions Prefect 3.8's
server cannot run with.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.version import Version

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_a_fresh_install_resolves_versions_prefects_server_runs_with(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    done = subprocess.run(
        [*command, "--report", str(report), str(ROOT)],
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
    assert resolved["sqlalchemy"] < Version("2.1"), "Prefect 3.8's scheduler fails with SQLAlchemy 2.1"
    assert resolved["fastapi"] < Version("0.151"), "Prefect 3.8's server refuses its client's nulls"
