"""Typed model configurations, shared by constructors, the registry, the CLI and costs.

Each model family (BNAS, MeliusNet) has one frozen dataclass deriving from
``ModelConfig``. ``config.override({"cells": "8"})`` returns a copy with values parsed to
the field types; unknown keys and bad values raise ``ConfigError`` naming the key, the
value and what would be valid. The CLI's ``--set key=value`` goes through here, and so
do model references with options (``"bnas-a cells=3"``, ``parse_model_ref``).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal, get_args, get_origin


class ConfigError(ValueError):
    """A model option is unknown or has a value its type does not allow."""


def parse_assignments(items: typing.Iterable[str]) -> dict[str, str]:
    """The one model-option syntax, ``KEY=VALUE``: ``("cells=8", "blocks=4,5,4,4")`` ->
    ``{"cells": "8", "blocks": "4,5,4,4"}`` (values are parsed later by ``override``)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{item!r} is not KEY=VALUE (for example stem=plain)")
        out[key.strip()] = value.strip()
    return out


def parse_model_ref(text: str) -> tuple[str, dict[str, str]]:
    """A model with options in one string, ``"NAME KEY=VALUE KEY=VALUE"`` (the same
    ``KEY=VALUE`` items as ``--set``): ``"bnas-a cells=3 channels=4"`` ->
    ``("bnas-a", {"cells": "3", "channels": "4"})``."""
    words = text.split()
    if not words:
        raise ConfigError("empty model reference; use NAME KEY=VALUE ...")
    return words[0], parse_assignments(words[1:])


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Base class of the per-family model configurations."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "to_dict"):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def option_help(cls) -> dict[str, str]:
        """Field name -> a short description of its type (for errors and --help)."""
        hints = typing.get_type_hints(cls)
        return {f.name: _describe(hints[f.name]) for f in dataclasses.fields(cls)}

    def override(self, values: dict[str, Any]) -> ModelConfig:
        """Return a copy with ``values`` (strings or typed values) applied."""
        hints = typing.get_type_hints(type(self))
        names = [f.name for f in dataclasses.fields(self)]
        changes = {}
        for key, raw in values.items():
            if key not in names:
                raise ConfigError(
                    f"Unknown option {key!r} for {type(self).__name__}; valid options are: "
                    + ", ".join(names)
                )
            changes[key] = parse_value(key, raw, hints[key])
        return dataclasses.replace(self, **changes)


def parse_value(key: str, raw: Any, hint: Any) -> Any:
    """Parse ``raw`` (often a command-line string) to the type ``hint``."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is typing.Union or (
        origin is not None and str(origin) == "<class 'types.UnionType'>"
    ):
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return parse_value(key, raw, arg)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"Bad value {raw!r} for {key!r}")
    if origin is Literal:
        for choice in args:
            if raw == choice or (isinstance(raw, str) and raw == str(choice)):
                return choice
            if isinstance(choice, float) and isinstance(raw, str):
                try:
                    if float(raw) == choice:
                        return choice
                except ValueError:
                    pass
        raise ConfigError(
            f"Bad value {raw!r} for {key!r}; valid values are: " + ", ".join(str(c) for c in args)
        )
    if origin is tuple:
        items = raw
        if isinstance(raw, str):
            items = [p for p in raw.replace(" ", "").strip("()[]").split(",") if p]
        elem = args[0] if args else str
        return tuple(parse_value(key, item, elem) for item in items)
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(raw, str) and raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"Bad value {raw!r} for {key!r}; valid values are: true, false")
    if hint in (int, float):
        try:
            value = hint(raw)
        except (TypeError, ValueError):
            raise ConfigError(
                f"Bad value {raw!r} for {key!r}; expected {'an integer' if hint is int else 'a number'}"
            ) from None
        if hint is int and isinstance(raw, str) and str(value) != raw.strip():
            raise ConfigError(f"Bad value {raw!r} for {key!r}; expected an integer")
        return value
    if hint is str:
        return str(raw)
    # Any other type (e.g. a Genotype) is passed through; the model validates it.
    return raw


def _describe(hint: Any) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is tuple:
        return "comma-separated " + _describe(args[0]) + "s" if args else "list"
    if origin is typing.Union or (origin is not None and "UnionType" in str(origin)):
        return " or ".join(_describe(a) for a in args if a is not type(None)) + " or none"
    return getattr(hint, "__name__", str(hint))
