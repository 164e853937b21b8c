"""``feedlake migrate`` run as a user runs it: the installed command on a lake of the old layout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from feedlake.flows.cli import EXIT_OK
from tests.support.paths import CASES, REPO

FEEDLAKE = REPO / ".venv" / "bin" / "feedlake"


def feedlake(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed ``feedlake`` command with no Prefect API configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FEEDLAKE_"))}
    env["PREFECT_HOME"] = str(cwd / "prefect-home")
    return subprocess.run(
        [str(FEEDLAKE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_migrate_turns_an_old_lake_into_delta_tables_and_files_lists_month_partitions(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(CASES / "legacy_lake" / "lake", lake)
    done = feedlake("migrate", "--lake", str(lake), cwd=tmp_path)
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    assert f"migrated {lake} to Delta tables as run " in done.stdout
    assert "articles: 19 rows, 18 files -> " in done.stdout
    assert "_quarantine: 1 rows, 1 files -> 1 files" in done.stdout
    assert "deleted 19 data files of the old layout and 3 objects under _commits/" in done.stdout
    assert not (lake / "_commits").exists()

    for table, count in (("articles", 12), ("_quarantine", 1)):
        listed = feedlake("files", "--lake", str(lake), "--table", table, cwd=tmp_path)
        assert listed.returncode == EXIT_OK, listed.stderr[-3000:]
        files = listed.stdout.split()
        assert len(files) == count
        month_file = re.compile(
            rf"{re.escape(str(lake / table))}/published_month=\d{{4}}-\d{{2}}/part-[0-9a-f]+\.parquet"
        )
        assert all(month_file.fullmatch(f) for f in files), files
        on_disk = sorted(str(p) for p in (lake / table).rglob("*.parquet") if "_delta_log" not in p.parts)
        assert sorted(files) == on_disk

    again = feedlake("migrate", "--lake", str(lake), cwd=tmp_path)
    assert again.returncode == EXIT_OK, again.stderr[-3000:]
    assert again.stdout.startswith(f"nothing to migrate: {lake}")
    assert not (tmp_path / "prefect-home").exists(), "migrate needs no Prefect API"
