"""Shared test settings: legacy Keras, quiet TensorFlow, deterministic seeds."""

import os
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One cache directory for the test run, shared by the pytest-xdist workers of that run: the
# native kernels are compiled once (builds and the kernel-choice cache are written
# atomically under a lock). Tests that need an empty kernel-choice cache use the
# ``kernel_cache`` fixture instead.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID")
if _RUN:
    _cache = os.path.join(tempfile.gettempdir(), f"larq_bnas_cache_{os.getuid()}_{_RUN}")
    os.makedirs(_cache, mode=0o700, exist_ok=True)
else:
    _cache = tempfile.mkdtemp(prefix="larq_bnas_cache_")
os.environ["LARQ_BNAS_CACHE_DIR"] = _cache

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import larq_bnas  # noqa: E402,F401  (before TensorFlow)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each of the (two) workers computes on one core: small models gain nothing from a
    # second TensorFlow thread that the other worker's process needs.
    tf.config.threading.set_intra_op_parallelism_threads(1)


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


@pytest.fixture(scope="session")
def shared_bytes(tmp_path_factory):
    """``get(key, make)``: the bytes ``make()`` returns, made once per test session and
    kept in a directory that the session's xdist workers share (under a file lock), so
    that an expensive artifact (a converted flatbuffer) used by modules that may run on
    different workers is built by one of them only."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # pytest-N/popen-gwX -> pytest-N: this session's workers only
    root = base / "shared_bytes"
    root.mkdir(exist_ok=True)

    def get(key: str, make) -> bytes:
        path = root / f"{key}.bin"
        with open(root / f"{key}.lock", "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                if not path.exists():
                    tmp = root / f".{key}.tmp"
                    tmp.write_bytes(make())
                    os.replace(tmp, path)
                return path.read_bytes()
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    return get
