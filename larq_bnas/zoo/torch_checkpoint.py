"""Read files written by ``torch.save`` into ``name -> numpy array``, without PyTorch.

Both of ``torch.save``'s formats are read:

- the legacy format (PyTorch < 1.6, the BNAS checkpoints were written by 1.2): a magic
  number, protocol version and system info pickled one after another, then the object
  pickle, the list of storage keys, and each storage's raw bytes;
- the zip format (the default since 1.6): ``<archive>/data.pkl`` plus one file per storage
  under ``<archive>/data/``.

No code from the file is executed. The unpickler accepts only the globals needed to
rebuild tensors and their storages, ``collections.OrderedDict`` and a few plain builtins;
any other global (``os.system``, ``builtins.eval``, ...) raises ``RefusedPickleError``
naming it. Tensors come back as numpy arrays in the layout PyTorch stored them (OIHW for
conv kernels).

``load_state_dict(path)`` also unwraps the layouts the BNAS scripts write (a bare
state_dict, or ``{'state_dict': ..., 'optimizer': ..., 'epoch': ...}``) and drops the
``module.`` prefix of DataParallel/DistributedDataParallel keys.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CheckpointError",
    "RefusedPickleError",
    "TruncatedCheckpointError",
    "load_state_dict",
    "read_torch_file",
]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

#: torch storage class name -> numpy dtype
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}

#: Plain builtins a state_dict pickle may name (no callables that run code).
_SAFE_BUILTINS = frozenset({"set", "frozenset", "slice", "complex"})


class CheckpointError(ValueError):
    """A file that is not a readable ``torch.save`` checkpoint."""


class TruncatedCheckpointError(CheckpointError):
    """The file ends before all of its pickles or tensor data."""


class RefusedPickleError(CheckpointError):
    """The pickle names a global outside the allowed set (it could run code)."""

    def __init__(self, path: str, module: str, name: str) -> None:
        self.global_name = f"{module}.{name}"
        super().__init__(
            f"{path}: refused to load: the pickle names the global {self.global_name!r}, "
            "which is not tensor/storage rebuilding, OrderedDict or a plain container; "
            "a checkpoint never needs it (it could run code when loaded)"
        )


@dataclass
class _StorageRef:
    """A storage named in the pickle; its data is read afterwards."""

    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None
    # legacy views: (root storage, element offset, element count)
    view_of: _StorageRef | None = None
    view_offset: int = 0

    def array(self) -> np.ndarray:
        if self.view_of is not None:
            root = self.view_of.array()
            return root[self.view_offset : self.view_offset + self.numel]
        if self.data is None:
            raise CheckpointError(f"storage {self.key!r} has no data in the file")
        return self.data


@dataclass
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        flat = self.storage.array()
        size, stride = tuple(int(s) for s in self.size), tuple(int(s) for s in self.stride)
        if not size:
            return np.array(flat[self.offset], dtype=flat.dtype)
        extent = (
            self.offset + sum((n - 1) * s for n, s in zip(size, stride, strict=False) if n > 0) + 1
        )
        if any(n == 0 for n in size):
            return np.zeros(size, dtype=flat.dtype)
        if extent > flat.size or self.offset < 0:
            raise TruncatedCheckpointError(
                f"a tensor of shape {size} reaches element {extent} of a storage of "
                f"{flat.size} elements"
            )
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :], shape=size, strides=tuple(s * item for s in stride)
        )
        return np.array(view)  # a copy in C order


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise CheckpointError("a tensor is rebuilt from something that is not a storage")
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, requires_grad: Any = None, *_: Any) -> Any:
    return data


class _StorageType:
    """Stands for ``torch.FloatStorage`` etc. in the pickle: it only carries a dtype."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


_TORCH_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: str, persistent: Any) -> None:
        super().__init__(file)
        self._path = path
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        found = _TORCH_GLOBALS.get((module, name))
        if found is not None:
            return found
        if module == "builtins" and name in _SAFE_BUILTINS:
            return getattr(__import__("builtins"), name)
        raise RefusedPickleError(self._path, module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self._persistent(pid)


def _storage_dtype(storage_type: Any, path: str) -> np.dtype:
    if isinstance(storage_type, _StorageType):
        return storage_type.dtype
    raise CheckpointError(f"{path}: unknown storage type {storage_type!r}")


def _load_pickle(f: Any, path: str, persistent: Any = None) -> Any:
    def no_persistent(pid: Any) -> Any:
        raise CheckpointError(f"{path}: unexpected persistent id {pid!r}")

    try:
        return _RestrictedUnpickler(f, path, persistent or no_persistent).load()
    except CheckpointError:
        raise
    except EOFError as err:
        raise TruncatedCheckpointError(
            f"{path}: the file is truncated (a pickle ends early)"
        ) from err
    except (pickle.UnpicklingError, ValueError, TypeError, IndexError, KeyError) as err:
        # A cut-off pickle usually ends in a half-read opcode.
        if _at_end(f):
            raise TruncatedCheckpointError(
                f"{path}: the file is truncated (a pickle ends early: {err})"
            ) from err
        raise CheckpointError(f"{path}: not a readable torch.save file ({err})") from err


def _at_end(f: Any) -> bool:
    try:
        pos = f.tell()
        f.seek(0, os.SEEK_END)
        end = f.tell()
        f.seek(pos)
        return pos >= end
    except (OSError, ValueError):
        return False


def _read_legacy(f: Any, path: str) -> Any:
    magic = _load_pickle(f, path)
    if magic != _LEGACY_MAGIC:
        raise CheckpointError(f"{path}: not a torch.save file (no legacy magic number)")
    _load_pickle(f, path)  # protocol version
    _load_pickle(f, path)  # system info (byte order, type sizes)
    storages: dict[str, _StorageRef] = {}

    def persistent(pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise CheckpointError(f"{path}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        dtype = _storage_dtype(storage_type, path)
        root = storages.get(str(key))
        if root is None:
            root = storages[str(key)] = _StorageRef(str(key), dtype, int(numel))
        if view_metadata is not None:
            _view_key, offset, view_size = view_metadata
            return _StorageRef(
                str(_view_key), dtype, int(view_size), view_of=root, view_offset=int(offset)
            )
        return root

    obj = _load_pickle(f, path, persistent)
    keys = _load_pickle(f, path)
    if not isinstance(keys, list):
        raise CheckpointError(f"{path}: the storage key list is not a list")
    for key in keys:
        ref = storages.get(str(key))
        if ref is None:
            raise CheckpointError(f"{path}: storage {key!r} is listed but never used")
        header = f.read(8)
        if len(header) < 8:
            raise TruncatedCheckpointError(
                f"{path}: the file is truncated (tensor data of storage {key!r} missing)"
            )
        (numel,) = struct.unpack("<q", header)
        nbytes = numel * ref.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) < nbytes:
            raise TruncatedCheckpointError(
                f"{path}: the file is truncated (storage {key!r} has {len(raw)} of {nbytes} bytes)"
            )
        ref.data = np.frombuffer(raw, dtype=ref.dtype)
        ref.numel = int(numel)
    return obj


def _read_zip(f: Any, path: str) -> Any:
    try:
        archive = zipfile.ZipFile(f)
        names = archive.namelist()
    except zipfile.BadZipFile as err:
        raise TruncatedCheckpointError(
            f"{path}: the file is truncated or not a valid zip archive ({err})"
        ) from err
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pkl:
        raise CheckpointError(f"{path}: a zip file without data.pkl is not a torch.save file")
    prefix = pkl[0][: -len("data.pkl")]
    byteorder = prefix + "byteorder"
    if byteorder in names and archive.read(byteorder).strip() not in (b"little", b""):
        raise CheckpointError(f"{path}: big-endian checkpoints are not supported")

    def persistent(pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise CheckpointError(f"{path}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        dtype = _storage_dtype(storage_type, path)
        try:
            raw = archive.read(f"{prefix}data/{key}")
        except KeyError as err:
            raise TruncatedCheckpointError(f"{path}: storage {key!r} is missing") from err
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise TruncatedCheckpointError(
                f"{path}: the file is truncated (storage {key!r}: {err})"
            ) from err
        data = np.frombuffer(raw, dtype=dtype)
        if data.size < int(numel):
            raise TruncatedCheckpointError(f"{path}: storage {key!r} is shorter than stated")
        return _StorageRef(str(key), dtype, int(numel), data=data)

    try:
        raw_pickle = archive.read(pkl[0])
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise TruncatedCheckpointError(f"{path}: the file is truncated ({err})") from err
    return _load_pickle(io.BytesIO(raw_pickle), path, persistent)


def _materialize(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return obj.array()
    if isinstance(obj, OrderedDict):
        return OrderedDict((k, _materialize(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _materialize(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialize(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialize(v) for v in obj)
    return obj


def read_torch_file(path: str | os.PathLike) -> Any:
    """The object that ``torch.save`` wrote to ``path``, tensors as numpy arrays.

    Raises:
        FileNotFoundError: no such file.
        TruncatedCheckpointError: the file ends early.
        RefusedPickleError: the pickle names a global other than tensor/storage
            rebuilding, OrderedDict or plain containers.
        CheckpointError: anything else that is not a ``torch.save`` file.
    """
    text = os.fspath(path)
    if not os.path.isfile(text):
        raise FileNotFoundError(f"No such checkpoint file: {text}")
    with open(text, "rb") as f:
        head = f.read(4)
        f.seek(0)
        if not head:
            raise TruncatedCheckpointError(f"{text}: the file is empty")
        obj = _read_zip(f, text) if head == b"PK\x03\x04" else _read_legacy(f, text)
        return _materialize(obj)


def _unwrap(obj: Any, path: str) -> dict[str, Any]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(
            f"{path}: holds no state_dict (expected a dict of tensors, or a dict with 'state_dict')"
        )
    return obj


def load_state_dict(path: str | os.PathLike) -> OrderedDict[str, np.ndarray]:
    """The model tensors of a checkpoint, name -> numpy array, in the file's order.

    Accepts a bare state_dict or ``{'state_dict': ..., ...}`` (the BNAS ImageNet script's
    layout); a ``module.`` prefix (DataParallel) is removed from every key.
    """
    text = os.fspath(path)
    state = _unwrap(read_torch_file(text), text)
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    for key, value in state.items():
        name = str(key)
        if name.startswith("module."):
            name = name[len("module.") :]
        if not isinstance(value, np.ndarray):
            raise CheckpointError(f"{text}: entry {key!r} is not a tensor ({type(value).__name__})")
        out[name] = value
    return out
