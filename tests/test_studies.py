"""The papers' experiments as studies: registry, CLI errors, paper-scale data check, the
XNOR-Net baselines in the zoo, and every toy study end to end (slow)."""

import csv
import json

import pytest
from click.testing import CliRunner

from larq_bnas.cli import main
from larq_bnas.studies import STUDIES, paper_cost, run_study, study_names


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# --- registry and CLI errors ----------------------------------------------------------


def test_registry_names_the_studies_with_their_paper_cost():
    assert study_names() == [
        "layer-types",
        "baselines",
        "ablations",
        "naive-vs-melius",
        "optimizers",
        "search-dynamics",
    ]
    datasets = {name: paper_cost(name).dataset for name in STUDIES}
    assert datasets == {
        "layer-types": "cifar10",
        "baselines": "cifar10",
        "ablations": "cifar10",
        "naive-vs-melius": "imagenet2012",
        "optimizers": "imagenet2012",
        "search-dynamics": "cifar10",
    }
    assert "10 hours" in paper_cost("ablations").gpu_hours  # the paper's search cost
    assert "40 epochs" in paper_cost("naive-vs-melius").schedule


@pytest.mark.parametrize(
    "args, message",
    [
        (["study", "nope", "-o", "x"], "Unknown study 'nope'; valid studies are: layer-types"),
        (
            ["study", "baselines", "--scale", "huge", "-o", "x"],
            "Unknown scale 'huge'; valid scales are: toy, paper",
        ),
        (["study", "baselines", "--epochs", "0", "-o", "x"], "--epochs"),
        (["study", "baselines"], "Missing option '--output'"),
    ],
)
def test_cli_errors_exit_2_with_a_clear_message(tmp_path, args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x").exists()


def test_library_errors_name_the_valid_values(tmp_path):
    with pytest.raises(ValueError, match="Unknown study 'x'; valid studies are: layer-types"):
        run_study("x", "toy", tmp_path)
    with pytest.raises(ValueError, match="Unknown scale 'big'; valid scales are: toy, paper"):
        run_study("baselines", "big", tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", list(STUDIES))
def test_paper_scale_prints_its_cost_and_fails_cleanly_without_the_data(tmp_path, name):
    out = tmp_path / "out"
    result = run("study", name, "--scale", "paper", "--data-dir", tmp_path / "tfds", "-o", out)
    assert result.exit_code == 2, result.output
    cost = paper_cost(name)
    assert f"dataset: {cost.dataset}" in result.output
    assert "estimated GPU time:" in result.output and "schedule:" in result.output
    assert f"Dataset '{cost.dataset}' is not prepared" in result.output
    assert "--scale toy" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # nothing written, nothing trained


def test_lean_autograph_is_scoped_and_trains_the_same_weights():
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.autograph.core import config

    from larq_bnas.studies.common import lean_autograph
    from larq_bnas.zoo import XNORResNet

    def fit_once():
        tf.keras.utils.set_random_seed(1)
        model = XNORResNet(
            input_shape=(8, 8, 3), blocks=(1, 1), stage_channels=(8, 16), stem_channels=8
        )
        model.compile("adam", "sparse_categorical_crossentropy")
        x = np.random.RandomState(0).randn(16, 8, 8, 3).astype("float32")
        y = np.arange(16) % 10
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        return model.get_weights()

    import larq as lq
    from tensorflow.python.autograph.impl.conversion import is_allowlisted

    rules = config.CONVERSION_RULES
    library_code = (tf.keras.layers.Dense.call, lq.quantizers.SteSign.call)
    assert not any(is_allowlisted(f) for f in library_code)  # converted by default
    with lean_autograph():
        assert all(is_allowlisted(f) for f in library_code)  # called as they are
        lean = fit_once()
    assert config.CONVERSION_RULES is rules  # restored
    plain = fit_once()
    for a, b in zip(lean, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# --- the XNOR-Net baselines in the zoo ----------------------------------------------


def _expected_resnet_macs(blocks, channels, stem, size):
    """Binary and float multiply-accumulates of an XNOR ResNet, counted by hand."""
    binary, c_in, s = 0, stem, size
    for stage, (n, c) in enumerate(zip(blocks, channels, strict=True)):
        for block in range(n):
            stride = 2 if stage > 0 and block == 0 else 1
            s //= stride
            binary += 9 * c_in * c * s * s + 9 * c * c * s * s
            if stride == 2 or c_in != c:
                binary += c_in * c * s * s  # the 1x1 shortcut
            c_in = c
    return binary, 9 * 3 * stem * size * size


def test_xnor_baselines_are_zoo_models_binarized_the_xnor_net_way():
    import larq as lq

    from larq_bnas import zoo
    from larq_bnas.costs import model_costs
    from larq_bnas.zoo import XNORWRN40, XNORResNet18, XNORResNet34

    assert {"xnor-resnet18", "xnor-resnet34", "xnor-wrn40"} <= set(zoo.model_names())
    for name, constructor in (
        ("xnor-resnet18", XNORResNet18),
        ("xnor-resnet34", XNORResNet34),
        ("xnor-wrn40", XNORWRN40),
    ):
        spec = zoo.get_spec(name)
        assert constructor.__name__ == spec.constructor
        assert spec.dataset == "cifar10" and spec.input_shape == (32, 32, 3)
        assert "top1" not in spec.paper and "ops" not in spec.paper  # no invented figures
    assert zoo.get_spec("xnor-resnet34").config.blocks == (3, 4, 6, 3)
    assert zoo.get_spec("xnor-wrn40").config.blocks == (6, 6, 6)

    model = XNORResNet18(input_shape=(16, 16, 3), width=0.25, num_classes=7)
    assert model.output_shape == (None, 7)
    report = model_costs(model)
    float_layers = [
        layer.name
        for layer in report.layers
        if layer.kind in ("Conv2D", "Dense") and not layer.binary
    ]
    assert float_layers == ["stem_conv", "classifier"]  # first conv and last dense only
    quant = [layer for layer in model.submodules if isinstance(layer, lq.layers.QuantConv2D)]
    assert len(quant) == 16 + 3  # 8 blocks x 2 convs + 3 shortcuts
    for layer in quant:  # sign inputs, sign(W) * mean|W| per output channel
        assert type(layer.kernel_quantizer).__name__ == "MagnitudeAwareSign"
        assert type(layer.input_quantizer).__name__ == "SteSign"
    binary, flops = _expected_resnet_macs((2, 2, 2, 2), (16, 32, 64, 128), 16, 16)
    assert report.bops == binary and report.flops == flops
    assert report.ops == pytest.approx(binary / 64 + flops)


def test_xnor_wrn40_shape_and_build_by_name():
    from larq_bnas import zoo
    from larq_bnas.costs import model_costs

    model = zoo.build("xnor-wrn40", input_shape=(16, 16, 3), width=0.125)
    report = model_costs(model)
    binary, flops = _expected_resnet_macs((6, 6, 6), (8, 16, 32), 4, 16)
    assert report.bops == binary and report.flops == flops
    assert report.binary_convs == 36 + 3  # stem 16 -> 64 channels needs a shortcut too
    with pytest.raises(ValueError, match="stage_channels needs one entry per stage"):
        zoo.build("xnor-resnet18", blocks=(2, 2))


# --- toy studies end to end ---------------------------------------------------------
#
# One toy study per test, run end to end through the CLI with its toy configuration shrunk
# (``monkeypatch`` of the study module's TOY / TOY_OPTIONS / TOY_MODELS / TOY_MODEL): 8 to
# 16 px inputs, a few channels, the fewest cells or blocks the models allow and 1-2 epochs.
# A training unit's cost is then mostly building and tracing its graphs, so the tables,
# files, resume behaviour and the figures computed at the paper's size are checked as they
# were, at a fraction of the cost. The trainer has no option for fewer examples or steps
# per epoch (it always makes one pass over the 1,438 training digits); only the searches
# take ``steps_per_epoch``. Each test checks that the shrunken configuration was used.


def _table(out, name):
    stem = name.replace("-", "_")
    for ext in ("csv", "json", "png"):
        assert (out / f"{stem}.{ext}").stat().st_size > 0, ext
    with open(out / f"{stem}.csv") as f:
        rows = list(csv.DictReader(f))
    table = json.loads((out / f"{stem}.json").read_text())
    assert table["scale"] == "toy" and "NOT the papers' numbers" in table["note"]
    assert [list(r) for r in rows][0] == table["columns"]
    assert len(rows) == len(table["rows"])
    return rows, table


def _accuracy(value):
    value = float(value)
    assert 0.0 <= value <= 1.0
    return value


def _shrink(monkeypatch, mapping, **values):
    for key, value in values.items():
        assert key in mapping, key  # a renamed option would silently train the full size
        monkeypatch.setitem(mapping, key, value)


#: The layer types trained end to end: one per code path (plain, dilated and separable
#: convolution, each float and binary); the other three differ only in kernel size or
#: dilation, and ``test_layer_types_binary_models_cost_less`` builds all six.
_TRAINED_LAYER_TYPES = ("conv_3x3", "dil_conv_5x5", "sep_conv_3x3")


def test_layer_types_binary_models_cost_less():
    """Every layer type's binary network costs fewer OPs than its float one (the table's
    ``binary_ops < float_ops``), built at the toy study's shrunken size below."""
    from larq_bnas.costs import model_costs
    from larq_bnas.studies import layer_types

    assert list(layer_types.LAYER_TYPES) == [
        "conv_3x3",
        "conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
        "sep_conv_3x3",
        "sep_conv_5x5",
    ]
    for name in layer_types.LAYER_TYPES:
        ops = [
            model_costs(
                layer_types.layer_type_model(
                    name, binary, input_shape=(8, 8, 3), filters=4, hidden=(8, 8)
                )
            ).ops
            for binary in (False, True)
        ]
        assert ops[1] < ops[0], name


@pytest.mark.slow
def test_layer_types_toy_study_and_resume(tmp_path, monkeypatch):
    from larq_bnas.studies import layer_types

    _shrink(monkeypatch, layer_types.TOY, input_size=8, filters=4, hidden=(8, 8))
    trained = {name: layer_types.LAYER_TYPES[name] for name in _TRAINED_LAYER_TYPES}
    monkeypatch.setattr(layer_types, "LAYER_TYPES", trained)
    out = tmp_path / "lt"
    result = run("study", "layer-types", "--epochs", "1", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.output.count("[layer-types ") == 6  # one progress line per unit
    assert "[layer-types] table:" in result.output
    rows, table = _table(out, "layer-types")
    assert (table["input_size"], table["filters"], table["dense"]) == (8, 4, [8, 8, 10])
    assert [r["layer_type"] for r in rows] == list(_TRAINED_LAYER_TYPES)
    assert [(r["kind"], r["kernel_size"], r["dilation"]) for r in rows] == [
        ("conv", "3", "1"),
        ("conv", "5", "2"),
        ("sep", "3", "1"),
    ]
    for r in rows:
        _accuracy(r["float_top1"]), _accuracy(r["binary_top1"])
        assert float(r["drop"]) == pytest.approx(
            float(r["float_top1"]) - float(r["binary_top1"]), abs=1e-5
        )
        assert float(r["binary_ops"]) < float(r["float_ops"])  # BOPs count 1/64
    assert table["dense_precision"] == "float"
    assert len(list((out / "units").glob("*.json"))) == 6

    # A second run without --resume is refused; with --resume every unit is skipped.
    again = run("study", "layer-types", "--epochs", "1", "-o", out)
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = run("study", "layer-types", "--epochs", "1", "-o", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert resumed.output.count("(finished earlier, skipped)") == 6
    assert _table(out, "layer-types")[0] == rows
    other = run("study", "layer-types", "--epochs", "2", "-o", out, "--resume")
    assert other.exit_code == 2 and "same --scale and --epochs" in other.output


#: Baselines trained end to end, shrunken: one per code path (a four-stage and a
#: three-stage XNOR ResNet, a BNAS network); ResNet34 and BNAS-Mini/B/C train through the
#: same code with other options, and ``test_baselines_cost_every_paper_configuration``
#: checks their rows' cost figures.
_TINY_BASELINES = {
    "xnor-resnet18": {"blocks": (1, 1, 1, 1), "width": 0.0625},
    "xnor-wrn40": {"blocks": (1, 1, 1), "width": 0.0625},
    "bnas-a": {"cells": 3, "channels": 2},
}


def test_baselines_cost_every_paper_configuration():
    from larq_bnas.studies import baselines
    from larq_bnas.zoo.registry import get_spec

    assert baselines.MODELS == (
        "xnor-resnet18",
        "xnor-resnet34",
        "xnor-wrn40",
        "bnas-mini",
        "bnas-a",
        "bnas-b",
        "bnas-c",
    )
    assert set(baselines.TOY_OPTIONS) == set(baselines.MODELS)
    for name in baselines.MODELS:
        costs = baselines.paper_configuration_costs(name)
        assert costs["ops"] == pytest.approx(costs["bops"] / 64 + costs["flops"]), name
        assert costs["size_mib"] > 0 and get_spec(name).family in ("xnor", "bnas"), name
    binary, flops = _expected_resnet_macs((3, 4, 6, 3), (64, 128, 256, 512), 64, 32)
    resnet34 = baselines.paper_configuration_costs("xnor-resnet34")
    assert (resnet34["bops"], resnet34["flops"]) == (binary, flops)


@pytest.mark.slow
def test_baselines_toy_study(tmp_path, monkeypatch):
    from larq_bnas.studies import baselines

    _shrink(monkeypatch, baselines.TOY, input_size=8)
    _shrink(monkeypatch, baselines.TOY_OPTIONS, **_TINY_BASELINES)
    monkeypatch.setattr(baselines, "MODELS", tuple(_TINY_BASELINES))
    out = tmp_path / "bl"
    result = run("study", "baselines", "--epochs", "1", "-o", out)
    assert result.exit_code == 0, result.output
    rows, table = _table(out, "baselines")
    assert [r["model"] for r in rows] == ["xnor-resnet18", "xnor-wrn40", "bnas-a"]
    assert [r["family"] for r in rows] == ["xnor", "xnor", "bnas"]
    assert table["input_size"] == 8
    assert rows[0]["trained_options"] == "blocks=(1, 1, 1, 1) width=0.0625"
    for r in rows:
        _accuracy(r["test_top1"])
        assert float(r["ops"]) > float(r["trained_ops"]) > 0
    by_name = {r["model"]: r for r in rows}
    assert float(by_name["bnas-a"]["paper_top1"]) == 92.70
    assert by_name["xnor-resnet18"]["paper_top1"] == ""
    # the cost report of the paper configuration at 32 x 32 (not the trained toy model):
    # ResNet18's binary convs counted by hand
    binary, flops = _expected_resnet_macs((2, 2, 2, 2), (64, 128, 256, 512), 64, 32)
    assert int(by_name["xnor-resnet18"]["bops"]) == binary
    assert int(by_name["xnor-resnet18"]["flops"]) == flops
    assert table["cost_input_shape"] == [32, 32, 3]


def test_naive_vs_melius_toy_pair_is_matched_in_ops():
    """The study's own toy pair (TOY_MODELS at the toy input size) has matched OPs, as in
    the supplement; the end-to-end test below trains a smaller pair."""
    from larq_bnas.costs import model_costs
    from larq_bnas.studies import naive_vs_melius
    from larq_bnas.zoo.registry import build

    size = naive_vs_melius.TOY["input_size"]
    assert size == 32
    ops = [
        model_costs(build(name, input_shape=(size, size, 3), num_classes=10, **options)).ops
        for name, options in naive_vs_melius.TOY_MODELS.values()
    ]
    assert list(naive_vs_melius.TOY_MODELS) == ["meliusnet", "naive"]
    assert abs(ops[0] - ops[1]) / ops[0] < 0.02


_TINY_MELIUS = {"stem": "plain", "stem_channels": 8, "growth": 4, "reductions": ()}


@pytest.mark.slow
def test_naive_vs_melius_toy_study_and_resume_of_a_missing_unit(tmp_path, monkeypatch):
    from larq_bnas.studies import naive_vs_melius

    _shrink(monkeypatch, naive_vs_melius.TOY, input_size=16)
    _shrink(
        monkeypatch,
        naive_vs_melius.TOY_MODELS,
        meliusnet=(
            "meliusnet",
            {**_TINY_MELIUS, "blocks": (1, 2, 1), "transition_channels": (12, 16)},
        ),
        naive=(
            "meliusnet",
            {**_TINY_MELIUS, "blocks": (1, 2, 1), "transition_channels": (8, 8), "block": "naive"},
        ),
    )
    out = tmp_path / "nvm"
    result = run("study", "naive-vs-melius", "--epochs", "2", "-o", out)
    assert result.exit_code == 0, result.output
    rows, table = _table(out, "naive-vs-melius")
    assert table["input_size"] == 16
    assert [r["model"] for r in rows] == ["meliusnet", "naive"]
    assert [r["block"] for r in rows] == ["melius", "naive"]
    assert [r["blocks"] for r in rows] == ["1 2 1", "1 2 1"]
    for r in rows:
        _accuracy(r["test_top1"])
    ops = [float(r["ops"]) for r in rows]
    assert abs(ops[0] - ops[1]) / ops[0] < 0.02  # matched OPs, as in the supplement
    assert [len(v) for v in table["curves"].values()] == [2, 2]  # one point per epoch

    # As if killed while training "naive": only that unit runs again.
    (out / "units" / "naive.json").unlink()
    lines = []
    again = run_study("naive-vs-melius", "toy", out, resume=True, epochs=2, echo=lines.append)
    assert "skipped" in lines[0] and "naive" in lines[1] and "skipped" not in lines[1]
    # (compared with the JSON table: the CSV rounds to 6 significant digits)
    assert again.rows[0]["test_top1"] == pytest.approx(table["rows"][0]["test_top1"])
    assert json.loads((out / "units" / "naive.json").read_text())["test_top1"] == (
        pytest.approx(table["rows"][1]["test_top1"])
    )  # the finished run's results, reused


@pytest.mark.slow
def test_optimizers_toy_study(tmp_path, monkeypatch):
    from larq_bnas.studies import optimizers

    _shrink(monkeypatch, optimizers.TOY, input_size=16)
    # the toy model's first and last sections (1 and 2 blocks), narrower and shallower
    tiny = {**_TINY_MELIUS, "blocks": (1, 1, 2), "transition_channels": (8, 8)}
    monkeypatch.setattr(optimizers, "TOY_MODEL", ("meliusnet", tiny))
    out = tmp_path / "opt"
    result = run("study", "optimizers", "--epochs", "2", "-o", out)
    assert result.exit_code == 0, result.output
    rows, table = _table(out, "optimizers")
    assert table["input_size"] == 16 and table["model_options"]["blocks"] == [1, 1, 2]
    # 3 optimizers x 2 layers x 2 epochs
    assert len(rows) == 12
    assert {r["optimizer"] for r in rows} == {"adam", "radam", "sgd"}
    first = {r["layer_name"] for r in rows if r["layer"] == "first"}
    last = {r["layer_name"] for r in rows if r["layer"] == "last"}
    assert first == {"section_0_block_0_dense_binconv"}
    assert last == {"section_2_block_1_improve_binconv"}
    for r in rows:
        _accuracy(r["test_top1"])
        assert 0 <= float(r["p50"]) <= float(r["p90"]) <= float(r["p95"]) <= float(r["p99"])
        assert float(r["p99"]) <= float(r["max"])
    assert set(table["final_test_top1"]) == {"adam", "radam", "sgd"}


def test_ablations_study_lists_every_variant_of_the_papers_tables():
    """The study's full unit list (the end-to-end test below runs a subset of it)."""
    from larq_bnas.search.supernet import resolve_layer_set
    from larq_bnas.studies import ablations

    assert list(ablations.VARIANTS) == [
        "full",
        "no_skip",
        "no_zeroise",
        "no_diversity",
        "no_dilated",
        "with_sep",
    ]
    assert {k: v[:3] for k, v in ablations.VARIANTS.items()} == {
        "full": ("full", False, True),
        "no_skip": ("full", False, False),
        "no_zeroise": ("full", True, True),
        "no_diversity": ("no_diversity", False, True),
        "no_dilated": ("no_dilated", False, True),
        "with_sep": ("with_sep", False, True),
    }
    assert ablations.SEARCHES["no_diversity"]["diversity_lambda"] == 0.0
    assert {"sep_conv_3x3", "sep_conv_5x5"} <= set(resolve_layer_set("with_sep"))
    assert not any("dil" in op for op in resolve_layer_set("no_dilated"))


@pytest.mark.slow
def test_ablations_toy_study_searches_derives_and_trains(tmp_path, monkeypatch):
    """Two searches (full; no dilated convs) and four trainings end to end. The units left
    out take the same paths with other options: a lambda-0 search runs in the
    search-dynamics test, and the variant list is checked above."""
    from larq_bnas.studies import ablations

    search = dict(cells=3, channels=2, batch_size=8, input_size=8, epochs=1, steps_per_epoch=1)
    train = dict(cells=3, channels=2, input_size=8, epochs=3, recipe="digits")
    _shrink(monkeypatch, ablations.TOY, search=search, train=train)
    kept = ("full", "no_skip", "no_zeroise", "no_dilated")
    monkeypatch.setattr(ablations, "VARIANTS", {k: ablations.VARIANTS[k] for k in kept})
    searches = {k: ablations.SEARCHES[k] for k in ("full", "no_dilated")}
    monkeypatch.setattr(ablations, "SEARCHES", searches)
    out = tmp_path / "ab"
    result = run("study", "ablations", "--epochs", "1", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.output.count("[ablations ") == 2 + 4  # 2 searches, 4 trainings
    rows, table = _table(out, "ablations")
    assert table["search"] == search and table["train"] == {**train, "epochs": 1}
    by = {r["variant"]: r for r in rows}
    assert list(by) == list(kept)
    for r in rows:
        _accuracy(r["test_top1"])
    assert by["no_skip"]["inter_cell_skip"] == "False"
    assert by["no_skip"]["normal"] == by["full"]["normal"]  # same searched cell
    assert by["no_zeroise"]["zeroise_kept"] == "0"
    assert "none:" not in by["no_zeroise"]["normal"] + by["no_zeroise"]["reduce"]
    assert "dil_conv" not in by["no_dilated"]["normal"] + by["no_dilated"]["reduce"]
    assert by["no_dilated"]["layer_set"] == "no_dilated"
    assert float(by["full"]["paper_top1"]) == 92.70
    assert float(by["no_skip"]["paper_top1"]) == 61.23
    state = json.loads((out / "runs" / "search_no_dilated" / "state.json").read_text())
    assert not any("dil" in op for op in state["options"]["layer_set"])
    assert table["search"]["epochs"] == 1


# --- search-dynamics ------------------------------------------------------------------


@pytest.mark.slow
def test_search_dynamics_toy_study_small(tmp_path, monkeypatch):
    """Two tiny searches (lambda 1 and 0), each derived with gamma 1 and 3: the table's
    figures are recomputed here from the searches' saved alphas."""
    import numpy as np

    from larq_bnas.search.derive import derive_genotype
    from larq_bnas.studies import search_dynamics

    small = dict(cells=3, channels=2, input_size=8, batch_size=8, steps_per_epoch=2)
    _shrink(monkeypatch, search_dynamics.TOY, **small)
    out = tmp_path / "dyn"
    result = run("study", "search-dynamics", "--epochs", "3", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.output.count("[search-dynamics ") == 2  # two searches
    rows, table = _table(out, "search-dynamics")
    assert [(r["lambda"], r["gamma"]) for r in rows] == [
        ("1", "1"),
        ("1", "3"),
        ("0", "1"),
        ("0", "3"),
    ]
    assert table["search"] == {**search_dynamics.TOY, "epochs": 3}  # the shrunken search
    assert table["search"]["epochs"] == 3 and table["search"]["cells"] == 3
    for lam, key in ((1.0, "lambda1"), (0.0, "lambda0")):
        history = json.loads((out / "runs" / f"search_{key}" / "alphas.json").read_text())
        assert history["epochs"] == [0, 1, 2, 3]
        state = json.loads((out / "runs" / f"search_{key}" / "state.json").read_text())
        assert state["options"]["diversity_lambda"] == lam
        curve = table["entropy_curves"][key]
        assert curve == pytest.approx(search_dynamics.entropy_curve(history))
        assert curve[0] == pytest.approx(np.log(7), abs=1e-5)  # initialisation: uniform
        normal, reduce = (np.asarray(history[f"alpha_{k}"][-1]) for k in ("normal", "reduce"))
        for r in rows:
            if float(r["lambda"]) != lam:
                continue
            g = derive_genotype(normal, reduce, float(r["gamma"]))
            ops = [op for op, _ in g.normal + g.reduce]
            assert float(r["zeroise_share"]) == pytest.approx(ops.count("none") / 16)
            assert float(r["entropy_final"]) == pytest.approx(curve[-1], rel=1e-5)
            assert float(r["entropy_early"]) == pytest.approx(curve[1], rel=1e-5)  # 3 // 3
    # gamma divides Zeroise's weight: never more Zeroise with gamma 3 than with gamma 1
    for lam in ("1", "0"):
        by_gamma = {r["gamma"]: float(r["zeroise_share"]) for r in rows if r["lambda"] == lam}
        assert by_gamma["3"] <= by_gamma["1"]
