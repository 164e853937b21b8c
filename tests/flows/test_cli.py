"""The feedlake command: exit statuses, printed summary, sources check."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedlake.flows.cli import EXIT_CANNOT_RUN, EXIT_OK, main
from tests.conftest import write_sources
from tests.support.paths import REPO
from tests.support.shell_env import shell_without_prefect


def test_sources_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources", "check", str(REPO / "infra" / "sources" / "default.yaml")]) == EXIT_OK
    assert "OK," in capsys.readouterr().out


def test_sources_check_lists_every_error_with_its_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "sources:\n  - id: Bad Id\n    url: ftp://x\n    name: n\n    publisher: p\n    kind: tabloid\n"
    )
    assert main(["sources", "check", str(bad)]) == EXIT_CANNOT_RUN
    out = capsys.readouterr().out
    assert f"{bad}:2: source 'Bad Id': id must be a lowercase slug" in out
    assert f"{bad}:3: source 'Bad Id': url must be an absolute http(s) URL" in out
    assert f"{bad}:6: source 'Bad Id': kind must be one of" in out
    assert "3 error(s)" in out


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_poll_prints_summary_and_exits_zero_despite_a_broken_source(
    tmp_path: Path, snapshot_base_url: str, capsys
) -> None:
    sources = write_sources(
        tmp_path / "s.yaml",
        [
            ("centcom", f"{snapshot_base_url}/centcom/centcom-press-releases.RSS.ashx.xml"),
            ("missing", f"{snapshot_base_url}/corpus/no-such-file.xml"),
        ],
    )
    lake = tmp_path / "lake"
    assert main(["poll", "--sources", str(sources), "--lake", f"file://{lake}"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "centcom" in out and "missing" in out and "HTTP 404" not in out
    line = next(x for x in out.splitlines() if x.startswith("missing"))
    assert "error" in line and "404" in line
    assert "3 rows committed" in out
    assert f"delta_scan('{lake}/articles')" in out and "articles table version: 1" in out


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
def test_poll_into_an_unwritable_lake_exits_non_zero(tmp_path: Path, snapshot_base_url: str, capsys) -> None:
    sources = write_sources(tmp_path / "s.yaml", [("c", f"{snapshot_base_url}/centcom/x.xml")])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["poll", "--sources", str(sources), "--lake", str(blocker / "lake")]) == EXIT_CANNOT_RUN
    assert "cannot run" in capsys.readouterr().err


@pytest.mark.usefixtures("prefect_api")
def test_poll_with_a_broken_sources_file_exits_non_zero(tmp_path: Path, capsys) -> None:
    broken = tmp_path / "s.yaml"
    broken.write_text("sources: [")
    assert main(["poll", "--sources", str(broken), "--lake", str(tmp_path / "lake")]) == EXIT_CANNOT_RUN
    assert "not valid YAML" in capsys.readouterr().err


def test_poll_without_a_prefect_api_runs_in_process_and_never_imports_prefect(
    tmp_path: Path, snapshot_base_url: str
) -> None:
    import subprocess
    import sys

    sources = write_sources(
        tmp_path / "s.yaml", [("centcom", f"{snapshot_base_url}/centcom/centcom-press-releases.RSS.ashx.xml")]
    )
    env = shell_without_prefect(tmp_path, FEEDLAKE_ALLOW_PRIVATE_NETWORKS="true", PYTHONPATH=str(REPO))
    script = (
        "import sys\n"
        "from feedlake.flows.cli import main\n"
        f"code = main(['poll', '--sources', {str(sources)!r}, '--lake', {str(tmp_path / 'lake')!r}])\n"
        "assert 'prefect' not in sys.modules, 'a one-shot poll imported prefect'\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == EXIT_OK, done.stderr[-3000:]
    assert "3 rows committed" in done.stdout
    assert not (tmp_path / "prefect-home").exists(), "no Prefect database, no temporary API"


def test_a_prefect_api_in_the_environment_or_the_active_profile_makes_poll_a_flow_run(tmp_path: Path) -> None:
    from feedlake.flows.cli import prefect_api_configured

    home = tmp_path / "home"
    assert not prefect_api_configured({"PREFECT_HOME": str(home)})
    assert prefect_api_configured({"PREFECT_HOME": str(home), "PREFECT_API_URL": "http://127.0.0.1:4200/api"})
    home.mkdir()
    (home / "profiles.toml").write_text(
        'active = "work"\n[profiles.work]\nPREFECT_API_URL = "http://10.0.0.5:4200/api"\n[profiles.local]\n'
    )
    assert prefect_api_configured({"PREFECT_HOME": str(home)})
    assert not prefect_api_configured({"PREFECT_HOME": str(home), "PREFECT_PROFILE": "local"})
    (home / "profiles.toml").write_text("not toml [")
    assert not prefect_api_configured({"PREFECT_HOME": str(home)})
