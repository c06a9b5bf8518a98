"""`larq_bnas study`: run one of the papers' experiments as a resumable study."""

from __future__ import annotations

import click

from larq_bnas.cli._common import COUNT, data_dir_option, output_option, resume_option
from larq_bnas.studies import SCALES, STUDIES


class _StudyName(click.ParamType):
    name = "study"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value not in STUDIES:
            self.fail(
                f"Unknown study {value!r}; valid studies are: {', '.join(STUDIES)}", param, ctx
            )
        return value


class _Scale(click.ParamType):
    name = "scale"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value not in SCALES:
            self.fail(f"Unknown scale {value!r}; valid scales are: {', '.join(SCALES)}", param, ctx)
        return value


@click.command()
@click.argument("name", type=_StudyName(), metavar="NAME")
@click.option(
    "--scale",
    type=_Scale(),
    default="toy",
    show_default=True,
    help="toy: embedded digits, minutes (NOT the papers' numbers); paper: the "
    "papers' dataset and schedule.",
)
@output_option("Output directory (units, table .csv/.json, figure .png).")
@resume_option("Continue the study in --output: finished units are skipped.")
@click.option(
    "--epochs",
    type=COUNT,
    default=None,
    help="Override the training epochs of every trained unit (the ablations' "
    "searches keep theirs; search-dynamics: its search epochs).",
)
@data_dir_option("Where tfds datasets are prepared (paper scale; default $TFDS_DATA_DIR).")
def study(
    name: str, scale: str, output: str, resume: bool, epochs: int | None, data_dir: str | None
) -> None:
    """Run study NAME: one of the papers' experiments, end to end.

    \b
    Studies:
      layer-types      BNAS Table 1/12: layer types in float vs binary
      baselines        BNAS Table 6/Fig. 1: XNOR-Net ResNet18/34, WRN40 vs BNAS, acc vs OPs
      ablations        BNAS Table 8/10/11: no skip, no zeroise, no diversity, no dilated
                       convs, with separable convs (search -> derive -> train)
      naive-vs-melius  MeliusNet supplement 2: naive vs MeliusNet at matched OPs
      optimizers       MeliusNet supplement 3: Adam/RAdam/SGD and weight sign flips
      search-dynamics  BNAS eq. 4/5: search with lambda 1 vs 0 (entropy, alphas per
                       epoch), cells derived with gamma 1 vs 3 (share of Zeroise)

    Every unit (a training, a search) is saved as soon as it is done; --resume skips
    finished units and continues an interrupted training from its last epoch. Writes the
    table as CSV and JSON and the figure as PNG into --output (for layer-types:
    layer_types.csv, layer_types.json, layer_types.png).

    \b
    Examples:
      larq_bnas study layer-types --output studies/layer-types
      larq_bnas study optimizers --scale toy --epochs 2 -o studies/opt
      larq_bnas study baselines --scale paper --data-dir ~/tfds -o studies/baselines-paper
    """
    from larq_bnas.studies import run_study

    result = run_study(
        name, scale, output, resume, epochs=epochs, data_dir=data_dir, echo=click.echo
    )
    columns = result.columns
    click.echo("\t".join(columns))
    for row in result.rows:
        click.echo("\t".join(_fmt(row.get(c)) for c in columns))
    if scale == "toy":
        click.echo("(toy scale: these numbers are NOT the papers' numbers)")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)
