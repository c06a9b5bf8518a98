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
import stat
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
#: No ``-march=native``: the vector paths carry target attributes and are chosen at run
#: time from CPUID, so one build serves any CPU of the architecture.
FLAGS = (
    "-O3",
    "-std=c++17",
    "-shared",
    "-fPIC",
    "-pthread",
    "-ffp-contract=off",
    "-fvisibility=hidden",
)
#: variant -> extra flags: ``native`` (the release build) and ``sanitize`` (AddressSanitizer
#: + UBSan, for tests: load it in a subprocess with ``sanitizer_env()``)
VARIANTS: dict[str, tuple[str, ...]] = {
    "native": (),
    "sanitize": (
        "-O1",
        "-g",
        "-fno-omit-frame-pointer",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=undefined",
    ),
}
#: instruction sets the kernels have a path for (``auto``: the best this CPU runs)
ISAS = ("auto", "avx512", "avx2", "scalar")
ISA_ENV = "LARQ_BNAS_NATIVE_ISA"


class NativeUnavailable(RuntimeError):
    """The native kernels cannot run here (no compiler, a failed build, an unsafe or
    unwritable cache, an ABI mismatch, or the model)."""


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


def _digest(compiler: str, flags: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for name in SOURCES + HEADERS:
        h.update((SOURCE_DIR / name).read_bytes())
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    for part in (version, " ".join(flags), platform.machine()):
        h.update(part.encode())
    return h.hexdigest()[:16]


def check_private(path: Path) -> None:
    """Refuse a directory or library that another user could have planted or could change:
    owned by someone else, or writable by group or others (world-writable for a directory).
    Raises ``NativeUnavailable`` naming the path and the fix."""
    try:
        st = path.stat()
    except OSError as err:
        raise NativeUnavailable(f"Cannot inspect {str(path)!r}: {err}") from err
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise NativeUnavailable(
            f"Refusing the native kernels' cache {str(path)!r}: it is owned by uid {st.st_uid}, "
            f"not by you (uid {os.getuid()}); set $LARQ_BNAS_CACHE_DIR to a directory of your own"
        )
    writable = stat.S_IWOTH | (0 if path.is_dir() else stat.S_IWGRP)
    if st.st_mode & writable:
        raise NativeUnavailable(
            f"Refusing the native kernels' cache {str(path)!r}: it is writable by others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); run `chmod go-w {path}` or set "
            "$LARQ_BNAS_CACHE_DIR to a private directory"
        )


def _prepare_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise NativeUnavailable(
            f"Cannot create the native kernels' cache {str(directory)!r} ({err.strerror}); "
            "set $LARQ_BNAS_CACHE_DIR to a writable directory"
        ) from err
    for path in (directory.parent, directory):
        check_private(path)


def build(variant: str = "native", *, force: bool = False, verbose: bool = False) -> Path:
    """Compile the kernels (once; cached) and return the library's path.

    ``variant`` is ``native`` (the release build: AVX-512, AVX2 and scalar paths chosen
    at run time) or ``sanitize`` (AddressSanitizer + UBSan). The library is compiled into
    a private temporary file and renamed into place atomically; libraries of other
    sources are never deleted (another process may have loaded them). The cache
    directory must belong to this user and not be writable by others.
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
    directory = cache_dir()
    _prepare_dir(directory)
    target = directory / f"lce_native-{variant}-{_digest(compiler, flags)}.so"
    if target.exists() and not force:
        check_private(target)
        return target
    try:
        fd, tmp = tempfile.mkstemp(prefix=".lce_native-", suffix=".so", dir=directory)
    except OSError as err:
        raise NativeUnavailable(
            f"Cannot write to the native kernels' cache {str(directory)!r} ({err.strerror}); "
            "set $LARQ_BNAS_CACHE_DIR to a writable directory"
        ) from err
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
    os.chmod(tmp, 0o700)
    os.replace(tmp, target)  # atomic: concurrent builds leave one complete library
    return target


def sanitizer_env() -> dict[str, str]:
    """Environment for a Python subprocess that loads the ``sanitize`` build: libasan
    preloaded (the Python host is not instrumented), leak checks off, abort on error."""
    compiler = find_compiler() or "g++"
    libasan = subprocess.run(
        [compiler, "-print-file-name=libasan.so"], capture_output=True, text=True
    ).stdout.strip()
    libubsan = subprocess.run(
        [compiler, "-print-file-name=libubsan.so"], capture_output=True, text=True
    ).stdout.strip()
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(p for p in (libasan, libubsan) if os.path.isabs(p))
    env["ASAN_OPTIONS"] = (
        "detect_leaks=0:abort_on_error=1:handle_segv=1:allocator_may_return_null=1"
    )
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


@cache
def _library(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    for name in ("lce_native_claimed", "lce_native_fused"):
        getattr(lib, name).restype = ctypes.c_int
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    for name in ("lce_native_error", "lce_native_profile", "lce_native_isa"):
        getattr(lib, name).restype = ctypes.c_char_p
        getattr(lib, name).argtypes = [ctypes.c_void_p]
    lib.lce_native_tensor_info.restype = ctypes.c_char_p
    lib.lce_native_tensor_info.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.lce_native_features.restype = ctypes.c_char_p
    lib.lce_native_cpu_isas.restype = ctypes.c_char_p
    return lib


def features(variant: str = "native") -> str:
    """The best instruction set the kernels use on this CPU: ``avx512``, ``avx2`` or
    ``scalar``."""
    return _library(str(build(variant))).lce_native_features().decode()


def cpu_isas(variant: str = "native") -> tuple[str, ...]:
    """The instruction sets this CPU runs, best first (``scalar`` always)."""
    return tuple(_library(str(build(variant))).lce_native_cpu_isas().decode().split())


def resolve_isa(isa: str | None = None) -> str:
    """``isa``, else ``$LARQ_BNAS_NATIVE_ISA``, else ``auto``; checked against ``ISAS``."""
    value = isa if isa is not None else (os.environ.get(ISA_ENV) or "auto")
    if value not in ISAS:
        source = "isa" if isa is not None else f"${ISA_ENV}"
        raise ValueError(f"Unknown {source} {value!r}; valid values are: " + ", ".join(ISAS))
    return value


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


#: TfLiteType enum value -> numpy dtype name (for the ABI check)
_TFLITE_TYPES = {
    1: "float32",
    2: "int32",
    3: "uint8",
    4: "int64",
    6: "bool",
    7: "int16",
    9: "int8",
    10: "float16",
    11: "float64",
}


def abi_mismatch(lib: ctypes.CDLL, pointer: int, interpreter: Any) -> str | None:
    """Compare every tensor the delegate sees through the hand-declared TFLite structs
    (name, type, shape, bytes) with ``interpreter.get_tensor_details()``; the first
    difference, or None when they agree."""
    count = lib.lce_native_tensor_info(pointer, -1).decode()
    details = interpreter.get_tensor_details()
    if not count.isdigit():
        return "the delegate saw no tensors"
    if int(count) < len(details):
        return f"the delegate sees {count} tensors, TensorFlow Lite reports {len(details)}"
    for d in details:
        fields = lib.lce_native_tensor_info(pointer, int(d["index"])).decode("utf-8", "replace")
        parts = fields.split("\t")
        if len(parts) != 4:
            return f"tensor {d['index']}: unreadable through the declared structs ({fields!r})"
        name, type_id, dims, nbytes = parts
        shape = [int(v) for v in dims.split(",") if v]
        expected_shape = [int(v) for v in d["shape"]]
        dtype = np.dtype(d["dtype"]).name
        if name != d["name"]:
            return (
                f"tensor {d['index']}: name {name!r} through the structs, {d['name']!r} in TFLite"
            )
        if type_id.isdigit() and int(type_id) in _TFLITE_TYPES:
            if _TFLITE_TYPES[int(type_id)] != dtype:
                return f"tensor {d['index']}: type {_TFLITE_TYPES[int(type_id)]} vs {dtype}"
        else:
            return f"tensor {d['index']}: unknown type id {type_id} (TFLite says {dtype})"
        if shape != expected_shape:
            return f"tensor {d['index']}: shape {shape} through the structs, {expected_shape} in TFLite"
        expected_bytes = int(np.prod(expected_shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if int(nbytes) != expected_bytes and int(nbytes) != 0:  # 0: not allocated
            return f"tensor {d['index']}: {nbytes} bytes through the structs, {expected_bytes} expected"
    return None


class NativeInterpreter:
    """An LCE flatbuffer in TensorFlow Lite's interpreter with the native kernels.

    With ``fuse`` (the default) the float element-wise ops next to an LCE op are run
    inside its kernel: the MUL / ADD of a BatchNorm in front of a ``LceQuantize`` and the
    RELU / MUL / ADD after a float ``LceBconv2d``, where nothing else reads the tensors in
    between (``fused`` counts them). ``isa`` forces an instruction set (``ISAS``; default
    ``$LARQ_BNAS_NATIVE_ISA`` or ``auto``). The surface matches LCE's ``Interpreter``
    where the library uses it (``input_shapes``, ``input_types``, ``output_shapes``,
    ``output_types``, the scales and zero points, ``predict``), plus ``invoke_one(x)``
    for timing a single sample. ``predict`` runs a whole batch in one invoke (the input
    is resized to the batch; the kernels resize their outputs).

    At load time the tensors the delegate sees through its hand-declared TFLite structs
    are compared with TFLite's own view (``abi_mismatch``); any difference raises
    ``NativeUnavailable`` with the reason, so callers fall back to LCE's kernels.
    """

    def __init__(
        self,
        flatbuffer: bytes,
        num_threads: int = 1,
        *,
        fuse: bool = True,
        variant: str = "native",
        isa: str | None = None,
        keep_tensors: bool = False,
    ) -> None:

        isa = resolve_isa(isa)
        reason = unsupported(flatbuffer)
        if reason is not None:
            raise NativeUnavailable(f"The native kernels cannot run this model: {reason}")
        path = str(build(variant))
        self._lib = _library(path)
        if isa != "auto" and isa not in cpu_isas(variant):
            raise NativeUnavailable(
                f"This CPU cannot run the native {isa} kernels (it runs: "
                + ", ".join(cpu_isas(variant))
                + ")"
            )
        self._flatbuffer = bytes(flatbuffer)  # the interpreter keeps pointers into it
        self._path = path
        self._options = {
            "num_threads": str(int(num_threads)),
            "fuse": "1" if fuse else "0",
            "isa": isa,
            "protect": ",".join(str(t) for t in _output_tensors(self._flatbuffer)),
        }
        self._num_threads = int(num_threads)
        self._keep_tensors = keep_tensors
        self._lce_ops = sum(1 for op in _ops(self._flatbuffer) if op.startswith("Lce"))
        #: batch size -> (delegate, interpreter): TFLite 2.16 cannot re-apply two delegates
        #: (ours and its default XNNPACK) a second time after input resizes, so each batch
        #: size gets an interpreter of its own, resized once before allocation.
        self._by_batch: dict[int, tuple[Any, Any]] = {}
        self._use(self._open(None))

    def _open(self, batch: int | None) -> tuple[Any, Any]:
        import tensorflow as tf

        delegate = tf.lite.experimental.load_delegate(self._path, options=self._options)
        interpreter = tf.lite.Interpreter(
            model_content=self._flatbuffer,
            experimental_delegates=[delegate],
            num_threads=self._num_threads,
            experimental_preserve_all_tensors=self._keep_tensors,
        )
        try:
            if batch is not None:
                detail = interpreter.get_input_details()[0]
                shape = [batch, *(int(v) for v in detail["shape"][1:])]
                try:
                    interpreter.resize_tensor_input(detail["index"], shape, strict=False)
                except (RuntimeError, ValueError) as err:
                    raise ValueError(
                        f"The model cannot run a batch of {batch}: " + _first_native_error(str(err))
                    ) from err
            interpreter.allocate_tensors()
        except RuntimeError as err:
            message = _first_native_error(str(err))
            if batch is not None:
                raise ValueError(f"The model cannot run a batch of {batch}: {message}") from err
            raise NativeUnavailable(f"The native kernels refused this model: {message}") from err
        pointer = delegate._get_native_delegate_pointer()
        claimed = int(self._lib.lce_native_claimed(pointer))
        if claimed != self._lce_ops:
            raise NativeUnavailable(
                f"The native kernels took {claimed} of {self._lce_ops} LCE ops: "
                + self._lib.lce_native_error(pointer).decode()
            )
        mismatch = abi_mismatch(self._lib, pointer, interpreter)
        if mismatch is not None:
            raise NativeUnavailable(
                "The native kernels' TFLite structs do not match the running TensorFlow "
                f"Lite {tf.__version__} ({mismatch}); use an LCE kernel choice"
            )
        key = int(interpreter.get_input_details()[0]["shape"][0])
        if len(self._by_batch) >= 2:  # keep the model's own batch size and the last one
            for old in list(self._by_batch)[1:]:
                del self._by_batch[old]
        self._by_batch[key] = (delegate, interpreter)
        return delegate, interpreter

    def _use(self, pair: tuple[Any, Any]) -> None:
        self.delegate, self.interpreter = pair
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

    @property
    def isa(self) -> str:
        """The instruction set the kernels run with: ``avx512``, ``avx2`` or ``scalar``."""
        return self._lib.lce_native_isa(self._pointer).decode()

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

    def resize(self, batch: int) -> None:
        """Make the input ``batch`` samples (the kernels resize their outputs). A shape
        the model cannot take raises ``ValueError`` naming it."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        if int(self._inputs[0]["shape"][0]) == batch:
            return
        self._use(self._by_batch.get(batch) or self._open(batch))

    def invoke_one(self, x: np.ndarray) -> np.ndarray:
        """Run one sample (with its batch axis of 1) and return the first output."""
        return self.invoke(x)[0]

    def invoke(self, x: np.ndarray) -> list[np.ndarray]:
        """Run the batch ``x`` in one invoke; every output, in the model's order."""
        x = np.asarray(x, dtype=self.input_types[0])
        expected = tuple(self._inputs[0]["shape"][1:])
        if x.ndim < 1 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Input of shape {tuple(x.shape)} does not fit the model's input "
                f"(batch, {', '.join(str(int(v)) for v in expected)})"
            )
        self.resize(len(x))
        self.interpreter.set_tensor(self._inputs[0]["index"], x)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(d["index"]) for d in self._outputs]

    def predict(self, x: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """Outputs for a batch, in one invoke: an array, or a list for several outputs
        (as LCE's interpreter returns them)."""
        outputs = self.invoke(x)
        return outputs[0] if len(outputs) == 1 else outputs


def near_zero_binarizations(
    flatbuffer: bytes, x: np.ndarray, rtol: float = 1e-6, isa: str | None = None
) -> list[int]:
    """Per input of the batch ``x``: how many values fed to a ``LceQuantize`` lie within
    ``rtol`` of their tensor's largest |value| of zero (native kernels, nothing fused).
    Such a value may binarize to either sign depending on float rounding, so a run that
    differs from LCE's reference kernel on an input with one is explained by rounding."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(flatbuffer, 0)
    graph = model.Subgraphs(0)
    codes = [model.OperatorCodes(i).CustomCode() for i in range(model.OperatorCodesLength())]
    tensors = [
        int(graph.Operators(i).Inputs(0))
        for i in range(graph.OperatorsLength())
        if codes[graph.Operators(i).OpcodeIndex()] == b"LceQuantize"
    ]
    interpreter = NativeInterpreter(flatbuffer, fuse=False, isa=isa, keep_tensors=True)
    counts = []
    for sample in np.asarray(x):
        interpreter.invoke(sample[None])
        count = 0
        for t in tensors:
            v = np.abs(interpreter.interpreter.get_tensor(t))
            count += int(np.sum(v <= rtol * max(float(v.max(initial=0.0)), 1e-30)))
        counts.append(count)
    return counts


def _first_native_error(message: str) -> str:
    """The native kernels' line of a TFLite error message, else its first line."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    for line in lines:
        if "lce_native" in line:
            return line
    return lines[0] if lines else message


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
