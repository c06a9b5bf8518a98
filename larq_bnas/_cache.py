"""The one cache directory: ``$LARQ_BNAS_CACHE_DIR``, by default ``~/.cache/larq_bnas``.

Below it: ``weights/`` (published weights), ``native/`` (the native kernels' builds) and
``lce_kernels.json`` (the fastest kernel per model file and machine).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "LARQ_BNAS_CACHE_DIR"


def cache_root() -> Path:
    """The cache directory (not created)."""
    root = os.environ.get(ENV) or os.path.join(os.path.expanduser("~"), ".cache", "larq_bnas")
    return Path(root)


def cache_dir(sub: str = "") -> Path:
    """``cache_root() / sub``, created if missing."""
    path = cache_root() / sub if sub else cache_root()
    path.mkdir(parents=True, exist_ok=True)
    return path
