"""The zoo: searched and hand-designed binary networks, one constructor per model.

Every constructor has the same keyword-only signature (larq-zoo's)::

    model = larq_bnas.zoo.BNASA(input_shape=None, input_tensor=None, weights=None,
                                include_top=True, num_classes=10, **options)

``build(name, **kwargs)`` does the same by name (``"bnas-a"``, ``"meliusnet22"``, or
``"bnas"`` with ``genotype=``/``cells=``/``channels=`` for any budget); ``list_specs()``
and ``get_spec(name)`` give each model's config and the paper's figures.
"""

from larq_bnas.zoo import published  # noqa: F401  (registers the BNAS checkpoint importer)
from larq_bnas.zoo.preprocessing import decode_predictions, preprocess_input
from larq_bnas.zoo.registry import (
    ModelSpec,
    PretrainedWeights,
    UnknownModelError,
    build,
    get_spec,
    list_specs,
    model_cost_report,
    model_names,
    register,
)
from larq_bnas.zoo.specs import (
    BNAS,
    BNASA,
    BNASB,
    BNASC,
    BNASD,
    BNASE,
    BNASF,
    BNASG,
    XNORWRN40,
    BNASMini,
    BNASRefF,
    BNASRefG,
    MeliusNet,
    MeliusNet22,
    MeliusNet29,
    MeliusNet42,
    MeliusNet59,
    MeliusNetA,
    MeliusNetB,
    MeliusNetC,
    MeliusNetNaive,
    XNORResNet,
    XNORResNet18,
    XNORResNet34,
)

__all__ = [
    "BNAS",
    "BNASA",
    "BNASB",
    "BNASC",
    "BNASD",
    "BNASE",
    "BNASF",
    "BNASG",
    "BNASMini",
    "BNASRefF",
    "BNASRefG",
    "decode_predictions",
    "preprocess_input",
    "MeliusNet",
    "MeliusNet22",
    "MeliusNet29",
    "MeliusNet42",
    "MeliusNet59",
    "MeliusNetA",
    "MeliusNetB",
    "MeliusNetC",
    "MeliusNetNaive",
    "XNORResNet",
    "XNORResNet18",
    "XNORResNet34",
    "XNORWRN40",
    "ModelSpec",
    "PretrainedWeights",
    "UnknownModelError",
    "build",
    "get_spec",
    "list_specs",
    "model_cost_report",
    "model_names",
    "register",
]
