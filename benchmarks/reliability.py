"""Reliability figures for the README: bad inputs tried at the command line, and kills
at random instants of a training and a search, each resumed to completion.

    python benchmarks/reliability.py --kills 5

Prints how many bad inputs exited 2 or 1 with one line and no traceback, and one line
per kill (the epoch running, seconds after it began, epochs committed before, epochs
kept),
then checks every JSON, weights and checkpoint file of the finished directories. Uses
the cases and the kill harness of tests/test_cli_errors.py and tests/test_reliability.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"


def _module(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(name, TESTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bad_inputs(root: Path) -> tuple[int, int, list[str]]:
    from click.testing import CliRunner

    from larq_bnas.cli import main

    cases = _module("test_cli_errors")
    root.mkdir(parents=True, exist_ok=True)
    files = cases.make_bad_files(root)
    clean, failures = 0, []
    codes = {1: 0, 2: 0}
    for case, args, code, piece in cases.CASES:
        result = CliRunner().invoke(main, cases._args(args, files))
        lines = [line for line in result.output.splitlines() if line.strip()]
        ok = (
            result.exit_code in (1, 2)
            and (code is None or result.exit_code == code)
            and len(lines) == 1
            and "Traceback" not in result.output
            and cases._args([piece], files)[0] in lines[0]
        )
        if ok:
            clean += 1
            codes[result.exit_code] += 1
        else:
            failures.append(f"{case}: exit {result.exit_code}: {result.output[:200]!r}")
    print(
        f"bad inputs: {len(cases.CASES)} tried, {clean} handled cleanly "
        f"({codes[2]} exit 2, {codes[1]} exit 1)"
    )
    return len(cases.CASES), clean, failures


def kills(root: Path, n: int, seed: int) -> None:
    harness = _module("test_reliability")
    rng = random.Random(seed)
    for kind, epochs in (("train", 8), ("search", 6)):
        out = root / kind
        start = time.time()
        records = harness.kill_and_resume(kind, out, epochs=epochs, kills=n, rng=rng)
        files = harness.check_files(out)
        history = json.loads((out / "history.json").read_text())
        for epoch, delay, before, kept in records:
            print(
                f"{kind}: killed {delay:.2f}s after epoch {epoch} began; "
                f"{before} epochs committed before the kill, {kept} kept"
            )
        kept_all = sum(k >= b for _, _, b, k in records)
        print(
            f"{kind}: {len(records)} kills, {kept_all} kept every epoch committed before "
            f"the kill (at most the running epoch lost); resumed to epochs "
            f"{[e['epoch'] for e in history]}; {files} JSON/weights/checkpoint files read "
            f"back; {time.time() - start:.0f}s"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="kills per job")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-kills", action="store_true")
    parser.add_argument("--skip-bad-inputs", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        total, clean, failures = (
            (0, 0, []) if args.skip_bad_inputs else bad_inputs(Path(tmp) / "bad")
        )
        for failure in failures:
            print("  NOT CLEAN", failure)
        if not args.skip_kills:
            kills(Path(tmp) / "kills", args.kills, args.seed)
    return 0 if clean == total else 1


if __name__ == "__main__":
    sys.exit(main())
