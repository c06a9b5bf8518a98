import json

import larq as lq
import pytest
import tensorflow as tf

from larq_bnas import costs
from larq_bnas.zoo import get_spec
from larq_bnas.zoo.figures import KEYS, compute_figures, load_figures


def _tiny_model():
    inputs = tf.keras.Input((8, 8, 4))
    x = lq.layers.QuantConv2D(
        8,
        3,
        padding="same",
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
        name="bconv",
    )(inputs)
    x = tf.keras.layers.BatchNormalization(name="bn")(x)
    x = tf.keras.layers.Conv2D(16, 1, strides=2, use_bias=True, name="fconv")(x)
    x = lq.layers.QuantConv2D(  # binary weights, float input: 1-bit storage, FLOPs
        16,
        3,
        padding="same",
        kernel_quantizer="ste_sign",
        groups=4,
        use_bias=False,
        name="wconv",
    )(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(10, name="fc")(x)
    return tf.keras.Model(inputs, outputs, name="tiny")


def test_hand_counted_tiny_model():
    report = costs.model_costs(_tiny_model())
    by_name = {layer.name: layer for layer in report.layers}
    assert by_name["bconv"].binary and by_name["bconv"].bops == 3 * 3 * 4 * 8 * 8 * 8
    assert by_name["fconv"].flops == 8 * 16 * 4 * 4
    assert not by_name["wconv"].binary
    assert by_name["wconv"].flops == 3 * 3 * (16 // 4) * 16 * 4 * 4
    assert by_name["fc"].macs == 16 * 10
    assert report.bops == 2304 * 8
    assert report.flops == 2048 + 9216  # the final dense layer is not counted
    assert report.ops == pytest.approx(report.bops / 64 + report.flops)
    binary = 3 * 3 * 4 * 8 + 3 * 3 * 4 * 16
    floating = 2 * 8 + (8 * 16 + 16) + (16 * 10 + 10)
    assert report.binary_params == binary
    assert report.float_params == floating
    assert report.trainable_params == binary + floating
    assert report.size_bytes == pytest.approx(binary / 8 + floating * 4)
    assert report.size_mib == pytest.approx(report.size_bytes / 2**20)


def test_count_dense_and_recount():
    report = costs.model_costs(_tiny_model(), count_dense=True)
    assert report.flops == 2048 + 9216 + 160
    paper = report.recount(count_as_binary=lambda layer: layer.name == "fconv", count_dense=False)
    assert paper["bops"] == 2304 * 8 + 2048 and paper["flops"] == 9216


def test_report_serialises_and_prints():
    report = costs.model_costs(_tiny_model())
    d = json.loads(json.dumps(report.to_dict(per_layer=True)))
    for key in (
        "name",
        "trainable_params",
        "binary_params",
        "float_params",
        "size_mib",
        "bops",
        "flops",
        "ops",
    ):
        assert key in d
    assert d["name"] == "tiny" and len(d["layers"]) == len(report.layers)
    text = report.table()
    assert "bconv" in text and "OPs" in text


def test_unknown_input_size_is_an_error():
    inputs = tf.keras.Input((None, None, 3))
    model = tf.keras.Model(inputs, tf.keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="not fully known"):
        costs.model_costs(model)
    assert costs.model_costs(model, input_shape=(8, 8, 3)).flops == 27 * 4 * 36


def test_nested_bnas_layers_are_costed():
    from larq_bnas.zoo import build

    report = costs.model_costs(build("bnas-mini", input_shape=(16, 16, 3), cells=3, channels=4))
    names = [layer.name for layer in report.layers if layer.binary]
    assert any(n.startswith("cell0/preprocess0/") for n in names)
    assert all(n.endswith("/conv") for n in names)


@pytest.mark.parametrize("name", ["bnas-d", "bnas-e", "bnas-f", "bnas-g"])
def test_imagenet_ops_counted_the_papers_way_match_the_paper(name):
    figures = load_figures()[name]  # checked against a fresh computation below
    assert figures["ops_paper"] == pytest.approx(get_spec(name).paper["ops"], rel=0.03)
    # the MeliusNet convention counts the float residual projections: ~2.4x more
    assert 2.0 < figures["ops"] / figures["ops_paper"] < 3.0


def test_shipped_figures_are_current_for_a_small_model():
    shipped = load_figures()
    assert set(KEYS) <= set(shipped["bnas-mini"])
    assert compute_figures("bnas-mini") == pytest.approx(shipped["bnas-mini"])


@pytest.mark.slow
def test_shipped_figures_are_current_for_every_model():
    shipped = load_figures()
    from larq_bnas.zoo import model_names

    for name in model_names():
        assert name in shipped, f"run python -m larq_bnas.zoo.figures {name}"
        assert compute_figures(name) == pytest.approx(shipped[name]), name
