"""Make ``tf.keras.models.load_model`` know our layers after a plain ``import larq_bnas``.

Our custom layers (``larq_bnas>BinaryConv``, ``larq_bnas>Cell``, MeliusNet's blocks,
larq's quantized layers, our optimizers and schedules) are registered with Keras when
their modules are imported, and those modules import TensorFlow. ``import larq_bnas``
must stay light, so it cannot import them. Instead it defers the registration to the
moment a model is loaded: ``tf_keras``'s ``load_model`` is wrapped so that it imports
the modules that register our objects first.

- If ``tf_keras.src.saving.saving_api`` is not imported yet, a meta-path finder wraps its
  ``load_model`` right after the module executes (before ``tf.keras.models`` and
  ``tf.keras.saving`` copy the name).
- If it is already imported, ``load_model`` is wrapped in place and in the public
  modules that copied it.

This module imports no TensorFlow itself.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import sys
from typing import Any

_TARGET = "tf_keras.src.saving.saving_api"
#: Modules that registered the name ``load_model`` from the target.
_PUBLIC = (
    "tf_keras.models",
    "tf_keras.saving",
    "tf_keras.src.models",
    "tf_keras.src.saving",
    "tf_keras.api._v2.keras.models",
    "tf_keras.api._v2.keras.saving",
    "tf_keras.api._v1.keras.models",
    "tf_keras.api._v1.keras.saving",
)
#: Modules whose import registers our serializable objects with Keras.
_REGISTERING = (
    "larq",
    "larq_bnas.models.bnas.ops",
    "larq_bnas.models.bnas.cells",
    "larq_bnas.models.meliusnet",
    "larq_bnas.training.optimizers",
    "larq_bnas.training.schedules",
    "larq_bnas.training.recipes",
)


def register_keras_objects() -> None:
    """Import every module that registers larq's and our layers with Keras."""
    for name in _REGISTERING:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            except ImportError:  # pragma: no cover - optional parts
                pass


def _wrap(module: Any) -> None:
    original = getattr(module, "load_model", None)
    if original is None or getattr(original, "_larq_bnas_registers", False):
        return

    @functools.wraps(original)
    def load_model(*args: Any, **kwargs: Any) -> Any:
        register_keras_objects()
        return original(*args, **kwargs)

    setattr(load_model, "_larq_bnas_registers", True)  # noqa: B010
    setattr(module, "load_model", load_model)  # noqa: B010
    for name in _PUBLIC:
        public = sys.modules.get(name)
        if public is not None and getattr(public, "load_model", None) is original:
            setattr(public, "load_model", load_model)  # noqa: B010


class _Loader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        _wrap(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader)
                return spec
        return None


def install() -> None:
    """Arrange for ``load_model`` to register our objects (idempotent)."""
    module = sys.modules.get(_TARGET)
    if module is not None:
        _wrap(module)
        return
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
