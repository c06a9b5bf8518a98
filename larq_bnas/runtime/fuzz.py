"""Fuzzing the native kernels with mutated flatbuffers.

Each mutant of a model's flatbuffer goes through ``NativeInterpreter`` in a worker
subprocess (a crash kills the worker, which is counted and restarted, never the caller),
and, when it runs, through LCE's reference kernel in another worker. Every mutant ends
in one of these outcomes:

- ``agrees``: the native kernels ran it and equal the reference kernel (3e-4);
- ``differs``: both ran it and the outputs differ (an input LCE reads differently);
- ``ran, reference failed``: the native kernels ran it, LCE's reference kernel did not;
- ``refused``: a clean Python error (TFLite's own checks, or the native kernels' Prepare
  naming the op and the value);
- ``crash``: the worker died (a signal, or a sanitizer report with the ``sanitize``
  build). The native kernels must never crash.

``benchmarks/fuzz_native.py`` runs it and prints the counts; the tests run a smaller number
(``tests/test_native_fuzz.py``), also under AddressSanitizer + UBSan.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

OUTCOMES = ("agrees", "differs", "ran, reference failed", "refused", "crash")


# ---------------------------------------------------------------- mutations


def _lce_ops(model: Any) -> list[Any]:
    codes = model.operatorCodes
    ops = []
    for op in model.subgraphs[0].operators:
        name = codes[op.opcodeIndex].customCode
        if isinstance(name, bytes):
            name = name.decode()
        if name and name.startswith("Lce"):
            ops.append(op)
    return ops


def mutate(flatbuffer: bytes, rng: np.random.RandomState) -> tuple[bytes, str]:
    """One mutant of ``flatbuffer`` and a description of what changed: a semantic change
    to an LCE op (a tensor's shape or type, an input index, custom-option bytes, a
    truncated constant) or raw byte flips anywhere in the file."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    kind = rng.choice(["shape", "type", "input", "options", "buffer", "bytes"])
    if kind == "bytes":
        data = bytearray(flatbuffer)
        positions = rng.randint(8, len(data), size=rng.randint(1, 5))
        for p in positions:
            data[p] = rng.randint(0, 256)
        return bytes(data), f"bytes {sorted(int(p) for p in positions)}"
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    graph = model.subgraphs[0]
    ops = _lce_ops(model)
    op = ops[rng.randint(len(ops))]
    what = ""
    if kind in ("shape", "type", "buffer"):
        index = int(rng.choice(list(op.inputs) + list(op.outputs)))
        if index < 0:
            return flatbuffer, "no-op"
        tensor = graph.tensors[index]
        if kind == "shape" and tensor.shape is not None and len(tensor.shape):
            axis = rng.randint(len(tensor.shape))
            old = int(tensor.shape[axis])
            new = int(rng.choice([0, 1, old - 1, old + 1, old * 2, 2**31 - 1, -1, 33, 4096]))
            shape = [int(v) for v in tensor.shape]
            shape[axis] = new
            if rng.rand() < 0.3:  # drop or add an axis
                shape = shape[:-1] if rng.rand() < 0.5 else [*shape, 1]
            tensor.shape = shape
            tensor.shapeSignature = None
            what = f"tensor {index} shape axis {axis}: {old} -> {new} ({shape})"
        elif kind == "type":
            new = int(rng.choice([0, 1, 2, 3, 4, 9]))
            what = f"tensor {index} type {tensor.type} -> {new}"
            tensor.type = new
        else:
            buffer = model.buffers[tensor.buffer]
            if buffer.data is None or len(buffer.data) == 0:
                return flatbuffer, "no-op"
            keep = int(rng.randint(0, len(buffer.data)))
            buffer.data = buffer.data[:keep]
            what = f"tensor {index} buffer truncated to {keep} bytes"
    elif kind == "input":
        slot = rng.randint(len(op.inputs))
        old = int(op.inputs[slot])
        new = int(
            rng.choice(
                [
                    -1,
                    0,
                    len(graph.tensors) - 1,
                    len(graph.tensors),
                    rng.randint(0, len(graph.tensors)),
                ]
            )
        )
        op.inputs[slot] = new
        what = f"input {slot}: tensor {old} -> {new}"
    else:
        options = bytearray(op.customOptions if op.customOptions is not None else b"")
        if not options:
            return flatbuffer, "no-op"
        if rng.rand() < 0.25:
            options = options[: rng.randint(0, len(options))]
            what = f"custom options truncated to {len(options)} bytes"
        else:
            positions = rng.randint(0, len(options), size=rng.randint(1, 4))
            for p in positions:
                options[p] = rng.randint(0, 256)
            what = f"custom options bytes {sorted(int(p) for p in positions)}"
        op.customOptions = list(options)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), f"{kind}: {what}"


def mutants(flatbuffer: bytes, count: int, seed: int = 0) -> Iterator[tuple[bytes, str]]:
    """``count`` distinct mutants of ``flatbuffer``."""
    rng = np.random.RandomState(seed)
    seen = {flatbuffer}
    tries = 0
    while len(seen) - 1 < count and tries < count * 20:
        tries += 1
        try:
            data, what = mutate(flatbuffer, rng)
        except Exception:  # noqa: BLE001 - a mutation the object API cannot pack
            continue
        if data in seen:
            continue
        seen.add(data)
        yield data, what


# ---------------------------------------------------------------- workers


_WORKER = r"""
import os, sys, json, traceback
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
role, variant = sys.argv[1], sys.argv[2]
from larq_bnas.runtime import native
def run(path, seed):
    data = open(path, "rb").read()
    if role == "native":
        interp = native.NativeInterpreter(data, num_threads=2, variant=variant)
    else:
        from larq_compute_engine.tflite.python.interpreter import Interpreter
        interp = Interpreter(data, num_threads=1, use_reference_bconv=True)
    shape = [int(v) for v in interp.input_shapes[0]]
    shape[0] = 2 if role == "native" else 1
    if any(v <= 0 for v in shape) or int(np.prod(shape)) > 1 << 24:
        raise ValueError(f"input shape {shape}")
    x = np.random.RandomState(seed).randn(*shape).astype(interp.input_types[0])
    y = interp.predict(x)
    ys = y if isinstance(y, list) else [y]
    return [np.asarray(v, dtype=np.float64)[:1].ravel()[:4096].tolist() for v in ys]
print("ready", flush=True)
for line in sys.stdin:
    path, seed = line.split()
    try:
        out = {"ok": True, "outputs": run(path, int(seed))}
    except Exception as err:
        text = (str(err).strip().splitlines() or [type(err).__name__])
        out = {"ok": False, "error": type(err).__name__ + ": " + text[-1][:300]}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
"""


class Worker:
    """A Python subprocess running mutants one at a time; restarted after a crash."""

    def __init__(self, role: str, variant: str = "native", env: dict[str, str] | None = None):
        self.role, self.variant, self.env = role, variant, env
        self.proc: subprocess.Popen[str] | None = None
        self.stderr = ""

    def _start(self) -> None:
        import tempfile

        self._err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, self.role, self.variant],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            env=self.env,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.proc.wait()
            self._err.seek(0)
            raise RuntimeError("fuzz worker did not start: " + self._err.read()[-2000:])

    def run(self, path: str, seed: int = 0, timeout: float = 120) -> dict[str, Any]:
        """The worker's result for the mutant at ``path``: {ok, outputs} or {ok: False,
        error}, or {crash: exit status, stderr} if the worker died."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self._err.seek(0)
        self._err.truncate()
        try:
            self.proc.stdin.write(f"{path} {seed}\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if line:
            result: dict[str, Any] = json.loads(line)
            return result
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait()
        self._err.seek(0)
        return {"crash": status, "stderr": self._err.read()[-3000:]}

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _compare(native_out: list[list[float]], reference_out: list[list[float]]) -> bool:
    if len(native_out) != len(reference_out):
        return False
    for a, b in zip(native_out, reference_out, strict=True):
        n = min(len(a), len(b))
        if n == 0 or not np.allclose(np.asarray(a[:n]), np.asarray(b[:n]), rtol=0, atol=3e-4):
            return False
    return True


def fuzz(
    models: dict[str, bytes],
    per_model: int,
    *,
    variant: str = "native",
    env: dict[str, str] | None = None,
    workdir: str,
    seed: int = 0,
    log: Any = None,
) -> dict[str, Any]:
    """Run ``per_model`` mutants of each flatbuffer in ``models``; outcome counts overall
    and per model, and the crashes (with the mutation and the worker's stderr)."""
    native_worker = Worker("native", variant, env)
    reference_worker = Worker("reference", "native")
    counts: Counter[str] = Counter()
    per: dict[str, Counter[str]] = {}
    crashes: list[dict[str, Any]] = []
    refusals: Counter[str] = Counter()
    try:
        for m, (name, flatbuffer) in enumerate(models.items()):
            per[name] = Counter()
            for i, (data, what) in enumerate(mutants(flatbuffer, per_model, seed + 1000 * m)):
                path = os.path.join(workdir, f"{name}-{i}.tflite")
                with open(path, "wb") as f:
                    f.write(data)
                result = native_worker.run(path)
                if "crash" in result:
                    outcome = "crash"
                    crashes.append({"model": name, "mutation": what, **result})
                elif not result["ok"]:
                    outcome = "refused"
                    refusals[result["error"].split(":")[0]] += 1
                else:
                    # the first sample of the native batch against the reference's
                    reference = reference_worker.run(path)
                    if reference.get("ok"):
                        same = _compare(result["outputs"], reference["outputs"])
                        outcome = "agrees" if same else "differs"
                    else:
                        outcome = "ran, reference failed"
                counts[outcome] += 1
                per[name][outcome] += 1
                if log is not None:
                    log(f"{name} #{i} {what}: {outcome}")
                os.unlink(path)
    finally:
        native_worker.close()
        reference_worker.close()
    return {
        "mutants": sum(counts.values()),
        "models": len(models),
        "counts": {k: counts.get(k, 0) for k in OUTCOMES},
        "per_model": {k: dict(v) for k, v in per.items()},
        "refusals_by_error": dict(refusals),
        "crashes": crashes,
    }


def fuzz_models() -> dict[str, bytes]:
    """Three small models covering every LCE op the native kernels run: a zero-padded
    and a one-padded conv with fused BatchNorm, a bitpacked chain with binary max
    pooling, and a grouped, dilated conv with ReLU (converted once; a few seconds)."""
    import larq as lq
    import tensorflow as tf

    from larq_bnas import converters

    def qconv(filters: int, kernel: int = 3, **kw: Any) -> Any:
        return lq.layers.QuantConv2D(
            filters,
            kernel,
            padding=kw.pop("padding", "same"),
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
            use_bias=False,
            **kw,
        )

    out = {}
    x = inputs = tf.keras.Input((6, 7, 40))
    x = tf.keras.layers.BatchNormalization()(qconv(48, pad_values=0.0)(x))
    x = tf.keras.layers.BatchNormalization()(qconv(36, pad_values=1.0)(x))
    out["bconv-bn"] = tf.keras.Model(inputs, x)
    x = inputs = tf.keras.Input((8, 8, 64))
    x = lq.quantizers.SteSign()(x)
    x = tf.keras.layers.MaxPool2D(2, 2, padding="same")(x)
    x = tf.keras.layers.BatchNormalization()(qconv(64, pad_values=1.0)(x))
    x = tf.keras.layers.BatchNormalization()(qconv(32, 1, padding="valid")(x))
    out["bitpacked-pool"] = tf.keras.Model(inputs, x)
    x = inputs = tf.keras.Input((7, 7, 64))
    x = tf.keras.layers.ReLU()(qconv(64, groups=2, dilation_rate=2, pad_values=1.0)(x))
    x = tf.keras.layers.BatchNormalization()(x)
    out["grouped-dilated"] = tf.keras.Model(inputs, x)
    return {
        name: converters.convert(converters.randomize_batchnorm(model, seed=7))
        for name, model in out.items()
    }
