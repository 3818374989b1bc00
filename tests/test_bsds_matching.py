"""The correspondence against an independent dense solver, hand-made cases, and the aggregation
formulas against a loop-by-loop transcription of Dollar's edgesEvalDir."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from sam_bench.metrics import bsds


def _dense_reference(pred: np.ndarray, gt: np.ndarray, radius: float, ow: float) -> tuple[int, float]:
    """(pairs, optimal cost) of correspondPixels' assignment with *complete* outlier connections:
    a dense (n1+n2)^2 Hungarian solve of [[distance or inf, ow], [ow, ow]]."""
    p, g = np.argwhere(pred), np.argwhere(gt)
    n1, n2 = len(p), len(g)
    d = np.hypot(p[:, None, 0] - g[None, :, 0], p[:, None, 1] - g[None, :, 1])
    real = np.where(d <= radius, np.rint(100 * d), np.inf)
    full = np.full((n1 + n2, n2 + n1), ow)
    full[:n1, :n2] = real
    r, k = linear_sum_assignment(full)
    pairs = int(((r < n1) & (k < n2)).sum())
    return pairs, float(full[r, k].sum())


@pytest.mark.parametrize("seed", range(6))
def test_matching_solves_the_correspond_pixels_assignment(seed):
    rng = np.random.default_rng(seed)
    pred = rng.random((24, 30)) < 0.12
    gt = rng.random((24, 30)) < 0.08
    radius = bsds.match_radius(pred.shape, 0.08)  # ~3 px
    ow = bsds.outlier_weight(radius)
    py, px = np.nonzero(pred)
    rows, cols, cost = bsds._pairs(py, px, gt, radius)
    mr, mc = bsds.min_cost_matching(rows, cols, cost, ow)
    ref_pairs, ref_cost = _dense_reference(pred, gt, radius, ow)
    assert len(mr) == ref_pairs and len(set(mr.tolist())) == len(mr) and len(set(mc.tolist())) == len(mc)
    lookup = {(a, b): c for a, b, c in zip(rows.tolist(), cols.tolist(), cost.tolist())}
    ours = sum(lookup[(a, b)] for a, b in zip(mr.tolist(), mc.tolist())) + ow * (pred.sum() + gt.sum() - len(mr))
    assert ours == pytest.approx(ref_cost)
    # the pairs really are within the tolerance
    assert all(np.hypot(py[a] - np.nonzero(gt)[0][b], px[a] - np.nonzero(gt)[1][b]) <= radius for a, b in zip(mr, mc))
    m1, m2 = bsds.correspond(pred, gt, 0.08)
    assert m1.sum() == m2.sum() == ref_pairs and not (m1 & ~pred).any() and not (m2 & ~gt).any()


def test_distance_breaks_ties_and_cardinality_beats_distance():
    gt = np.zeros((40, 40), bool)
    gt[20, 20] = True
    pred = np.zeros_like(gt)
    pred[20, 21] = pred[20, 23] = True  # both within the tolerance (0.1 x 56.6 px diagonal = 5.7 px)
    m1, m2 = bsds.correspond(pred, gt, 0.1)
    assert m1[20, 21] and not m1[20, 23] and m2.sum() == 1  # the nearer one is taken
    # cardinality first: the nearest pairing (p0-g0) would leave p1 without a partner
    gt2 = np.zeros((40, 40), bool)
    gt2[20, 20] = gt2[20, 25] = True
    pred2 = np.zeros_like(gt2)
    pred2[20, 21] = True  # 1 px from g0, 4 px from g1
    pred2[20, 16] = True  # 4 px from g0 only (9 px from g1)
    m1, m2 = bsds.correspond(pred2, gt2, 0.1)
    assert m1.sum() == 2 and m2.sum() == 2


def test_counts_are_deterministic_and_reuse_equal_thresholds():
    rng = np.random.default_rng(3)
    edge = np.round(rng.random((30, 40)), 1)  # ten distinct levels: many thresholds see the same map
    gts = [rng.random((30, 40)) < 0.05 for _ in range(3)]
    a = bsds.image_counts(edge, gts, n_thresholds=19, max_dist=0.05)
    b = bsds.image_counts(edge, gts, n_thresholds=19, max_dist=0.05)
    assert np.array_equal(a, b)
    for i, t in enumerate(bsds.thresholds(19)):  # every row equals a direct computation
        from skimage.morphology import thin

        pred = thin(edge >= t)
        union = np.zeros_like(pred)
        cnt_r = 0
        for g in gts:
            m1, m2 = bsds.correspond(pred, g, 0.05)
            union |= m1
            cnt_r += int(m2.sum())
        assert a[i].tolist() == [cnt_r, sum(int(g.sum()) for g in gts), int(union.sum()), int(pred.sum())]


def _edges_eval_dir(T, counts):
    """Loop transcription of Dollar's edgesEvalDir aggregation (MATLAB semantics, 1-based -> 0-based)."""
    eps = np.finfo(float).eps

    def rpf(cr, sr, cp, sp):
        R = cr / np.maximum(eps, sr)
        P = cp / np.maximum(eps, sp)
        return R, P, 2 * P * R / np.maximum(eps, P + R)

    def best(T, R, P):
        A = np.linspace(0, 1, 100)
        B = 1 - A
        bst = (-1, 0, 0, 0)
        for j in range(1, len(T)):
            Rj, Pj, Tj = R[j] * A + R[j - 1] * B, P[j] * A + P[j - 1] * B, T[j] * A + T[j - 1] * B
            Fj = 2 * Pj * Rj / np.maximum(eps, Pj + Rj)
            k = int(np.argmax(Fj))
            if Fj[k] > bst[0]:
                bst = (Fj[k], Tj[k], Rj[k], Pj[k])
        return bst

    tot = counts.sum(0).astype(float)
    ois = np.zeros(4)
    for c in counts.astype(float):
        _, _, F = rpf(*c.T)
        ois += c[int(np.argmax(F))]
    R, P, _ = rpf(*tot.T)
    odsF = best(T, R, P)[0]
    _, _, oisF = rpf(*ois)
    _, k = np.unique(R, return_index=True)
    k = k[::-1]
    Rk, Pk = R[k], P[k]
    grid = np.arange(0, 1.001, 0.01)
    ap_vals = []
    for x in grid:  # interp1 on the (descending) unique recalls; NaN outside their range
        if Rk.min() <= x <= Rk.max():
            ap_vals.append(np.interp(x, Rk[::-1], Pk[::-1]))
    AP = sum(ap_vals) / 100 if len(Rk) > 1 else 0.0
    _, o = np.unique(P, return_index=True)
    R50 = np.interp(max(P[o[0]], 0.5), P[o], R[o])
    return odsF, oisF, AP, R50


def test_aggregation_matches_edges_eval_dir_transcription():
    rng = np.random.default_rng(0)
    n_img, n_t = 7, 25
    sum_r = rng.integers(800, 2000, n_img)[:, None].repeat(n_t, 1)
    sum_p = np.sort(rng.integers(50, 4000, (n_img, n_t)), axis=1)[:, ::-1]  # fewer pixels at higher thresholds
    cnt_p = (sum_p * np.sort(rng.uniform(0.2, 0.95, (n_img, n_t)), axis=1)).astype(int)
    cnt_r = np.minimum(sum_r, (cnt_p * rng.uniform(2.0, 4.0, (n_img, 1))).astype(int))
    counts = np.stack([cnt_r, sum_r, cnt_p, sum_p], -1)
    ours = bsds.summarize(list(counts))
    ods, ois, ap, r50 = _edges_eval_dir(bsds.thresholds(n_t), counts)
    assert ours["ods"] == pytest.approx(ods, abs=1e-9)
    assert ours["ois"] == pytest.approx(ois, abs=1e-9)
    assert ours["ap"] == pytest.approx(ap, abs=1e-9)
    assert ours["r50"] == pytest.approx(r50, abs=1e-9)
    assert 0.3 < ours["ods"] < 0.9  # a non-degenerate curve was exercised


def test_workers_give_the_same_counts():
    rng = np.random.default_rng(5)
    edge = rng.random((30, 40)) ** 3
    gts = [rng.random((30, 40)) < 0.05 for _ in range(2)]
    one = bsds.image_counts(edge, gts, n_thresholds=9, max_dist=0.05)
    assert np.array_equal(bsds.image_counts(edge, gts, n_thresholds=9, max_dist=0.05, workers=3), one)
