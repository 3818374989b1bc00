"""COCO mask AP and AR of reweighted images, from one evaluated ``COCOeval`` (pure numpy).

``COCOeval.evaluate`` matches each image's detections to its ground truth (``evalImgs``); only
``accumulate`` depends on which images are in the sample. A bootstrap resample is a weight per
image (how often it was drawn), so this module re-runs ``accumulate``'s arithmetic with weights,
for B resamples at once, without matching anything again:

- per (category, area range) the detections of all images, sorted once by descending score
  (``mergesort`` over the images in ``params.imgIds`` order, as ``accumulate``); an image of weight
  k counts k times: its TPs and FPs add k to the running sums, its non-ignored ground truth k to
  ``npig``; weight 0 leaves it out;
- precision = tp / (tp + fp + eps), made non-increasing from the right, read at the 101 recall
  thresholds (the first detection whose recall reaches each), 0 past the curve's end; a (category,
  area) with no ground truth in a resample is left out of that resample's mean, as ``accumulate``'s -1;
- recall (AR) = weighted TPs over weighted ``npig``, order free.

Weights of ones give ``accumulate``'s ``precision`` / ``recall`` exactly (tests compare them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pycocotools.cocoeval import COCOeval

MAX_CELLS = 2_000_000  # (replicates x thresholds x detections) floats per working array, at most


@dataclass(frozen=True)
class Block:
    """One (category k, area a) of an evaluation: D detections sorted by descending score.

    ``image`` (D,) index into ``params.imgIds``; ``tps``, ``fps`` (T, D) bool (ignored ones are
    neither); ``npig`` (I,) non-ignored ground truth per image; ``tp_image`` (I, T) TPs per image.
    """

    k: int
    a: int
    image: np.ndarray
    tps: np.ndarray
    fps: np.ndarray
    npig: np.ndarray
    tp_image: np.ndarray


@dataclass(frozen=True)
class Layout:
    """What ``accumulate`` reads of an evaluator: pycocotools' ``COCOeval`` or lvis' ``LVISEval``
    (the same arithmetic under snake_case names, no per-image ``maxDets`` cut)."""

    images: list
    n_cat: int
    n_area: int
    iou_thrs: np.ndarray
    rec_thrs: np.ndarray
    max_det: int | None
    evals: list
    keys: tuple[str, str, str, str]  # scores, matches, dt ignore, gt ignore


def layout(ev) -> Layout:
    p = ev.params
    if hasattr(ev, "eval_imgs"):  # LVISEval
        return Layout(list(p.img_ids), len(p.cat_ids) if p.use_cats else 1, len(p.area_rng), np.asarray(p.iou_thrs),
                      np.asarray(p.rec_thrs), None, ev.eval_imgs, ("dt_scores", "dt_matches", "dt_ignore", "gt_ignore"))
    return Layout(list(p.imgIds), len(p.catIds) if p.useCats else 1, len(p.areaRng), np.asarray(p.iouThrs),
                  np.asarray(p.recThrs), p.maxDets[-1], ev.evalImgs, ("dtScores", "dtMatches", "dtIgnore", "gtIgnore"))


class Blocks(list):
    """The blocks of one evaluation (a list), keeping the true-positive points once they are built."""

    points: "Points | None" = None
    curves: "Curves | None" = None


@dataclass(frozen=True)
class Points:
    """Every (threshold, block) curve reduced to its true positives, in block, threshold, score order.

    Only they matter: a false positive never raises the precision envelope of an earlier point and
    reaches no new recall, so it enters only through the false-positive count of later true
    positives. ``tp``, ``fp`` (P, I): per image, the true positives up to and the false positives
    before each point; ``segment`` (P,) its (block, threshold) curve; ``starts`` the curves' first
    points; ``block``, ``thr`` (S,) each curve's block index and threshold index.
    """

    tp: np.ndarray
    fp: np.ndarray
    segment: np.ndarray
    starts: np.ndarray
    block: np.ndarray
    thr: np.ndarray


MAX_POINT_CELLS = 4_000_000  # points x images above which the running-sum path is used instead


def _points(bl: list[Block], n_img: int) -> Points | None:
    """The true-positive points of ``bl``; None when their (P, I) count tables would be too large."""
    n_points = sum(int(blk.tps.sum()) for blk in bl)
    if n_points * n_img > MAX_POINT_CELLS:
        return None
    tp, fp, block, thr, sizes = [], [], [], [], []
    for j, blk in enumerate(bl):
        d = blk.tps.shape[1]
        onehot = np.zeros((d, n_img))
        onehot[np.arange(d), blk.image] = 1.0
        for t in range(blk.tps.shape[0]):
            pos = np.flatnonzero(blk.tps[t])
            if pos.size:
                tp.append(np.cumsum(onehot * blk.tps[t][:, None], axis=0)[pos])
                fp.append(np.cumsum(onehot * blk.fps[t][:, None], axis=0)[pos])
                block.append(j)
                thr.append(t)
                sizes.append(pos.size)
    sizes = np.array(sizes, np.int64)
    empty = np.zeros((0, n_img))
    return Points(np.concatenate(tp) if tp else empty, np.concatenate(fp) if fp else empty,
                  np.repeat(np.arange(len(sizes)), sizes), np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
                  np.array(block, np.int64), np.array(thr, np.int64))


def _precision_points(pts: Points, npig: np.ndarray, w: np.ndarray, rec_thrs: np.ndarray, t: int) -> np.ndarray:
    """(B, T, n) precision averaged over the recall thresholds from the true-positive points."""
    out = np.zeros((len(w), t, npig.shape[1]))
    if not len(pts.segment):
        return out
    tp, fp = w @ pts.tp.T, w @ pts.fp.T  # (B, P) exact integer sums
    den = np.where(npig > 0, npig, 1.0)[:, pts.block[pts.segment]]
    out[:, pts.thr, pts.block] = _curve_means(tp, fp, den, pts.segment, pts.starts, rec_thrs)
    return out


def _curve_means(tp: np.ndarray, fp: np.ndarray, den: np.ndarray, segment: np.ndarray, starts: np.ndarray,
                 rec_thrs: np.ndarray) -> np.ndarray:
    """(B, S) each curve's precision envelope averaged over the recall thresholds, from (B, L) running
    true / false positives and recall denominators of S curves laid end to end (``segment``, ``starts``).

    The right-to-left maximum stays inside a curve by offsetting each one below the previous
    (precision is in [0, 1]); the mean is sum_i env_i x (bucket_i - bucket_{i-1}) / R, bucket_i
    being how many recall thresholds point i reaches."""
    rc = tp / den
    pr = tp / (fp + tp + np.spacing(1))
    off = 2.0 * segment
    env = np.maximum.accumulate((pr - off)[:, ::-1], axis=1)[:, ::-1] + off
    bucket = np.searchsorted(rec_thrs, rc, side="right")
    prev = np.concatenate([np.zeros((len(tp), 1), bucket.dtype), bucket[:, :-1]], axis=1)
    prev[:, starts] = 0
    return np.add.reduceat(env * (bucket - prev), starts, axis=1) / len(rec_thrs)


def blocks(ev) -> Blocks:
    """The blocks of an evaluated (``evaluate()``-ed) COCOeval at its largest ``maxDets``, or LVISEval."""
    lay = layout(ev)
    n_img, n_area, n_cat, n_thr, max_det = len(lay.images), lay.n_area, lay.n_cat, len(lay.iou_thrs), lay.max_det
    k_sc, k_m, k_dig, k_gig = lay.keys
    if len(lay.evals) != n_cat * n_area * n_img:
        raise ValueError(f"the evaluator holds {len(lay.evals)} image evaluations, expected {n_cat * n_area * n_img}")
    out = Blocks()
    for k in range(n_cat):
        for a in range(n_area):
            base = k * n_area * n_img + a * n_img
            found = [(i, e) for i in range(n_img) if (e := lay.evals[base + i]) is not None]
            if not found:
                continue
            scores = np.concatenate([np.asarray(e[k_sc][:max_det], np.float64) for _, e in found])
            image = np.concatenate([np.full(len(e[k_sc][:max_det]), i, np.int64) for i, e in found])
            order = np.argsort(-scores, kind="mergesort")
            dtm = np.concatenate([np.asarray(e[k_m])[:, :max_det].reshape(n_thr, -1) for _, e in found],
                                 axis=1)[:, order]
            dtig = np.concatenate([np.asarray(e[k_dig])[:, :max_det].reshape(n_thr, -1) for _, e in found],
                                  axis=1)[:, order].astype(bool)
            npig = np.zeros(n_img)
            for i, e in found:
                npig[i] = np.count_nonzero(np.asarray(e[k_gig]) == 0)
            tps, fps = (dtm != 0) & ~dtig, (dtm == 0) & ~dtig
            tp_image = np.zeros((n_img, n_thr))
            np.add.at(tp_image, image[order], tps.T.astype(np.float64))
            # detections ignored at every threshold move no sum, and those after the last true positive
            # only lower the precision where no recall is reached: dropping both changes no result
            hit = np.flatnonzero(tps.any(axis=0))
            keep = (tps | fps).any(axis=0) & (np.arange(tps.shape[1]) <= (hit[-1] if hit.size else -1))
            out.append(Block(k, a, image[order][keep], tps[:, keep], fps[:, keep], npig, tp_image))
    return out


def _precision(bl: list[Block], w: np.ndarray, rec_thrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((B, T, n) precision averaged over the recall thresholds, (B, n) valid) of the n blocks at once.

    The blocks' distinct curves (``Curves``) are laid end to end; running sums restart at each curve
    (integer sums of integer weights, exact) and ``_curve_means`` averages each curve's envelope
    over the recall thresholds. Where false positives are most detections, the true-positive
    points alone (``Points``) give the same sums with one product.
    """
    b, t = len(w), bl[0].tps.shape[0]
    npig = w @ np.stack([blk.npig for blk in bl]).T  # (B, n)
    valid = npig > 0
    if isinstance(bl, Blocks):
        if bl.points is None:  # worth it where false positives are many (else the running sums cost the same)
            mostly_fp = 2 * sum(int(blk.tps.sum()) for blk in bl) <= sum(blk.tps.size for blk in bl)
            bl.points = (_points(bl, len(bl[0].npig)) if mostly_fp else None) or False
        if bl.points is not False:
            return _precision_points(bl.points, npig, w, rec_thrs, t), valid
    cv = bl.curves if isinstance(bl, Blocks) and bl.curves is not None else _curves(bl, t)
    if isinstance(bl, Blocks):
        bl.curves = cv
    out = np.zeros((b, t, len(bl)))
    if not len(cv.image):
        return out, valid
    den = np.where(valid, npig, 1.0)[:, cv.block]  # (B, C)
    step = max(1, MAX_CELLS // len(cv.image))
    for s in range(0, b, step):
        wd = w[s:s + step, cv.image]  # (b', L)
        sums = []
        for flags in (cv.tp, cv.fp):
            c = np.cumsum(wd * flags, axis=1)
            before = np.concatenate([np.zeros((len(c), 1)), c[:, cv.starts[1:] - 1]], axis=1)
            sums.append(c - before[:, cv.segment])
        per_curve = _curve_means(*sums, den[s:s + step][:, cv.segment], cv.segment, cv.starts, rec_thrs)  # (b', C)
        out[s:s + step, cv.thr, cv.of_block] = per_curve[:, cv.curve]
    return out, valid


@dataclass(frozen=True)
class Curves:
    """The distinct precision curves of the blocks, laid end to end (L detections in all).

    A block whose true/false positives are the same at several IoU thresholds (exact masks, clear
    misses) has one curve for all of them. ``image``, ``tp``, ``fp``, ``segment`` (L,); ``starts``,
    ``block`` (C,); ``thr``, ``of_block``, ``curve``: each (threshold, block) and the curve it reads.
    """

    image: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    segment: np.ndarray
    starts: np.ndarray
    block: np.ndarray
    thr: np.ndarray
    of_block: np.ndarray
    curve: np.ndarray


def _curves(bl: list[Block], t: int) -> Curves:
    image, tp, fp, block, sizes, thr, of_block, curve = [], [], [], [], [], [], [], []
    for j, blk in enumerate(bl):
        d = blk.tps.shape[1]
        if not d:
            continue
        uniq, inverse = np.unique(np.concatenate([blk.tps, blk.fps], axis=1), axis=0, return_inverse=True)
        for u, row in enumerate(uniq):
            ts = np.flatnonzero(inverse.reshape(-1) == u)
            thr += ts.tolist()
            of_block += [j] * len(ts)
            curve += [len(sizes)] * len(ts)
            image.append(blk.image)
            tp.append(row[:d])
            fp.append(row[d:])
            block.append(j)
            sizes.append(d)
    cat = lambda xs, dtype: np.concatenate(xs).astype(dtype) if xs else np.zeros(0, dtype)
    sizes = np.array(sizes, np.int64)
    return Curves(cat(image, np.int64), cat(tp, np.float64), cat(fp, np.float64),
                  np.repeat(np.arange(len(sizes)), sizes), np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
                  np.array(block, np.int64), np.array(thr, np.int64), np.array(of_block, np.int64),
                  np.array(curve, np.int64))


def weighted_precision(bl: list[Block], ev, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((B, T, K, A) precision averaged over recall thresholds, (B, K, A) valid) under (B, I) weights."""
    lay = layout(ev)
    prec = np.zeros((len(w), len(lay.iou_thrs), lay.n_cat, lay.n_area))
    valid = np.zeros((len(w), lay.n_cat, lay.n_area), bool)
    if bl:
        ks, as_ = np.array([blk.k for blk in bl]), np.array([blk.a for blk in bl])
        p, v = _precision(bl, w, lay.rec_thrs)
        prec[:, :, ks, as_], valid[:, ks, as_] = p, v
    return prec, valid


def weighted_recall(bl: list[Block], ev, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((B, T, K, A) recall, (B, K, A) valid) under (B, I) weights."""
    lay = layout(ev)
    rec = np.zeros((len(w), len(lay.iou_thrs), lay.n_cat, lay.n_area))
    valid = np.zeros((len(w), lay.n_cat, lay.n_area), bool)
    for blk in bl:
        npig = w @ blk.npig
        valid[:, blk.k, blk.a] = npig > 0
        rec[:, :, blk.k, blk.a] = (w @ blk.tp_image) / np.where(npig > 0, npig, 1.0)[:, None]
    return rec, valid


def _mean_valid(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(B,) percent mean of x (B, T', K) over thresholds and the valid (B, K) categories; NaN if none."""
    n = valid.sum(1) * x.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, 100.0 * (x * valid[:, None, :]).sum((1, 2)) / np.where(n > 0, n, 1), np.nan)


def replicate_chunk(ev, bl: list[Block], most: int = 1000) -> int:
    """Replicates per ``ap_summary`` call so that its (B, T, blocks) precision stays within ``MAX_CELLS``."""
    return max(1, min(most, MAX_CELLS // (len(layout(ev).iou_thrs) * max(1, len(bl)))))


def ap_summary(ev, bl: list[Block], w: np.ndarray) -> dict[str, np.ndarray]:
    """``coco_eval.COCO_AP_KEYS`` (each (B,), percent) under (B, I) image weights; for an LVISEval
    also ``ap_rare``, ``ap_common``, ``ap_frequent`` (its ``freq_groups`` of categories). Means over
    the blocks' own (B, T, n) precision, as ``summarize`` over the valid (category, area) entries."""
    names = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large"]
    names += ["ap_rare", "ap_common", "ap_frequent"] if hasattr(ev, "freq_groups") else []
    if not bl:
        return {k: np.full(len(w), np.nan) for k in names}
    lay = layout(ev)
    prec, valid = _precision(bl, w, lay.rec_thrs)
    ks, areas = np.array([blk.k for blk in bl]), np.array([blk.a for blk in bl])
    at = lambda t: np.flatnonzero(np.isclose(lay.iou_thrs, t))
    mean = lambda sel, ts=slice(None): _mean_valid(prec[:, ts][:, :, sel], valid[:, sel])
    every = areas == 0
    out = {"ap": mean(every), "ap50": mean(every, at(0.5)), "ap75": mean(every, at(0.75))}
    for a, name in enumerate(("ap_small", "ap_medium", "ap_large"), start=1):
        out[name] = mean(areas == a)
    for g, name in enumerate(("ap_rare", "ap_common", "ap_frequent")):
        if hasattr(ev, "freq_groups"):
            out[name] = mean(every & np.isin(ks, np.asarray(ev.freq_groups[g], np.int64)))
    return out


def ar_summary(ev, bl: list[Block], w: np.ndarray, keys: list[str]) -> dict[str, np.ndarray]:
    """AR per area range (each (B,), percent) of a class-agnostic evaluation, named by ``keys``."""
    rec, valid = weighted_recall(bl, ev, w)
    return {key: _mean_valid(rec[..., a], valid[..., a]) for a, key in enumerate(keys)}
