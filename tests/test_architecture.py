"""The shape of the package: no import cycle, a light root, lazy subpackages, old paths."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "larq_bnas"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in its body, lazily too).
    An import of a parent package by its own submodule is not an edge: Python has
    already imported the parent when the submodule runs."""
    modules = {_module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return cycles


def test_no_import_cycle_inside_the_package():
    assert find_cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path):
    pkg = tmp_path / "larq_bnas"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from larq_bnas.b import g\n")
    (pkg / "b.py").write_text("from larq_bnas.sub import a\n")
    assert find_cycles(import_graph(pkg)) == [["larq_bnas.b", "larq_bnas.sub.a", "larq_bnas.b"]]


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_root_and_cli_import_no_tensorflow():
    out = _python(
        "import sys, larq_bnas, larq_bnas.cli, larq_bnas.pipeline.options\n"
        "print('tensorflow' in sys.modules, 'tf_keras' in sys.modules)"
    )
    assert out.split() == ["False", "False"]


@pytest.mark.slow
def test_subpackages_are_lazy_attributes_of_the_root_and_old_paths_still_work():
    out = _python(
        "import warnings, larq_bnas\n"
        "m = larq_bnas.zoo.BNASMini(input_shape=(16, 16, 3), cells=3, channels=4)\n"
        "print(m.output_shape[-1], callable(larq_bnas.converters.convert),\n"
        "      callable(larq_bnas.runtime.Predictor), callable(larq_bnas.training.train),\n"
        "      callable(larq_bnas.search.SearchModel))\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from larq_bnas.networks import BNASConfig\n"
        "    from larq_bnas.converters import Predictor\n"
        "import larq_bnas.models.bnas.network as new\n"
        "print(BNASConfig is new.BNASConfig, Predictor is larq_bnas.runtime.Predictor,\n"
        "      sum('moved to' in str(w.message) for w in caught))\n"
    )
    first, second = out.strip().splitlines()[-2:]
    assert first.split() == ["10", "True", "True", "True", "True"]
    assert second.split() == ["True", "True", "2"]
