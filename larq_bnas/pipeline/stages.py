"""The main job: search -> train -> convert -> verify -> benchmark -> report, resumable.

``run_pipeline(output_dir, ...)`` runs the stages in order and saves each stage's result
(``<stage>.json``) as soon as it is done; with ``resume=True`` finished stages are skipped
and the unfinished one resumes from its own checkpoint. Everything lands in one output
directory::

    search/        alphas, genotypes per gamma, cell and alpha pictures, checkpoints
    train/         the stacked network's checkpoints, weights, history, curves.png
    deploy/        model.tflite (LCE), model_float.tflite, acceleration report
    compare/       the same figures for BNAS-A and MeliusNet22 at the same input size
    report.html    self-contained report (opens offline); report.md beside it
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from larq_bnas._io import read_json, write_json
from larq_bnas.checkpointing import RunDirectory, format_differences, option_differences
from larq_bnas.pipeline.options import STAGES, PipelineOptions, parse_model_entry

#: The options each stage reads. On resume, the first stage reading a changed option runs
#: again, with every stage after it; an option missing here counts as the first stage's.
STAGE_INPUTS: dict[str, tuple[str, ...]] = {
    "search": (
        "dataset",
        "search_input_size",
        "search_epochs",
        "search_cells",
        "search_channels",
        "search_batch_size",
        "search_arch_lr",
        "search_arch_weight_decay",
        "search_tau",
        "gammas",
        "genotype",
        "seed",
    ),
    "train": (
        "input_size",
        "train_gamma",
        "cells",
        "channels",
        "train_epochs",
        "batch_size",
        "recipe",
    ),
    "convert": ("verify_inputs",),
    "benchmark": ("threads", "benchmark_repeats"),
    "compare": ("compare_models", "random_cells", "compare_bnas_a_cell", "cell_seeds"),
    "report": (),
}
#: Options that do not change any result.
NO_RESULT_OPTIONS = ("data_dir", "stages")
#: What each stage writes besides ``<stage>.json`` (removed when it must run again).
STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "search": ("search",),
    "train": ("train",),
    "convert": ("deploy",),
    "compare": ("compare",),
    "report": ("report.html", "report.md"),
}


def first_changed_stage(
    recorded: dict[str, Any], given: dict[str, Any]
) -> tuple[str | None, dict[str, tuple[Any, Any]]]:
    """The first stage (in ``STAGES`` order) reading an option whose value differs from
    the recorded run, and every difference (``{option: (recorded, given)}``)."""
    keys = [k for k in {**recorded, **given} if k not in NO_RESULT_OPTIONS]
    differences = option_differences(recorded, given, keys)
    first = None
    for key in differences:
        owner = next((s for s in STAGES if key in STAGE_INPUTS.get(s, ())), STAGES[0])
        if first is None or STAGES.index(owner) < STAGES.index(first):
            first = owner
    return first, differences


def _gamma_tag(gamma: float) -> str:
    return f"{gamma:g}"


class Pipeline:
    """The stages of the main job over one output directory (see the module docstring)."""

    def __init__(
        self,
        output_dir: str | os.PathLike,
        options: PipelineOptions,
        resume: bool = False,
        log: Callable[[str], None] = print,
    ) -> None:
        self.out = Path(output_dir)
        self.options = options
        self.log = log
        if resume:  # before the new options are recorded: a kill here repeats this step
            self._rerun_changed_stages(asdict(options))
        self.run = RunDirectory(self.out, "run", asdict(options), resume=resume)
        self.resume = resume

    def _rerun_changed_stages(self, options: dict[str, Any]) -> None:
        """Drop the results of the first stage whose inputs changed since the recorded
        run, and of every stage after it, so that they run again."""
        state_path = self.out / "state.json"
        if not state_path.exists():
            return
        recorded = read_json(state_path).get("options", {})
        first, differences = first_changed_stage(recorded, options)
        if first is None:
            return
        later = STAGES[STAGES.index(first) :]
        self.log(
            f"[resume] options changed ({format_differences(differences)}): re-running "
            f"{first} and every stage after it"
        )
        for stage in later:
            self._result_path(stage).unlink(missing_ok=True)
            for name in STAGE_OUTPUTS.get(stage, ()):
                path = self.out / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()

    # --- bookkeeping ---------------------------------------------------------------
    def _result_path(self, stage: str) -> Path:
        return self.out / f"{stage}.json"

    def result(self, stage: str) -> dict[str, Any] | None:
        path = self._result_path(stage)
        return read_json(path) if path.exists() else None

    def _run_stage(self, stage: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        done = self.result(stage)
        if done is not None:
            self.log(f"[{stage}] done already, skipped ({self._result_path(stage).name})")
            return done
        self.log(f"[{stage}] running ...")
        start, cpu_start = time.time(), time.process_time()
        result = fn()
        # Wall and CPU seconds (CPU: every thread of this process; a stage resumed from
        # its own checkpoint counts this session only).
        result["seconds"] = time.time() - start
        result["cpu_seconds"] = time.process_time() - cpu_start
        write_json(self._result_path(stage), result)
        stages = dict(self.run.state.get("stages", {}))
        stages[stage] = {
            "done": True,
            "seconds": result["seconds"],
            "cpu_seconds": result["cpu_seconds"],
        }
        self.run.update_state(stages=stages)
        self.log(f"[{stage}] done in {result['seconds']:.0f}s ({result['cpu_seconds']:.0f}s CPU)")
        return result

    def execute(self) -> dict[str, Any]:
        """Run the selected stages in order; return every stage's result."""
        steps: dict[str, Callable[[], dict[str, Any]]] = {
            "search": self.search,
            "train": self.train,
            "convert": self.convert,
            "benchmark": self.benchmark,
            "compare": self.compare,
            "report": self.report,
        }
        results = {}
        for stage in STAGES:
            if stage in self.options.stages:
                results[stage] = self._run_stage(stage, steps[stage])
        self.run.mark_finished()
        return results

    # --- stages ----------------------------------------------------------------------
    def search(self) -> dict[str, Any]:
        o = self.options
        if o.genotype is not None:
            return {"skipped": True, "genotypes": {"given": o.genotype}}
        from larq_bnas.search import run_search

        result = run_search(
            self.out / "search",
            dataset=o.dataset,
            epochs=o.search_epochs,
            cells=o.search_cells,
            channels=o.search_channels,
            batch_size=o.search_batch_size,
            input_size=o.search_input_size,
            arch_learning_rate=o.search_arch_lr,
            arch_weight_decay=o.search_arch_weight_decay,
            diversity_tau=o.search_tau,
            gammas=list(o.gammas),
            seed=o.seed,
            resume=self.resume,
            data_dir=o.data_dir,
            verbose=2,
        )
        for report in result["decisiveness"].values():
            from larq_bnas.search.derive import format_decisiveness

            for line in format_decisiveness(report):
                self.log(f"[search] {line}")
        return dict(result)

    def genotype_path(self) -> str:
        o = self.options
        if o.genotype is not None:
            return o.genotype
        search = self.result("search")
        if search is None:
            raise ValueError(
                "The train stage needs a genotype: run the search stage first "
                "or pass --genotype FILE"
            )
        gamma = o.train_gamma if o.train_gamma is not None else o.gammas[0]
        path = self.out / "search" / f"genotype_gamma{_gamma_tag(gamma)}.json"
        if not path.exists():
            raise FileNotFoundError(f"The search wrote no genotype for gamma {gamma:g} ({path})")
        return str(path)

    def _model_options(self) -> dict[str, Any]:
        return {"cells": self.options.cells, "channels": self.options.channels}

    def _train_cell(self, genotype: str, directory: Path, seed: int) -> dict[str, Any]:
        """Train ``genotype`` at the run's size, recipe and epochs (one seed)."""
        from larq_bnas.training import train

        o = self.options
        return train(
            genotype,
            output_dir=directory,
            dataset=o.dataset,
            recipe=o.recipe,
            epochs=o.train_epochs,
            batch_size=o.batch_size,
            input_size=o.input_size,
            options=self._model_options(),
            seed=seed,
            resume=self.resume,
            data_dir=o.data_dir,
            verbose=2,
        )

    def train(self) -> dict[str, Any]:
        from larq_bnas.costs import model_costs

        result = dict(self._train_cell(self.genotype_path(), self.out / "train", self.options.seed))
        # The costs the report shows, computed here so the report rebuilds no model.
        result["costs"] = model_costs(self._trained_model()).to_dict()
        result["genotype_path"] = self.genotype_path()
        return result

    def _trained_model(self) -> Any:
        from larq_bnas.training import data
        from larq_bnas.zoo.references import load_model

        o = self.options
        model = load_model(
            self.genotype_path(),
            input_shape=(o.input_size, o.input_size, 3),
            num_classes=data.info(o.dataset, o.data_dir).num_classes,
            **self._model_options(),
        )
        model.load_weights(str(self.out / "train" / "final.weights.h5"))
        return model

    def _deploy(self, model: Any, directory: Path, verify_inputs: Any = None) -> dict[str, Any]:
        from larq_bnas import converters

        flatbuffer = converters.convert(model)
        converters.save(flatbuffer, directory / "model.tflite")
        converters.save(converters.convert_float(model), directory / "model_float.tflite")
        report = converters.acceleration_report(model, converters.read(flatbuffer))
        report.update(
            converters.verify(model, flatbuffer, n=self.options.verify_inputs, inputs=verify_inputs)
        )
        write_json(directory / "acceleration_report.json", report)
        return report

    def convert(self) -> dict[str, Any]:
        from larq_bnas.training import data

        o = self.options
        model = self._trained_model()
        images = next(
            iter(
                data.load(
                    o.dataset,
                    "test",
                    input_size=o.input_size,
                    batch_size=o.verify_inputs,
                    data_dir=o.data_dir,
                )
            )
        )[0]
        report = self._deploy(model, self.out / "deploy", verify_inputs=images.numpy())
        for warning in report["warnings"]:
            self.log(f"WARNING: binary layer not accelerated: {warning}")
        return report

    def _latency(self, directory: Path) -> dict[str, Any]:
        from larq_bnas.runtime import benchmark

        o = self.options
        return benchmark(
            directory / "model.tflite",
            threads=o.threads,
            repeats=o.benchmark_repeats,
            kernels=["native", "default", "indirect_bgemm", "indirect_bgemm+xnnpack"],
            float_source=directory / "model_float.tflite",
        )

    def benchmark(self) -> dict[str, Any]:
        return self._latency(self.out / "deploy")

    def compare_cells(self) -> dict[str, Any]:
        """The searched cell against random cells and the paper's BNAS-A cell, each
        stacked to the same network (cells, C) and trained with the same recipe, epochs
        and seeds: test top-1 and costs per training (``compare/cells/<name>/s<seed>``).
        The searched cell's first seed is the train stage's training."""
        from larq_bnas.models.bnas.genotypes import BNAS_CIFAR
        from larq_bnas.search.derive import random_genotype

        o = self.options
        root = self.out / "compare" / "cells"
        genotypes: dict[str, tuple[str, str]] = {}
        if o.genotype is None and self.result("search") is not None:
            genotypes["searched"] = (self.genotype_path(), "searched cell")
        elif o.genotype is not None:
            genotypes["given"] = (o.genotype, "given cell")
        layer_set = (self.result("search") or {}).get("options", {}).get("layer_set")
        for i in range(o.random_cells):
            g = random_genotype(
                o.seed + 1000 + i, **({"layer_set": layer_set} if layer_set else {})
            )
            saved = g.save(root / f"random{i}.json")
            genotypes[f"random{i}"] = (str(saved), "random cell (paper node structure)")
        if o.compare_bnas_a_cell:
            saved = BNAS_CIFAR.save(root / "bnas-a-cell.json")
            genotypes["bnas-a cell"] = (str(saved), "the paper's BNAS-A cell (gamma 1)")
        train_done = self.result("train")
        rows: dict[str, Any] = {}
        for name, (path, description) in genotypes.items():
            runs = []
            for k in range(o.cell_seeds):
                seed = o.seed + k
                if k == 0 and name in ("searched", "given") and train_done is not None:
                    r = train_done
                else:
                    self.log(f"[compare] training {name} ({description}), seed {seed}")
                    directory = root / name.replace(" ", "_") / f"s{seed}"
                    start, cpu_start = time.time(), time.process_time()
                    r = dict(self._train_cell(path, directory, seed))
                    r["seconds"] = time.time() - start
                    r["cpu_seconds"] = time.process_time() - cpu_start
                runs.append(
                    {
                        "seed": seed,
                        "test_top1": r["test_top1"],
                        "ops": r["ops"],
                        "size_mib": r["size_mib"],
                        "trainable_params": r.get("trainable_params"),
                        "seconds": r.get("seconds"),
                        "cpu_seconds": r.get("cpu_seconds"),
                    }
                )
            top1 = [r["test_top1"] for r in runs]
            rows[name] = {
                "description": description,
                "genotype": read_json(path),
                "genotype_path": path,
                "runs": runs,
                "test_top1_mean": sum(top1) / len(top1),
                "test_top1_min": min(top1),
                "test_top1_max": max(top1),
                "ops": runs[0]["ops"],
                "size_mib": runs[0]["size_mib"],
            }
        return rows

    def compare(self) -> dict[str, Any]:
        """The cells compared by training (``compare_cells``), then the zoo models
        (random weights, random BatchNorm statistics) at the same input size: costs,
        conversion, acceleration and latency (no accuracy: they are not trained here)."""
        from larq_bnas.converters import randomize_batchnorm
        from larq_bnas.costs import model_costs
        from larq_bnas.training import data
        from larq_bnas.zoo.registry import build, find_spec

        o = self.options
        cells = self.compare_cells()
        num_classes = data.info(o.dataset, o.data_dir).num_classes
        out: dict[str, Any] = {}
        for entry in o.compare_models:
            name, options = parse_model_entry(entry)
            if find_spec(name) is None:
                self.log(f"[compare] {name} is not in the zoo; skipped")
                continue
            self.log(f"[compare] {name} at {o.input_size}x{o.input_size}")
            start, cpu_start = time.time(), time.process_time()
            model = build(
                name,
                input_shape=(o.input_size, o.input_size, 3),
                num_classes=num_classes,
                **dict[str, Any](options),
            )
            # Trained-like BatchNorm statistics: with identical fresh ones TensorFlow
            # merges dilated branches and LCE keeps them float (converters.report).
            randomize_batchnorm(model, seed=0)
            directory = self.out / "compare" / "_".join(entry.split()).replace(",", "_")
            costs = model_costs(model).to_dict()
            deploy = self._deploy(model, directory)
            latency = self._latency(directory)
            out[entry] = {
                "costs": costs,
                "deploy": deploy,
                "latency": latency,
                "seconds": time.time() - start,
                "cpu_seconds": time.process_time() - cpu_start,
            }
        return {"cells": cells, "models": out}

    def report(self) -> dict[str, Any]:
        from larq_bnas.document import write_report
        from larq_bnas.pipeline.report import build_report

        md, page = write_report(build_report(self.out, asdict(self.options)), self.out)
        return {"markdown": str(md), "html": str(page)}


def run_pipeline(
    output_dir: str | os.PathLike,
    *,
    resume: bool = False,
    log: Callable[[str], None] = print,
    **options: Any,
) -> dict[str, Any]:
    """Run the main job into ``output_dir`` (options: fields of ``PipelineOptions``)."""
    for key in ("gammas", "stages", "compare_models"):
        if (
            key in options
            and isinstance(options[key], Sequence)
            and not isinstance(options[key], str)
        ):
            options[key] = tuple(options[key])
    return Pipeline(output_dir, PipelineOptions(**options), resume=resume, log=log).execute()
