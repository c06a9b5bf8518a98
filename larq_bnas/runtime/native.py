"""Native kernels for LCE's binary ops on the machine at hand (the ``native`` kernel choice).

LCE's wheel has hand-written binary kernels for ARM only: on x86 its ``LceBconv2d`` is
portable scalar C++ that does not use the vector popcount of recent CPUs, and LCE's own
interpreter runs the float ops without XNNPACK's threads unless asked. Here an LCE
flatbuffer runs in TensorFlow Lite's own interpreter (float ops on its XNNPACK delegate),
with LCE's custom ops claimed by a small delegate (``native_src/lce_native.cc``):
vectorised binary convolutions (AVX-512 VPOPCNTDQ where the CPU has it, portable C++
elsewhere), bitpacking and unpacking, binary max pooling, on a thread pool of the
interpreter's size. Results equal LCE's reference kernel up to float rounding of the
output transform (tested).

The library is compiled once per machine with the C++ compiler found (``$CXX``, g++,
clang++; ``-O3 -march=native``) into the cache directory (``$LARQ_BNAS_CACHE_DIR`` or
``~/.cache/larq_bnas``), keyed by the sources, the compiler and the CPU's features, and
reused from there. Without a compiler, or for a model with int8 tensors in its LCE ops,
``NativeUnavailable`` says why and the other kernel choices remain.

Tuning knobs, read when an interpreter is made (defaults measured here on BNAS-A, BNAS-D
and QuickNet): ``LARQ_BNAS_NATIVE_MIN_WORK`` (2e4: ops with less work, in vector
operations, run on the calling thread alone), ``LARQ_BNAS_NATIVE_SPIN`` (2000: pause
instructions an idle worker spins before it sleeps), ``LARQ_BNAS_NATIVE_PROFILE`` (set:
``NativeInterpreter.profile()`` reports time per LCE op kind).

On a phone or a Raspberry Pi use LCE's own kernels (``lce_benchmark_model``, the C++
runtime): they are the ones tuned for ARM.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from larq_bnas._cache import cache_root

SOURCE_DIR = Path(__file__).with_name("native_src")
SOURCES = ("lce_native.cc",)
HEADERS = ("tflite_abi.h",)
FLAGS = (
    "-O3",
    "-std=c++17",
    "-shared",
    "-fPIC",
    "-pthread",
    "-ffp-contract=off",
    "-fvisibility=hidden",
)
#: variant -> extra flags: ``native`` for this CPU, ``portable`` for any CPU of its kind
#: (no vector popcount: the scalar code path)
VARIANTS = {"native": ("-march=native",), "portable": ()}


class NativeUnavailable(RuntimeError):
    """The native kernels cannot run here (no compiler, a failed build, or the model)."""


def cache_dir() -> Path:
    """Where the compiled library is kept: ``native/`` in the cache directory
    (``$LARQ_BNAS_CACHE_DIR``, by default ``~/.cache/larq_bnas``)."""
    return cache_root() / "native"


def find_compiler() -> str | None:
    """The C++ compiler to build with: ``$CXX``, else g++, clang++ or c++ on the PATH."""
    for name in (os.environ.get("CXX"), "g++", "clang++", "c++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_features() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _digest(compiler: str, flags: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for name in SOURCES + HEADERS:
        h.update((SOURCE_DIR / name).read_bytes())
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    for part in (version, " ".join(flags), platform.machine(), _cpu_features()):
        h.update(part.encode())
    return h.hexdigest()[:16]


def build(variant: str = "native", *, force: bool = False, verbose: bool = False) -> Path:
    """Compile the kernels (once; cached) and return the library's path.

    ``variant`` is ``native`` (``-march=native``: AVX-512 VPOPCNTDQ where the CPU has it)
    or ``portable`` (the scalar code path, for checking it).
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; valid variants are: " + ", ".join(VARIANTS))
    compiler = find_compiler()
    if compiler is None:
        raise NativeUnavailable(
            "No C++ compiler found for the native kernels (looked for $CXX, g++, clang++, "
            "c++): install one (e.g. `apt-get install g++`) or use an LCE kernel choice"
        )
    flags = (*FLAGS, *VARIANTS[variant])
    target = cache_dir() / f"lce_native-{variant}-{_digest(compiler, flags)}.so"
    if target.exists() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".lce_native-", suffix=".so", dir=target.parent)
    os.close(fd)
    command = [compiler, *flags, "-o", tmp, *(str(SOURCE_DIR / s) for s in SOURCES)]
    if verbose:
        print(" ".join(command), flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        os.unlink(tmp)
        raise NativeUnavailable(
            f"Building the native kernels failed ({' '.join(command)}):\n"
            + result.stderr.strip()[-2000:]
        )
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)  # atomic: concurrent builds leave one complete library
    for old in target.parent.glob(f"lce_native-{variant}-*.so"):
        if old != target:
            old.unlink(missing_ok=True)  # a build of older sources or another compiler
    return target


@cache
def _library(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    lib.lce_native_claimed.restype = ctypes.c_int
    lib.lce_native_claimed.argtypes = [ctypes.c_void_p]
    lib.lce_native_fused.restype = ctypes.c_int
    lib.lce_native_fused.argtypes = [ctypes.c_void_p]
    lib.lce_native_error.restype = ctypes.c_char_p
    lib.lce_native_error.argtypes = [ctypes.c_void_p]
    lib.lce_native_profile.restype = ctypes.c_char_p
    lib.lce_native_profile.argtypes = [ctypes.c_void_p]
    lib.lce_native_features.restype = ctypes.c_char_p
    return lib


def features(variant: str = "native") -> str:
    """What the kernels were compiled to use here: ``avx512-vpopcntdq`` or ``portable``."""
    return _library(str(build(variant))).lce_native_features().decode()


#: tensor types the kernels take: op -> (first input, first output)
_TYPES = {
    "LceQuantize": (("float32",), ("int32",)),
    "LceDequantize": (("int32",), ("float32",)),
    "LceBMaxPool2d": (("int32",), ("int32",)),
    "LceBconv2d": (("int32",), ("float32", "int32")),
}


def unsupported(flatbuffer: bytes) -> str | None:
    """Why the native kernels cannot run this flatbuffer, or None if they can."""
    from larq_bnas.converters.flatbuffer import read

    info = read(flatbuffer)
    for op in info.ops:
        if op.name.startswith("Lce"):
            if op.name not in _TYPES:
                return f"op {op.index} is {op.name}, which the native kernels do not know"
            ins, outs = _TYPES[op.name]
            if op.input_types and op.input_types[0] not in ins:
                return (
                    f"op {op.index} ({op.name}) takes {op.input_types[0]}; the native "
                    f"kernels take {'/'.join(ins)} (int8 models: use an LCE kernel)"
                )
            if op.output_types and op.output_types[0] not in outs:
                return (
                    f"op {op.index} ({op.name}) gives {op.output_types[0]}; the native "
                    f"kernels give {'/'.join(outs)} (int8 models: use an LCE kernel)"
                )
    return None


class NativeInterpreter:
    """An LCE flatbuffer in TensorFlow Lite's interpreter with the native kernels.

    With ``fuse`` (the default) the float element-wise ops next to an LCE op are run
    inside its kernel: the MUL / ADD of a BatchNorm in front of a ``LceQuantize`` and the
    RELU / MUL / ADD after a float ``LceBconv2d``, where nothing else reads the tensors in
    between (``fused`` counts them). The surface matches LCE's ``Interpreter`` where the
    library uses it
    (``input_shapes``, ``input_types``, ``output_shapes``, ``output_types``, the scales and
    zero points, ``predict``), plus ``invoke_one(x)`` for timing a single sample.
    """

    def __init__(
        self, flatbuffer: bytes, num_threads: int = 1, *, fuse: bool = True, variant: str = "native"
    ) -> None:
        import tensorflow as tf

        reason = unsupported(flatbuffer)
        if reason is not None:
            raise NativeUnavailable(f"The native kernels cannot run this model: {reason}")
        path = str(build(variant))
        self._lib = _library(path)
        self._flatbuffer = bytes(flatbuffer)  # the interpreter keeps pointers into it
        options = {
            "num_threads": str(int(num_threads)),
            "fuse": "1" if fuse else "0",
            "protect": ",".join(str(t) for t in _output_tensors(self._flatbuffer)),
        }
        self.delegate = tf.lite.experimental.load_delegate(path, options=options)
        self.interpreter = tf.lite.Interpreter(
            model_content=self._flatbuffer,
            experimental_delegates=[self.delegate],
            num_threads=int(num_threads),
        )
        self.interpreter.allocate_tensors()
        lce_ops = sum(1 for op in _ops(self._flatbuffer) if op.startswith("Lce"))
        if self.claimed != lce_ops:  # pragma: no cover - a layout or version mismatch
            raise NativeUnavailable(
                f"The native kernels took {self.claimed} of {lce_ops} LCE ops: "
                + self._lib.lce_native_error(self._pointer).decode()
            )
        self._inputs = self.interpreter.get_input_details()
        self._outputs = self.interpreter.get_output_details()

    @property
    def _pointer(self) -> int:
        return self.delegate._get_native_delegate_pointer()

    @property
    def claimed(self) -> int:
        """How many LCE nodes the native kernels run."""
        return int(self._lib.lce_native_claimed(self._pointer))

    @property
    def fused(self) -> int:
        """How many float nodes run inside the native kernels."""
        return int(self._lib.lce_native_fused(self._pointer))

    def profile(self) -> dict[str, tuple[int, float]]:
        """op -> (calls, seconds) since the start, with LARQ_BNAS_NATIVE_PROFILE=1 set
        before the interpreter was made (zeros otherwise)."""
        rows = self._lib.lce_native_profile(self._pointer).decode().split("\n")
        return {
            name: (int(calls), float(seconds))
            for name, calls, seconds in (row.split() for row in rows if row)
        }

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(v) for v in d["shape"]) for d in self._inputs]

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(int(v) for v in d["shape"]) for d in self._outputs]

    @property
    def input_types(self) -> list[Any]:
        return [d["dtype"] for d in self._inputs]

    @property
    def output_types(self) -> list[Any]:
        return [d["dtype"] for d in self._outputs]

    @property
    def input_scales(self) -> list[float]:
        return _quantization(self._inputs, 0, float)

    @property
    def input_zero_points(self) -> list[int]:
        return _quantization(self._inputs, 1, int)

    @property
    def output_scales(self) -> list[float]:
        return _quantization(self._outputs, 0, float)

    @property
    def output_zero_points(self) -> list[int]:
        return _quantization(self._outputs, 1, int)

    def invoke_one(self, x: np.ndarray) -> np.ndarray:
        """Run one sample (with its batch axis of 1) and return the first output."""
        self.interpreter.set_tensor(self._inputs[0]["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._outputs[0]["index"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs for a batch, sample by sample (as LCE's interpreter does)."""
        x = np.asarray(x, dtype=self.input_types[0])
        return np.concatenate([self.invoke_one(x[i : i + 1]) for i in range(len(x))], axis=0)


def _quantization(details: list[dict[str, Any]], field: int, kind: type) -> list[Any]:
    """Scale (field 0) or zero point (field 1) of each tensor in ``details``."""
    return [kind(d["quantization"][field]) for d in details]


def _output_tensors(flatbuffer: bytes) -> list[int]:
    """The model's output tensors (never folded away inside a fused kernel)."""
    from tensorflow.lite.python import schema_py_generated as schema

    graph = schema.Model.GetRootAsModel(flatbuffer, 0).Subgraphs(0)
    return [int(graph.Outputs(i)) for i in range(graph.OutputsLength())]


def _ops(flatbuffer: bytes) -> list[str]:
    from larq_bnas.converters.flatbuffer import read

    return [op.name for op in read(flatbuffer).ops]
