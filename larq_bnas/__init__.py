"""larq_bnas: binary neural network architectures you can search, train and deploy.

Importing the package selects legacy Keras (``tf-keras``), which larq and Larq Compute
Engine need, by setting ``TF_USE_LEGACY_KERAS=1`` before TensorFlow's Keras is touched.
The package root stays light: it imports no TensorFlow, so ``larq_bnas --help`` is fast.
Its subpackages resolve lazily as attributes (``import larq_bnas; larq_bnas.zoo.BNASA()``):
``models`` (architectures), ``zoo``, ``search``, ``training``, ``converters`` (Keras ->
LCE), ``runtime`` (running flatbuffers), ``pipeline``, ``studies``, and ``costs``.
See docs/readme/architecture.md for where each concept lives.
"""

import os as _os

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
if _os.environ["TF_USE_LEGACY_KERAS"] not in ("1", "true", "True"):
    raise ImportError(
        "larq_bnas needs legacy Keras (tf-keras) because larq and Larq Compute Engine do; "
        f"TF_USE_LEGACY_KERAS is set to {_os.environ['TF_USE_LEGACY_KERAS']!r}. "
        "Unset it or set it to 1."
    )


def _route_imported_tensorflow_to_legacy_keras() -> None:
    """TensorFlow fixes where ``import tensorflow.keras...`` points when it is imported.
    If the user imported it before this package, re-point it at tf-keras (larq imports
    ``tensorflow.keras.optimizers.legacy``), provided tf.keras is not in use yet."""
    import sys

    tf = sys.modules.get("tensorflow")
    if tf is None or getattr(tf, "_tf_uses_legacy_keras", True):
        return
    if any(name.startswith("tensorflow.keras") for name in sys.modules):
        raise ImportError(
            "tf.keras was already loaded as Keras 3, which larq and Larq Compute Engine "
            "cannot use. Import larq_bnas before using tf.keras, or set "
            "TF_USE_LEGACY_KERAS=1 in the environment."
        )
    import importlib.util

    spec = importlib.util.find_spec("tf_keras.api._v2.keras")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("larq_bnas needs tf-keras: pip install 'tf-keras>=2.16,<2.17'")
    parent = _os.path.dirname(list(spec.submodule_search_locations)[0])
    tf.__path__.insert(0, parent)
    tf._tf_uses_legacy_keras = True  # type: ignore[attr-defined]


_route_imported_tensorflow_to_legacy_keras()

# Old import paths of moved modules answer for one release (larq_bnas/_deprecated.py).
from larq_bnas import _deprecated  # noqa: E402

_deprecated.install()

# tf.keras.models.load_model registers our layers first (without importing TF here).
from larq_bnas import _keras_registration  # noqa: E402

_keras_registration.install()
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide C++ start-up noise

__version__ = "0.1.0"

_SUBMODULES = (
    "converters",
    "costs",
    "models",
    "pipeline",
    "runtime",
    "search",
    "studies",
    "training",
    "zoo",
)


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
