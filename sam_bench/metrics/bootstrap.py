"""Seeded bootstrap intervals and paired comparisons over evaluation units (pure numpy).

A bootstrap replicate draws the N units of a dataset (objects, images) N times with replacement:
that is a multinomial count vector w (N,) summing to N. Every metric here is a function of
weighted sums over its units (a mean, a ratio of summed counts, a COCO accumulate, BSDS totals),
so a task hands over a ``Resampler``, a function of a (B, N) weight matrix, and all B replicates
are computed at once from what the task already kept per unit; nothing per item runs again.

Intervals are percentile intervals (the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of
the replicates). A paired comparison draws one weight matrix and applies it to both runs (the
same units, aligned by id), so what the two runs share cancels out of the difference; its
p-value is the two-sided bootstrap test of "no difference": the share of replicate differences,
shifted to mean zero, at least as far from zero as the observed one, ``(1 + k) / (1 + B)``.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable, Hashable, Mapping, Sequence

import numpy as np

Stats = dict[str, np.ndarray]  # metric -> (B,) replicate values


@dataclass(frozen=True)
class Settings:
    """``replicates`` B (0: no intervals), interval ``level`` (0.95), ``seed`` of the generators."""

    replicates: int = 1000
    level: float = 0.95
    seed: int = 0

    def __post_init__(self):
        if self.replicates < 0:
            raise ValueError(f"--bootstrap {self.replicates}: the number of resamples, >= 0 (0: off)")
        if not 0 < self.level < 1:
            raise ValueError(f"--ci {self.level}: the interval level, in (0, 1), e.g. 0.95")

    def as_dict(self) -> dict:
        return {"replicates": self.replicates, "ci": self.level, "seed": self.seed, "method": "percentile"}


@dataclass(frozen=True)
class Resampler:
    """A dataset's metrics as a function of weights over its units.

    ``units``: N unique, hashable unit ids (e.g. (item, object id)); their order is the weights'
    columns. ``compute``: (B, N) float weights -> {metric: (B,) float}; weights of all ones give
    the point estimate. ``unit``: what a unit is ("object", "image"). ``chunk``: most replicates
    per ``compute`` call, to bound its memory.
    """

    units: tuple
    compute: Callable[[np.ndarray], Stats]
    unit: str = "item"
    chunk: int = 1000

    def __len__(self) -> int:
        return len(self.units)

    def point(self) -> dict[str, float]:
        """The metrics at weight 1 on every unit (what ``evaluate`` reports)."""
        return {k: float(v[0]) for k, v in self.compute(np.ones((1, len(self)))).items()}

    def __call__(self, weights: np.ndarray) -> Stats:
        weights = np.asarray(weights, np.float64)
        parts = [self.compute(weights[s:s + self.chunk]) for s in range(0, len(weights), self.chunk)]
        return {k: np.concatenate([np.asarray(p[k], np.float64).reshape(-1) for p in parts]) for k in parts[0]} \
            if parts else {}

    def reordered(self, units: Sequence[Hashable]) -> "Resampler":
        """The same statistic with its weight columns in the order of ``units`` (the same set)."""
        where = {u: i for i, u in enumerate(self.units)}
        perm = np.array([where[u] for u in units], np.int64)
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(len(perm))
        return Resampler(tuple(units), lambda w: self.compute(w[:, inverse]), self.unit, self.chunk)


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and ``names`` (e.g. the dataset), the same on every machine."""
    return np.random.default_rng([int(seed), *(zlib.crc32(str(n).encode()) for n in names)])


def draw_weights(n: int, b: int, rng: np.random.Generator) -> np.ndarray:
    """(b, n) float64 multinomial counts: row i = how often each of n units is drawn in resample i."""
    if n == 0:
        return np.zeros((b, 0))
    return rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)


def replicates(res: Resampler, b: int, rng: np.random.Generator) -> Stats:
    """The B bootstrap replicates of every metric of ``res``."""
    return res(draw_weights(len(res), b, rng))


def interval(values: np.ndarray, level: float = 0.95) -> list[float] | None:
    """[lo, hi] percentile interval of replicate ``values`` (NaN replicates left out); None if none is finite."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return None
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def intervals(reps: Mapping[str, np.ndarray], level: float = 0.95) -> dict[str, list[float]]:
    """{metric + "_ci": [lo, hi]} for every metric of ``reps`` with a finite replicate (an undefined
    metric gets no interval, so the interval keys never add to a run's undefined metrics)."""
    out = {f"{k}_ci": interval(v, level) for k, v in reps.items()}
    return {k: v for k, v in out.items() if v is not None}


def combine(per_dataset: Mapping[str, Stats], aggregate: Callable[[dict], dict]) -> Stats:
    """Replicates of the cross-dataset headline: ``aggregate`` (the task's) applied to replicate i of
    every dataset, each dataset resampled on its own. ``per_dataset``: {dataset: {metric: (B,)}}."""
    sizes = {len(v) for s in per_dataset.values() for v in s.values()}
    if not sizes:
        return {}
    if len(sizes) > 1:
        raise ValueError(f"datasets have different replicate counts {sorted(sizes)}")
    out: dict[str, list] = {}
    for i in range(sizes.pop()):
        agg = aggregate({ds: {k: float(v[i]) for k, v in s.items()} for ds, s in per_dataset.items()})
        for k, v in agg.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.setdefault(k, []).append(float(v))
    return {k: np.array(v) for k, v in out.items()}


def p_value(diffs: np.ndarray, observed: float) -> float:
    """Two-sided bootstrap p-value of ``observed`` difference under "no difference": replicate
    differences shifted by ``observed`` (to mean zero under the null) at least as far out, (1 + k)/(1 + B)."""
    d = np.asarray(diffs, np.float64)
    d = d[np.isfinite(d)]
    if not d.size or not math.isfinite(observed):
        return float("nan")
    k = int(np.count_nonzero(np.abs(d - observed) >= abs(observed) - 1e-12 * max(1.0, abs(observed))))
    return (1 + k) / (1 + d.size)


@dataclass(frozen=True)
class Difference:
    """Candidate minus baseline of one metric: ``delta``, its ``ci`` [lo, hi], ``p`` two-sided."""

    delta: float
    ci: list[float] | None
    p: float
    replicates: np.ndarray

    def significant(self, alpha: float = 0.05) -> bool:
        return math.isfinite(self.p) and self.p < alpha


def _check_units(a: Resampler, b: Resampler) -> None:
    if set(a.units) != set(b.units) or len(a.units) != len(b.units):
        only_a = [u for u in a.units if u not in set(b.units)][:3]
        only_b = [u for u in b.units if u not in set(a.units)][:3]
        raise ValueError(f"the runs were scored on different {a.unit}s ({len(a)} vs {len(b)}; only in the "
                         f"baseline: {only_a}, only in the candidate: {only_b}); a paired comparison needs the same")


def _differences(da: Stats, db: Stats, pa: dict, pb: dict, level: float) -> dict[str, Difference]:
    out = {}
    for k in sorted(set(da) & set(db)):
        d = db[k] - da[k]
        obs = pb[k] - pa[k]
        out[k] = Difference(float(obs), interval(d, level), p_value(d, obs), d)
    return out


def paired(base: Resampler, cand: Resampler, b: int, rng: np.random.Generator,
           level: float = 0.95) -> dict[str, Difference]:
    """Paired bootstrap of candidate minus baseline: one weight matrix over the shared units, applied
    to both. ValueError when the two were scored on different units."""
    _check_units(base, cand)
    cand = cand.reordered(base.units)
    w = draw_weights(len(base), b, rng)
    return _differences(base(w), cand(w), base.point(), cand.point(), level)


def unpaired(base: Resampler, cand: Resampler, b: int, rng: np.random.Generator,
             level: float = 0.95) -> dict[str, Difference]:
    """Independent bootstrap of each run (what a comparison without pairing would give)."""
    return _differences(replicates(base, b, rng), replicates(cand, b, rng), base.point(), cand.point(), level)


def combine_differences(per_dataset: Mapping[str, Mapping[str, Difference]],
                        aggregate: Callable[[dict], dict], observed: Mapping[str, float],
                        level: float = 0.95) -> dict[str, Difference]:
    """The headline difference: ``aggregate`` over datasets of each replicate's differences.
    ``observed``: the aggregate's own difference per metric (candidate minus baseline)."""
    reps = combine({ds: {k: d.replicates for k, d in m.items()} for ds, m in per_dataset.items()}, aggregate)
    return {k: Difference(float(observed[k]), interval(v, level), p_value(v, observed[k]), v)
            for k, v in reps.items() if k in observed}


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B,) weighted means of (N,) ``values`` (NaN entries left out) under (B, N) ``weights``."""
    v = np.asarray(values, np.float64)
    ok = np.isfinite(v)
    w = weights[:, ok]
    tot = w.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, w @ v[ok] / np.where(tot > 0, tot, 1), np.nan)
