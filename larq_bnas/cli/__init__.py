"""The ``larq_bnas`` command line: thin click commands over the library.

Each command lives in a small module of this package and is imported only when it runs,
so ``larq_bnas --help`` starts without loading TensorFlow. Exit codes
(``larq_bnas.cli._common.exit_code``):

- 2: the input is wrong (unknown model, bad option value, corrupt or missing file, ...);
  one line names the bad value and what would be valid;
- 1: the job failed; one line gives the reason and the log file holding the traceback;
- 130: interrupted (Ctrl-C); resumable jobs keep their last committed epoch.

No traceback reaches the terminal unless ``LARQ_BNAS_DEBUG=1``.
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
    "import-weights": ("larq_bnas.cli.weights", "import_weights"),
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
        from larq_bnas.cli._common import report_error

        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except click.ClickException as err:
            raise _OneLineUsageError(err) from None
        except (Exception, KeyboardInterrupt) as err:
            if os.environ.get("LARQ_BNAS_DEBUG"):
                raise
            ctx.exit(report_error(err, ctx.invoked_subcommand))

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as err:  # found while parsing, before invoke
            no_args = getattr(click.exceptions, "NoArgsIsHelpError", ())
            (err if isinstance(err, no_args) else _OneLineUsageError(err)).show()
            sys.exit(err.exit_code)
        except click.exceptions.Abort:  # Ctrl-C while parsing or prompting
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        # click returns the exit code of ctx.exit(code), else the command's result (None)
        sys.exit(result if isinstance(result, int) else 0)


class _OneLineUsageError(click.ClickException):
    """A click error shown as one line (``Error: ...``), with its own exit code."""

    def __init__(self, err: click.ClickException) -> None:
        super().__init__(" ".join(err.format_message().split()))
        self.exit_code = err.exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True, file=file)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(larq_bnas.__version__, prog_name="larq_bnas")
def main() -> None:
    """Binary neural networks: the BNAS and MeliusNet zoo, BNAS cell search, training
    with Keras, and deployment with Larq Compute Engine.

    Every command works offline on the embedded dataset (scikit-learn's digits).
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
