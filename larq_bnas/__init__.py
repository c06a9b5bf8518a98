"""larq_bnas: binary neural network architectures you can search, train and deploy.

Importing the package selects legacy Keras (``tf-keras``), which larq and Larq Compute
Engine need, by setting ``TF_USE_LEGACY_KERAS=1`` before TensorFlow's Keras is touched.
The package root stays light: it imports no TensorFlow, so ``larq_bnas --help`` is fast.
Use the subpackages: ``larq_bnas.zoo``, ``larq_bnas.search``, ``larq_bnas.training``,
``larq_bnas.converters``, and the modules ``ops``, ``genotypes``, ``cells``,
``networks``, ``costs``, ``data``.
"""

import os as _os

_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
if _os.environ["TF_USE_LEGACY_KERAS"] not in ("1", "true", "True"):
    raise ImportError(
        "larq_bnas needs legacy Keras (tf-keras) because larq and Larq Compute Engine do; "
        f"TF_USE_LEGACY_KERAS is set to {_os.environ['TF_USE_LEGACY_KERAS']!r}. "
        "Unset it or set it to 1."
    )
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # hide C++ start-up noise

__version__ = "0.1.0"
