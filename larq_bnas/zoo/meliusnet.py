"""MeliusNet zoo models: MeliusNet22/29/42/59, MeliusNet A/B/C and the naive baseline.

Configurations and figures are the paper's (MeliusNet, Bethge et al., WACV 2021, Table 2
and the supplement), all for 224 x 224 ImageNet input. The paper's numbers use the grouped
stem, except the naive baseline (plain stem); MeliusNet22 and 29 were also published with
the plain 7x7 stem, whose figures are under ``paper["plain_stem"]`` (``--set stem=plain``).

``larq_bnas.zoo.build("meliusnet", blocks=..., reductions=..., transition_groups=...)``
builds a MeliusNet of any budget.
"""

from __future__ import annotations

from typing import Any

from larq_bnas.meliusnet import MeliusNetConfig, meliusnet_network
from larq_bnas.zoo.registry import ModelSpec, make_constructor, register

_SOURCE = "MeliusNet (Bethge et al., WACV 2021) Table 2"
_IMAGENET = dict(dataset="imagenet2012", input_shape=(224, 224, 3), num_classes=1000)


def _build(config: MeliusNetConfig, **kwargs: Any) -> Any:
    return meliusnet_network(config, **kwargs)


def _figures(top1: float, top5: float | None, size_mib: float, ops: float, flops: float,
             bops: float) -> dict[str, Any]:
    return {"top1": top1, "top5": top5, "size_mib": size_mib, "ops": ops, "flops": flops,
            "bops": bops}


def _spec(name: str, constructor: str, config: MeliusNetConfig, paper: dict[str, Any],
          description: str, source: str = _SOURCE) -> ModelSpec:
    return register(
        ModelSpec(
            name=name,
            constructor=constructor,
            family="meliusnet",
            builder=_build,
            config=config,
            paper={**paper, "source": source},
            description=description,
            **_IMAGENET,
        )
    )


_spec(
    "meliusnet22", "MeliusNet22",
    MeliusNetConfig(blocks=(4, 5, 4, 4), transition_channels=(160, 224, 256)),
    {**_figures(63.6, 84.7, 3.88, 2.08e8, 1.36e8, 4.62e9),
     "plain_stem": _figures(62.9, 84.3, 3.89, 2.58e8, 1.85e8, 4.62e9)},
    "MeliusNet22, blocks 4,5,4,4, grouped stem",
)
_spec(
    "meliusnet29", "MeliusNet29",
    MeliusNetConfig(blocks=(4, 6, 8, 6), transition_channels=(128, 192, 256)),
    {**_figures(65.8, 86.2, 5.07, 2.14e8, 1.29e8, 5.47e9),
     "plain_stem": _figures(64.9, 85.7, 5.08, 2.64e8, 1.78e8, 5.47e9)},
    "MeliusNet29, blocks 4,6,8,6, grouped stem",
)
_spec(
    "meliusnet42", "MeliusNet42",
    MeliusNetConfig(blocks=(5, 8, 14, 10), transition_channels=(160, 256, 416)),
    _figures(69.2, 88.3, 10.1, 3.25e8, 1.74e8, 9.69e9),
    "MeliusNet42, blocks 5,8,14,10, grouped stem (MobileNet 0.75 budget)",
)
_spec(
    "meliusnet59", "MeliusNet59",
    MeliusNetConfig(blocks=(6, 12, 24, 12), transition_channels=(192, 320, 544)),
    _figures(70.7, 89.2, 17.39, 5.32e8, 2.46e8, 1.83e10),
    "MeliusNet59, blocks 6,12,24,12, grouped stem (MobileNet 1.0 budget)",
)
_spec(
    "meliusnet-a", "MeliusNetA",
    MeliusNetConfig(blocks=(4, 5, 5, 6), transition_channels=(160, 256, 288),
                    transition_groups=4, shuffle_groups=16),
    _figures(63.4, 84.2, 4.05, 1.63e8, 0.87e8, 4.85e9),
    "MeliusNet A, blocks 4,5,5,6, grouped 1x1 transitions (4 groups, shuffle 16)",
)
_spec(
    "meliusnet-b", "MeliusNetB",
    MeliusNetConfig(blocks=(4, 6, 8, 6), transition_channels=(160, 224, 320),
                    transition_groups=2, shuffle_groups=16),
    _figures(65.7, 85.9, 5.00, 1.96e8, 1.06e8, 5.72e9),
    "MeliusNet B, blocks 4,6,8,6, grouped 1x1 transitions (2 groups, shuffle 16)",
)
_spec(
    "meliusnet-c", "MeliusNetC",
    MeliusNetConfig(blocks=(3, 5, 10, 6), transition_channels=(128, 192, 288),
                    transition_groups=4, shuffle_groups=16),
    _figures(64.1, 85.0, 4.46, 1.50e8, 0.82e8, 4.35e9),
    "MeliusNet C, blocks 3,5,10,6, grouped 1x1 transitions (MobileNet 0.5 budget)",
)
_spec(
    "meliusnet-naive", "MeliusNetNaive",
    MeliusNetConfig(blocks=(3, 3, 3, 3), transition_channels=(128, 160, 192), block="naive",
                    stem="plain"),
    # The supplement states only "about 3 % below MeliusNet22" for its accuracy.
    {"top1": None, "top5": None, "size_mib": 3.26, "ops": 2.577e8, "flops": 1.57e8,
     "bops": 6.44e9},
    "naive baseline: Dense + full-width Residual Blocks 3,3,3,3, plain stem",
    source="MeliusNet supplement (naive baseline); top-1 about 3 % below MeliusNet22",
)

register(
    ModelSpec(
        name="meliusnet",
        constructor="MeliusNet",
        family="meliusnet",
        builder=_build,
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
