"""The wheel installs one import package, feedlake, holding every module and data file of the repo."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import REPO

# Where each installed subpackage comes from in the repository (pyproject's package-dir).
SOURCES = {
    "feedlake": "api",
    "feedlake/flows": "flows",
    "feedlake/tasks": "tasks",
    "feedlake/schemas": "schemas",
}


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("feedlake-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_the_only_top_level_package_is_feedlake(wheel_names: set[str]) -> None:
    top = {name.split("/", 1)[0] for name in wheel_names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"feedlake"}


def test_every_module_of_the_repo_is_in_the_wheel(wheel_names: set[str]) -> None:
    expected = set()
    for installed, folder in SOURCES.items():
        for path in (REPO / folder).rglob("*.py"):
            relative = path.relative_to(REPO / folder)
            if installed == "feedlake" and len(relative.parts) > 1:
                continue
            expected.add(f"{installed}/{relative.as_posix()}")
    assert expected - wheel_names == set()


def test_the_data_files_ship(wheel_names: set[str]) -> None:
    for name in (
        "feedlake/py.typed",
        "feedlake/tasks/py.typed",
        "feedlake/schemas/py.typed",
        "feedlake/schemas/README.md",
        "feedlake/flows/logging.yml",
    ):
        assert name in wheel_names
    suites = [
        n for n in wheel_names if n.startswith("feedlake/schemas/expectations/") and n.endswith(".json")
    ]
    assert suites


def test_a_users_own_tasks_and_schemas_modules_do_not_shadow_feedlake(tmp_path: Path) -> None:
    # A Celery-style tasks.py, a FastAPI-style schemas.py and a Prefect project's flows/ in the folder
    # the command runs from: each would break an import of a top-level package of the same name.
    for name in ("tasks.py", "schemas.py"):
        (tmp_path / name).write_text("raise ImportError('the user module was imported')\n")
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "__init__.py").write_text("raise ImportError('the user package was imported')\n")
    sources = REPO / "infra" / "sources" / "default.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "feedlake.flows.cli", "sources", "check", str(sources)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "OK, 21 sources" in done.stdout
