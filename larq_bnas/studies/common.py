"""What every study shares: its run directory, resumable units, tables and figures.

A study is a list of *units* (one trained configuration, one search, ...). Each unit's
result is saved as ``units/<key>.json`` in the study's output directory as soon as it is
done, so ``resume=True`` skips finished units; a unit that trains does so in
``runs/<key>/`` with ``larq_bnas.training.train``, which itself resumes mid-training.
The study's directory is a ``RunDirectory`` of kind ``study-<name>``: without ``resume``
a directory that already holds a study is refused.

Toy scale runs on the embedded digits in minutes; its numbers only show that the
experiment runs end to end and are NOT the papers' numbers. Paper scale uses the papers'
datasets and schedules; ``PaperCost`` documents what that costs.

This module does not import TensorFlow at import time (the CLI lists studies without it).
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from larq_bnas._autograph import lean_autograph  # noqa: F401  (re-exported)
from larq_bnas._digits import DIGITS
from larq_bnas._io import atomic_path, read_json, write_json, write_text

SCALES = ("toy", "paper")
TOY_DATASET = DIGITS.name
TOY_NOTE = (
    "Toy scale: trained on the embedded 8x8 digits (resized), for a few epochs, with "
    "shrunken models. These numbers only show that the experiment runs end to end; they "
    "are NOT the papers' numbers."
)
PAPER_NOTE = "Paper scale: the papers' dataset and schedule."


@dataclass(frozen=True)
class PaperCost:
    """What running a study at paper scale costs.

    Attributes:
        dataset: the tensorflow-datasets name of the papers' dataset.
        units: what is trained (and searched), and how many.
        schedule: epochs, recipe and batch size of each unit.
        gpu_hours: GPU time as far as the papers state it (else says it is not stated).
    """

    dataset: str
    units: str
    schedule: str
    gpu_hours: str

    def lines(self) -> list[str]:
        return [
            f"dataset: {self.dataset} (tensorflow-datasets)",
            f"units: {self.units}",
            f"schedule: {self.schedule}",
            f"estimated GPU time: {self.gpu_hours}",
        ]


@dataclass
class StudyResult:
    """What ``run_study`` returns: the table and the files written."""

    name: str
    scale: str
    output_dir: Path
    columns: list[str]
    rows: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


class StudyContext:
    """A running study: its output directory, scale, epochs and progress output.

    Args:
        name: the study's name (e.g. "layer-types").
        scale: "toy" or "paper".
        output_dir: the study's output directory.
        resume: continue the study found in ``output_dir`` (finished units are skipped).
        epochs: override the training epochs of every unit (None: the scale's default).
        data_dir: where tfds datasets are prepared (paper scale).
        echo: prints one progress line (default: ``print`` with flush).
    """

    def __init__(
        self,
        name: str,
        scale: str,
        output_dir: str | os.PathLike,
        resume: bool,
        epochs: int | None = None,
        data_dir: str | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        from larq_bnas.checkpointing import RunDirectory

        check_scale(scale)
        if epochs is not None and epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs}")
        self.name, self.scale, self.epochs, self.data_dir = name, scale, epochs, data_dir
        self.resume = resume
        self.echo = echo or _print
        self.dir = Path(output_dir)
        options = {"study": name, "scale": scale, "epochs": epochs}
        # A resumed study keeps its scale and epochs: the directory lists any difference.
        self.run = RunDirectory(
            self.dir,
            f"study-{name}",
            options,
            resume=resume,
            result_keys=tuple(options),
            resume_hint="resume it with the same --scale and --epochs",
        )
        self.total = 0
        self.done = 0

    @property
    def toy(self) -> bool:
        return self.scale == "toy"

    def epochs_or(self, default: int) -> int:
        """The unit epochs: ``--epochs`` if given, else ``default``."""
        return int(self.epochs) if self.epochs is not None else int(default)

    def unit_dir(self, key: str) -> Path:
        return self.dir / "runs" / key

    def unit(
        self,
        key: str,
        label: str,
        fn: Callable[[Path], dict[str, Any]],
        summary: Callable[[dict[str, Any]], str] | None = None,
    ) -> dict[str, Any]:
        """Run one unit, or load its saved result when it finished before.

        ``fn(unit_dir)`` returns the unit's result (JSON-serialisable); it is saved to
        ``units/<key>.json`` at once, and one progress line is printed.
        """
        self.done += 1
        path = self.dir / "units" / f"{key}.json"
        prefix = f"[{self.name} {self.done}/{self.total or '?'}] {label}"
        describe = summary or _default_summary
        if path.exists():
            result = read_json(path)
            self.echo(f"{prefix}: {describe(result)} (finished earlier, skipped)")
            return result
        start = time.time()
        result = fn(self.unit_dir(key))
        result = {**result, "seconds": round(time.time() - start, 1)}
        write_json(path, result)
        self.run.update_state(units_done=self.run.state.get("units_done", 0) + 1)
        self.echo(f"{prefix}: {describe(result)} ({result['seconds']:.0f} s)")
        return result

    def finish(
        self,
        columns: Sequence[str],
        rows: list[dict[str, Any]],
        figure: Callable[[Path], None],
        extras: dict[str, Any] | None = None,
    ) -> StudyResult:
        """Write the table (CSV + JSON) and the figure, mark the study finished."""
        stem = self.name.replace("-", "_")
        csv_path, json_path, png_path = (
            self.dir / f"{stem}.{ext}" for ext in ("csv", "json", "png")
        )
        write_table(
            csv_path,
            json_path,
            columns,
            rows,
            meta={
                "study": self.name,
                "scale": self.scale,
                "epochs": self.epochs,
                "note": TOY_NOTE if self.toy else PAPER_NOTE,
                **(extras or {}),
            },
        )
        figure(png_path)
        self.run.mark_finished(rows=len(rows))
        self.echo(f"[{self.name}] table: {csv_path} and {json_path}; figure: {png_path}")
        return StudyResult(
            self.name,
            self.scale,
            self.dir,
            list(columns),
            rows,
            {"csv": csv_path, "json": json_path, "png": png_path},
            dict(extras or {}),
        )


def _print(line: str) -> None:
    print(line, flush=True)


def _default_summary(result: dict[str, Any]) -> str:
    if "test_top1" in result:
        return f"test top-1 {result['test_top1']:.3f}"
    return "done"


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"Unknown scale {scale!r}; valid scales are: {', '.join(SCALES)}")
    return scale


def check_dataset(dataset: str, data_dir: str | None = None) -> None:
    """Fail now, with the data module's clear message, when ``dataset`` is missing."""
    from larq_bnas.training import data

    try:
        data.info(dataset, data_dir)
    except data.DatasetNotFoundError as err:
        # The data module's hint names `--dataset digits`, an option studies do not have.
        message = str(err).replace(" Without data, use the embedded dataset: --dataset digits.", "")
        raise data.DatasetNotFoundError(
            f"{message} For a study without that data, use --scale toy (scale='toy')."
        ) from None


def write_table(
    csv_path: Path,
    json_path: Path,
    columns: Sequence[str],
    rows: list[dict[str, Any]],
    meta: dict[str, Any] | None = None,
) -> None:
    """The table as CSV (one row per entry of ``rows``) and as JSON (with ``meta``)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    write_text(csv_path, buffer.getvalue())
    write_json(
        json_path,
        {
            **(meta or {}),
            "columns": list(columns),
            "rows": [{k: row.get(k) for k in columns} for row in rows],
        },
    )


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return "" if value is None else value


def save_figure(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def pyplot() -> Any:
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scale_title(ctx: StudyContext, title: str) -> str:
    return f"{title}\n(toy scale on digits: NOT the paper's numbers)" if ctx.toy else title


def train_unit(
    ctx: StudyContext,
    unit_dir: Path,
    model: Any,
    *,
    dataset: str,
    recipe: str,
    epochs: int,
    batch_size: int | None = None,
    input_size: int | None = None,
    options: dict[str, Any] | None = None,
    flip_stats: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Train one configuration with ``larq_bnas.training.train`` in ``unit_dir`` (resumed
    there when the study is resumed) and return its results."""
    from larq_bnas.training import train

    return train(
        model,
        output_dir=unit_dir,
        dataset=dataset,
        recipe=recipe,
        epochs=epochs,
        batch_size=batch_size,
        input_size=input_size,
        resume=ctx.resume,
        data_dir=ctx.data_dir,
        options=options,
        flip_stats=flip_stats,
        tensorboard=False,
        verbose=0,
        seed=seed,
    )


def unit_history(unit_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch logs of a unit trained with ``train_unit``."""
    path = unit_dir / "history.json"
    return read_json(path) if path.exists() else []
