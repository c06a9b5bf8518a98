import inspect
import json
import re

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import larq_bnas.zoo as zoo
from larq_bnas.cli import main
from larq_bnas.config import ConfigError
from larq_bnas.models.meliusnet import (
    ChannelShuffle,
    MeliusNetConfig,
    channel_shuffle,
    load_larq_zoo_weights,
)
from larq_bnas.training import data
from larq_bnas.zoo import registry
from larq_bnas.zoo.figures import KEYS, cost_figures, load_figures

MODELS = {
    "meliusnet22": "MeliusNet22",
    "meliusnet29": "MeliusNet29",
    "meliusnet42": "MeliusNet42",
    "meliusnet59": "MeliusNet59",
    "meliusnet-a": "MeliusNetA",
    "meliusnet-b": "MeliusNetB",
    "meliusnet-c": "MeliusNetC",
    "meliusnet-naive": "MeliusNetNaive",
}
# (in -> out) channels of the transitions and the final channels, from the paper's table.
TRANSITIONS = {
    "meliusnet22": ([(320, 160), (480, 224), (480, 256)], 512),
    "meliusnet29": ([(320, 128), (512, 192), (704, 256)], 640),
    "meliusnet42": ([(384, 160), (672, 256), (1152, 416)], 1056),
    "meliusnet59": ([(448, 192), (960, 320), (1856, 544)], 1312),
    "meliusnet-a": ([(320, 160), (480, 256), (576, 288)], 672),
    "meliusnet-b": ([(320, 160), (544, 224), (736, 320)], 704),
    "meliusnet-c": ([(256, 128), (448, 192), (832, 288)], 672),
    "meliusnet-naive": ([(256, 128), (320, 160), (352, 192)], 384),
}
# Published figures: (name, options, key of the figures in spec.paper or None).
# MeliusNet22 with the plain stem is test_cli_summary_with_the_plain_stem's (same costing,
# through the command line).
PUBLISHED = [
    ("meliusnet22", {}, None),
    ("meliusnet29", {}, None),
    ("meliusnet29", {"stem": "plain"}, "plain_stem"),
    ("meliusnet42", {}, None),
    ("meliusnet59", {}, None),
    ("meliusnet-a", {}, None),
    ("meliusnet-b", {}, None),
    ("meliusnet-c", {}, None),
    ("meliusnet-naive", {}, None),
]
TINY = dict(blocks="1,1", reductions="2", growth=32, stem_channels=32)


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def costed():
    """``costed(name, **options)``: ``cost_figures(name, **options)`` and the model it
    built (at 64 px, the spec's classes), computed once per configuration in this module:
    the published figures and the build-and-run checks share one build of each model."""
    cache = {}

    def get(name, **options):
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            built = []
            build = registry.build

            def spy(*args, **kwargs):
                built.append(build(*args, **kwargs))
                return built[-1]

            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(registry, "build", spy)
                report = cost_figures(name, **options)
            assert len(built) == 1
            cache[key] = report, built[0]
        return cache[key]

    return get


def _published(name, key):
    paper = zoo.get_spec(name).paper
    return paper[key] if key else paper


def _assert_close_to_paper(report, paper):
    assert report["size_mib"] == pytest.approx(paper["size_mib"], rel=0.01)
    assert report["ops"] == pytest.approx(paper["ops"], rel=0.01)
    assert report["flops"] == pytest.approx(paper["flops"], rel=0.01)
    assert report["bops"] == pytest.approx(paper["bops"], rel=0.01)


# --- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MODELS))
def test_transition_channels_are_the_papers(name):
    config = zoo.get_spec(name).config
    transitions, final = TRANSITIONS[name]
    assert config.transitions() == transitions
    assert config.final_channels == final


def test_specs_carry_the_published_figures_and_the_default_stems():
    keys = {"top1", "top5", "size_mib", "ops", "flops", "bops", "source"}
    for name in MODELS:
        spec = zoo.get_spec(name)
        assert spec.family == "meliusnet" and spec.input_shape == (224, 224, 3)
        assert keys <= set(spec.paper) and set(spec.paper) - keys <= {"plain_stem"}
        assert spec.config.stem == ("plain" if name == "meliusnet-naive" else "grouped")
    for name in ("meliusnet22", "meliusnet29"):
        assert set(zoo.get_spec(name).paper["plain_stem"]) == keys - {"source"}
    assert zoo.get_spec("meliusnet22").paper["top1"] == 63.6
    assert zoo.get_spec("meliusnet-naive").config.block == "naive"
    groups = {
        n: (zoo.get_spec(n).config.transition_groups, zoo.get_spec(n).config.shuffle_groups)
        for n in MODELS
    }
    assert groups["meliusnet-a"] == (4, 16) and groups["meliusnet-b"] == (2, 16)
    assert groups["meliusnet-c"] == (4, 16) and groups["meliusnet59"] == (1, 0)


def test_names_constructors_and_the_custom_builder():
    assert zoo.get_spec("MeliusNetA") is zoo.get_spec("meliusnet-a") is zoo.get_spec("meliusnet_a")
    assert "meliusnet" not in zoo.model_names()  # custom: not a zoo row
    assert "meliusnet" in zoo.model_names(include_custom=True)
    assert zoo.MeliusNet22.__name__ == "MeliusNet22"
    signatures = {str(inspect.signature(getattr(zoo, c))) for c in MODELS.values()}
    assert signatures == {str(inspect.signature(zoo.BNASA))}
    # The custom builder's default (reduction factors) is MeliusNet22's layout.
    custom = zoo.get_spec("meliusnet").config
    assert custom.transitions() == TRANSITIONS["meliusnet22"][0]
    assert custom.override({"reductions": "2,2,2"}).transitions() == [
        (320, 160),
        (480, 256),
        (512, 256),
    ]


def test_pad_values_follow_the_layout_unless_set():
    config = MeliusNetConfig()
    assert config.resolved_pad_values == 1.0
    assert config.override({"layout": "lqz"}).resolved_pad_values == 0.0
    assert config.override({"layout": "lqz", "pad_values": "1.0"}).resolved_pad_values == 1.0
    assert config.override({"pad_values": "0"}).resolved_pad_values == 0.0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"foo": "1"}, "Unknown option 'foo' for MeliusNetConfig; valid options are: blocks"),
        ({"stem": "round"}, "Bad value 'round' for 'stem'; valid values are: grouped, plain"),
        ({"block": "dense"}, "valid values are: melius, naive"),
        ({"layout": "keras"}, "valid values are: default, lqz"),
        ({"transition_channels": "160,224"}, "one value per transition (3 for 4 stages)"),
        ({"reductions": "2,2,2"}, "transition_channels or reductions, not both"),
        ({"transition_groups": "3"}, "not divisible into transition_groups=3"),
        ({"shuffle_groups": "7"}, "not divisible into shuffle_groups=7"),
        ({"stem_channels": "36"}, "multiple of 8 for the grouped stem"),
        ({"blocks": "4,0,4,4"}, "blocks must be one positive count per stage"),
        ({"transition_channels": "", "reductions": "2,2,0"}, "reductions must be positive"),
    ],
)
def test_bad_options_raise_config_errors_naming_what_is_valid(options, message):
    with pytest.raises(ConfigError) as err:
        zoo.get_spec("meliusnet22").config.override(options)
    assert message in str(err.value)


# --- costs ------------------------------------------------------------------------------


def test_meliusnet22_has_larq_zoos_parameter_count(costed):
    report, model = costed("meliusnet22")  # parameters do not depend on the size
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == report["trainable_params"] == 6_944_584


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, options, key",
    PUBLISHED,
    ids=[n + ("-plain-stem" if o else "") for n, o, _ in PUBLISHED],
)
def test_costs_at_224_reproduce_the_published_figures(name, options, key, costed):
    report, _ = costed(name, **options)  # at 64 px, scaled exactly to 224
    _assert_close_to_paper(report, _published(name, key))
    if not options:  # the shipped figures (larq_bnas list, README) are current
        shipped = load_figures()[name]
        assert set(KEYS) - {"ops_paper"} <= set(shipped)
        assert {k: report[k] for k in KEYS if k in shipped} == pytest.approx(
            {k: shipped[k] for k in KEYS if k in shipped}
        )


@pytest.mark.slow
def test_cli_summary_json_reproduces_meliusnet22(costed):
    result = run("summary", "meliusnet22", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["input_shape"] == [224, 224, 3]
    assert report["trainable_params"] == 6_944_584
    assert report["binary_convs"] == 34  # 17 blocks, two binary convs each
    _assert_close_to_paper(report, _published("meliusnet22", None))
    # costing at 64 px and scaling (the published-figures test) is exact for MeliusNet too
    scaled, _ = costed("meliusnet22")
    for key in ("trainable_params", "size_mib", "bops", "flops", "ops"):
        assert scaled[key] == pytest.approx(report[key], rel=1e-12), key


# --- building and running ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n in ("meliusnet42", "meliusnet59") else n
        for n in MODELS
    ],
)
def test_every_model_builds_small_and_runs(name, costed):
    _, model = costed(name)  # built at 64 px by its constructor's builder
    assert model.name == MODELS[name].lower() and model.input_shape == (None, 64, 64, 3)
    x = np.random.RandomState(0).randn(2, 64, 64, 3).astype("float32")
    y = model(x, training=False).numpy()
    assert y.shape == (2, 1000) and model.layers[-1].name == "predictions"
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("head_dense").input_shape == (None, TRANSITIONS[name][1])


def test_the_constructors_take_the_number_of_classes():
    model = zoo.MeliusNetNaive(input_shape=(32, 32, 3), num_classes=7, blocks="1,1,1,1")
    assert model.output_shape == (None, 7) and model.name == "meliusnetnaive"


def test_improvement_block_adds_to_the_last_channels_only():
    model = zoo.build("meliusnet", input_shape=(32, 32, 3), num_classes=10, **TINY)
    probe = tf.keras.Model(
        model.input,
        [
            model.get_layer("section_0_block_0_improve_input").output,
            model.get_layer("section_0_block_0_improve_concat").output,
        ],
    )
    x = np.random.RandomState(0).randn(2, 32, 32, 3).astype("float32")
    before, after = (t.numpy() for t in probe(x, training=False))
    assert before.shape == after.shape == (2, 8, 8, 32 + 32)
    np.testing.assert_array_equal(after[..., :32], before[..., :32])
    assert (after[..., 32:] != before[..., 32:]).mean() > 0.9


def test_naive_residual_block_adds_to_all_channels():
    model = zoo.build("meliusnet", input_shape=(32, 32, 3), block="naive", **TINY)
    assert model.get_layer("section_0_block_0_residual_binconv").filters == 64
    probe = tf.keras.Model(
        model.input,
        [
            model.get_layer("section_0_block_0_dense_concat").output,
            model.get_layer("section_0_block_0_residual_binconv").output,
            model.get_layer("section_0_block_0_residual_add").output,
        ],
    )
    x = np.random.RandomState(0).randn(2, 32, 32, 3).astype("float32")
    before, conv, after = (t.numpy() for t in probe(x, training=False))
    assert before.shape == conv.shape == after.shape == (2, 8, 8, 64)
    np.testing.assert_array_equal(after, before + conv)
    assert (conv[..., :32] != 0).mean() > 0.9  # the first channels change too


def test_channel_shuffle_static_and_dynamic_agree_with_the_definition():
    x = np.arange(2 * 3 * 5 * 32, dtype="float32").reshape(2, 3, 5, 32)
    expected = x.reshape(2, 3, 5, 4, 8).transpose(0, 1, 2, 4, 3).reshape(2, 3, 5, 32)
    assert expected[0, 0, 0, 1] == x[0, 0, 0, 8]  # channel j*g + i <- i*(c/g) + j
    static_in = tf.keras.Input((3, 5, 32))
    static = tf.keras.Model(static_in, channel_shuffle(static_in, 4, "s"))
    assert not any(isinstance(layer, ChannelShuffle) for layer in static.layers)
    np.testing.assert_array_equal(static(x).numpy(), expected)
    dynamic_in = tf.keras.Input((None, None, 32))
    dynamic = tf.keras.Model(dynamic_in, channel_shuffle(dynamic_in, 4, "d"))
    assert any(isinstance(layer, ChannelShuffle) for layer in dynamic.layers)
    np.testing.assert_array_equal(dynamic(x).numpy(), expected)


def test_dynamic_input_size_with_shuffle_runs_and_round_trips(tmp_path):
    model = zoo.build(
        "meliusnet",
        input_shape=(None, None, 3),
        num_classes=3,
        transition_groups=2,
        shuffle_groups=4,
        **TINY,
    )
    for size in (32, 48):
        x = np.random.RandomState(size).randn(1, size, size, 3).astype("float32")
        assert model(x, training=False).shape == (1, 3)
    model.save(tmp_path / "m.h5")
    reloaded = tf.keras.models.load_model(tmp_path / "m.h5")
    np.testing.assert_array_equal(
        reloaded(x, training=False).numpy(), model(x, training=False).numpy()
    )


@pytest.mark.slow
def test_meliusnet_round_trips_through_h5_and_savedmodel(tmp_path):
    # Every layer kind of the zoo's MeliusNets: the grouped stem, four stages (three
    # transitions), grouped transitions with a channel shuffle, dense and improvement blocks.
    model = zoo.build(
        "meliusnet",
        input_shape=(32, 32, 3),
        num_classes=10,
        blocks="1,1,1,1",
        reductions="2,2,2",
        growth=32,
        stem_channels=32,
        transition_groups=2,
        shuffle_groups=4,
    )
    assert model.get_layer("stem_s1_groupconv").groups == 4
    x = np.random.RandomState(1).randn(2, 32, 32, 3).astype("float32")
    for _ in range(3):  # non-trivial BatchNorm statistics
        model(x, training=True)
    y = model(x, training=False).numpy()
    model.save(tmp_path / "m.h5")
    reloaded = tf.keras.models.load_model(tmp_path / "m.h5")
    np.testing.assert_array_equal(reloaded(x, training=False).numpy(), y)
    model.save(tmp_path / "sm", save_format="tf", save_traces=False)
    reloaded = tf.keras.models.load_model(tmp_path / "sm")
    np.testing.assert_array_equal(reloaded(x, training=False).numpy(), y)


@pytest.mark.slow
def test_tiny_custom_meliusnet_learns_digits():
    model = zoo.build("meliusnet", input_shape=(32, 32, 3), num_classes=10, **TINY)
    ds = data.load("digits", input_size=32, batch_size=32, shuffle=False).take(2).cache()
    model.compile(tf.keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    history = model.fit(ds, epochs=4, verbose=0).history["loss"]
    assert history[-1] < 0.8 * history[0]


# --- larq-zoo compatibility ---------------------------------------------------------------


def _lqz_meliusnet22(**kwargs):
    import larq_zoo

    return larq_zoo.literature.MeliusNet22(
        weights=None, input_shape=(64, 64, 3), num_classes=10, **kwargs
    )


@pytest.mark.slow
def test_larq_zoo_meliusnet22_weights_load_into_the_lqz_layout(tmp_path):
    source = _lqz_meliusnet22()
    x = np.random.RandomState(0).randn(4, 64, 64, 3).astype("float32")
    for _ in range(10):  # move the BatchNorm statistics away from their initial values
        source(x, training=True)
    ours = zoo.MeliusNet22(input_shape=(64, 64, 3), num_classes=10, layout="lqz")
    assert ours.count_params() == source.count_params()
    load_larq_zoo_weights(ours, source)
    for training in (True, False):
        expected = source(x, training=training).numpy()
        assert expected.max() < 0.999  # not saturated: the comparison means something
        np.testing.assert_allclose(ours(x, training=training).numpy(), expected, atol=1e-4)

    # Through a larq-zoo weights file, as for its published ImageNet weights (into the same
    # model, its weights scrambled first).
    source.save_weights(tmp_path / "lqz.h5")
    rng = np.random.RandomState(1)
    ours.set_weights([rng.permutation(w.ravel()).reshape(w.shape) for w in ours.get_weights()])
    assert np.abs(ours(x, training=False).numpy() - expected).max() > 1e-3
    load_larq_zoo_weights(ours, str(tmp_path / "lqz.h5"))
    np.testing.assert_allclose(ours(x, training=False).numpy(), expected, atol=1e-4)

    # The default layout (one-padding, MaxPool 3x3 stem) is a different function.
    default = zoo.MeliusNet22(input_shape=(64, 64, 3), num_classes=10)
    load_larq_zoo_weights(default, source)
    assert np.abs(default(x, training=False).numpy() - expected).max() > 1e-3

    # Architectures that differ are refused with the reason.
    with pytest.raises(ValueError, match="layers differ"):
        load_larq_zoo_weights(
            zoo.build("meliusnet", input_shape=(64, 64, 3), layout="lqz", num_classes=10, **TINY),
            source,
        )
    with pytest.raises(ValueError, match="'head_dense': larq-zoo's weights have shapes"):
        load_larq_zoo_weights(
            zoo.MeliusNet22(input_shape=(64, 64, 3), num_classes=7, layout="lqz"), source
        )


# --- Larq Compute Engine ----------------------------------------------------------------


@pytest.mark.slow
def test_tiny_meliusnet_with_shuffle_converts_with_lce():
    import larq_compute_engine as lce
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    model = zoo.build(
        "meliusnet",
        input_shape=(32, 32, 3),
        num_classes=10,
        transition_groups=2,
        shuffle_groups=4,
        **TINY,
    )
    flatbuffer = lce.convert_keras_model(model)
    x = np.random.RandomState(0).randn(1, 32, 32, 3).astype("float32")
    got = Interpreter(flatbuffer, num_threads=1).predict(x)
    np.testing.assert_allclose(got, model(x, training=False).numpy(), atol=1e-5)
    from tensorflow.lite.python import schema_py_generated as schema

    tflite = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    codes = [c.customCode.decode() if c.customCode else None for c in tflite.operatorCodes]
    ops = [codes[op.opcodeIndex] for op in tflite.subgraphs[0].operators]
    assert ops.count("LceBconv2d") == 4  # every binary conv of the 2 blocks


# --- command line -------------------------------------------------------------------------


def test_cli_summary_with_the_plain_stem():
    # one run, the table (JSON summaries: test_cli_summary_json_reproduces_meliusnet22)
    result = run("summary", "meliusnet22", "--set", "stem=plain", "--input-size", "64")
    assert result.exit_code == 0, result.output
    assert "trainable params  6,948,392" in result.output  # 3,808 more than the grouped stem's
    shown = dict(re.findall(r"^(size|BOPs|FLOPs|OPs) +([0-9.e+]+)", result.output, re.M))
    assert set(shown) == {"size", "BOPs", "FLOPs", "OPs"}, result.output
    # 224 / 64 = 3.5 divides every stage (112/56/28/14/7 px -> 32/16/8/4/2 px), so every
    # convolution's multiply-accumulates at 64 px are exactly 1 / 3.5 ** 2 of those at 224.
    # The published figures of the plain stem are checked here (4 significant digits shown).
    paper = zoo.get_spec("meliusnet22").paper["plain_stem"]
    assert float(shown["OPs"]) * 3.5**2 == pytest.approx(paper["ops"], rel=0.01)
    assert float(shown["FLOPs"]) * 3.5**2 == pytest.approx(paper["flops"], rel=0.01)
    assert float(shown["BOPs"]) * 3.5**2 == pytest.approx(paper["bops"], rel=0.01)
    assert float(shown["size"]) == pytest.approx(paper["size_mib"], rel=0.01)


@pytest.mark.parametrize(
    "options, message",
    [
        (
            ["--set", "foo=1"],
            "Unknown option 'foo' for MeliusNetConfig; valid options are: "
            "blocks, transition_channels, reductions",
        ),
        (["--set", "stem=round"], "Bad value 'round' for 'stem'; valid values are: grouped, plain"),
        (["--set", "reductions=2,2,2"], "transition_channels or reductions, not both"),
    ],
)
def test_cli_bad_options_exit_2_naming_the_valid_ones(options, message):
    result = run("summary", "meliusnet22", *options)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_custom_meliusnet_budget():
    result = run(
        "summary",
        "meliusnet",
        "--input-size",
        "32",
        "--num-classes",
        "10",
        "--json",
        "--set",
        "blocks=1,1",
        "--set",
        "reductions=2",
        "--set",
        "growth=32",
        "--set",
        "stem_channels=32",
        "--set",
        "stem=plain",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["name"] == "meliusnet" and report["binary_convs"] == 4


def test_cli_list_shows_the_meliusnet_rows():
    result = run("list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    for name, constructor in MODELS.items():
        assert constructor in rows[name]
    assert "63.60" in rows["meliusnet22"] and "2.08e8" in rows["meliusnet22"]
    by_name = {r["name"]: r for r in json.loads(run("list", "--json").output)}
    assert by_name["meliusnet-c"]["paper_size_mib"] == 4.46
    assert by_name["meliusnet-naive"]["paper_top1"] is None
