"""BNAS search: derivation (eq. 4 with gamma), the diversity regularizer, the search job."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from larq_bnas.cli import main
from larq_bnas.models.bnas.ops import PRIMITIVES
from larq_bnas.search import (
    SearchModel,
    SupernetConfig,
    alpha_entropy,
    derive_genotype,
    run_search,
    search_data,
)

NONE, CONV3 = PRIMITIVES.index("none"), PRIMITIVES.index("bin_conv_3x3")


def _alphas():
    a = np.zeros((14, len(PRIMITIVES)))
    # node 2 (rows 0, 1): edge from input 0 prefers Zeroise, closely followed by bin_conv_3x3
    a[0, NONE], a[0, CONV3] = 2.0, 1.6
    a[1, PRIMITIVES.index("max_pool_3x3")] = 1.0
    # node 5 (rows 9..13): inputs 3 and 4 are the strongest edges
    a[12, PRIMITIVES.index("avg_pool_3x3")] = 3.0
    a[13, PRIMITIVES.index("bin_dil_conv_5x5")] = 2.5
    return a


def test_gamma_changes_the_chosen_operation():
    a = _alphas()
    g1 = derive_genotype(a, a, gamma=1.0)
    g3 = derive_genotype(a, a, gamma=3.0)
    assert ("none", 0) in g1.normal[:2]
    assert ("bin_conv_3x3", 0) in g3.normal[:2] and ("none", 0) not in g3.normal[:2]
    assert g1.normal[6:] == g3.normal[6:] == (("avg_pool_3x3", 3), ("bin_dil_conv_5x5", 4))


def test_discard_zeroise_and_validation():
    a = np.zeros((14, len(PRIMITIVES)))
    a[:, NONE] = 5.0  # Zeroise dominates everywhere
    assert derive_genotype(a, a).ops() == {"none"}
    assert "none" not in derive_genotype(a, a, discard_zeroise=True).ops()
    with pytest.raises(ValueError, match="gamma must be > 0"):
        derive_genotype(a, a, gamma=0)
    with pytest.raises(ValueError, match=r"shape \(14, 7\)"):
        derive_genotype(a[:10], a)


def _fit(diversity_lambda, tmp_path):
    model = SearchModel(
        SupernetConfig(cells=3, channels=4, input_size=8), diversity_lambda=diversity_lambda
    )
    # A large architecture learning rate makes the effect visible within a few steps
    # (alphas start at 1e-3 * N(0, 1), so the entropy starts at ln 7 to 7 digits).
    model.compile(jit_compile=False, arch_learning_rate=0.05)
    pairs, _ = search_data("digits", batch_size=16, input_size=8, seed=0)
    model.fit(pairs, epochs=1, steps_per_epoch=6, verbose=0)
    return float(alpha_entropy(*model.arch_parameters))


@pytest.mark.slow
def test_diversity_regularizer_keeps_the_entropy_higher(tmp_path):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    with_div = _fit(1.0, tmp_path)
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    without = _fit(0.0, tmp_path)
    assert with_div > without
    assert with_div - without > 1e-4


@pytest.mark.slow
def test_search_job_writes_its_outputs_resumes_and_feeds_the_zoo(tmp_path):
    out = tmp_path / "search"
    kwargs = dict(
        cells=3,
        channels=4,
        input_size=8,
        batch_size=16,
        steps_per_epoch=4,
        gammas=(1.0, 3.0),
        verbose=0,
        tensorboard=False,
    )
    run_search(out, epochs=1, **kwargs)
    for name in (
        "genotype_gamma1.json",
        "genotype_gamma3.json",
        "alphas.json",
        "alphas_final.json",
        "cells_gamma1.png",
        "alphas.png",
        "state.json",
    ):
        assert (out / name).exists(), name
    run_search(out, epochs=2, resume=True, **kwargs)
    history = json.loads((out / "alphas.json").read_text())
    assert len(history["alpha_normal"]) == 3  # initial + 2 epochs
    from larq_bnas.zoo import build

    model = build(
        "bnas",
        genotype=str(out / "genotype_gamma1.json"),
        cells=3,
        channels=4,
        input_shape=(16, 16, 3),
    )
    assert model.output_shape == (None, 10)

    runner = CliRunner()
    result = runner.invoke(
        main,
        ["derive", str(out / "alphas_final.json"), "--gamma", "3", "-o", str(tmp_path / "g3.json")],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "g3.json").read_text())["normal"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gamma", "0"], "0"),
        (["--dataset", "nosuchset"], "Unknown dataset 'nosuchset'"),
        (["--layer-set", "bin_conv_3x3,conv9"], "conv9"),
    ],
)
def test_search_cli_errors(tmp_path, args, message):
    result = CliRunner().invoke(main, ["search", "-o", str(tmp_path / "s"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
