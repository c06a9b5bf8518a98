"""Shared test settings: legacy Keras, quiet TensorFlow, deterministic seeds."""

import os
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The native kernels are compiled once for the whole session (tests that point
# LARQ_BNAS_CACHE_DIR at a temporary kernel cache do not rebuild them).
os.environ.setdefault("LARQ_BNAS_NATIVE_CACHE", tempfile.mkdtemp(prefix="larq_bnas_native_"))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import larq_bnas  # noqa: E402,F401  (before TensorFlow)


@pytest.fixture(autouse=True)
def _seed() -> None:
    tf.keras.utils.set_random_seed(0)
    tf.keras.backend.clear_session()
