"""Options and helpers shared by the CLI commands (no TensorFlow at import time)."""

from __future__ import annotations

import errno
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

#: Exit codes: bad input, failed job, interrupted (128 + SIGINT).
EXIT_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130

MODEL_HELP = (
    "MODEL is a zoo name (see `larq_bnas list`), a genotype JSON file (with --cells/"
    "--channels), a saved Keras model (.h5 or SavedModel dir), or lqz:NAME for a "
    "larq-zoo model."
)


def parse_set(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``--set`` values -> options (``larq_bnas.config.parse_assignments``)."""
    from larq_bnas.config import ConfigError, parse_assignments

    try:
        return parse_assignments(values)
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--set") from err


_TRUST = "larq_bnas.trust_model_code"


def _remember_trust(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_TRUST] = True
    return value


def trust_model_code() -> bool:
    """Whether the running command was given ``--trust-model-code``."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(_TRUST, False))


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add --set, --cells, --channels, --input-size, --num-classes and --trust-model-code
    to a command (the last one is read with ``trust_model_code()``)."""
    decorators = [
        click.option(
            "--trust-model-code",
            is_flag=True,
            expose_value=False,
            callback=_remember_trust,
            help="Load a saved model even if it carries code (Lambda layers): only for "
            "files you made or trust.",
        ),
        click.option(
            "--set",
            "set_",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override a model option (repeatable), e.g. --set pad_values=0.0.",
        ),
        click.option(
            "--cells",
            type=click.IntRange(min=3),
            default=None,
            help="Number of cells (BNAS models and genotype files).",
        ),
        click.option(
            "--channels",
            type=click.IntRange(min=1),
            default=None,
            help="Initial channels C (BNAS models and genotype files).",
        ),
        click.option(
            "--input-size",
            type=click.IntRange(min=8),
            default=None,
            help="Square input size in pixels (default: the model's own).",
        ),
        click.option(
            "--num-classes",
            type=click.IntRange(min=1),
            default=None,
            help="Classifier outputs (default: the model's own).",
        ),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def model_kwargs(
    set_: tuple[str, ...] = (),
    cells: int | None = None,
    channels: int | None = None,
    input_size: int | None = None,
    num_classes: int | None = None,
    channels_in: int = 3,
) -> dict[str, Any]:
    """The keyword arguments of ``larq_bnas.zoo.references.load_model`` for the options."""
    options: dict[str, Any] = parse_set(set_)
    if cells is not None:
        options["cells"] = cells
    if channels is not None:
        options["channels"] = channels
    if input_size is not None:
        options["input_shape"] = (input_size, input_size, channels_in)
    if num_classes is not None:
        options["num_classes"] = num_classes
    return options


def load_cli_model(ref: str, **kwargs: Any) -> Any:
    """Build or load MODEL for a command (see ``MODEL_HELP``)."""
    from larq_bnas.zoo.references import load_model

    kwargs.setdefault("trust_model_code", trust_model_code())
    return load_model(ref, **kwargs)


def check_flatbuffer(path: str) -> None:
    """Raise ``InputError`` naming ``path`` if it is not a readable TFLite flatbuffer."""
    import struct

    from larq_bnas.errors import InputError

    if not os.path.exists(path):
        raise InputError(f"Flatbuffer {path!r} does not exist; give a .tflite file")
    from larq_bnas.converters import read

    try:
        read(path)  # its own errors (not a flatbuffer, a directory, ...) name the path
    except (struct.error, IndexError, TypeError, AttributeError) as err:  # cut short
        raise InputError(
            f"{path!r} is not a readable TFLite flatbuffer (truncated or corrupt?): {err}"
        ) from err


def echo_json(obj: Any) -> None:
    import json

    from larq_bnas._io import _jsonable

    click.echo(json.dumps(obj, indent=2, default=_jsonable))


# --- errors and exit codes ------------------------------------------------------------

_INPUT_ERRORS = (ValueError, LookupError, FileNotFoundError, NotADirectoryError)
_PATH_ERRNOS = {
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENAMETOOLONG,
}


def _raised_by_us(err: BaseException) -> bool:
    """True if the innermost frame of ``err`` is larq_bnas code (not TF, Keras, ...)."""
    package = str(Path(__file__).resolve().parent.parent)
    tb = err.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and str(Path(last).resolve()).startswith(package + os.sep)


def exit_code(err: BaseException) -> int:
    """2 for bad input, 130 for an interruption, 1 for a failed job.

    Bad input is an ``InputError``; a ValueError / LookupError / FileNotFoundError that
    larq_bnas raised itself (its messages name the bad value); or an OSError on a path the
    user gave (missing, not a directory, not writable). The same errors raised inside
    TensorFlow or Keras mean the job failed."""
    from larq_bnas.errors import InputError

    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(err, InputError):
        return EXIT_INPUT
    if isinstance(err, _INPUT_ERRORS) and _raised_by_us(err):
        return EXIT_INPUT
    if isinstance(err, OSError) and err.errno in _PATH_ERRNOS and err.filename is not None:
        return EXIT_INPUT
    return EXIT_FAILED


def error_log_path(command: str | None) -> Path:
    """Where the traceback of a failed command goes: ``<cache>/logs/``."""
    from larq_bnas._cache import cache_dir

    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-{command or 'larq_bnas'}-{os.getpid()}.log"
    try:
        return cache_dir("logs") / name
    except OSError:
        import tempfile

        return Path(tempfile.gettempdir()) / f"larq_bnas-{name}"


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None:
        reason = err.strerror or type(err).__name__
        return f"{reason}: {os.fsdecode(err.filename)!r}"
    text = " ".join(str(err).split())
    if isinstance(err, KeyError) and text.startswith("'"):
        text = f"unknown key {text}"
    return text or type(err).__name__


def report_error(err: BaseException, command: str | None = None) -> int:
    """Show ``err`` as one line on stderr and return the exit code (``exit_code``).

    A failed job's traceback goes to a log file, named on that line."""
    code = exit_code(err)
    if code == EXIT_INTERRUPTED:
        click.echo(
            "Interrupted: a resumable job keeps its last committed epoch; run the same "
            "command with --resume to continue.",
            err=True,
        )
        return code
    if code == EXIT_INPUT:
        click.echo(f"Error: {_message(err)}", err=True)
        return code
    log = error_log_path(command)
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"larq_bnas {' '.join(sys.argv[1:])}\n\n{text}", encoding="utf-8")
        where = f"traceback in {log}"
    except OSError:
        where = "set LARQ_BNAS_DEBUG=1 to see the traceback"
    message = _message(err)
    if len(message) > 300:
        message = message[:297] + "..."
    click.echo(f"Failed: {type(err).__name__}: {message} ({where})", err=True)
    return code
