from dataclasses import dataclass
from typing import Literal

import pytest

from larq_bnas.config import ConfigError, ModelConfig
from larq_bnas.models.bnas.network import BNASConfig


@dataclass(frozen=True)
class _Cfg(ModelConfig):
    n: int = 1
    rate: float = 0.5
    flag: bool = False
    mode: Literal["a", "b"] = "a"
    pad: Literal[1.0, 0.0] = 1.0
    stages: tuple[int, ...] = (1, 2)
    maybe: int | None = None


@pytest.mark.parametrize(
    "key, raw, expected",
    [
        ("n", "3", 3),
        ("rate", "0.25", 0.25),
        ("flag", "true", True),
        ("flag", "0", False),
        ("mode", "b", "b"),
        ("pad", "0", 0.0),
        ("pad", "0.0", 0.0),
        ("stages", "4,5,6", (4, 5, 6)),
        ("maybe", "none", None),
        ("maybe", "7", 7),
    ],
)
def test_strings_parse_to_field_types(key, raw, expected):
    assert getattr(_Cfg().override({key: raw}), key) == expected


@pytest.mark.parametrize(
    "key, raw, message",
    [
        ("n", "2.5", "expected an integer"),
        ("flag", "maybe", "true, false"),
        ("mode", "c", "valid values are: a, b"),
        ("pad", "0.5", "valid values are: 1.0, 0.0"),
        ("size", "1", "Unknown option 'size'.*valid options are: n, rate"),
    ],
)
def test_bad_values_name_what_is_valid(key, raw, message):
    with pytest.raises(ConfigError, match=message):
        _Cfg().override({key: raw})


def test_bnas_config_to_dict_and_help():
    d = BNASConfig().override({"cells": "8"}).to_dict()
    assert d["cells"] == 8 and d["genotype"] == "bnas_cifar" and d["layer_set"] == []
    assert "one of cifar, imagenet" in BNASConfig.option_help()["stem"]


def test_digits_facts_are_stated_once_and_match_the_data():
    """The digits' sizes, split and defaults come from ``DIGITS`` everywhere they are used."""
    from larq_bnas.search import runner
    from larq_bnas.studies import common
    from larq_bnas.training import DIGITS_DEFAULTS, data

    train, test = data.digits_arrays("train"), data.digits_arrays("test")
    assert (len(train[1]), len(test[1])) == (1438, 359) == tuple(data.DIGITS.splits.values())
    assert len(train[1]) + len(test[1]) == data.DIGITS.examples
    assert train[0].shape[1:] == data.DIGITS.image_shape
    assert sorted(set(train[1].tolist())) == list(range(data.DIGITS.num_classes))
    info = data.info("digits")
    assert (info.num_classes, info.splits, info.mean) == (10, {"train": 1438, "test": 359}, (0.3,))
    assert DIGITS_DEFAULTS == {"recipe": "digits", "epochs": 12, "batch_size": 64, "input_size": 16}
    assert runner.DIGITS_INPUT_SIZE == 16 and common.TOY_DATASET == "digits"
