"""Study ``layer-types`` (BNAS Table 1 and Table 12): which layer types survive binarization.

BNAS chooses its layer set by training small CNNs made of one layer type in full
precision and binarized, and keeping the types that lose little accuracy: separable
convolutions fail in the binary domain, plain and dilated convolutions do not.

Each network here is three repeated layers of one type -- convolution, dilated
convolution (dilation 2) or separable convolution, each 3x3 and 5x5 -- every one followed
by 2x2 max pooling, then three dense layers (two hidden ReLU layers and the classifier).

- float: BatchNorm -> convolution -> ReLU;
- binary: BatchNorm -> ste_sign -> binary convolution (sign(W) scaled per output channel
  by mean |W|, larq's ``MagnitudeAwareSign``) -> ReLU, i.e. the BNAS layer set's
  ``BinaryConv`` / ``BinarySepConv`` (the separable one binarizes both its depthwise and its
  pointwise convolution). All three layers are binary, so the first one binarizes the
  (batch-normalised) image. The three dense layers stay full precision in both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from larq_bnas.studies.common import (
    TOY_DATASET,
    PaperCost,
    StudyContext,
    StudyResult,
    pyplot,
    save_figure,
    scale_title,
    train_unit,
)

NAME = "layer-types"
TITLE = "Layer types in float and binary (BNAS Table 1 and 12)"
SOURCE = "BNAS (Kim et al., ECCV 2020) Table 1 and Table 12"

#: layer type -> (kind, kernel size, dilation)
LAYER_TYPES: dict[str, tuple[str, int, int]] = {
    "conv_3x3": ("conv", 3, 1),
    "conv_5x5": ("conv", 5, 1),
    "dil_conv_3x3": ("conv", 3, 2),
    "dil_conv_5x5": ("conv", 5, 2),
    "sep_conv_3x3": ("sep", 3, 1),
    "sep_conv_5x5": ("sep", 5, 1),
}
PRECISIONS = ("float", "binary")

TOY: dict[str, Any] = dict(
    dataset=TOY_DATASET,
    input_size=16,
    filters=32,
    hidden=(128, 64),
    epochs=3,
    recipe="digits",
    batch_size=None,
)
PAPER: dict[str, Any] = dict(
    dataset="cifar10",
    input_size=32,
    filters=128,
    hidden=(512, 256),
    epochs=100,
    recipe="bnas-cifar",
    batch_size=256,
)

PAPER_COST = PaperCost(
    dataset="cifar10",
    units="12 trainings: 6 layer types x {float, binary}, 3 layers of 128 filters + 3 dense",
    schedule="100 epochs each, recipe bnas-cifar, batch 256 (our choice: the paper's "
    "schedule for Table 1 is not in our reference facts)",
    gpu_hours="not stated in the papers (small 3-layer CNNs: well under an hour each on "
    "one GPU is our expectation, not a measurement)",
)

COLUMNS = [
    "layer_type",
    "kind",
    "kernel_size",
    "dilation",
    "float_top1",
    "binary_top1",
    "drop",
    "float_ops",
    "binary_ops",
    "binary_params",
]


def layer_type_model(
    layer_type: str,
    binary: bool,
    *,
    input_shape: tuple[int, int, int],
    filters: int = 32,
    hidden: tuple[int, ...] = (128, 64),
    num_classes: int = 10,
) -> Any:
    """Three layers of ``layer_type`` (each followed by 2x2 max pooling) and three dense
    layers, full precision or binary (see the module docstring)."""
    import tensorflow as tf

    from larq_bnas._keras import batch_norm
    from larq_bnas.models.bnas.ops import BinaryConv, BinarySepConv

    if layer_type not in LAYER_TYPES:
        raise ValueError(
            f"Unknown layer type {layer_type!r}; valid types are: " + ", ".join(LAYER_TYPES)
        )
    kind, k, dilation = LAYER_TYPES[layer_type]
    inputs = tf.keras.layers.Input(shape=input_shape)
    x = inputs
    for i in range(3):
        name = f"layer{i}"
        if binary and kind == "sep":
            x = BinarySepConv(filters, k, name=name)(x)
        elif binary:
            x = BinaryConv(filters, k, dilation_rate=dilation, name=name)(x)
        else:
            x = batch_norm(f"{name}_bn")(x)
            if kind == "sep":
                x = tf.keras.layers.SeparableConv2D(
                    filters, k, padding="same", use_bias=False, name=f"{name}_conv"
                )(x)
            else:
                x = tf.keras.layers.Conv2D(
                    filters,
                    k,
                    padding="same",
                    dilation_rate=dilation,
                    use_bias=False,
                    name=f"{name}_conv",
                )(x)
            x = tf.keras.layers.ReLU(name=f"{name}_relu")(x)
        x = tf.keras.layers.MaxPool2D(2, name=f"{name}_pool")(x)
    x = tf.keras.layers.Flatten(name="flatten")(x)
    for i, units in enumerate(hidden):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    x = tf.keras.layers.Dense(num_classes, name="classifier")(x)
    x = tf.keras.layers.Activation("softmax", dtype="float32", name="predictions")(x)
    precision = "binary" if binary else "float"
    return tf.keras.Model(inputs, x, name=f"{precision}_{layer_type}")


def run(ctx: StudyContext) -> StudyResult:
    import tensorflow as tf

    from larq_bnas.costs import model_costs
    from larq_bnas.training import data

    s = TOY if ctx.toy else PAPER
    epochs = ctx.epochs_or(s["epochs"])
    num_classes = data.info(s["dataset"], ctx.data_dir).num_classes
    shape = (s["input_size"], s["input_size"], 3)
    ctx.total = len(LAYER_TYPES) * len(PRECISIONS)

    def unit(layer_type: str, precision: str) -> Any:
        def fn(unit_dir: Path) -> dict[str, Any]:
            tf.keras.utils.set_random_seed(0)
            model = layer_type_model(
                layer_type,
                precision == "binary",
                input_shape=shape,
                filters=s["filters"],
                hidden=s["hidden"],
                num_classes=num_classes,
            )
            results = train_unit(
                ctx,
                unit_dir,
                model,
                dataset=s["dataset"],
                recipe=s["recipe"],
                epochs=epochs,
                batch_size=s["batch_size"],
            )
            costs = model_costs(model)
            return {
                "layer_type": layer_type,
                "precision": precision,
                "test_top1": results["test_top1"],
                "best_test_top1": results["best_test_top1"],
                "ops": costs.ops,
                "binary_params": costs.binary_params,
                "trainable_params": costs.trainable_params,
            }

        return fn

    results: dict[tuple[str, str], dict[str, Any]] = {}
    for precision in PRECISIONS:
        for layer_type in LAYER_TYPES:
            results[layer_type, precision] = ctx.unit(
                f"{precision}_{layer_type}",
                f"{precision} {layer_type}",
                unit(layer_type, precision),
            )

    rows = []
    for layer_type, (kind, k, dilation) in LAYER_TYPES.items():
        f, b = results[layer_type, "float"], results[layer_type, "binary"]
        rows.append(
            {
                "layer_type": layer_type,
                "kind": kind,
                "kernel_size": k,
                "dilation": dilation,
                "float_top1": f["test_top1"],
                "binary_top1": b["test_top1"],
                "drop": f["test_top1"] - b["test_top1"],
                "float_ops": f["ops"],
                "binary_ops": b["ops"],
                "binary_params": b["binary_params"],
            }
        )

    def figure(path: Path) -> None:
        import numpy as np

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(8, 4.2))
        xs = np.arange(len(rows))
        ax.bar(xs - 0.2, [r["float_top1"] for r in rows], 0.4, label="float")
        ax.bar(xs + 0.2, [r["binary_top1"] for r in rows], 0.4, label="binary")
        ax.set_xticks(xs, [r["layer_type"] for r in rows], rotation=20)
        ax.set_ylabel("test top-1 accuracy")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
        ax.set_title(scale_title(ctx, "Three layers of one type, float vs binary"), fontsize=10)
        fig.tight_layout()
        save_figure(fig, path)

    return ctx.finish(
        COLUMNS,
        rows,
        figure,
        extras={
            "dataset": s["dataset"],
            "input_size": s["input_size"],
            "epochs": epochs,
            "filters": s["filters"],
            "dense": [*s["hidden"], num_classes],
            "dense_precision": "float",
            "source": SOURCE,
        },
    )
