"""Where the repository's test inputs are, wherever a test module sits."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "tests" / "cases"
CORPUS = CASES / "corpus"
INFRA = REPO / "infra"
