"""The native kernels never crash: mutated flatbuffers give correct output or a clean
error, in the release build and under AddressSanitizer + UBSan (each mutant in a worker
subprocess, so that a crash is counted, not fatal). The full run (>= 200 mutants):
``python benchmarks/fuzz_native.py``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from larq_bnas.runtime import fuzz, native

needs_compiler = pytest.mark.skipif(
    native.find_compiler() is None, reason="no C++ compiler on this machine"
)


@pytest.fixture(scope="module")
def models():
    return fuzz.fuzz_models()


def _check(result, per_model):
    assert result["models"] == 3
    assert result["mutants"] >= 3 * per_model - 2  # a few mutations may coincide
    assert result["counts"]["crash"] == 0, result["crashes"]
    assert result["counts"]["refused"] > 0  # the mutations do reach the checks
    assert sum(result["counts"].values()) == result["mutants"]


@needs_compiler
@pytest.mark.slow
def test_fuzzed_flatbuffers_never_crash(models, tmp_path):
    result = fuzz.fuzz(models, 8, workdir=str(tmp_path), seed=11)
    _check(result, 8)
    assert result["counts"]["agrees"] + result["counts"]["ran, reference failed"] > 0


@needs_compiler
@pytest.mark.slow
def test_sanitizer_build_over_conversion_cases_and_fuzz_corpus(models, shared_bytes, tmp_path):
    """ASan + UBSan build (libasan preloaded into a Python subprocess): every conversion
    case of tests/test_native.py at batch 1 and 3 against LCE's reference kernel, then a
    fuzz corpus. Any sanitizer report aborts the subprocess. (The cases' flatbuffers are
    the ones tests/test_native.py runs, converted once per test session.)"""
    from test_native import CASES, case_flatbuffer

    paths = {}
    for case in sorted(CASES):
        paths[case] = str(tmp_path / f"case-{len(paths)}.tflite")
        Path(paths[case]).write_bytes(case_flatbuffer(case, shared_bytes))
    native.build("sanitize")
    env = native.sanitizer_env()
    script = textwrap.dedent(
        """
        import json, os, sys
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        sys.path.insert(0, {tests!r})
        import numpy as np
        from test_native import _inputs
        from larq_bnas import converters, runtime
        from larq_bnas.runtime import native
        cases = json.loads(sys.argv[1])
        for case, path in sorted(cases.items()):
            flatbuffer = open(path, "rb").read()
            x = _inputs(converters.read(flatbuffer).input_shapes[0][1:], n=3)
            ref = runtime.make_interpreter(flatbuffer, threads=1, kernel="reference").predict(x)
            for isa in native.cpu_isas():
                interp = native.NativeInterpreter(flatbuffer, 2, variant="sanitize", isa=isa)
                for batch in (3, 1):
                    got = interp.predict(x[:batch])
                    assert np.abs(got - ref[:batch]).max() < 3e-4, (case, isa)
        print("cases ok", len(cases))
        """
    ).format(tests=str(Path(__file__).parent))
    run = subprocess.run(
        [sys.executable, "-c", script, json.dumps(paths)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "cases ok 13" in run.stdout
    assert "ERROR: AddressSanitizer" not in run.stderr and "runtime error:" not in run.stderr
    result = fuzz.fuzz(models, 5, variant="sanitize", env=env, workdir=str(tmp_path), seed=23)
    _check(result, 5)
