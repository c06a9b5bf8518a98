import json

import pytest

from larq_bnas.models.bnas import genotypes
from larq_bnas.models.bnas.genotypes import BNAS_CIFAR, BNAS_IMAGENET, Genotype, resolve_genotype
from larq_bnas.models.bnas.ops import ALL_PRIMITIVES


def test_known_ops_match_the_layer_set():
    assert genotypes.KNOWN_OPS == ALL_PRIMITIVES


@pytest.mark.parametrize("g", [BNAS_CIFAR, BNAS_IMAGENET])
def test_json_round_trip(g, tmp_path):
    assert Genotype.from_json(g.to_json()) == g
    path = g.save(tmp_path / "g.json")
    assert Genotype.load(path) == g
    assert json.loads(path.read_text())["normal"][1] == list(g.normal[1])


def test_paper_genotypes_content():
    assert BNAS_CIFAR.normal[1] == ("bin_dil_conv_3x3", 0)
    assert sum(op == "none" for op, _ in BNAS_CIFAR.normal) == 6
    assert BNAS_IMAGENET.reduce[-1] == ("bin_dil_conv_3x3", 4)
    assert BNAS_IMAGENET.normal_concat == (2, 3, 4, 5)


def test_wrapped_search_result_loads(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"gamma": 3, "genotype": BNAS_IMAGENET.to_dict()}))
    assert Genotype.load(path).reduce == BNAS_IMAGENET.reduce


def _pairs(**change):
    normal = [list(p) for p in BNAS_CIFAR.normal]
    for i, pair in change.items():
        normal[int(i[1:])] = pair
    return {**BNAS_CIFAR.to_dict(), "normal": normal}


def test_unknown_op_is_named():
    with pytest.raises(ValueError, match=r"normal\[3\].*'conv_7x7'.*valid operations"):
        Genotype.from_dict(_pairs(i3=["conv_7x7", 1]))


def test_input_index_must_precede_node():
    # pair 2 belongs to node 3, which may take inputs 0..2 only
    with pytest.raises(ValueError, match=r"normal\[2\].*node 3 may only take inputs 0..2"):
        Genotype.from_dict(_pairs(i2=["bin_conv_3x3", 3]))


def test_wrong_pair_count():
    d = BNAS_CIFAR.to_dict()
    d["reduce"] = d["reduce"][:7]
    with pytest.raises(ValueError, match="reduce cell needs 8"):
        Genotype.from_dict(d)


def test_unknown_keys_and_missing_keys():
    with pytest.raises(ValueError, match="Unknown genotype keys"):
        Genotype.from_dict({**BNAS_CIFAR.to_dict(), "extra": 1})
    with pytest.raises(ValueError, match="needs the keys"):
        Genotype.from_dict({"normal": BNAS_CIFAR.to_dict()["normal"]})


def test_resolve_genotype_forms(tmp_path):
    assert resolve_genotype("bnas_cifar") is BNAS_CIFAR
    assert resolve_genotype("BNAS_IMAGENET") is BNAS_IMAGENET
    assert resolve_genotype(BNAS_CIFAR.to_dict()) == BNAS_CIFAR
    assert resolve_genotype(BNAS_CIFAR.to_json()) == BNAS_CIFAR
    path = BNAS_IMAGENET.save(tmp_path / "g.json")
    assert resolve_genotype(str(path)) == BNAS_IMAGENET
    with pytest.raises(ValueError, match="neither a file nor a known genotype"):
        resolve_genotype("no_such_cell")
