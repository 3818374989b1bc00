"""Options declared once, as a frozen dataclass: tasks' and grounders' settings.

A task (or grounder) writes its options as the fields of a frozen dataclass, each with its default
and, in ``option(...)``, its help text, its command-line spelling and its ``--quick`` value::

    @dataclass(frozen=True)
    class ProposalsOptions(Options):
        grid: int = option(64, "points per side of the prompt grid (paper: 64)", quick=16)

From that one declaration ``add_arguments`` builds the ``sam-bench run`` flags, ``defaults``
gives ``sam-bench reproduce`` its starting values and ``quick`` its lighter ``--quick`` settings,
and ``Options.build`` turns a config dict (keyword arguments, a preset, a saved ``config``) into
the checked, frozen object; ``as_config`` gives back the plain JSON-ready dict results record.
Checks live in ``__post_init__`` and read no file: whatever reads files (detections,
``--compare-to``, grounder weights) is loaded by the task's ``setup``, which the runner calls once.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import MISSING, dataclass, fields
from typing import Any, Callable

from sam_bench.errors import ConfigError

NO_QUICK = object()  # an option that ``--quick`` leaves alone


def option(default: Any, help: str | Callable[[], str] = "", *, quick: Any = NO_QUICK, flags: tuple[str, ...] = (),
           type: Callable | None = None, choices: tuple | None = None, metavar: str | None = None,
           action: str | None = None, also: tuple = (), cli: bool = True) -> Any:
    """A dataclass field with its command-line metadata.

    ``flags``: the spellings (default ``--name-with-dashes``); ``type``/``choices``/``metavar``/
    ``action``: as argparse's (a bool defaults to ``store_true``, a number to its own type);
    ``also``: further ``(flags, argparse kwargs)`` writing the same option (``--no-nms``);
    ``quick``: the value ``reproduce --quick`` uses; ``cli=False``: no flag (preset or API only).
    ``help`` may be a function, called when the flags are built (e.g. to list plugins).
    """
    meta = {"help": help, "quick": quick, "flags": tuple(flags), "type": type, "choices": choices,
            "metavar": metavar, "action": action, "also": tuple(also), "cli": cli}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


@dataclass(frozen=True)
class Options:
    """Base of every options dataclass (subclass it with ``@dataclass(frozen=True)``)."""

    @classmethod
    def build(cls, config: dict[str, Any], owner: str, ignore: tuple[str, ...] = ()) -> "Options":
        """The options of ``config``: None (an unset flag) means the default; a key that is not a field
        (nor in ``ignore``) is a ConfigError naming ``owner`` and the known options."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known - set(ignore))
        if unknown:
            raise ConfigError(f"{owner}: unknown option(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: v for k, v in config.items() if k in known and v is not None})

    def as_config(self) -> dict[str, Any]:
        """The plain dict results.json records (field order; lists copied)."""
        return {f.name: _copy(getattr(self, f.name)) for f in fields(self)}

    def normalise(self, **values: Any) -> None:
        """Normalise a field in ``__post_init__`` (the dataclass is frozen afterwards)."""
        for k, v in values.items():
            object.__setattr__(self, k, v)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def defaults(cls: type[Options]) -> dict[str, Any]:
    """{option: default} of every field (what ``reproduce`` starts from before a preset's options)."""
    return {f.name: _default(f) for f in fields(cls)}


def quick(cls: type[Options]) -> dict[str, Any]:
    """{option: value} of the fields that declare a ``--quick`` value."""
    return {f.name: f.metadata["quick"] for f in fields(cls)
            if f.metadata.get("quick", NO_QUICK) is not NO_QUICK}


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type[Options],
                  skip: frozenset[str] = frozenset()) -> None:
    """One flag (or a few, ``also``) per field of ``cls`` with ``cli`` set; the argparse dest is the
    field name, so the parsed values are the options (``skip``: fields another declaration added)."""
    for f in fields(cls):
        meta = f.metadata
        if not meta.get("cli", True) or f.name in skip:
            continue
        default = _default(f)
        help_text = meta.get("help", "")
        kw: dict[str, Any] = {"dest": f.name, "default": default,
                              "help": help_text() if callable(help_text) else help_text}
        for key in ("type", "choices", "metavar", "action"):
            if meta.get(key) is not None:
                kw[key] = meta[key]
        if "action" not in kw and isinstance(default, bool):
            kw["action"] = "store_false" if default else "store_true"
        elif "action" not in kw and "type" not in kw and isinstance(default, (int, float)):
            kw["type"] = type(default)
        parser.add_argument(*(meta.get("flags") or (f"--{f.name.replace('_', '-')}",)), **kw)
        for flags, more in meta.get("also", ()):
            parser.add_argument(*flags, dest=f.name, **more)


def merge(base: type[Options], *extra: type[Options], name: str = "MergedOptions") -> type[Options]:
    """``base`` (its checks included) with the fields of ``extra`` after its own; the first declaration
    of a name wins."""
    seen = {f.name for f in fields(base)}
    added = []
    for cls in extra:
        for f in fields(cls):
            if f.name not in seen:
                seen.add(f.name)
                added.append((f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory,
                                                                metadata=f.metadata)))
    return dataclasses.make_dataclass(name, added, bases=(base,), frozen=True)
