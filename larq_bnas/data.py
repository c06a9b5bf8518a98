"""Deprecated alias: this module moved to ``larq_bnas.training.data``."""

from larq_bnas._deprecated import alias

alias(__name__, "larq_bnas.training.data")
