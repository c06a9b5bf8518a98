"""Deprecated alias: this module moved to ``larq_bnas.zoo.specs`` (constructors) and ``larq_bnas.models.xnor`` (architecture)."""

from larq_bnas._deprecated import alias

alias(__name__, "larq_bnas.zoo.specs")
