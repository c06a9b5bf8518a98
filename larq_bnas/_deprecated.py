"""Old import paths, kept for one release after their modules moved.

No file stands at an old path: ``install()`` puts a finder on ``sys.meta_path`` that
answers ``import larq_bnas.ops`` (say) with the module at its new path, under both
names, and a DeprecationWarning. ``MOVED`` is the whole list (docs/readme/architecture.md).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

#: old module path -> new module path
MOVED: dict[str, str] = {
    "larq_bnas.ops": "larq_bnas.models.bnas.ops",
    "larq_bnas.genotypes": "larq_bnas.models.bnas.genotypes",
    "larq_bnas.cells": "larq_bnas.models.bnas.cells",
    "larq_bnas.networks": "larq_bnas.models.bnas.network",
    "larq_bnas.meliusnet": "larq_bnas.models.meliusnet",
    "larq_bnas.data": "larq_bnas.training.data",
    "larq_bnas.callbacks": "larq_bnas.training.callbacks",
    "larq_bnas.report": "larq_bnas.document",
    "larq_bnas.pipeline_report": "larq_bnas.pipeline.report",
    "larq_bnas.converters.inference": "larq_bnas.runtime.interpreters",
    "larq_bnas.converters.native": "larq_bnas.runtime.native",
    "larq_bnas.converters.report": "larq_bnas.converters.acceleration",
    "larq_bnas.zoo.bnas": "larq_bnas.zoo.specs",
    "larq_bnas.zoo.meliusnet": "larq_bnas.zoo.specs",
    "larq_bnas.zoo.baselines": "larq_bnas.zoo.specs",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; the old path will be removed in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(new)
        self._spec = module.__spec__  # the import system overwrites it; exec_module restores
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec
        module.__loader__ = self._spec.loader if self._spec is not None else None


def install() -> None:
    """Put the finder of the old paths on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())
