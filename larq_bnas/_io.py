"""Atomic file writes: every file the package writes goes through here.

A file is written to a temporary name beside its destination and renamed over it, so an
interrupted job leaves either the old file or the new one, never half of one. With
``durable=True`` (the default) the file is flushed to disk (``fsync``) before the rename
and the directory after it, so a power cut cannot leave an empty file under the new name
either: job state, results and weights are the only copy of what a job computed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Marks the temporary files of ``atomic_path`` (a kill can leave one behind).
TEMPORARY = ".tmp-"


def remove_temporary_files(directory: str | os.PathLike) -> int:
    """Delete the temporary files a killed ``atomic_path`` left in ``directory``."""
    removed = 0
    for path in Path(directory).glob(f".*{TEMPORARY}*"):
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file, or a directory entry list, to disk (best effort on directories)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if os.path.isdir(path) else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """``fsync`` every file below ``root``, then every directory, deepest first."""
    dirs = []
    for parent, _, files in os.walk(os.fspath(root)):
        dirs.append(parent)
        for name in files:
            fsync_path(os.path.join(parent, name))
    for parent in reversed(dirs):
        fsync_path(parent)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    For writers that insist on a file name of their own (Keras, matplotlib), the temporary
    name keeps ``suffix`` so that format detection by extension still works. ``durable``
    fsyncs the file before the rename and the directory after it.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Keep every suffix (".weights.h5" selects a different Keras format than ".h5").
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{dest.name}{TEMPORARY}",
            suffix=suffix or "".join(dest.suffixes),
            dir=dest.parent,
        )
    except OSError as err:  # name the file the caller asked for, not the temporary one
        raise type(err)(err.errno, err.strerror, str(dest)) from err
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give written files the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        if durable:
            fsync_path(tmp_path)
        os.replace(tmp_path, dest)
        if durable:
            fsync_path(dest.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_writable(path: str | os.PathLike) -> Path:
    """Raise the OSError that writing ``path`` with ``atomic_path`` would raise (naming
    ``path``) without writing it, so that a command checks its outputs before long work.
    Creates missing parent directories, as the write would."""
    dest = Path(path)
    if dest.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(dest))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}{TEMPORARY}", dir=dest.parent)
    except OSError as err:
        raise type(err)(err.errno, err.strerror, str(dest)) from err
    os.close(fd)
    os.unlink(tmp)
    return dest


def write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (and durably) and return the path."""
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, durable: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    return write_bytes(path, text.encode("utf-8"), durable=durable)


def write_json(path: str | os.PathLike, obj: Any, durable: bool = True) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically and return the path."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n"
    return write_text(path, text, durable=durable)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _jsonable(obj: Any) -> Any:
    # numpy scalars and arrays, dataclasses with to_dict()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")
