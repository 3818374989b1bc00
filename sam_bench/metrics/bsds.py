"""The BSDS boundary benchmark as pure functions: per-image counts, then ODS / OIS / AP / R50.

Protocol of the standard code (Arbelaez et al., ``evaluation_bdry_image`` / ``collect_eval_bdry``;
Dollar's ``edgesEvalImg`` / ``edgesEvalDir``, which gives the same numbers plus R50): for each of
``n`` thresholds the soft edge map is binarised (``>= t``) and thinned to one-pixel width
(``skimage.morphology.thin``, MATLAB's ``bwmorph(.., 'thin', Inf)``), then matched to each
annotator's boundary map by a bipartite correspondence within ``max_dist`` x the image diagonal.
``cntP`` counts predicted pixels matched to *any* annotator, ``sumP`` all predicted pixels;
``cntR`` sums matched ground-truth pixels over annotators, ``sumR`` all of them.

The correspondence (``correspondPixels``): the assignment problem in which a pixel pair within the
tolerance costs its distance (x100, rounded: the CSA code's integer weights) and every pixel left
unmatched connects to an "outlier" at ``outlier_cost`` = 100 x the tolerance (x100). Its optimum
maximises the number of matched pairs (each saves far more than any distance) and then the
closeness. We solve exactly that assignment with scipy's sparse LAPJV
(``min_weight_full_bipartite_matching``): each pixel gets an outlier twin on the other side, and
each admissible pair an outlier-outlier edge between the two twins, so that every matching extends
to a perfect one whose cost is sum(distances) + outlier_cost x (n1 + n2 - matched), the CSA graph's
cost. (The CSA code links each pixel to only six random outliers and so solves a sparser version;
its counts can fall a pixel or two short of the optimum.) Only pixels with a partner within the
tolerance enter the graph.
"""

from __future__ import annotations

import numpy as np

OUTLIER_COST = 100.0  # cost of an unmatched pixel, in units of the tolerance (correspondPixels' default)
COST_SCALE = 100  # distances enter the assignment as rint(100 * d), the CSA code's integer weights


def thresholds(n: int = 99) -> np.ndarray:
    """The standard code's thresholds: ``linspace(1/(n+1), 1 - 1/(n+1), n)``."""
    return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)


def match_radius(shape: tuple[int, int], max_dist: float = 0.0075) -> float:
    """The tolerance in pixels: ``max_dist`` x the diagonal of an (H, W) image."""
    return float(max_dist * np.hypot(*shape[:2]))


def outlier_weight(radius: float) -> float:
    """The CSA code's integer outlier weight: ceil(100 x outlierCost x tolerance in px)."""
    return float(np.ceil(COST_SCALE * OUTLIER_COST * radius))


def _offsets(radius: float) -> np.ndarray:
    """(K, 2) integer (dy, dx) with dy^2 + dx^2 <= radius^2."""
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = dy ** 2 + dx ** 2 <= radius ** 2
    return np.stack([dy[keep], dx[keep]], 1)


def _pairs(cy: np.ndarray, cx: np.ndarray, gt: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (candidate index, gt-pixel index, integer cost) triples within ``radius``.

    Candidates are the pixels (cy, cx) (row, column); gt pixels are numbered in ``np.nonzero``
    order. Cost = rint(100 * Euclidean distance).
    """
    h, w = gt.shape
    off = _offsets(radius)
    cost = np.rint(COST_SCALE * np.hypot(off[:, 0], off[:, 1])).astype(np.int64)
    r = int(np.ceil(radius))
    gy, gx = np.nonzero(gt)
    wp = w + 2 * r
    gid = np.full((h + 2 * r) * wp, -1, np.int64)  # padded, so shifted look-ups never leave the array
    gid[(gy + r) * wp + gx + r] = np.arange(len(gy))
    if len(cy) == 0 or len(gy) == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    j = gid[((cy + r) * wp + cx + r)[:, None] + (off[:, 0] * wp + off[:, 1])[None, :]]
    rows, k = np.nonzero(j >= 0)
    return rows, j[rows, k], cost[k]


def min_cost_matching(rows: np.ndarray, cols: np.ndarray, cost: np.ndarray,
                      outlier_cost: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The matched (row, col) pairs minimising sum(cost of pairs) + outlier_cost x (n1 + n2 - pairs).

    ``rows``, ``cols``, ``cost``: (E,) edges of a bipartite graph (any integer ids; n1, n2 = the
    distinct ids). With ``outlier_cost`` (default 100 x the largest cost) above every edge cost,
    each pair pays for itself, so the matching is maximal, in practice of maximum cardinality with
    the least total cost. Returns two (M,) arrays of ids.
    """
    if len(rows) == 0:
        return rows[:0], cols[:0]
    ur, ri = np.unique(rows, return_inverse=True)
    uc, ci = np.unique(cols, return_inverse=True)
    n1, n2 = len(ur), len(uc)
    cost = np.asarray(cost, np.float64)
    ow = float(outlier_cost if outlier_cost is not None else 100.0 * max(cost.max(), 1.0))
    # left nodes: real rows [0, n1) + column twins [n1, n1+n2); right: real cols [0, n2) + row twins
    left = np.concatenate([ri, np.arange(n1), n1 + np.arange(n2), n1 + ci])
    right = np.concatenate([ci, n2 + np.arange(n1), np.arange(n2), n2 + ri])
    # +1 on every edge: a perfect matching has n1 + n2 edges, so the shift leaves the optimum
    # unchanged, and no edge has weight 0 (which sparse matrices would drop)
    weight = np.concatenate([cost, np.full(n1 + n2 + len(cost), ow)]) + 1.0
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    graph = csr_matrix((weight, (left, right)), shape=(n1 + n2, n1 + n2))
    lm, rm = min_weight_full_bipartite_matching(graph)
    real = (lm < n1) & (rm < n2)
    return ur[lm[real]], uc[rm[real]]


def correspond(pred: np.ndarray, gt: np.ndarray, max_dist: float = 0.0075) -> tuple[np.ndarray, np.ndarray]:
    """``correspondPixels`` on two (H, W) bool maps: (pred pixels matched, gt pixels matched), bool."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if pred.shape != gt.shape:
        raise ValueError(f"correspond: prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    radius = match_radius(pred.shape, max_dist)
    py, px = np.nonzero(pred)
    gy, gx = np.nonzero(gt)
    rows, cols, cost = _pairs(py, px, gt, radius)
    mr, mc = min_cost_matching(rows, cols, cost, outlier_weight(radius))
    m1, m2 = np.zeros_like(pred), np.zeros_like(gt)
    m1[py[mr], px[mr]] = True
    m2[gy[mc], gx[mc]] = True
    return m1, m2


def image_counts(edge: np.ndarray, gts: list[np.ndarray], n_thresholds: int = 99, max_dist: float = 0.0075,
                 thinning: bool = True, workers: int = 1) -> np.ndarray:
    """(n_thresholds, 4) int64 array of [cntR, sumR, cntP, sumP] for one image.

    ``edge``: (H, W) float in [0, 1] (after edge NMS); ``gts``: per-annotator (H, W) bool boundaries.
    ``workers`` > 1 shares the thresholds (interleaved, as low thresholds cost most) among that
    many processes; the counts are the same.
    """
    edge = np.asarray(edge, np.float64)
    for k, g in enumerate(gts):
        if g.shape != edge.shape:
            raise ValueError(f"image_counts: annotator {k} is {g.shape}, the edge map {edge.shape}")
    gts = [np.asarray(g, bool) for g in gts]
    index = np.arange(n_thresholds)
    if workers <= 1 or n_thresholds < 2:
        return _counts(edge, gts, n_thresholds, index, max_dist, thinning)
    from concurrent.futures import ProcessPoolExecutor

    parts = [index[k::workers] for k in range(min(workers, n_thresholds))]
    out = np.zeros((n_thresholds, 4), np.int64)
    with ProcessPoolExecutor(len(parts)) as pool:
        for part, res in zip(parts, pool.map(_counts, *zip(*[(edge, gts, n_thresholds, p, max_dist, thinning)
                                                              for p in parts]))):
            out[part] = res
    return out


def _counts(edge: np.ndarray, gts: list[np.ndarray], n_thresholds: int, index: np.ndarray, max_dist: float,
            thinning: bool) -> np.ndarray:
    """Counts at thresholds ``thresholds(n_thresholds)[index]`` (ascending), (len(index), 4).

    The pixel pairs within the tolerance are found once for the lowest threshold's candidates; each
    threshold then matches the sub-graph of its (thinned) pixels. A threshold whose thinned map
    equals the previous one's reuses its counts.
    """
    from skimage.morphology import thin

    radius = match_radius(edge.shape, max_dist)
    ow = outlier_weight(radius)
    ts = thresholds(n_thresholds)[index]
    sum_r = int(sum(int(np.count_nonzero(g)) for g in gts))
    cy, cx = np.nonzero(edge >= ts[0])
    graphs = [_pairs(cy, cx, g, radius) for g in gts]
    out = np.zeros((len(ts), 4), np.int64)
    prev = None
    for i, t in enumerate(ts):
        pred = edge >= t
        if thinning:
            pred = thin(pred)
        active = pred[cy, cx]
        if prev is not None and np.array_equal(active, prev):
            out[i] = out[i - 1]
            continue
        prev = active
        union = np.zeros(len(cy), bool)
        cnt_r = 0
        for rows, cols, cost in graphs:
            keep = active[rows]
            mr, _ = min_cost_matching(rows[keep], cols[keep], cost[keep], ow)
            union[mr] = True
            cnt_r += len(mr)
        out[i] = (cnt_r, sum_r, int(union.sum()), int(np.count_nonzero(pred)))
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
    """R50 as Dollar's ``edgesEvalDir``: recall interpolated over the unique precisions (ascending)
    at precision ``max(min P, target)``. A curve with one precision value gives its recall; one whose
    precision never reaches ``target`` gives NaN (MATLAB's ``interp1`` outside the range)."""
    pu, idx = np.unique(p, return_index=True)
    if len(pu) < 2:
        return float(r[idx[0]]) if len(pu) else float("nan")
    x = max(float(pu[0]), target)
    if x > pu[-1]:
        return float("nan")
    return float(np.interp(x, pu, r[idx]))


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
            "ois_recall": float(r_oi), "ois_precision": float(p_oi),
            "pr_curve": {"threshold": t.tolist(), "recall": r.tolist(), "precision": p.tolist()}}


def _max_f_rows(t: np.ndarray, r: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(B,) ``max_f``'s F of each row of (B, T) recalls and precisions (same 100-step interpolation)."""
    d = np.linspace(0, 1, 100)[None, None, :]
    rr = np.concatenate([r[:, :1], (r[:, 1:, None] * d + r[:, :-1, None] * (1 - d)).reshape(len(r), -1)], 1)
    pp = np.concatenate([p[:, :1], (p[:, 1:, None] * d + p[:, :-1, None] * (1 - d)).reshape(len(p), -1)], 1)
    return _fmeasure(rr, pp).max(1)


def summarize_weighted(per_image: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """ODS, OIS, AP, R50 (each (B,)) of B reweightings of the images: ``per_image`` (N, T, 4) counts,
    ``weights`` (B, N) (a bootstrap's multinomial counts). Weights of ones give ``summarize``'s values:
    an image of weight k counts as k copies of it."""
    counts = np.asarray(per_image, np.float64)
    w = np.asarray(weights, np.float64)
    t = thresholds(counts.shape[1])
    r, p = _pr(np.einsum("bn,ntk->btk", w, counts))  # (B, T)
    best = np.argmax(_fmeasure(*_pr(counts)), axis=1)
    r_oi, p_oi = _pr(w @ counts[np.arange(len(counts)), best])  # (B,)
    return {"ods": _max_f_rows(t, r, p), "ois": _fmeasure(r_oi, p_oi),
            "ap": np.array([average_precision(ri, pi) for ri, pi in zip(r, p)]),
            "r50": np.array([recall_at_precision(ri, pi) for ri, pi in zip(r, p)])}
