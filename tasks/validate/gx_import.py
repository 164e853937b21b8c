"""Import Great Expectations without executing the parts of its dependencies a pandas suite never runs.

GX 1.x imports, at its own import, everything any of its features could use: SciPy's statistics
(for distribution expectations), Altair (for notebook charts) and boto3 (for S3 data sources). For
feedlake's suite they are seconds of CPU and about 90 MiB that a one-feed poll pays before it can
check twenty rows. While GX is imported, those modules are created with the standard library's
``importlib.util.LazyLoader``: the module object exists at once, and its code runs the first time
anything reads an attribute of it. A suite that uses a distribution expectation therefore still
gets real SciPy, only later; nothing is stubbed, and modules imported before are left alone.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
import types
from collections.abc import Sequence

# What GX imports for features feedlake's validation does not use (measured with -X importtime):
# scipy.stats 0.4-0.5 s, altair 0.26 s, boto3 0.08 s (GX reads botocore names at once, so it is not deferred).
DEFERRED_MODULES = ("scipy.stats", "altair", "boto3")

_import_lock = threading.Lock()


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the named modules with the other finders, then defers their execution."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        # Only source modules can be deferred: an extension module has no code to run later.
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def import_great_expectations(deferred: Sequence[str] = DEFERRED_MODULES) -> types.ModuleType:
    """Import ``great_expectations`` (once per process) with ``deferred`` modules loaded lazily."""
    # GX would otherwise try to phone home on import; these machines may have no network.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    with _import_lock:
        if "great_expectations" in sys.modules:
            return sys.modules["great_expectations"]
        finder = _DeferringFinder([name for name in deferred if name not in sys.modules])
        sys.meta_path.insert(0, finder)
        try:
            return importlib.import_module("great_expectations")
        finally:
            sys.meta_path.remove(finder)
