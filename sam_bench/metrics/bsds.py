"""The BSDS boundary benchmark as pure functions: per-image counts, then ODS / OIS / AP / R50.

Protocol of the standard code (Arbelaez et al., ``evaluation_bdry_image`` / ``collect_eval_bdry``):
for each of ``n`` thresholds the soft edge map is binarised and thinned to one-pixel width, then
matched to each annotator's boundary map by a bipartite correspondence within ``max_dist`` x the
image diagonal. ``cntP`` counts predicted pixels matched to *any* annotator, ``sumP`` all predicted
pixels; ``cntR`` sums matched ground-truth pixels over annotators, ``sumR`` all of them.

The correspondence: ``correspondPixels`` solves a min-cost assignment in which leaving a pixel
unmatched costs more than any admissible match, so its solution is a maximum-cardinality matching
(ties broken by distance). We compute the maximum-cardinality matching exactly (Hopcroft-Karp,
``scipy.sparse.csgraph.maximum_bipartite_matching``) on the graph of pixel pairs within the
tolerance. The match *counts* are identical to correspondPixels'; which predicted pixels get matched
may differ among equal-cardinality solutions, which only moves ``cntP`` when annotators disagree.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching
from skimage.morphology import thin


def thresholds(n: int = 99) -> np.ndarray:
    """The standard code's thresholds: ``linspace(1/(n+1), 1 - 1/(n+1), n)``."""
    return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)


def _offsets(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = dy ** 2 + dx ** 2 <= radius ** 2
    return np.stack([dy[keep], dx[keep]], 1)


def _pairs(cy: np.ndarray, cx: np.ndarray, gt: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """All (candidate index, gt-pixel index) pairs within ``radius``; candidates at (cy, cx)."""
    h, w = gt.shape
    gy, gx = np.nonzero(gt)
    gid = np.full(h * w, -1, np.int64)
    gid[gy * w + gx] = np.arange(len(gy))
    off = _offsets(radius)
    yy = cy[:, None] + off[None, :, 0]
    xx = cx[:, None] + off[None, :, 1]
    ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    j = np.where(ok, gid[np.clip(yy, 0, h - 1) * w + np.clip(xx, 0, w - 1)], -1)
    rows, k = np.nonzero(j >= 0)
    return rows, j[rows, k]


def max_matching(rows: np.ndarray, cols: np.ndarray, n_rows: int) -> np.ndarray:
    """Maximum-cardinality bipartite matching (Hopcroft-Karp) of the edges (rows[i], cols[i]);
    returns (n_rows,) bool: row is matched. Only nodes with an edge enter the graph."""
    matched = np.zeros(n_rows, bool)
    if len(rows) == 0:
        return matched
    ur, ri = np.unique(rows, return_inverse=True)
    uc, ci = np.unique(cols, return_inverse=True)
    graph = csr_matrix((np.ones(len(ri), np.int8), (ri, ci)), shape=(len(ur), len(uc)))
    matched[ur[maximum_bipartite_matching(graph, perm_type="column") >= 0]] = True
    return matched


def image_counts(edge: np.ndarray, gts: list[np.ndarray], n_thresholds: int = 99, max_dist: float = 0.0075,
                 thinning: bool = True) -> np.ndarray:
    """(n_thresholds, 4) int array of [cntR, sumR, cntP, sumP] for one image.

    ``edge``: (H, W) float in [0, 1] (after edge NMS); ``gts``: per-annotator (H, W) bool boundaries.
    The pixel pairs within the tolerance are found once for the lowest threshold's candidates;
    each threshold then matches the sub-graph of its (thinned) pixels.
    """
    h, w = edge.shape
    radius = max_dist * np.hypot(h, w)
    ts = thresholds(n_thresholds)
    sum_r = int(sum(int(g.sum()) for g in gts))
    cy, cx = np.nonzero(edge >= ts[0])
    graphs = []
    for g in gts:
        rows, cols = _pairs(cy, cx, g, radius)
        graphs.append((rows, cols))
    out = np.zeros((n_thresholds, 4), np.int64)
    for i, t in enumerate(ts):
        pred = edge >= t
        if thinning:
            pred = thin(pred)
        active = pred[cy, cx]
        union = np.zeros(len(cy), bool)
        cnt_r = 0
        for rows, cols in graphs:
            keep = active[rows]
            matched = max_matching(rows[keep], cols[keep], len(cy))
            union |= matched
            cnt_r += int(matched.sum())
        out[i] = (cnt_r, sum_r, int(union.sum()), int(pred.sum()))
    return out


def _fmeasure(r: np.ndarray, p: np.ndarray) -> np.ndarray:
    return 2 * p * r / (p + r + ((p + r) == 0))


def _pr(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) per threshold from [cntR, sumR, cntP, sumP] rows (the standard code's
    convention: a ratio with a zero denominator is 0)."""
    c = counts.astype(np.float64)
    return c[..., 0] / (c[..., 1] + (c[..., 1] == 0)), c[..., 2] / (c[..., 3] + (c[..., 3] == 0))


def max_f(t: np.ndarray, r: np.ndarray, p: np.ndarray) -> tuple[float, float, float, float]:
    """The standard code's ``maxF``: best (F, threshold, recall, precision) along the PR curve,
    linearly interpolated with 100 steps between neighbouring thresholds."""
    d = np.linspace(0, 1, 100)[None, :]
    tt = np.concatenate([t[:1], (t[1:, None] * d + t[:-1, None] * (1 - d)).ravel()])
    rr = np.concatenate([r[:1], (r[1:, None] * d + r[:-1, None] * (1 - d)).ravel()])
    pp = np.concatenate([p[:1], (p[1:, None] * d + p[:-1, None] * (1 - d)).ravel()])
    ff = _fmeasure(rr, pp)
    i = int(np.argmax(ff))  # first maximum, as the standard loop's strict '>'
    return float(ff[i]), float(tt[i]), float(rr[i]), float(pp[i])


def average_precision(r: np.ndarray, p: np.ndarray) -> float:
    """Area under the PR curve as the standard code: precision interpolated at recall 0:0.01:1
    over the unique recalls, NaN outside their range counted as 0."""
    ru, idx = np.unique(r, return_index=True)
    if len(ru) < 2:
        return 0.0
    grid = np.linspace(0, 1, 101)
    pi = np.interp(grid, ru, p[idx], left=np.nan, right=np.nan)
    return float(np.nansum(pi) * 0.01)


def recall_at_precision(r: np.ndarray, p: np.ndarray, target: float = 0.5) -> float:
    """R50: the recall where the PR curve crosses ``target`` precision (linear between thresholds;
    thresholds ascend, so precision tends to rise and recall to fall). 0 if it never reaches it."""
    above = np.nonzero(p >= target)[0]
    if len(above) == 0:
        return 0.0
    i = int(above[0])
    if i == 0 or p[i] == p[i - 1]:
        return float(r[i])
    a = (target - p[i - 1]) / (p[i] - p[i - 1])
    return float(r[i - 1] + a * (r[i] - r[i - 1]))


def summarize(per_image: list[np.ndarray], n_thresholds: int | None = None) -> dict:
    """ODS, OIS, AP, R50 and the PR curve from per-image (T, 4) counts (``image_counts``)."""
    counts = np.stack([np.asarray(c, np.int64) for c in per_image])  # (N, T, 4)
    t = thresholds(counts.shape[1] if n_thresholds is None else n_thresholds)
    total = counts.sum(0)
    r, p = _pr(total)
    ods, ods_t, ods_r, ods_p = max_f(t, r, p)
    best = np.argmax(_fmeasure(*_pr(counts)), axis=1)  # per image, first max over thresholds
    r_oi, p_oi = _pr(counts[np.arange(len(counts)), best].sum(0))
    return {"ods": ods, "ois": float(_fmeasure(r_oi, p_oi)), "ap": average_precision(r, p),
            "r50": recall_at_precision(r, p), "ods_threshold": ods_t, "ods_recall": ods_r, "ods_precision": ods_p,
            "pr_curve": {"threshold": t.tolist(), "recall": r.tolist(), "precision": p.tolist()}}
