import numpy as np
import pytest
import tensorflow as tf

from larq_bnas.models.bnas.cells import Cell, DropPathSchedule, set_drop_path_rate
from larq_bnas.models.bnas.genotypes import BNAS_CIFAR, BNAS_IMAGENET
from larq_bnas.models.bnas.network import BNASConfig, bnas_network


def _params(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize(
    "name, config",
    [
        ("bnas-d", BNASConfig(cells=12, channels=64, genotype="bnas_imagenet", stem="imagenet")),
        ("bnas-e", BNASConfig(cells=12, channels=68, genotype="bnas_imagenet", stem="imagenet")),
        ("bnas-g", BNASConfig(cells=16, channels=128, genotype="bnas_imagenet", stem="imagenet")),
    ],
)
def test_bnas_d_e_g_are_the_reference_configurations(name, config):
    # These are the reference's configurations. test_costs's ImageNet figures test builds
    # each of these zoo models (bnas_network with the spec's config, at 64 px: parameters do
    # not depend on the input size) once for all its figures and checks its parameters
    # against the reference's: 28,407,560 / 31,997,890 / 160,016,936.
    from larq_bnas.zoo import get_spec, specs

    spec = get_spec(name)
    assert spec.config == config and spec.builder is specs._build_bnas
    assert (spec.input_shape, spec.num_classes) == ((224, 224, 3), 1000)


def test_bnas_a_parameter_count_differs_from_the_reference_by_two_batchnorms():
    # The reference's CIFAR preprocess0 after a reduction has a BatchNorm without scale
    # and offset; ours has them (imported checkpoints load them as 1 and 0, the same
    # function). Those are the only extra parameters: 2 x (2 x 2C + 2 x 4C)... = 24 C.
    model = bnas_network(BNASConfig(cells=20, channels=36), num_classes=10)
    assert _params(model) == 5_579_116
    assert _params(model) - 5_578_252 == 24 * 36


def _cells(model):
    return [layer for layer in model.layers if isinstance(layer, Cell)]


def test_reductions_and_skip_connections_are_placed_as_in_the_paper():
    model = bnas_network(BNASConfig(cells=9, channels=8), input_shape=(16, 16, 3))
    cells = _cells(model)
    assert [c.reduction for c in cells] == [i in (3, 6) for i in range(9)]
    assert [c.skip for c in cells] == ["none"] + [
        "projection" if i in (3, 6) else "identity" for i in range(1, 9)
    ]
    assert [c.reduction_prev for c in cells] == [i in (4, 7) for i in range(9)]
    # channels double at each reduction; spatial size halves
    assert [c.output.shape[1:] for c in (cells[0], cells[3], cells[6])] == [
        (16, 16, 32),
        (8, 8, 64),
        (4, 4, 128),
    ]


def test_no_skip_ablation_removes_every_skip():
    model = bnas_network(
        BNASConfig(cells=4, channels=8, inter_cell_skip=False), input_shape=(16, 16, 3)
    )
    assert {c.skip for c in _cells(model)} == {"none"}
    assert not any("skip_conv" in w.name for w in model.weights)


def test_imagenet_stem_runs_cells_at_one_eighth():
    model = bnas_network(
        BNASConfig(cells=3, channels=8, genotype=BNAS_IMAGENET, stem="imagenet"),
        input_shape=(64, 64, 3),
        num_classes=7,
    )
    cells = _cells(model)
    assert cells[0].reduction_prev  # s0 comes from stem0 at twice the resolution
    assert cells[0].output.shape[1:3] == (8, 8)
    assert model.output_shape == (None, 7)


def test_layer_set_restriction_rejects_a_genotype_using_other_ops():
    with pytest.raises(ValueError, match="bin_dil_conv_3x3"):
        bnas_network(
            BNASConfig(cells=3, channels=8, layer_set=("none", "max_pool_3x3", "bin_conv_3x3")),
            input_shape=(16, 16, 3),
        )


def test_config_validation():
    with pytest.raises(ValueError, match="cells must be at least 3"):
        BNASConfig(cells=2)
    with pytest.raises(ValueError, match="even"):
        BNASConfig(channels=5, stem="imagenet")
    with pytest.raises(ValueError, match="Unknown operation 'conv9'"):
        BNASConfig(layer_set=("conv9",))


def test_drop_path_is_training_only_and_scheduled():
    model = bnas_network(BNASConfig(cells=3, channels=4), input_shape=(8, 8, 3))
    x = tf.random.normal((16, 8, 8, 3))
    assert set_drop_path_rate(model, 0.5) == 3
    np.testing.assert_allclose(model(x, training=False), model(x, training=False))
    # with drop path, two training passes differ (random masks); BN uses batch stats both times
    a, b = model(x, training=True), model(x, training=True)
    assert not np.allclose(a, b)
    schedule = DropPathSchedule(max_rate=0.2, epochs=10)
    schedule.set_model(model)
    schedule.on_epoch_begin(5)
    assert _cells(model)[1].drop_path_rate.numpy() == pytest.approx(0.1)


def test_cell_config_round_trip():
    cell = Cell(BNAS_CIFAR, 8, reduction=True, skip="projection", pad_values=0.0)
    clone = Cell.from_config(cell.get_config())
    assert clone.genotype == BNAS_CIFAR and clone.reduction and clone.pad_values == 0.0
    with pytest.raises(ValueError, match="skip must be one of"):
        Cell(BNAS_CIFAR, 8, skip="dense")
