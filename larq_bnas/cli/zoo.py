"""`larq_bnas list` and `larq_bnas summary`: the zoo and its cost report."""

from __future__ import annotations

import click

from larq_bnas.cli._common import (
    ModelOptions,
    echo_json,
    json_option,
    load_cli_model,
    model_options,
)


def _e8(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e8:.2f}e8"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


@click.command("list")
@json_option("table")
def list_models(as_json: bool) -> None:
    """List every zoo model with the paper's accuracy and our OPs and size.

    "paper OPs" is the paper's own figure (BNAS: its FLOPs column, counted its way);
    "our OPs" is BOPs/64 + FLOPs by the MeliusNet convention, and "ours (paper way)"
    counts BNAS's residual projections as binary, as the BNAS paper does.
    """
    from larq_bnas.zoo.figures import load_figures
    from larq_bnas.zoo.published import published_for
    from larq_bnas.zoo.registry import list_specs

    figures = load_figures()
    rows = []
    for spec in list_specs():
        ours = figures.get(spec.name, {})
        checkpoint = published_for(spec.name)
        published = sorted(spec.weights)
        if checkpoint is not None:
            published.append(f"ref:{checkpoint.reference_name}")
        rows.append(
            {
                "name": spec.name,
                "published_weights": published,
                "constructor": spec.constructor,
                "dataset": spec.dataset,
                "input_shape": list(spec.input_shape),
                "paper_top1": spec.paper.get("top1"),
                "paper_top5": spec.paper.get("top5"),
                "paper_ops": spec.paper.get("ops"),
                "paper_size_mib": spec.paper.get("size_mib"),
                **{f"our_{k}": v for k, v in ours.items()},
            }
        )
    if as_json:
        echo_json(rows)
        return
    header = (
        f"{'model':<16} {'constructor':<15} {'dataset':<13} {'top-1':>6} "
        f"{'paper OPs':>10} {'our OPs':>9} {'ours (paper way)':>16} {'size MiB':>9} "
        f"{'params':>12}  {'published weights':<17}"
    )
    click.echo(header)
    click.echo("-" * len(header))
    for r in rows:
        click.echo(
            f"{r['name']:<16} {r['constructor']:<15} {r['dataset']:<13} "
            f"{_fmt(r['paper_top1']):>6} {_e8(r['paper_ops']):>10} "
            f"{_e8(r.get('our_ops')):>9} "
            f"{_fmt(r.get('our_ops_paper'), 1e8) + 'e8' if r.get('our_ops_paper') else '':>16} "
            f"{_fmt(r.get('our_size_mib')):>9} {_count(r.get('our_trainable_params')):>12}  "
            f"{', '.join(r['published_weights']) or '-'}"
        )
    click.echo(
        "\nAccuracies are the papers' (ImageNet top-1 or CIFAR-10). Published weights: "
        "'ref:NAME' is a BNAS authors' PyTorch checkpoint (the reference's config name; "
        "load it with `larq_bnas import-weights` or weights=PATH), 'imagenet' is "
        'larq-zoo\'s file (weights="imagenet"). `larq_bnas summary MODEL` gives the '
        "full cost report."
    )


@click.command()
@click.argument("model")
@model_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object (name, trainable_params, binary_params, "
    "float_params, size_mib, bops, flops, ops, ...).",
)
@click.option(
    "--per-layer/--totals", default=False, help="Show every layer's costs (default: totals only)."
)
@click.option("--count-dense", is_flag=True, help="Add dense layers' MACs to the FLOPs.")
def summary(
    model: str,
    model_opts: ModelOptions,
    as_json: bool,
    per_layer: bool,
    count_dense: bool,
) -> None:
    """Cost report of MODEL: parameters, size, BOPs, FLOPs and OPs.

    MODEL is a zoo name (see `larq_bnas list`), a genotype JSON file (with --cells/
    --channels), a saved Keras model (.h5 or SavedModel dir), or lqz:NAME for a
    larq-zoo model.

    \b
    Examples:
      larq_bnas summary bnas-a
      larq_bnas summary meliusnet22 --set stem=plain --json
      larq_bnas summary search_out/genotype_gamma1.json --cells 8 --channels 16
    """
    from larq_bnas.costs import model_costs
    from larq_bnas.zoo.registry import find_spec, get_spec

    keras_model = load_cli_model(model, **model_opts.kwargs())
    spec = find_spec(model)
    if spec is None and model.endswith(".json"):
        spec = get_spec("bnas")
    report = model_costs(keras_model, count_dense=count_dense, name=spec.name if spec else model)
    if spec is not None and spec.cost_extras is not None:
        report.extras.update(spec.cost_extras(report))
    if as_json:
        echo_json(report.to_dict(per_layer=per_layer))
    else:
        click.echo(report.table(per_layer=per_layer))
