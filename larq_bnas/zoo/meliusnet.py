"""Deprecated alias: the zoo's specs and constructors are in ``larq_bnas.zoo.specs``."""

from larq_bnas._deprecated import alias

alias(__name__, "larq_bnas.zoo.specs")
