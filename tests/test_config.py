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
