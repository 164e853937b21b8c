"""Real `feedlake poll` processes on an S3 lake: killed with SIGKILL at random points, and racing."""

from __future__ import annotations

import functools
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import S3_ENV, CorpusFile, write_sources
from tests.flows.test_poll_s3 import s3_table
from tests.support.paths import REPO

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

KILLS = 6


def poll_command(sources: Path, lake: str) -> list[str]:
    return [sys.executable, "-m", "feedlake.flows.cli", "poll", "--sources", str(sources), "--lake", lake]


def child_env(s3_endpoint: str) -> dict[str, str]:
    """The test's Prefect API and S3 server, handed to child processes."""
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        **S3_ENV,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    env["PYTHONPATH"] = str(REPO)
    return env


def time_in_commit(command: list[str], env: dict[str, str], lake: str, endpoint: str) -> float:
    """Run a poll to the end; return how long its run's intent lived (from the plan to the state
    update after its table commits): the window in which a kill can leave a run half done."""
    child = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_intent(child, lake, endpoint)
    started = time.monotonic()
    while child.poll() is None and txn_keys(lake, endpoint):
        time.sleep(0.01)
    window = time.monotonic() - started
    assert child.wait(timeout=300) == 0
    return window


@functools.cache
def s3_client(endpoint: str):  # noqa: ANN201 - a boto3 client
    import boto3

    return boto3.client("s3", endpoint_url=endpoint)


def txn_keys(lake: str, endpoint: str) -> int:
    """How many objects the lake's _txn/ folder holds (a run's plan while it is in flight)."""
    bucket, _, prefix = lake.removeprefix("s3://").partition("/")
    client = s3_client(endpoint)
    return int(client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/_txn/").get("KeyCount", 0))


def wait_for_intent(child: subprocess.Popen[bytes], lake: str, endpoint: str) -> None:
    """Return once the child's run has written its intent (or the child has ended)."""
    while child.poll() is None:
        if txn_keys(lake, endpoint):
            return
        time.sleep(0.02)


def lake_pairs(lake: str, endpoint: str) -> list[tuple[str, str]]:
    table = s3_table(lake, endpoint)
    return sorted(zip(table["article_id"].to_pylist(), table["content_hash"].to_pylist(), strict=True))


@pytest.fixture
def sources(tmp_path: Path, manifest: list[CorpusFile], snapshot_base_url: str) -> Path:
    entries = [(f.source_id, f"{snapshot_base_url}/corpus/{f.path}") for f in manifest[:40]]
    return write_sources(tmp_path / "sources.yaml", entries)


def test_sigkill_at_random_points_then_rerun_gives_one_clean_run(
    sources: Path, s3_lake: str, s3_endpoint: str
) -> None:
    env = child_env(s3_endpoint)
    clean_lake = s3_lake + "-clean"
    commit_stage = time_in_commit(poll_command(sources, clean_lake), env, clean_lake, s3_endpoint)
    expected = lake_pairs(clean_lake, s3_endpoint)
    assert len(expected) > 400
    chance = random.Random(20241209)
    outputs: list[str] = []
    kills = series = 0
    while kills < KILLS:
        assert series < 3 * KILLS, f"only {kills} kills landed in {series} runs"
        # One series: kill polls of one lake until one finishes on its own, then rerun and compare.
        lake = f"{s3_lake}-series{series}"
        series += 1
        while kills < KILLS:
            child = subprocess.Popen(
                poll_command(sources, lake),
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            # Kill at a random point of the write/commit stage, the only stage where a kill can do
            # harm: a random delay after the run's intent appears (kills elsewhere are covered by
            # the unit test that kills before every single store write).
            wait_for_intent(child, lake, s3_endpoint)
            time.sleep(chance.uniform(0.0, commit_stage))
            if child.poll() is not None:
                outputs.append(child.communicate()[0].decode(errors="replace"))
                break
            child.kill()  # SIGKILL: no cleanup, no finally blocks
            outputs.append(child.communicate()[0].decode(errors="replace"))
            kills += 1
        final = subprocess.run(poll_command(sources, lake), env=env, cwd=REPO, capture_output=True, text=True)
        outputs.append(final.stdout + final.stderr)
        assert final.returncode == 0, final.stdout + final.stderr
        assert lake_pairs(lake, s3_endpoint) == expected, f"series {series} after {kills} kills"
    recovered = [o for o in outputs if "recovered the lake first" in o]
    assert recovered, "no kill interrupted a commit; widen the kill window"


def test_two_polls_at_the_same_time_write_each_article_once(
    sources: Path, s3_lake: str, s3_endpoint: str
) -> None:
    env = child_env(s3_endpoint)
    children = [
        subprocess.Popen(poll_command(sources, s3_lake), env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=300)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    pairs = lake_pairs(s3_lake, s3_endpoint)
    assert len(pairs) == len(set(pairs)) > 400
    assert len({article_id for article_id, _ in pairs}) == len(pairs)
    committed = sorted(
        int(o.split(" rows committed")[0].rsplit(" ", 1)[-1]) for o in outputs if "rows committed" in o
    )
    assert committed[0] == 0 and committed[1] == len(pairs)
