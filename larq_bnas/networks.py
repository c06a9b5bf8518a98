"""Deprecated alias: this module moved to ``larq_bnas.models.bnas.network``."""

from larq_bnas._deprecated import alias

alias(__name__, "larq_bnas.models.bnas.network")
