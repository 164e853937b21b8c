"""The environment of a user's shell for a feedlake subprocess: no Prefect API configured."""

from __future__ import annotations

import os
from pathlib import Path


def shell_without_prefect(root: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any ``PREFECT_*`` value, Prefect's home below ``root``
    (so that no profile of the machine's configures an API), and ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_HOME": str(root / "prefect-home"), **extra}
