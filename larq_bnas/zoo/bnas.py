"""BNAS zoo models: BNAS-Mini/A/B/C (CIFAR-10) and BNAS-D/E/F/G (ImageNet).

Configurations are the paper's (Table 5 and 13). All ImageNet models use the cell derived
with gamma = 3 (``bnas_imagenet``): the paper's FLOPs and the reference's parameter
counts of BNAS-F and BNAS-G are reproduced only with it, although Table 13 lists
gamma = 1 for those two.

``larq_bnas.zoo.build("bnas", genotype=..., cells=..., channels=...)`` builds a network
of any budget from any genotype (for example a searched one).
"""

from __future__ import annotations

from typing import Any

from larq_bnas.costs import CostReport, LayerCost
from larq_bnas.networks import BNASConfig, bnas_network
from larq_bnas.zoo.registry import ModelSpec, make_constructor, register


def _is_residual_projection(layer: LayerCost) -> bool:
    return layer.name.endswith("/skip_conv")


def bnas_paper_costs(report: CostReport) -> dict[str, Any]:
    """OPs counted the BNAS paper's way: the 2x2 residual projections as binary, the stem
    and the classifier as float (the paper's "FLOPs" column)."""
    paper = report.recount(count_as_binary=_is_residual_projection, count_dense=True)
    return {"ops_paper": paper["ops"], "bops_paper": paper["bops"], "flops_paper": paper["flops"]}


def _build(config: BNASConfig, **kwargs: Any) -> Any:
    return bnas_network(config, **kwargs)


_CIFAR = dict(dataset="cifar10", input_shape=(32, 32, 3), num_classes=10)
_IMAGENET = dict(dataset="imagenet2012", input_shape=(224, 224, 3), num_classes=1000)


def _spec(name: str, constructor: str, cells: int, channels: int, imagenet: bool,
          paper: dict[str, Any], description: str) -> ModelSpec:
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
            builder=_build,
            config=config,
            paper={"source": "BNAS (Kim et al., ECCV 2020) Table 5/13", **paper},
            cost_extras=bnas_paper_costs,
            description=description,
            **(_IMAGENET if imagenet else _CIFAR),
        )
    )


_spec("bnas-mini", "BNASMini", 10, 24, False, {"top1": 90.12, "ops": 0.04e8},
      "BNAS-Mini, 10 cells, C=24, CIFAR-10 cell (gamma 1)")
_spec("bnas-a", "BNASA", 20, 36, False, {"top1": 92.70, "ops": 0.16e8},
      "BNAS-A, 20 cells, C=36, CIFAR-10 cell (gamma 1)")
_spec("bnas-b", "BNASB", 12, 64, False, {"top1": 93.76, "ops": 0.27e8},
      "BNAS-B, 12 cells, C=64, CIFAR-10 cell (gamma 1)")
_spec("bnas-c", "BNASC", 16, 108, False, {"top1": 94.43, "ops": 0.90e8},
      "BNAS-C, 16 cells, C=108, CIFAR-10 cell (gamma 1)")
_spec("bnas-d", "BNASD", 12, 64, True, {"top1": 57.69, "top5": 79.89, "ops": 1.48e8},
      "BNAS-D, 12 cells, C=64, ImageNet cell (gamma 3)")
_spec("bnas-e", "BNASE", 12, 68, True, {"top1": 58.76, "top5": 80.61, "ops": 1.63e8},
      "BNAS-E, 12 cells, C=68, ImageNet cell (gamma 3)")
_spec("bnas-f", "BNASF", 12, 84, True, {"top1": 60.67, "top5": 81.88, "ops": 2.49e8},
      "BNAS-F, 12 cells, C=84, ImageNet cell (gamma 3)")
_spec("bnas-g", "BNASG", 16, 128, True, {"top1": 63.51, "top5": 83.91, "ops": 6.39e8},
      "BNAS-G, 16 cells, C=128, ImageNet cell (gamma 3)")

register(
    ModelSpec(
        name="bnas",
        constructor="BNAS",
        family="bnas",
        builder=_build,
        config=BNASConfig(),
        cost_extras=bnas_paper_costs,
        custom=True,
        description="any BNAS network: --set genotype=FILE cells=N channels=N stem=cifar|imagenet",
        **_CIFAR,
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
BNAS = make_constructor("bnas")
