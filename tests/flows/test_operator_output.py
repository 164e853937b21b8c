"""What an operator reads: a healthy run prints a handful of log lines, no ERROR and no traceback,
and a failed source is named with its reason. Help texts are plain text.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from feedlake.flows.cli import build_parser

pytestmark = pytest.mark.slow

FEEDLAKE = str(Path(sys.executable).with_name("feedlake"))
LEVELS = "DEBUG|INFO|WARNING|ERROR|CRITICAL"
# "LEVEL name: message" (the CLI's format) or "time | LEVEL | ..." (Prefect's console format).
LOG_LINE = re.compile(rf"^({LEVELS})\b|\| ({LEVELS}) ")


def test_the_demo_prints_a_handful_of_log_lines_and_names_the_failed_source(tmp_path: Path) -> None:
    env_lake = tmp_path / "lake"
    done = subprocess.run(
        [FEEDLAKE, "demo", "--lake", str(env_lake)], capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "ERROR" not in output, output
    log_lines = [line for line in output.splitlines() if LOG_LINE.search(line)]
    assert len(log_lines) <= 8, "\n".join(log_lines)
    failed = [line for line in log_lines if "WARNING" in line and "html-not-a-feed failed" in line]
    assert len(failed) == 1 and "HTML page, not a feed" in failed[0], log_lines
    assert "Created temporary directory" not in output and "telemetry" not in output.lower()


def test_help_texts_read_as_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "feedlake" in text and "``" not in text and ":func:" not in text
