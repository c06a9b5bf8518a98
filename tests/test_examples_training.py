import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_zoo_model_example_runs():
    result = _load("fit_zoo_model").main(tiny=True)
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert result["flips_p95_last_epoch"] >= 0.0
