"""Every zoo model: its name, family, typed config, the paper's figures, and its
lqz-style constructor. This is the one module that registers zoo models.

- BNAS-Mini/A/B/C (CIFAR-10) and BNAS-D/E/F/G (ImageNet), the paper's configurations
  (Table 5 and 13). All ImageNet models use the cell derived with gamma = 3
  (``bnas_imagenet``): the paper's FLOPs and the reference's parameter counts of BNAS-F
  and BNAS-G are reproduced only with it, although Table 13 lists gamma = 1 for those two.
- MeliusNet22/29/42/59, MeliusNet A/B/C and the naive baseline (MeliusNet, Bethge et al.,
  WACV 2021, Table 2 and the supplement), all for 224 x 224 ImageNet input. The paper's
  numbers use the grouped stem, except the naive baseline (plain stem); MeliusNet22 and 29
  were also published with the plain 7x7 stem, whose figures are under
  ``paper["plain_stem"]`` (``--set stem=plain``).
- The BNAS paper's XNOR-Net baselines (ResNet18/34, WRN40 on CIFAR-10).
- ``bnas``, ``meliusnet`` and ``xnor-resnet``: any network of a family, for any budget
  (``build("bnas", genotype=..., cells=..., channels=...)``).
"""

from __future__ import annotations

from typing import Any

from larq_bnas.costs import CostReport, LayerCost
from larq_bnas.models.bnas.network import BNASConfig, bnas_network
from larq_bnas.models.meliusnet import MeliusNetConfig, meliusnet_network
from larq_bnas.models.xnor import XNORNetConfig, xnor_resnet
from larq_bnas.zoo.registry import ModelSpec, add_weights, make_constructor, register
from larq_bnas.zoo.weights import PretrainedWeights

# ----------------------------------------------------------------------------- BNAS


def _is_residual_projection(layer: LayerCost) -> bool:
    return layer.name.endswith("/skip_conv")


def bnas_paper_costs(report: CostReport) -> dict[str, Any]:
    """OPs counted the BNAS paper's way: the 2x2 residual projections as binary, the stem
    and the classifier as float (the paper's "FLOPs" column)."""
    paper = report.recount(count_as_binary=_is_residual_projection, count_dense=True)
    return {"ops_paper": paper["ops"], "bops_paper": paper["bops"], "flops_paper": paper["flops"]}


def _build_bnas(config: BNASConfig, **kwargs: Any) -> Any:
    return bnas_network(config, **kwargs)


_BNAS_CIFAR: dict[str, Any] = dict(dataset="cifar10", input_shape=(32, 32, 3), num_classes=10)
_BNAS_IMAGENET: dict[str, Any] = dict(
    dataset="imagenet2012", input_shape=(224, 224, 3), num_classes=1000
)


def _bnas_spec(
    name: str,
    constructor: str,
    cells: int,
    channels: int,
    imagenet: bool,
    paper: dict[str, Any],
    description: str,
) -> ModelSpec:
    config = BNASConfig(
        cells=cells,
        channels=channels,
        genotype="bnas_imagenet" if imagenet else "bnas_cifar",
        stem="imagenet" if imagenet else "cifar",
    )
    return register(
        ModelSpec(
            name=name,
            constructor=constructor,
            family="bnas",
            builder=_build_bnas,
            config=config,
            paper={"source": "BNAS (Kim et al., ECCV 2020) Table 5/13", **paper},
            cost_extras=bnas_paper_costs,
            description=description,
            **(_BNAS_IMAGENET if imagenet else _BNAS_CIFAR),
        )
    )


_bnas_spec(
    "bnas-mini",
    "BNASMini",
    10,
    24,
    False,
    {"top1": 90.12, "ops": 0.04e8},
    "BNAS-Mini, 10 cells, C=24, CIFAR-10 cell (gamma 1)",
)
_bnas_spec(
    "bnas-a",
    "BNASA",
    20,
    36,
    False,
    {"top1": 92.70, "ops": 0.16e8},
    "BNAS-A, 20 cells, C=36, CIFAR-10 cell (gamma 1)",
)
_bnas_spec(
    "bnas-b",
    "BNASB",
    12,
    64,
    False,
    {"top1": 93.76, "ops": 0.27e8},
    "BNAS-B, 12 cells, C=64, CIFAR-10 cell (gamma 1)",
)
_bnas_spec(
    "bnas-c",
    "BNASC",
    16,
    108,
    False,
    {"top1": 94.43, "ops": 0.90e8},
    "BNAS-C, 16 cells, C=108, CIFAR-10 cell (gamma 1)",
)
_bnas_spec(
    "bnas-d",
    "BNASD",
    12,
    64,
    True,
    {"top1": 57.69, "top5": 79.89, "ops": 1.48e8},
    "BNAS-D, 12 cells, C=64, ImageNet cell (gamma 3)",
)
_bnas_spec(
    "bnas-e",
    "BNASE",
    12,
    68,
    True,
    {"top1": 58.76, "top5": 80.61, "ops": 1.63e8},
    "BNAS-E, 12 cells, C=68, ImageNet cell (gamma 3)",
)
_bnas_spec(
    "bnas-f",
    "BNASF",
    12,
    84,
    True,
    {"top1": 60.67, "top5": 81.88, "ops": 2.49e8},
    "BNAS-F, 12 cells, C=84, ImageNet cell (gamma 3)",
)
_bnas_spec(
    "bnas-g",
    "BNASG",
    16,
    128,
    True,
    {"top1": 63.51, "top5": 83.91, "ops": 6.39e8},
    "BNAS-G, 16 cells, C=128, ImageNet cell (gamma 3)",
)

# The reference's two ImageNet configs that the paper does not list (its README's
# "bnas-f" and "bnas-g"; its "bnas-h" is the paper's BNAS-G). Published checkpoints exist
# for both: see larq_bnas.zoo.published.
_bnas_spec(
    "bnas-ref-f",
    "BNASRefF",
    15,
    68,
    True,
    {
        "top1": 58.99,
        "top5": 80.85,
        "source": "BNAS reference README (gistvision/bnas), config 'bnas-f'; not in the paper",
    },
    "the reference's 'bnas-f': 15 cells, C=68, ImageNet cell (gamma 3)",
)
_bnas_spec(
    "bnas-ref-g",
    "BNASRefG",
    11,
    74,
    True,
    {
        "top1": 59.81,
        "top5": 81.61,
        "source": "BNAS reference README (gistvision/bnas), config 'bnas-g'; not in the paper",
    },
    "the reference's 'bnas-g': 11 cells, C=74, ImageNet cell (gamma 3)",
)

register(
    ModelSpec(
        name="bnas",
        constructor="BNAS",
        family="bnas",
        builder=_build_bnas,
        config=BNASConfig(),
        cost_extras=bnas_paper_costs,
        custom=True,
        description="any BNAS network: --set genotype=FILE cells=N channels=N stem=cifar|imagenet",
        **_BNAS_CIFAR,
    )
)

BNASMini = make_constructor("bnas-mini")
BNASA = make_constructor("bnas-a")
BNASB = make_constructor("bnas-b")
BNASC = make_constructor("bnas-c")
BNASD = make_constructor("bnas-d")
BNASE = make_constructor("bnas-e")
BNASF = make_constructor("bnas-f")
BNASG = make_constructor("bnas-g")
BNASRefF = make_constructor("bnas-ref-f")
BNASRefG = make_constructor("bnas-ref-g")
BNAS = make_constructor("bnas")


# ------------------------------------------------------------------------ MeliusNet

_MELIUS_SOURCE = "MeliusNet (Bethge et al., WACV 2021) Table 2"
_IMAGENET: dict[str, Any] = dict(
    dataset="imagenet2012", input_shape=(224, 224, 3), num_classes=1000
)


def _build_meliusnet(config: MeliusNetConfig, **kwargs: Any) -> Any:
    return meliusnet_network(config, **kwargs)


def _figures(
    top1: float, top5: float | None, size_mib: float, ops: float, flops: float, bops: float
) -> dict[str, Any]:
    return {
        "top1": top1,
        "top5": top5,
        "size_mib": size_mib,
        "ops": ops,
        "flops": flops,
        "bops": bops,
    }


def _melius_spec(
    name: str,
    constructor: str,
    config: MeliusNetConfig,
    paper: dict[str, Any],
    description: str,
    source: str = _MELIUS_SOURCE,
) -> ModelSpec:
    return register(
        ModelSpec(
            name=name,
            constructor=constructor,
            family="meliusnet",
            builder=_build_meliusnet,
            config=config,
            paper={**paper, "source": source},
            description=description,
            **_IMAGENET,
        )
    )


_melius_spec(
    "meliusnet22",
    "MeliusNet22",
    MeliusNetConfig(blocks=(4, 5, 4, 4), transition_channels=(160, 224, 256)),
    {
        **_figures(63.6, 84.7, 3.88, 2.08e8, 1.36e8, 4.62e9),
        "plain_stem": _figures(62.9, 84.3, 3.89, 2.58e8, 1.85e8, 4.62e9),
    },
    "MeliusNet22, blocks 4,5,4,4, grouped stem",
)
# larq-zoo's published MeliusNet22 (plain 7x7 stem, zero padding: our layout="lqz"), with
# the URL and sha256 that larq-zoo's own source (larq_zoo.literature.meliusnet) names.
_LQZ_RELEASES = "https://github.com/larq/zoo/releases/download"
add_weights(
    "meliusnet22",
    "imagenet",
    PretrainedWeights(
        url=f"{_LQZ_RELEASES}/meliusnet22-v0.1.0/meliusnet22_weights.h5",
        sha256="c1ba85e8389ae326009665ec13331e49fc3df4d0f925fa8553e224f7362c18ed",
        num_classes=1000,
        description="larq-zoo MeliusNet22, ImageNet (62.4 % top-1 in larq-zoo)",
        loader="larq-zoo",
        options={"layout": "lqz"},
    ),
)
add_weights(
    "meliusnet22",
    "imagenet-notop",
    PretrainedWeights(
        url=f"{_LQZ_RELEASES}/meliusnet22-v0.1.1/meliusnet22_weights_notop.h5",
        sha256="abfc5c50049d72a14e44df0c1cb73896ece2a1ab4bf9bb48fede6cc2f5e0b58f",
        include_top=False,
        description="larq-zoo MeliusNet22 without its classifier",
        loader="larq-zoo",
        options={"layout": "lqz"},
    ),
)

_melius_spec(
    "meliusnet29",
    "MeliusNet29",
    MeliusNetConfig(blocks=(4, 6, 8, 6), transition_channels=(128, 192, 256)),
    {
        **_figures(65.8, 86.2, 5.07, 2.14e8, 1.29e8, 5.47e9),
        "plain_stem": _figures(64.9, 85.7, 5.08, 2.64e8, 1.78e8, 5.47e9),
    },
    "MeliusNet29, blocks 4,6,8,6, grouped stem",
)
_melius_spec(
    "meliusnet42",
    "MeliusNet42",
    MeliusNetConfig(blocks=(5, 8, 14, 10), transition_channels=(160, 256, 416)),
    _figures(69.2, 88.3, 10.1, 3.25e8, 1.74e8, 9.69e9),
    "MeliusNet42, blocks 5,8,14,10, grouped stem (MobileNet 0.75 budget)",
)
_melius_spec(
    "meliusnet59",
    "MeliusNet59",
    MeliusNetConfig(blocks=(6, 12, 24, 12), transition_channels=(192, 320, 544)),
    _figures(70.7, 89.2, 17.39, 5.32e8, 2.46e8, 1.83e10),
    "MeliusNet59, blocks 6,12,24,12, grouped stem (MobileNet 1.0 budget)",
)
_melius_spec(
    "meliusnet-a",
    "MeliusNetA",
    MeliusNetConfig(
        blocks=(4, 5, 5, 6),
        transition_channels=(160, 256, 288),
        transition_groups=4,
        shuffle_groups=16,
    ),
    _figures(63.4, 84.2, 4.05, 1.63e8, 0.87e8, 4.85e9),
    "MeliusNet A, blocks 4,5,5,6, grouped 1x1 transitions (4 groups, shuffle 16)",
)
_melius_spec(
    "meliusnet-b",
    "MeliusNetB",
    MeliusNetConfig(
        blocks=(4, 6, 8, 6),
        transition_channels=(160, 224, 320),
        transition_groups=2,
        shuffle_groups=16,
    ),
    _figures(65.7, 85.9, 5.00, 1.96e8, 1.06e8, 5.72e9),
    "MeliusNet B, blocks 4,6,8,6, grouped 1x1 transitions (2 groups, shuffle 16)",
)
_melius_spec(
    "meliusnet-c",
    "MeliusNetC",
    MeliusNetConfig(
        blocks=(3, 5, 10, 6),
        transition_channels=(128, 192, 288),
        transition_groups=4,
        shuffle_groups=16,
    ),
    _figures(64.1, 85.0, 4.46, 1.50e8, 0.82e8, 4.35e9),
    "MeliusNet C, blocks 3,5,10,6, grouped 1x1 transitions (MobileNet 0.5 budget)",
)
_melius_spec(
    "meliusnet-naive",
    "MeliusNetNaive",
    MeliusNetConfig(
        blocks=(3, 3, 3, 3), transition_channels=(128, 160, 192), block="naive", stem="plain"
    ),
    # The supplement states only "about 3 % below MeliusNet22" for its accuracy.
    {"top1": None, "top5": None, "size_mib": 3.26, "ops": 2.577e8, "flops": 1.57e8, "bops": 6.44e9},
    "naive baseline: Dense + full-width Residual Blocks 3,3,3,3, plain stem",
    source="MeliusNet supplement (naive baseline); top-1 about 3 % below MeliusNet22",
)

register(
    ModelSpec(
        name="meliusnet",
        constructor="MeliusNet",
        family="meliusnet",
        builder=_build_meliusnet,
        # MeliusNet22 expressed by reduction factors, the form for new budgets.
        config=MeliusNetConfig(
            blocks=(4, 5, 4, 4), transition_channels=(), reductions=(2.0, 2.2, 1.8)
        ),
        custom=True,
        description=(
            "any MeliusNet: --set blocks=4,5,4,4 reductions=2,2.2,1.8 (or "
            "transition_channels=...) transition_groups=N shuffle_groups=N stem=grouped|plain "
            "block=melius|naive"
        ),
        **_IMAGENET,
    )
)

MeliusNet22 = make_constructor("meliusnet22")
MeliusNet29 = make_constructor("meliusnet29")
MeliusNet42 = make_constructor("meliusnet42")
MeliusNet59 = make_constructor("meliusnet59")
MeliusNetA = make_constructor("meliusnet-a")
MeliusNetB = make_constructor("meliusnet-b")
MeliusNetC = make_constructor("meliusnet-c")
MeliusNetNaive = make_constructor("meliusnet-naive")
MeliusNet = make_constructor("meliusnet")


# -------------------------------------------------------------- XNOR-Net baselines


def _build_xnor(config: XNORNetConfig, **kwargs: Any) -> Any:
    return xnor_resnet(config, **kwargs)


_XNOR_CIFAR: dict[str, Any] = dict(dataset="cifar10", input_shape=(32, 32, 3), num_classes=10)
_XNOR_PAPER: dict[str, Any] = {
    "source": "BNAS (Kim et al., ECCV 2020) Table 6 / Figure 1 baselines (XNOR-Net); "
    "their figures are not in our reference facts"
}


def _xnor_spec(name: str, constructor: str, config: XNORNetConfig, description: str) -> ModelSpec:
    return register(
        ModelSpec(
            name=name,
            constructor=constructor,
            family="xnor",
            builder=_build_xnor,
            config=config,
            paper=dict(_XNOR_PAPER),
            description=description,
            **_XNOR_CIFAR,
        )
    )


_xnor_spec(
    "xnor-resnet18",
    "XNORResNet18",
    XNORNetConfig(),
    "ResNet18 (CIFAR) binarized by XNOR-Net: blocks 2,2,2,2, 64-512 channels",
)
_xnor_spec(
    "xnor-resnet34",
    "XNORResNet34",
    XNORNetConfig(blocks=(3, 4, 6, 3)),
    "ResNet34 (CIFAR) binarized by XNOR-Net: blocks 3,4,6,3, 64-512 channels",
)
_xnor_spec(
    "xnor-wrn40",
    "XNORWRN40",
    XNORNetConfig(blocks=(6, 6, 6), stage_channels=(64, 128, 256), stem_channels=16),
    "WRN-40-4 binarized by XNOR-Net: blocks 6,6,6, 64-256 channels",
)

register(
    ModelSpec(
        name="xnor-resnet",
        constructor="XNORResNet",
        family="xnor",
        builder=_build_xnor,
        config=XNORNetConfig(),
        custom=True,
        description="any XNOR-Net residual backbone: --set blocks=2,2,2,2 "
        "stage_channels=64,128,256,512 stem_channels=64 width=1.0",
        **_XNOR_CIFAR,
    )
)

XNORResNet18 = make_constructor("xnor-resnet18")
XNORResNet34 = make_constructor("xnor-resnet34")
XNORWRN40 = make_constructor("xnor-wrn40")
XNORResNet = make_constructor("xnor-resnet")
