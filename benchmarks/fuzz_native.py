"""Fuzz the native kernels with mutated flatbuffers and print the count of each outcome.

    python benchmarks/fuzz_native.py --per-model 70            # release build
    python benchmarks/fuzz_native.py --per-model 20 --sanitize  # ASan + UBSan build

Three small models (``larq_bnas.runtime.fuzz.fuzz_models``), ``--per-model`` mutants
each; every mutant runs in a worker subprocess, so a crash is counted, not fatal. See
``larq_bnas.runtime.fuzz`` for the outcomes. Exits 1 if any mutant crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-model", type=int, default=70)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sanitize", action="store_true", help="AddressSanitizer + UBSan build")
    parser.add_argument("--verbose", action="store_true", help="print every mutant")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args(argv)

    from larq_bnas.runtime import fuzz, native

    variant = "sanitize" if args.sanitize else "native"
    native.build(variant)
    env = native.sanitizer_env() if args.sanitize else None
    start = time.time()
    models = fuzz.fuzz_models()
    with tempfile.TemporaryDirectory() as workdir:
        result = fuzz.fuzz(
            models,
            args.per_model,
            variant=variant,
            env=env,
            workdir=workdir,
            seed=args.seed,
            log=print if args.verbose else None,
        )
    result["variant"] = variant
    result["seconds"] = round(time.time() - start, 1)
    print(
        f"{result['mutants']} mutants of {result['models']} models ({variant} build, "
        f"{result['seconds']} s)"
    )
    for outcome, count in result["counts"].items():
        print(f"  {outcome:<24} {count}")
    for name, counts in result["per_model"].items():
        print(f"  {name:<16} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(
        "  clean errors by type: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result["refusals_by_error"].items()))
    )
    for crash in result["crashes"]:
        print(f"CRASH {crash['model']}: {crash['mutation']} (status {crash['crash']})")
        print(crash["stderr"][-1500:])
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    sys.exit(1 if main()["counts"]["crash"] else 0)
