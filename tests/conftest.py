"""Shared test settings: legacy Keras, quiet TensorFlow, deterministic seeds."""

import os
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One cache directory for the session: the native kernels are compiled once (tests that
# need an empty kernel-choice cache use the ``kernel_cache`` fixture instead).
os.environ["LARQ_BNAS_CACHE_DIR"] = tempfile.mkdtemp(prefix="larq_bnas_cache_")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import larq_bnas  # noqa: E402,F401  (before TensorFlow)


@pytest.fixture(autouse=True)
def _seed() -> None:
    tf.keras.utils.set_random_seed(0)
    tf.keras.backend.clear_session()


@pytest.fixture
def kernel_cache(tmp_path, monkeypatch):
    """An empty kernel-choice cache file for one test (the native build cache is kept)."""
    from larq_bnas.runtime import interpreters

    path = tmp_path / "kernel_cache" / "lce_kernels.json"
    monkeypatch.setattr(interpreters, "kernel_cache_path", lambda: path)
    return path


@pytest.fixture(scope="session")
def zoo_figures():
    """``compute_figures`` computed once per model for the whole session."""
    import functools

    from larq_bnas.zoo.figures import compute_figures

    return functools.cache(compute_figures)
