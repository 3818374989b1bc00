"""Model options: which keys each model builder accepts, their defaults, and typed values from text.

A builder declares its options as keyword parameters with defaults (``variant: str = "l"``);
``checkpoint``, ``untrained``, ``device``, ``dtype`` and ``prompt_batch`` are build arguments
(their own command-line flags), not options. ``@declare`` adds the choices an option allows, or
the options of a builder that passes ``**kw`` on (``defaults_of(ModelClass)``), and checks every
call, so a builder called directly behaves as through ``build_model``. A builder with ``**kw`` and no declaration (a
third-party plugin) takes any option and checks its own.

Text values (``--model-option KEY=VALUE``, ``reproduce --set MODEL.KEY=VALUE``) are converted by
the type of the default: int, float, bool (true/false, yes/no, on/off, 1/0), tuple
(comma-separated, brackets optional), str; a default of None keeps the text (paths, model ids).
Options whose value differs from the default are recorded in the model info, so they are part of
the run identity.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable

from sam_bench.errors import ConfigError

BUILD_ARGS = {"checkpoint": "--checkpoint", "untrained": "--untrained", "device": "--device", "dtype": "--dtype",
              "prompt_batch": "--prompt-batch"}
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class Option:
    """One option: its default and, where the builder limits them, the values allowed."""

    default: Any
    choices: tuple | None = None

    def describe(self, key: str) -> str:
        text = f"{key}={_show(self.default)}"
        return text + (f" (one of {', '.join(map(str, self.choices))})" if self.choices else "")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def defaults_of(fn: Callable) -> dict[str, Any]:
    """{name: default} of the parameters of ``fn`` (a function or class) that have defaults, less
    the build arguments: the options of a builder that passes them on to ``fn``."""
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.default is not p.empty and p.name not in BUILD_ARGS
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _from_signature(builder: Callable, choices: dict[str, tuple]) -> dict[str, Option] | None:
    """The builder's parameters with defaults, less the build arguments; None if it takes ``**kw``."""
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(builder).parameters.values()):
        return None
    return {k: Option(v, choices.get(k)) for k, v in defaults_of(builder).items()}


def options_of(builder: Callable) -> dict[str, Option] | None:
    """{key: Option} that ``builder`` accepts; None when it takes any key (undeclared ``**kw``)."""
    if hasattr(builder, "OPTIONS"):
        return None if builder.OPTIONS is None else dict(builder.OPTIONS)
    return _from_signature(builder, {})


def describe(spec: dict[str, Option] | None) -> str:
    """The valid keys with their defaults (and choices), for messages and listings."""
    if spec is None:
        return "any (the model checks its own)"
    return "; ".join(o.describe(k) for k, o in spec.items()) or "none"


def parse_pairs(pairs: list[str] | None, flag: str = "--model-option") -> dict[str, str]:
    """``["KEY=VALUE", ...]`` -> {KEY: VALUE} (text; typed later by ``check_options``)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{flag} {pair!r}: write KEY=VALUE, e.g. {flag} variant=t")
        if key in out and out[key] != value:
            raise ConfigError(f"{flag}: {key} given twice ({out[key]!r} and {value!r})")
        out[key] = value
    return out


def _scalar(model: str, key: str, text: str, like: Any) -> Any:
    """``text`` as the type of ``like`` (bool, int, float, else str)."""
    low = text.strip().lower()
    if isinstance(like, bool):
        if low in TRUE or low in FALSE:
            return low in TRUE
        raise ConfigError(f"model {model}: {key}={text!r} is not true or false")
    if isinstance(like, int):
        try:
            return int(low)
        except ValueError:
            raise ConfigError(f"model {model}: {key}={text!r} is not an integer (default {like})") from None
    if isinstance(like, float):
        try:
            value = float(low)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ConfigError(f"model {model}: {key}={text!r} is not a finite number (default {like})")
        return value
    return text


def convert(model: str, key: str, value: Any, option: Option) -> Any:
    """One option value, typed by its default when given as text, checked against its choices."""
    default = option.default
    if isinstance(value, str) and isinstance(default, tuple):
        parts = [p.strip() for p in value.strip().strip("()[]").split(",") if p.strip()]
        value = tuple(_scalar(model, key, p, default[0] if default else "") for p in parts)
    elif isinstance(value, str):
        value = _scalar(model, key, value, default)
    elif isinstance(value, list) and isinstance(default, tuple):
        value = tuple(value)
    if option.choices is not None and value not in option.choices:
        raise ConfigError(f"model {model}: {key}={value!r} is not allowed; choose one of "
                          f"{', '.join(map(str, option.choices))}")
    return value


def check_options(model: str, spec: dict[str, Option] | None, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` with every key checked against ``spec`` and every text value typed.

    An unknown key is a ConfigError naming the model and listing the valid keys with defaults.
    """
    if spec is None:
        return dict(given)
    unknown = sorted(set(given) - set(spec))
    if unknown:
        flags = [f"{k} is set by {BUILD_ARGS[k]}" for k in unknown if k in BUILD_ARGS]
        hint = f" ({'; '.join(flags)})" if flags else ""
        raise ConfigError(f"model {model}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
                          f"{hint}; its options (with defaults): {describe(spec)}")
    return {k: convert(model, k, v, spec[k]) for k, v in given.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str, dict)):
        return value
    return str(value)


def record_options(model: Any, spec: dict[str, Option] | None, chosen: dict[str, Any]) -> None:
    """Add the options that differ from their defaults to ``model.info.extra`` (the builder's own
    record of a key wins), so results say which variant ran."""
    for key, value in chosen.items():
        if spec is None or key not in spec or value != spec[key].default:
            model.info.extra.setdefault(key, _jsonable(value))


def declare(model: str, *, choices: dict[str, tuple] | None = None,
            options: dict[str, Any] | None = None) -> Callable[[Callable], Callable]:
    """Decorator for the builder of ``model``: its options (``options`` {key: default}, or its
    keyword parameters) with ``choices``, checked, typed and recorded on every call."""
    choices = choices or {}

    def wrap(builder: Callable) -> Callable:
        spec = ({k: Option(v, choices.get(k)) for k, v in options.items()} if options is not None
                else _from_signature(builder, choices))
        missing = set(choices) - set(spec or {})
        if missing:
            raise TypeError(f"{builder.__name__}: choices for undeclared options {sorted(missing)}")

        @functools.wraps(builder)
        def checked(**kw: Any) -> Any:
            build = {k: v for k, v in kw.items() if k in BUILD_ARGS}
            chosen = check_options(model, spec, {k: v for k, v in kw.items() if k not in BUILD_ARGS})
            built = builder(**build, **chosen)
            record_options(built, spec, chosen)
            return built

        checked.OPTIONS = spec
        return checked

    return wrap
