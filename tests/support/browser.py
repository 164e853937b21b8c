"""Headless Chromium for tests: load a page, return the DOM it built, and the figures it shows."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

# The flags keep Chromium off the network: on these machines its background calls are refused.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_or_skip() -> str:
    """Path of a Chromium binary; in CI its absence is a failure, elsewhere a named skip."""
    found = (
        os.environ.get("FEEDLAKE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("CI must install Chromium (.ci/run does: apt-get install chromium)")
    pytest.skip("Chromium not installed: apt-get install chromium, or set FEEDLAKE_CHROMIUM")


def rendered_dom(page: Path, screenshot: Path | None = None) -> str:
    """Load ``page`` in headless Chromium and return the DOM after load (optionally a screenshot)."""
    binary = chromium_or_skip()
    with tempfile.TemporaryDirectory() as profile:
        command = [binary, *HEADLESS_FLAGS, f"--user-data-dir={profile}"]
        done = subprocess.run(
            [*command, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        if screenshot is not None:
            shot = subprocess.run(
                [*command, f"--screenshot={screenshot}", "--window-size=1280,2000", page.resolve().as_uri()],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert shot.returncode == 0, shot.stderr[-2000:]
    return done.stdout


class Figures(HTMLParser):
    """Every cell carrying ``data-metric``, keyed by (run, source, expectation, metric)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[tuple[str, str, str, str], str] = {}
        self._open: tuple[str, str, str, str] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "data-metric" in a:
            self._open = (
                a.get("data-run", ""),
                a.get("data-source", ""),
                a.get("data-expectation", ""),
                a["data-metric"],
            )

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._open is not None:
            self.found[self._open] = data.strip()
            self._open = None


def figures(dom: str) -> Figures:
    """Parse the figures out of a rendered DOM."""
    parsed = Figures()
    parsed.feed(dom)
    return parsed
