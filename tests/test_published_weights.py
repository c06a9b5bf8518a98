"""The BNAS authors' published checkpoints: reading torch.save files without PyTorch, the
reference's function number for number, errors, the CLI and the zoo entries.

The fixtures under tests/fixtures/bnas-reference/ were written by the authors' own code
(see its README); ``*.zip.pth.tar`` are the same objects re-saved by ``torch.save`` in its
zip format (PyTorch 2.13).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import larq_bnas.zoo as zoo
from larq_bnas.cli import main
from larq_bnas.models.bnas.network import BNASConfig, reference_convs
from larq_bnas.zoo import published
from larq_bnas.zoo.torch_checkpoint import (
    CheckpointError,
    RefusedPickleError,
    TruncatedCheckpointError,
    load_state_dict,
    read_torch_file,
)

FIXTURES = Path(__file__).parent / "fixtures" / "bnas-reference"
NETWORKS = {"cifar_c8_l5": "bnas-a", "imagenet_c8_l5": "bnas-d"}
FORMATS = {"legacy": ".pth.tar", "zip": ".zip.pth.tar"}


def fixture(name: str, fmt: str = "legacy") -> Path:
    return FIXTURES / f"{name}{FORMATS[fmt]}"


def meta(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def imported():
    """name -> (model, report), imported once from the legacy files."""
    return {
        name: published.import_checkpoint(fixture(name), model) for name, model in NETWORKS.items()
    }


def logits_of(model, name: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(FIXTURES / f"{name}.npz")
    x = data["input_nchw"].transpose(0, 2, 3, 1)
    return published.logits_model(model)(x).numpy(), data["logits"]


# --- reading ---------------------------------------------------------------------------


def test_both_formats_read_to_the_same_tensors_without_torch():
    for name in NETWORKS:
        legacy, zipped = load_state_dict(fixture(name)), load_state_dict(fixture(name, "zip"))
        assert list(legacy) == list(zipped)
        assert not any(k.startswith("module.") for k in legacy)  # DataParallel prefix gone
        for key, value in legacy.items():
            np.testing.assert_array_equal(value, zipped[key])
        assert legacy["classifier.weight"].shape[0] == meta(name)["num_classes"]
    assert "torch" not in sys.modules


def test_train_imagenet_layout_keeps_its_other_entries():
    raw = read_torch_file(fixture("imagenet_c8_l5"))
    assert {"epoch", "state_dict", "optimizer", "scheduler", "amp", "best_acc_top1"} <= set(raw)
    assert isinstance(raw["epoch"], int)
    assert isinstance(raw["optimizer"]["param_groups"], list)


# --- the reference's function -----------------------------------------------------------


@pytest.mark.parametrize("name", list(NETWORKS))
def test_binop_selection_is_derived_from_the_architecture(name):
    info = meta(name)
    config = BNASConfig(
        cells=info["cells"],
        channels=info["channels"],
        stem=info["network"],
        genotype="bnas_cifar" if info["network"] == "cifar" else "bnas_imagenet",
    )
    convs = reference_convs(config)
    assert len(convs) == info["convs"]
    assert sum(c.binarized for c in convs) == info["binarized_convs"]
    assert config.stem_convs == info["num_skip"]
    # The last two non-residual convs stay float (BinOp's count omits the 2 'res' convs).
    plain = [c for c in convs if not c.residual]
    assert [c.binarized for c in plain[-3:]] == [True, False, False]


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("name", list(NETWORKS))
def test_imported_models_reproduce_the_references_logits(name, fmt, imported):
    if fmt == "legacy":
        model, report = imported[name]
    else:
        model, report = published.import_checkpoint(fixture(name, fmt), NETWORKS[name])
    got, expected = logits_of(model, name)
    assert np.abs(got - expected).max() <= 1e-4
    assert len(report.binarized) == meta(name)["binarized_convs"]
    assert report.cells == meta(name)["cells"] and report.channels == meta(name)["channels"]


def test_each_reference_detail_matters(imported):
    """Leaving out BinOp's selection, the mean-centring or PyTorch's padding breaks the
    match: the test above would catch a regression in any of them."""
    name = "imagenet_c8_l5"
    model, _ = imported[name]
    weights = model.get_weights()
    state = load_state_dict(fixture(name))
    config = model.get_layer("cell0").torch_padding  # built with PyTorch's padding
    assert config is True
    for change in ({"reference_binop": False}, {"torch_padding": False}):
        from larq_bnas.models.bnas.network import bnas_network

        base = published.reference_config(zoo.get_spec("bnas-d").config, cells=5, channels=8)
        other = bnas_network(BNASConfig(**{**base.__dict__, **change}), num_classes=10)
        other.set_weights(weights)
        got, expected = logits_of(other, name)
        assert np.abs(got - expected).max() > 1e-3, change
    # Without mean-centring (raw kernels) the function differs too.
    raw = dict(state)
    model2, _ = published.import_checkpoint(raw, "bnas-d")
    conv = model2.get_layer("cell1_reduce").edge_layers[3].conv
    kernel = state["cells.1._ops.3.op.0.weight"].transpose(2, 3, 1, 0)
    assert np.abs(conv.kernel.numpy() - kernel).max() > 1e-3  # centred at import
    conv.kernel.assign(kernel)
    got, expected = logits_of(model2, name)
    assert np.abs(got - expected).max() > 1e-4


# --- errors ----------------------------------------------------------------------------


def _legacy_bytes(object_pickle: bytes) -> bytes:
    header = [0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}]
    return (
        b"".join(pickle.dumps(obj, protocol=2) for obj in header)
        + object_pickle
        + pickle.dumps([], protocol=2)
    )


def _zip_bytes(object_pickle: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", object_pickle)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


#: A pickle that calls GLOBAL(args) on load: what a malicious checkpoint contains.
def _calling(module: str, name: str) -> bytes:
    arg = b"echo pwned"
    return (
        b"\x80\x02c"
        + module.encode()
        + b"\n"
        + name.encode()
        + b"\n"
        + b"X"
        + len(arg).to_bytes(4, "little")
        + arg
        + b"\x85R."
    )


@pytest.mark.parametrize("wrap", [_legacy_bytes, _zip_bytes])
@pytest.mark.parametrize("target", [("os", "system"), ("builtins", "eval"), ("posix", "system")])
def test_pickles_naming_other_globals_are_refused_by_name(tmp_path, wrap, target):
    path = tmp_path / "evil.pth.tar"
    path.write_bytes(wrap(_calling(*target)))
    with pytest.raises(RefusedPickleError, match=rf"'{target[0]}\.{target[1]}'") as err:
        load_state_dict(path)
    assert err.value.global_name == ".".join(target)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("fraction", [0.0005, 0.3, 0.9, 0.9999])
def test_truncated_files_say_so(tmp_path, fmt, fraction):
    data = fixture("cifar_c8_l5", fmt).read_bytes()
    path = tmp_path / "cut.pth.tar"
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    with pytest.raises(TruncatedCheckpointError, match="truncated"):
        load_state_dict(path)


def test_cli_errors_exit_2_and_leave_no_output(tmp_path):
    out = tmp_path / "out.h5"
    evil = tmp_path / "evil.pth.tar"
    evil.write_bytes(_legacy_bytes(_calling("os", "system")))
    cut = tmp_path / "cut.pth.tar"
    cut.write_bytes(fixture("cifar_c8_l5").read_bytes()[:200_000])
    cases = [
        (evil, "bnas-a", [], "refused to load: the pickle names the global 'os.system'"),
        (cut, "bnas-a", [], "truncated"),
        (fixture("imagenet_c8_l5"), "bnas-a", [], "checkpoint of the ImageNet network"),
        (fixture("cifar_c8_l5"), "bnas-d", [], "checkpoint of the CIFAR network"),
        (
            fixture("cifar_c8_l5"),
            "bnas-a",
            ["--channels", "16"],
            "tensor 'stem.op.0.weight' has shape 24x3x3x3, expected 48x3x3x3",
        ),
        (tmp_path / "missing.pth.tar", "bnas-a", [], "No such checkpoint file"),
    ]
    for path, model, extra, message in cases:
        result = CliRunner().invoke(
            main, ["import-weights", str(path), "--model", model, "-o", str(out), *extra]
        )
        assert result.exit_code == 2, (message, result.output)
        assert message in result.output, result.output
        assert not out.exists()
        assert not list(tmp_path.glob(".out.h5*"))  # no temporary file left either


def test_missing_and_extra_tensors_get_their_own_messages():
    state = dict(load_state_dict(fixture("cifar_c8_l5")))
    less = {k: v for k, v in state.items() if k != "cells.2._ops.1.bn.running_var"}
    with pytest.raises(CheckpointError, match=r"1 tensor\(s\) missing, first 'cells.2._ops.1.bn"):
        published.import_checkpoint(less, "bnas-a")
    more = {**state, "cells.2._ops.9.op.0.weight": np.zeros((8, 8, 3, 3), np.float32)}
    with pytest.raises(CheckpointError, match=r"1 unexpected tensor\(s\), first 'cells.2._ops.9"):
        published.import_checkpoint(more, "bnas-a")
    # Another architecture (4 cells move the reductions): the first tensor that does not
    # fit is named with both shapes.
    with pytest.raises(
        CheckpointError,
        match=r"'cells.2.preprocess0.op.0.weight' has shape 16x32x3x3, expected 32x32x3x3",
    ):
        published.import_checkpoint(state, "bnas-a", cells=4)


# --- interfaces ------------------------------------------------------------------------


def test_import_weights_writes_a_model_that_loads_after_a_plain_import(tmp_path):
    out = tmp_path / "cifar.h5"
    result = run(
        "import-weights", str(fixture("cifar_c8_l5", "zip")), "--model", "bnas-a", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    state = load_state_dict(fixture("cifar_c8_l5"))
    tensors = sum(1 for k in state if not k.endswith("num_batches_tracked"))
    assert tensors == 95
    assert f"mapped {tensors} tensors (14 binarized conv kernels mean-centred and clamped)" in (
        result.output
    )
    assert (
        "cell4/node3_0_bin_conv_3x3 (cells.4._ops.2.op.0): kept float by the reference's BinOp"
        in (result.output)
    )
    assert "cells.0.preprocess0.op.0.weight [8, 24, 1, 1] -> cell0/preprocess0" in result.output
    data = np.load(FIXTURES / "cifar_c8_l5.npz")
    np.save(tmp_path / "x.npy", data["input_nchw"].transpose(0, 2, 3, 1))
    script = f"""
import sys, numpy as np
import larq_bnas
assert 'tensorflow' not in sys.modules
import tensorflow as tf
model = tf.keras.models.load_model({str(out)!r})
logits = tf.keras.Model(model.inputs, model.get_layer('classifier').output)
print(float(np.abs(logits(np.load({str(tmp_path / "x.npy")!r})).numpy()
            - np.load({str(FIXTURES / "cifar_c8_l5.npz")!r})['logits']).max()))
"""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.strip().splitlines()[-1]) <= 1e-4


def test_zoo_constructors_take_a_checkpoint_path():
    model = zoo.BNASA(weights=str(fixture("cifar_c8_l5")))
    got, expected = logits_of(model, "cifar_c8_l5")
    assert np.abs(got - expected).max() <= 1e-4
    assert model.output_shape == (None, 10)  # classes from the checkpoint


def test_reference_names_map_to_zoo_names():
    resolve = published.resolve_model_name
    assert resolve("ref:bnas-h") == "bnas-g"
    assert resolve("bnas-h") == "bnas-g"
    assert resolve("bnas-g") == "bnas-g"  # a zoo name wins over the reference's
    assert resolve("ref:bnas-g") == "bnas-ref-g"
    assert resolve("ref:bnas-f") == "bnas-ref-f"
    with pytest.raises(ValueError, match="valid: ref:bnas-a"):
        resolve("ref:bnas-z")
    by_ref = {e.reference_name: e for e in published.PUBLISHED}
    assert (by_ref["bnas-f"].cells, by_ref["bnas-f"].channels) == (15, 68)
    assert (by_ref["bnas-g"].cells, by_ref["bnas-g"].channels) == (11, 74)
    for entry in published.PUBLISHED:
        spec = zoo.get_spec(entry.zoo_name)
        assert (spec.config.cells, spec.config.channels) == (entry.cells, entry.channels)
        assert spec.paper["top1"] == entry.top1
        assert entry.file_url.startswith("https://drive.google.com/file/d/")


def test_list_marks_the_models_with_published_weights():
    rows = {r["name"]: r for r in json.loads(run("list", "--json").output)}
    assert rows["bnas-d"]["published_weights"] == ["ref:bnas-d"]
    assert rows["bnas-g"]["published_weights"] == ["ref:bnas-h"]
    assert rows["bnas-ref-f"]["published_weights"] == ["ref:bnas-f"]
    assert rows["bnas-f"]["published_weights"] == []
    assert "imagenet" in rows["meliusnet22"]["published_weights"]
    table = run("list").output
    line = next(row for row in table.splitlines() if row.startswith("bnas-a "))
    assert line.rstrip().endswith("ref:bnas-a")


# --- real images -----------------------------------------------------------------------


def test_preprocess_input_applies_the_references_transforms(tmp_path):
    from PIL import Image

    rs = np.random.RandomState(0)
    image = (rs.rand(300, 400, 3) * 255).astype(np.uint8)  # landscape: short side 300
    Image.fromarray(image).save(tmp_path / "a.png")
    x = zoo.preprocess_input(str(tmp_path / "a.png"))
    assert x.shape == (1, 224, 224, 3) and x.dtype == np.float32
    # By hand: Resize(256) -> 341 x 256 (int(256 * 400 / 300)), bilinear; centre crop 224.
    resized = np.asarray(Image.fromarray(image).resize((341, 256), Image.BILINEAR))
    top, left = int(round((256 - 224) / 2)), int(round((341 - 224) / 2))
    crop = resized[top : top + 224, left : left + 224].astype(np.float32) / 255
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(x[0], (crop - mean) / std, atol=1e-5)
    small = (rs.rand(2, 32, 32, 3) * 255).astype(np.uint8)
    c = zoo.preprocess_input(small, dataset="cifar10")
    np.testing.assert_allclose(
        c,
        (small / 255.0 - [0.49139968, 0.48215827, 0.44653124])
        / [0.24703233, 0.24348505, 0.26158768],
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="valid: imagenet2012, cifar10"):
        zoo.preprocess_input(small, dataset="mnist")


def test_decode_predictions_uses_the_shipped_class_names():
    preds = np.zeros((2, 1000), np.float32)
    preds[0, 1], preds[0, 2] = 0.9, 0.1
    preds[1, 999] = 1.0
    decoded = zoo.decode_predictions(preds, top=2)
    assert decoded[0] == [
        ("n01443537", "goldfish", pytest.approx(0.9)),
        ("n01484850", "great_white_shark", pytest.approx(0.1)),
    ]
    assert decoded[1][0][:2] == ("n15075141", "toilet_tissue")
    cifar = zoo.decode_predictions(np.eye(10)[[3]], top=1)
    assert cifar == [[(None, "cat", 1.0)]]
    with pytest.raises(ValueError, match="knows ImageNet"):
        zoo.decode_predictions(np.zeros((1, 7)))


def test_evaluate_a_checkpoint_on_an_image_folder(tmp_path, imported):
    from PIL import Image

    rs = np.random.RandomState(1)
    root = tmp_path / "images" / "val"
    files, labels = [], []
    for label in (0, 3, 7):  # numbered class folders, as the reference's prepare_imgnet.py
        folder = root / str(label)
        folder.mkdir(parents=True)
        for j in range(2):
            path = folder / f"{j}.png"
            h, w = 230 + 17 * j, 260 + 31 * label
            Image.fromarray((rs.rand(h, w, 3) * 255).astype(np.uint8)).save(path)
            files.append(str(path))
            labels.append(label)
    result = run(
        "evaluate",
        "bnas-d",
        "--weights",
        str(fixture("imagenet_c8_l5")),
        "--dataset",
        f"folder:{tmp_path / 'images'}",
        "--json",
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output[result.output.index("{") :])
    model, _ = imported["imagenet_c8_l5"]  # the same import of the same file
    probs = model.predict(zoo.preprocess_input(files), verbose=0)
    ranked = np.argsort(-probs, axis=1)
    assert scores["examples"] == 6
    assert scores["top1"] == pytest.approx(np.mean(ranked[:, 0] == labels))
    assert scores["top5"] == pytest.approx(
        np.mean(np.any(ranked[:, :5] == np.array(labels)[:, None], 1))
    )
    assert scores["top5"] > 0  # 5 of 10 classes: some label is in the top 5


# --- MeliusNet22: larq-zoo's published weights -------------------------------------------


@pytest.mark.slow
def test_meliusnet22_imagenet_weights_load_through_larq_zoos_url_entry(tmp_path):
    """weights="imagenet" uses the URL and sha256 of larq-zoo's own source; the release
    host is unreachable here, so the entry is pointed at a file:// copy of a weights file
    that larq-zoo's own MeliusNet22 wrote (same name, its sha256)."""
    import dataclasses
    import hashlib

    import larq_zoo

    from larq_bnas.zoo import registry

    entry = registry.get_spec("meliusnet22").weights["imagenet"]
    assert entry.url == (
        "https://github.com/larq/zoo/releases/download/meliusnet22-v0.1.0/meliusnet22_weights.h5"
    )
    assert entry.sha256 == "c1ba85e8389ae326009665ec13331e49fc3df4d0f925fa8553e224f7362c18ed"
    source = larq_zoo.literature.MeliusNet22(weights=None, input_shape=(64, 64, 3))
    x = np.random.RandomState(0).randn(2, 64, 64, 3).astype("float32")
    for _ in range(3):  # move the BatchNorm statistics away from their initial values
        source(x, training=True)
    path = tmp_path / "meliusnet22_weights.h5"
    source.save_weights(str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    local = dataclasses.replace(entry, url=path.as_uri(), sha256=digest)
    registry.add_weights("meliusnet22", "imagenet", local)
    try:
        ours = zoo.MeliusNet22(weights="imagenet", input_shape=(64, 64, 3))
        with pytest.raises(ValueError, match="have 1000 classes"):
            zoo.MeliusNet22(weights="imagenet", input_shape=(64, 64, 3), num_classes=10)
    finally:
        registry.add_weights("meliusnet22", "imagenet", entry)
    assert ours.get_layer("stem_s0_conv") is not None  # larq-zoo's layout ("lqz")
    expected = source(x, training=False).numpy()
    np.testing.assert_allclose(ours(x, training=False).numpy(), expected, atol=1e-4)


# --- deployment ------------------------------------------------------------------------


@pytest.mark.slow
def test_an_imported_model_converts_with_every_binary_kernel_on_lce(tmp_path):
    h5, tflite, report = tmp_path / "d.h5", tmp_path / "d.tflite", tmp_path / "r.json"
    result = run(
        "import-weights",
        str(fixture("imagenet_c8_l5")),
        "--model",
        "bnas-d",
        "--quiet",
        "-o",
        str(h5),
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        main,
        ["convert", str(h5), "-o", str(tflite), "--verify", "5", "--report", str(report)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    # 224 px, BNAS-D's architecture: all 38 binary convs with binary kernels became
    # LceBconv2d; the two whose kernels BinOp leaves float are named with the reason.
    assert (
        data["binary_convs"]
        == data["accelerated_convs"]
        == meta("imagenet_c8_l5")["binarized_convs"]
    )
    assert data["not_accelerated"] == []
    kept = {item["layer"]: item["reason"] for item in data["kept_float"]}
    assert set(kept) == {"cell4/node5_0_bin_dil_conv_3x3/conv", "cell4/node5_1_bin_conv_3x3/conv"}
    assert all("kept float by the reference's BinOp" in r for r in kept.values())
    assert "KEPT FLOAT            cell4/node5_1_bin_conv_3x3/conv" in result.output
    assert "top1_agreement        1" in result.output
    # The native kernels load it (ABI check passed: no "structs do not match") and agree.
    assert data["kernels"]["native"].get("agrees") is True, data["kernels"]["native"]
