"""The ``larq_bnas`` command line: thin click commands over the library.

Each command lives in a small module of this package and is imported only when it runs,
so ``larq_bnas --help`` starts without loading TensorFlow. Library errors for bad input
(unknown model, bad option, missing data, ...) are shown as one line and exit with code 2;
set ``LARQ_BNAS_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

import larq_bnas

#: command name -> (module, attribute), in the order ``--help`` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("larq_bnas.cli.zoo", "list_models"),
    "summary": ("larq_bnas.cli.zoo", "summary"),
    "search": ("larq_bnas.cli.search", "search"),
    "derive": ("larq_bnas.cli.search", "derive"),
    "train": ("larq_bnas.cli.train", "train"),
    "evaluate": ("larq_bnas.cli.train", "evaluate"),
    "convert": ("larq_bnas.cli.deploy", "convert"),
    "inspect": ("larq_bnas.cli.deploy", "inspect"),
    "benchmark": ("larq_bnas.cli.deploy", "benchmark"),
    "run": ("larq_bnas.cli.run", "run"),
    "study": ("larq_bnas.cli.study", "study"),
}


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _) in COMMANDS.items() if _module_exists(module)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _module_exists(COMMANDS[name][0]):
            return None
        module, attr = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ValueError, FileNotFoundError) as err:
            if os.environ.get("LARQ_BNAS_DEBUG"):
                raise
            # Library errors for bad input: one clear line, usage exit code.
            raise click.UsageError(str(err) or type(err).__name__, ctx=None) from None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(larq_bnas.__version__, prog_name="larq_bnas")
def main() -> None:
    """Binary neural networks: the BNAS and MeliusNet zoo, BNAS cell search, training
    with Keras, and deployment with Larq Compute Engine.

    Every command works offline on the embedded dataset (scikit-learn's digits).
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
