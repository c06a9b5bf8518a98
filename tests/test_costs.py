import json
from pathlib import Path

import larq as lq
import pytest
import tensorflow as tf

from larq_bnas import costs
from larq_bnas.zoo import figures as figures_module
from larq_bnas.zoo import get_spec
from larq_bnas.zoo.figures import KEYS, load_figures


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


# The BNAS reference's parameter counts (BNAS-F has none): one build of each model gives
# the figures and the parameters (test_networks checks that these zoo configurations are
# the reference's).
REFERENCE_PARAMS = {"bnas-d": 28_407_560, "bnas-e": 31_997_890, "bnas-g": 160_016_936}


@pytest.mark.parametrize("name", ["bnas-d", "bnas-e", "bnas-f", "bnas-g"])
def test_imagenet_ops_counted_the_papers_way_match_the_paper(name, zoo_figures):
    figures = zoo_figures(name)  # computed now, not read from figures.json
    if name in REFERENCE_PARAMS:
        assert figures["trainable_params"] == REFERENCE_PARAMS[name]
    assert figures["ops_paper"] == pytest.approx(get_spec(name).paper["ops"], rel=0.03)
    # the MeliusNet convention counts the float residual projections: ~2.4x more
    assert 2.0 < figures["ops"] / figures["ops_paper"] < 3.0
    assert figures == pytest.approx(load_figures()[name])


def test_costing_224_models_at_64_px_is_exact():
    from larq_bnas.zoo.registry import model_cost_report

    full = model_cost_report("bnas-d", cells=3, channels=8).to_dict()
    scaled = figures_module.cost_figures("bnas-d", cells=3, channels=8)
    for key in ("trainable_params", "bops", "flops", "ops", "ops_paper", "flops_paper"):
        assert scaled[key] == pytest.approx(full[key], rel=1e-12), key


# Every MeliusNet's shipped figures are compared with its fresh ones in test_meliusnet
# (test_costs_at_224_reproduce_the_published_figures, which builds each once anyway).
@pytest.mark.parametrize("name", ["bnas-mini", "bnas-b", "xnor-resnet18"])
def test_shipped_figures_are_current_for_the_cheap_models(name, zoo_figures):
    assert set(KEYS) - {"ops_paper"} <= set(load_figures()[name])
    assert zoo_figures(name) == pytest.approx(load_figures()[name])


def test_shipped_figures_match_every_models_configuration():
    # A changed spec (cells, channels, blocks, input size ...) is seen without rebuilding;
    # .ci/run recomputes every model (python -m larq_bnas.zoo.figures --check --recompute).
    assert figures_module.stale_models() == [], "run python -m larq_bnas.zoo.figures"


def test_readme_zoo_table_is_rendered_from_the_figures():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert figures_module.readme_table(readme) == figures_module.render_zoo_table(), (
        "run python -m larq_bnas.zoo.figures"
    )
