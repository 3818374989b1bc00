"""Tolerances of ``sam-bench compare``: per-metric overrides over a global one over each spec's own.

Most specific first: ``--tolerance METRIC=VALUE`` and the entries of ``--tolerance-file`` (keys
``task.metric``, ``metric`` or shell patterns of either; absolute, on the metric's own scale); then
``--tolerance X`` (or the file's ``default``) in percent points: X on percent metrics, X/100 on 0-1
metrics, while clicks and counts keep their own; then the spec's default
(``sam_bench.metrics.spec.DEFAULT_TOLERANCE``).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sam_bench.errors import ConfigError
from sam_bench.metrics.spec import MetricSpec


def _tolerance_value(text: str, where: str) -> float:
    try:
        val = float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {text!r} is not a number") from None
    if not (math.isfinite(val) and val >= 0):
        raise ConfigError(f"{where}: {text!r} is not a non-negative number")
    return val


def _read_tolerance_file(path: Path) -> dict[str, float]:
    """The flat mapping of a TOML / JSON tolerance file (optionally under ``[tolerances]``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--tolerance-file {path}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--tolerance-file {path}: not valid {path.suffix.lstrip('.').upper() or 'TOML'} "
                          f"({exc})") from None
    data = data.get("tolerances", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise ConfigError(f"--tolerance-file {path}: expected a mapping of metric -> tolerance")
    table = {}
    for key, val in data.items():
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not (math.isfinite(val) and val >= 0):
            raise ConfigError(f"--tolerance-file {path}: {key!r} = {val!r} is not a non-negative number")
        table[key] = float(val)
    return table


@dataclass
class Tolerances:
    """Per-metric absolute overrides (``table``), over a global one in percent points, over the specs' own."""

    points: float | None = None  # --tolerance X / the file's ``default``: percent points, scaled to 0-1 metrics
    table: dict[str, float] = field(default_factory=dict)  # task.metric / metric / pattern -> absolute

    @classmethod
    def load(cls, path: str | Path | None = None, points: float | None = None,
             overrides: dict[str, float] | None = None) -> "Tolerances":
        """File entries, then ``overrides`` (``--tolerance METRIC=VALUE``) on top; ``points`` wins over the
        file's ``default``."""
        table = _read_tolerance_file(Path(path)) if path is not None else {}
        default = table.pop("default", None)
        table.update(overrides or {})
        return cls(points if points is not None else default, table)

    def get(self, task: str, metric: str, spec: MetricSpec) -> float:
        """The tolerance of ``metric`` of ``task``, on the metric's own scale."""
        for name in (f"{task}.{metric}", metric):
            if name in self.table:
                return self.table[name]
        for pattern, val in self.table.items():
            if any(c in pattern for c in "*?[") and (fnmatch.fnmatchcase(f"{task}.{metric}", pattern)
                                                     or fnmatch.fnmatchcase(metric, pattern)):
                return val
        if self.points is not None and spec.percent_scale is not None:
            return self.points * spec.percent_scale
        return spec.default_tolerance


def tolerance_arg(text: str) -> tuple[str, float]:
    """``X`` -> ("", X); ``METRIC=VALUE`` -> (METRIC, VALUE)."""
    key, _, val = text.rpartition("=")
    try:
        return key.strip(), _tolerance_value(val.strip(), "--tolerance")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; give X (percent points) or METRIC=VALUE") from None
