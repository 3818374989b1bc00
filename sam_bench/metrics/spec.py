"""What a metric is: its scale, its direction, whether it gates a change, and by how much.

Every task declares its metrics beside the code that computes them (``Task.metrics``, a tuple of
``MetricSpec``). ``sam-bench compare`` reads these class attributes through the registry (it never
builds a task) to know which numbers gate a change, which way is better and how far a number may
move. A metric a task does not declare is a diagnostic: shown, never gated.

Scales (``unit``) and their default tolerances, each on the metric's own scale:

=========  ===============================================  =========
unit       metrics                                          tolerance
=========  ===============================================  =========
percent    mIoU, AR, AP, cIoU, Pr@t, found (0-100)          0.5
unit       edge ODS / OIS / AP / R50 (0-1)                  0.005
clicks     NoC (mean clicks to reach an IoU)                0.1
count      objects, annotations, failures (integers)        0 (failures may not grow, counts not change)
=========  ===============================================  =========

0.005 on a 0-1 metric is the same half point as 0.5 on a percent metric.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Iterable

DEFAULT_TOLERANCE = {"percent": 0.5, "unit": 0.005, "clicks": 0.1, "count": 0.0}
PERCENT_SCALE = {"percent": 1.0, "unit": 0.01}  # one percent point on this scale; clicks and counts have none


@dataclass(frozen=True)
class MetricSpec:
    """One metric (or a family of them, by shell pattern) of a task.

    ``higher_is_better``: None for a count that must stay equal (objects, annotations scored).
    ``scoring``: False for a diagnostic (a threshold, a precision at the best F): shown, never gated.
    ``tolerance``: the move the wrong way allowed, on the metric's scale (None: ``DEFAULT_TOLERANCE``).
    ``required``: the metric must be defined in every dataset and the aggregate; False where the data
    may leave it undefined (a size or frequency group with no object, R50 of a curve that never
    reaches precision 0.5): undefined on both sides then passes, but a baseline number that becomes
    undefined still fails.
    """

    name: str
    unit: str
    higher_is_better: bool | None = True
    scoring: bool = True
    tolerance: float | None = None
    required: bool = True

    def __post_init__(self):
        if self.unit not in DEFAULT_TOLERANCE:
            raise ValueError(f"metric {self.name!r}: unit {self.unit!r} is not one of {sorted(DEFAULT_TOLERANCE)}")
        if self.tolerance is not None and not (self.tolerance >= 0 and math.isfinite(self.tolerance)):
            raise ValueError(f"metric {self.name!r}: tolerance {self.tolerance!r} must be a number >= 0")

    @property
    def is_pattern(self) -> bool:
        return any(c in self.name for c in "*?[")

    def matches(self, metric: str) -> bool:
        return fnmatch.fnmatchcase(metric, self.name) if self.is_pattern else metric == self.name

    @property
    def default_tolerance(self) -> float:
        return DEFAULT_TOLERANCE[self.unit] if self.tolerance is None else self.tolerance

    @property
    def percent_scale(self) -> float | None:
        """What one percent point is on this metric's scale (None: clicks and counts have no percent)."""
        return PERCENT_SCALE.get(self.unit)

    @property
    def better(self) -> str:
        """How a table shows the direction: ``higher``, ``lower``, ``=`` (must not change) or ``info``."""
        if not self.scoring:
            return "info"
        return "=" if self.higher_is_better is None else "higher" if self.higher_is_better else "lower"


def find_spec(specs: Iterable[MetricSpec], metric: str) -> MetricSpec | None:
    """The spec of ``metric``: an exact name first, else the first pattern that matches; None if undeclared."""
    specs = tuple(specs)
    for spec in specs:
        if not spec.is_pattern and spec.name == metric:
            return spec
    return next((s for s in specs if s.is_pattern and s.matches(metric)), None)


def directions(specs: Iterable[MetricSpec]) -> dict[str, bool]:
    """name or pattern -> higher is better, for the scoring specs that have a direction."""
    return {s.name: s.higher_is_better for s in specs if s.scoring and s.higher_is_better is not None}
