"""Options and helpers shared by the CLI commands (no TensorFlow at import time)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

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


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add --set, --cells, --channels, --input-size and --num-classes to a command."""
    decorators = [
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

    return load_model(ref, **kwargs)


def echo_json(obj: Any) -> None:
    import json

    from larq_bnas._io import _jsonable

    click.echo(json.dumps(obj, indent=2, default=_jsonable))
