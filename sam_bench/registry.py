"""Name -> plugin registries for tasks, models and dataset formats.

Built-ins and third-party plugins register the same way: an entry point in the groups
``sam_bench.tasks``, ``sam_bench.models``, ``sam_bench.formats`` and ``sam_bench.grounders`` (see pyproject.toml).
Entry points are only imported when their name is asked for, so heavy backends cost nothing
until used. ``register`` adds one at run time (used by tests and notebooks).
"""

from __future__ import annotations

import difflib
from importlib.metadata import entry_points
from typing import Any, Callable

from sam_bench.errors import ConfigError, NotBuilt

GROUPS = {"tasks": "sam_bench.tasks", "models": "sam_bench.models", "formats": "sam_bench.formats",
          "grounders": "sam_bench.grounders"}

_extra: dict[str, dict[str, Any]] = {kind: {} for kind in GROUPS}


def _entry_points(kind: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def names(kind: str) -> list[str]:
    """All registered names of one kind, sorted."""
    return sorted(set(_entry_points(kind)) | set(_extra[kind]))


def register(kind: str, name: str, obj: Any) -> None:
    """Register ``obj`` under ``name`` at run time (overrides an entry point of that name)."""
    _extra[kind][name] = obj


def get(kind: str, name: str) -> Any:
    """The plugin object registered as ``name``; a clear error with suggestions if unknown."""
    if name in _extra[kind]:
        return _extra[kind][name]
    eps = _entry_points(kind)
    if name not in eps:
        known = names(kind)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown {kind[:-1]} {name!r}.{hint} Known: {', '.join(known)}.")
    try:
        return eps[name].load()
    except (ImportError, AttributeError) as exc:
        raise NotBuilt(f"{kind[:-1]} {name!r} is registered but cannot be loaded here: {exc}") from exc


def get_task(name: str) -> Callable:
    return get("tasks", name)


def get_model_builder(name: str) -> Callable:
    return get("models", name)


def get_format(name: str) -> Callable:
    return get("formats", name)
