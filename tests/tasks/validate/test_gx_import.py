"""Great Expectations imported with its unused dependencies deferred: same verdicts, less to load.

Each case runs in a fresh interpreter, since the pytest process has imported GX long before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

VERDICTS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from feedlake.tasks.validate.gx_import import import_great_expectations
import_great_expectations(() if sys.argv[2] == "eager" else ("scipy.stats", "altair", "boto3"))
deferred_ran = {name: name + "._stats_py" in sys.modules or name + ".vegalite" in sys.modules
                for name in ("scipy.stats", "altair")}
from feedlake.tasks.validate.validator import ArticleValidator
from tests.support.article_rows import corpus_rows, replace_column
rows = corpus_rows("corpus/FeedVerse/un-news-europe.rss.xml", "un")
urls = rows.column("url").to_pylist()
rows = replace_column(rows, "url", ["ftp://x/" if i % 3 == 0 else u for i, u in enumerate(urls)])
outcome = ArticleValidator().validate(rows)
import scipy.stats
print(json.dumps({
    "deferred_ran": deferred_ran,
    "held": list(outcome.held_positions),
    "results": [[r.spec.label, r.unexpected] for r in outcome.results],
    "failed": outcome.by_source["un"].failed,
    "norm_cdf": float(scipy.stats.norm.cdf(0.0)),
}))
"""


def verdicts(mode: str) -> dict[str, object]:
    command = [sys.executable, "-c", VERDICTS, str(ROOT), mode]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_deferred_import_gives_the_verdicts_of_an_eager_one() -> None:
    lean, eager = verdicts("lean"), verdicts("eager")
    assert lean["held"] and lean["held"] == eager["held"]
    assert lean["results"] == eager["results"] and lean["failed"] == eager["failed"]
    # The suite never touched SciPy's statistics or Altair: their code never ran ...
    assert lean["deferred_ran"] == {"scipy.stats": False, "altair": False}
    assert eager["deferred_ran"] == {"scipy.stats": True, "altair": True}
    # ... and a deferred module still works the moment something uses it.
    assert lean["norm_cdf"] == eager["norm_cdf"] == 0.5
