"""The main job: search -> train -> convert -> benchmark -> compare -> report, resumable.

``run_pipeline(output_dir, ...)`` (``larq_bnas run``) runs the stages in ``stages``;
``options.PipelineOptions`` states every option and its default once; ``report``
renders the stages' saved results. Importing this package imports no TensorFlow.
"""

from larq_bnas.pipeline.options import STAGES, PipelineOptions, parse_model_entry

__all__ = ["STAGES", "Pipeline", "PipelineOptions", "parse_model_entry", "run_pipeline"]


def __getattr__(name: str) -> object:
    if name in ("Pipeline", "run_pipeline"):
        from larq_bnas.pipeline import stages

        return getattr(stages, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
