"""Options and helpers shared by the CLI commands (no TensorFlow at import time)."""

from __future__ import annotations

import errno
import functools
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from larq_bnas._digits import DIGITS

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


#: A click decorator (an option, or several: ``stack``).
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

#: Value ranges shared by every command's options of that kind.
CELLS = click.IntRange(min=3)
CHANNELS = click.IntRange(min=1)
COUNT = click.IntRange(min=1)
TFDS_DIR_HELP = "Where tfds datasets are prepared (default $TFDS_DATA_DIR)."


def stack(*decorators: Decorator) -> Decorator:
    """The ``decorators`` applied as if written one above the other, the first on top
    (the order of ``--help``)."""

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def output_option(
    help: str,
    *,
    file: bool = False,
    required: bool = True,
    default: str | None = None,
    short_first: bool = False,
) -> Decorator:
    """``--output/-o``: a directory, or a file (``file=True``). A required one has no
    default at all (click 8.3+ would take an explicit ``default=None`` as given).
    ``short_first`` names it ``-o`` first in the "Missing option" error."""
    defaults: dict[str, Any] = (
        {} if required else {"default": default, "show_default": default is not None}
    )
    return click.option(
        *(("-o", "--output") if short_first else ("--output", "-o")),
        type=click.Path(dir_okay=False) if file else click.Path(file_okay=False),
        required=required,
        help=help,
        **defaults,
    )


def file_option(*decls: str, help: str) -> Decorator:
    """An optional file to write (no default)."""
    return click.option(*decls, type=click.Path(dir_okay=False), default=None, help=help)


def resume_option(help: str) -> Decorator:
    return click.option("--resume", is_flag=True, help=help)


def dataset_option(help: str | None = None, default: str | None = DIGITS.name) -> Decorator:
    return click.option("--dataset", default=default, show_default=default is not None, help=help)


def data_dir_option(help: str | None = TFDS_DIR_HELP) -> Decorator:
    return click.option("--data-dir", type=click.Path(), default=None, help=help)


def weights_option(help: str) -> Decorator:
    return click.option("--weights", type=click.Path(), default=None, help=help)


def seed_option(default: int = 0) -> Decorator:
    return click.option("--seed", type=int, default=default, show_default=True)


def threads_option(default: int = 2) -> Decorator:
    return click.option("--threads", type=COUNT, default=default, show_default=True)


def xla_option(step: str, note: str) -> Decorator:
    return click.option(
        "--xla/--no-xla",
        default=False,
        show_default=True,
        help=f"Compile the {step} step with XLA ({note}).",
    )


def json_option(what: str) -> Decorator:
    return click.option("--json", "as_json", is_flag=True, help=f"Print the {what} as JSON.")


def size_options(min_input: int = 8, **helps: str) -> Decorator:
    """Any of ``--cells``, ``--channels``, ``--input-size`` and ``--num-classes`` (default
    None), named by keyword with their help texts, in that keyword order."""
    types = {
        "cells": CELLS,
        "channels": CHANNELS,
        "input_size": click.IntRange(min=min_input),
        "num_classes": COUNT,
    }
    return stack(
        *(
            click.option(f"--{name.replace('_', '-')}", type=types[name], default=None, help=text)
            for name, text in helps.items()
        )
    )


_MODEL_OPTIONS = stack(
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
    size_options(
        cells="Number of cells (BNAS models and genotype files).",
        channels="Initial channels C (BNAS models and genotype files).",
        input_size="Square input size in pixels (default: the model's own).",
        num_classes="Classifier outputs (default: the model's own).",
    ),
)


@dataclass(frozen=True)
class ModelOptions:
    """The values of ``model_options`` as one argument of the command (``model_opts``)."""

    set_: tuple[str, ...] = ()
    cells: int | None = None
    channels: int | None = None
    input_size: int | None = None
    num_classes: int | None = None

    def options(self) -> dict[str, Any]:
        """--set, --cells and --channels: the model's own options."""
        options: dict[str, Any] = parse_set(self.set_)
        if self.cells is not None:
            options["cells"] = self.cells
        if self.channels is not None:
            options["channels"] = self.channels
        return options

    def kwargs(self, channels_in: int = 3) -> dict[str, Any]:
        """All of them as keyword arguments of ``larq_bnas.zoo.references.load_model``."""
        options = self.options()
        if self.input_size is not None:
            options["input_shape"] = (self.input_size, self.input_size, channels_in)
        if self.num_classes is not None:
            options["num_classes"] = self.num_classes
        return options

    def refuse_num_classes(self) -> None:
        """For commands where the dataset sets the number of classes."""
        if self.num_classes is not None:
            raise click.BadParameter(
                "the dataset sets the number of classes", param_hint="--num-classes"
            )


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add --set, --cells, --channels, --input-size, --num-classes and --trust-model-code
    to a command; it gets the first five as one ``model_opts: ModelOptions`` argument (the
    last one is read with ``trust_model_code()``)."""

    @functools.wraps(f)
    def command(
        *args: Any,
        set_: tuple[str, ...],
        cells: int | None,
        channels: int | None,
        input_size: int | None,
        num_classes: int | None,
        **kwargs: Any,
    ) -> Any:
        model_opts = ModelOptions(set_, cells, channels, input_size, num_classes)
        return f(*args, model_opts=model_opts, **kwargs)

    return _MODEL_OPTIONS(command)


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
