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


#: Three candidate operations instead of the paper's 7 (Zeroise kept for the gammas): the
#: regularizer acts on every alpha row alike, and the smaller supernet traces in about a
#: third of the CPU time (measured: 13 s instead of 31 s for the two fits).
DIVERSITY_LAYER_SET = ("none", "max_pool_3x3", "bin_conv_3x3")


def _fit(diversity_lambda, tmp_path):
    config = SupernetConfig(cells=3, channels=4, input_size=8, layer_set=DIVERSITY_LAYER_SET)
    model = SearchModel(config, diversity_lambda=diversity_lambda)
    # A large architecture learning rate makes the effect visible within a few steps
    # (alphas start at 1e-3 * N(0, 1), so the entropy starts at ln 3 to 7 digits; after
    # 6 steps the difference is about 5e-4, after 3 it is not visible yet).
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
        # the small layer set halves the two supernet traces; the paper's 7 operations
        # run through the same job in test_pipeline.py and test_reliability.py
        layer_set=DIVERSITY_LAYER_SET,
        verbose=0,
        tensorboard=False,
    )
    with pytest.warns(UserWarning, match="the search did not move the architecture"):
        first = run_search(out, epochs=1, **kwargs)  # 4 steps at 3e-4: still at the noise
    assert first["options"]["diversity_tau"] == pytest.approx(7.7 / 50)
    assert first["warning"] is not None
    for g in ("1", "3"):
        assert set(first["chosen_weight_mean"][g]) == {"normal", "reduce"}
        assert first["chosen_weight_mean"][g]["normal"] == pytest.approx(
            first["decisiveness"][g]["normal"]["chosen_weight_mean"]
        )
    log = (out / "search.log").read_text()
    assert "chosen_weight_mean_normal=" in log and "WARNING: the search did not move" in log
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
    assert history["layer_set"] == list(DIVERSITY_LAYER_SET)
    assert np.shape(history["alpha_normal"]) == (3, 14, len(DIVERSITY_LAYER_SET))
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
    derived = json.loads((tmp_path / "g3.json").read_text())
    assert derived["normal"] and {op for op, _ in derived["normal"]} <= set(DIVERSITY_LAYER_SET)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--gamma", "0"],
            "gamma 0 is not valid: gamma (Zeroise's weight is divided by it) must be > 0",
        ),
        (["--gamma", "x"], "gamma 'x' is not a number"),
        (["--scale", "huge"], "'huge' is not one of 'toy', 'paper'"),
        (["--dataset", "nosuchset"], "Unknown dataset 'nosuchset'"),
        (["--layer-set", "bin_conv_3x3,conv9"], "conv9"),
    ],
)
def test_search_cli_errors(tmp_path, args, message):
    result = CliRunner().invoke(main, ["search", "-o", str(tmp_path / "s"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--scale", "paper"],
            dict(
                dataset="cifar10",
                epochs=50,
                cells=8,
                channels=16,
                batch_size=64,
                arch_learning_rate=3e-4,
                arch_weight_decay=1e-3,
                diversity_tau=None,
            ),
        ),
        (
            [],
            dict(
                dataset="digits",
                epochs=6,
                cells=5,
                channels=8,
                batch_size=16,
                arch_learning_rate=5e-2,
                arch_weight_decay=0.0,
                diversity_tau=None,
            ),
        ),
        (
            ["--scale", "paper", "--epochs", "3", "--tau", "2", "--arch-lr", "0.01"],
            dict(
                dataset="cifar10",
                epochs=3,
                batch_size=64,
                arch_learning_rate=0.01,
                arch_weight_decay=1e-3,
                diversity_tau=2.0,
            ),
        ),
    ],
)
def test_search_cli_scales_and_overrides(tmp_path, monkeypatch, args, expected):
    import larq_bnas.search.runner as runner

    seen = {}

    def fake(output, **kwargs):
        seen.update(kwargs)
        a = np.zeros((14, 7))
        from larq_bnas.search.derive import decisiveness

        return {
            "epochs_done": 0,
            "alpha_entropy": 1.9,
            "genotypes": {},
            "decisiveness": {"1": decisiveness(a, a)},
        }

    monkeypatch.setattr(runner, "run_search", fake)
    result = CliRunner().invoke(main, ["search", "-o", str(tmp_path / "s"), *args])
    assert result.exit_code == 0, result.output
    assert {k: seen[k] for k in expected} == expected
    assert "the search did not move the architecture" in result.output


def test_tau_scales_with_the_search_length():
    from larq_bnas.search import scaled_tau

    assert scaled_tau(50) == pytest.approx(7.7)  # the paper's, untouched
    assert scaled_tau(6) == pytest.approx(0.924)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        scaled_tau(0)


def test_decisiveness_reports_weights_margins_entropy_and_warns_at_noise():
    from larq_bnas.search.derive import NOT_MOVED_WARNING, decisiveness

    a = np.zeros((14, 7))
    a[:, CONV3] = np.log(3.0)  # conv weight 3/9, every other op 1/9
    a[0, NONE] = np.log(2.0)  # edge 0 -> node 2: runner-up Zeroise at 2/10
    d = decisiveness(a, a, gamma=1.0)
    normal = d["normal"]
    assert len(normal["edges"]) == 8
    # node 2 keeps input 1 (score 1/3) first, then input 0 (score 0.3)
    first = normal["edges"][1]
    assert (first["node"], first["input"], first["op"]) == (2, 0, "bin_conv_3x3")
    assert first["weight"] == pytest.approx(0.3)
    assert (first["runner_up"], first["runner_up_weight"]) == ("none", pytest.approx(0.2))
    assert first["margin"] == pytest.approx(0.1)
    others = [e["weight"] for i, e in enumerate(normal["edges"]) if i != 1]
    assert others == pytest.approx([1 / 3] * 7)
    assert normal["chosen_weight_mean"] == pytest.approx((0.3 + 7 / 3) / 8)
    p = np.array([3, 1, 1, 1, 1, 1, 1]) / 9
    assert normal["entropy"] == pytest.approx(
        (13 * -(p * np.log(p)).sum() + -(q := np.array([3, 2, 1, 1, 1, 1, 1]) / 10) @ np.log(q))
        / 14
    )
    assert d["moved"] and d["warning"] is None
    # gamma 3 divides Zeroise's weight (0.2 / 3): the runner-up is now an op at 1/10
    d3 = decisiveness(a, a, gamma=3.0)["normal"]["edges"][1]
    assert d3["runner_up"] != "none" and d3["margin"] == pytest.approx(0.3 - 0.1)
    # the initialisation: margins of the order of 1e-3 * N(0, 1) -> the warning
    rng = np.random.default_rng(0)
    init = 1e-3 * rng.standard_normal((14, 7))
    d0 = decisiveness(init, init)
    assert not d0["moved"] and d0["warning"] == NOT_MOVED_WARNING
    assert d0["normal"]["chosen_weight_mean"] == pytest.approx(1 / 7, abs=1e-3)


def test_random_genotypes_have_the_paper_node_structure():
    from larq_bnas.search import random_genotype

    cells = [random_genotype(seed) for seed in range(20)]
    for g in cells:
        for pairs in (g.normal, g.reduce):
            assert len(pairs) == 8
            for node in range(4):
                (op_a, a), (op_b, b) = pairs[2 * node : 2 * node + 2]
                assert a != b and 0 <= a < node + 2 and 0 <= b < node + 2
                assert op_a in PRIMITIVES and op_b in PRIMITIVES
    assert len({g.to_json() for g in cells}) == 20  # seeds give different cells
    assert random_genotype(3) == random_genotype(3)
    used = {op for g in cells for op in g.ops()}
    assert used == set(PRIMITIVES)  # drawn from the whole layer set
    small = random_genotype(0, layer_set=("none", "max_pool_3x3"))
    assert small.ops() <= {"none", "max_pool_3x3"}
