"""Ad hoc dataset specs: a format name, its paths, then its opener's ``key=value`` options.

``coco:ANN.json:IMAGES``, ``lvis:ANN.json:IMAGES``, ``folder:IMAGES:MASKS``, ``bsds:ROOT``,
``refcoco:ROOT``, ``synthetic[:N]``; formats are plugins (entry-point group ``sam_bench.formats``).
After the positional paths a spec takes ``key=value`` options of its opener, e.g.
``folder:IMAGES:MASKS:threshold=0:ignore=255`` or ``synthetic:8:seed=3``; values that look like an
int, float, bool (true/false) or none become one. Unknown keys are a ``ConfigError`` listing the
opener's keys. A path that itself looks like ``key=value`` must be written ``./key=value``.

This module knows formats only; catalog names are resolved in ``sam_bench.data.catalog``.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable

import numpy as np

from sam_bench.data.base import Dataset
from sam_bench.errors import ConfigError

_OPTION = re.compile(r"^([A-Za-z_]\w*)=(.*)$")


def adhoc_opener(spec: str) -> Callable | None:
    """The opener of an ad hoc spec (``format:...`` or bare ``synthetic``); None for anything else."""
    from sam_bench import registry

    fmt, sep, _ = spec.partition(":")
    formats = registry.names("formats")
    if sep and fmt in formats:
        return registry.get_format(fmt)
    if not sep and spec == "synthetic" and spec in formats:
        return registry.get_format(spec)
    return None


def open_adhoc(spec: str, **options: Any) -> Dataset:
    """The dataset of an ad hoc spec, ``options`` merged with the spec's own (a clash is a ``ConfigError``)."""
    opener = adhoc_opener(spec)
    if opener is None:
        raise ConfigError(f"dataset {spec!r}: not a format:path spec")
    if ":" not in spec:
        return opener(**options)
    positional, given = split_spec(spec)
    merged = merge_options(spec, opener, given, options)
    check_arguments(spec, opener, positional, merged)
    return opener(*positional, **merged)


def spec_value(text: str) -> Any:
    """A spec option's value: ``"3"`` -> 3, ``"0.5"`` -> 0.5, true/false -> bool, none/null -> None, else text
    (so are nan and inf)."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if np.isfinite(value) else text
    return text


def split_spec(spec: str) -> tuple[list[str], dict[str, Any]]:
    """``format:a:b:k=v`` -> (["a", "b"], {"k": v}); ``ConfigError`` on a path after an option or a repeated key."""
    positional: list[str] = []
    options: dict[str, Any] = {}
    _, _, rest = spec.partition(":")
    for part in rest.split(":") if rest else []:
        m = _OPTION.match(part)
        if m is None and options:
            raise ConfigError(f"dataset {spec!r}: {part!r} comes after key=value options; put the paths first")
        if m is None:
            positional.append(part)
        elif m.group(1) in options:
            raise ConfigError(f"dataset {spec!r}: option {m.group(1)!r} given twice")
        else:
            options[m.group(1)] = spec_value(m.group(2))
    return positional, options


def option_keys(opener: Callable) -> list[str] | None:
    """The keyword options an opener takes (parameters with a default); None if it has no signature."""
    try:
        params = inspect.signature(opener).parameters.values()
    except (TypeError, ValueError):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty]


def accepted(opener: Callable, options: dict[str, Any]) -> dict[str, Any]:
    """The ``options`` the opener names as keyword parameters (its ``**kwargs`` takes nothing here)."""
    keys = option_keys(opener)
    return dict(options) if keys is None else {k: v for k, v in options.items() if k in keys}


def merge_options(spec: str, opener: Callable, given: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The spec's options checked against the opener's keys, merged with caller ``options``.

    ``ConfigError`` for an unknown key (listing the valid ones) or a key the caller set differently.
    """
    keys = option_keys(opener)
    unknown = [k for k in given if keys is not None and k not in keys]
    if unknown:
        raise ConfigError(f"dataset {spec!r}: unknown option {', '.join(map(repr, unknown))}; "
                          f"{spec.partition(':')[0]} takes {', '.join(keys) or 'no options'}")
    clash = [k for k in given if k in options and options[k] != given[k]]
    if clash:
        key = clash[0]
        raise ConfigError(f"dataset {spec!r}: {key}={given[key]!r} in the spec but {options[key]!r} from the run's "
                          f"data options; set it once, with --{key.replace('_', '-')}")
    return {**options, **given}


def check_arguments(spec: str, opener: Callable, positional: list[str], options: dict[str, Any]) -> None:
    """``ConfigError`` naming the spec when its parts do not fit the opener (too few/many paths, a key twice)."""
    try:
        signature = inspect.signature(opener)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*positional, **options)
    except TypeError as exc:
        raise ConfigError(f"dataset {spec!r}: {exc}") from None
