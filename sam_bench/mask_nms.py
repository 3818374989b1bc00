"""Bit-packed masks and greedy NMS by exact mask IoU: the pure tensor helpers of ``sam_bench.amg``."""

from __future__ import annotations

import torch

_BITS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_masks(masks: torch.Tensor) -> torch.Tensor:
    """(K, H, W) bool -> (K, ceil(H*W/8)) uint8, row-major bits (like ``np.packbits``)."""
    flat = masks.flatten(1).to(torch.uint8)  # flatten, unlike reshape(K, -1), accepts K = 0
    pad = (-flat.shape[1]) % 8
    if pad:
        flat = torch.nn.functional.pad(flat, (0, pad))
    return (flat.view(flat.shape[0], flat.shape[1] // 8, 8) * _BITS.to(flat.device)).sum(-1, dtype=torch.uint8)


def unpack_masks(packed: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of ``pack_masks``: (K, ceil(H*W/8)) uint8 -> (K, H, W) bool."""
    bits = (packed[..., None] & _BITS.to(packed.device)) != 0
    return bits.reshape(packed.shape[0], -1)[:, : h * w].reshape(-1, h, w)


def _iou_upper_bound(boxes_a, areas_a, boxes_b, areas_b) -> torch.Tensor:
    """(A, B) bound on mask IoU from inclusive-pixel XYXY boxes and areas: the intersection is at most
    min(box overlap, area_a, area_b)."""
    lt = torch.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    rb = torch.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    wh = (rb - lt + 1).clamp(min=0)
    inter = torch.minimum(wh[..., 0] * wh[..., 1], torch.minimum(areas_a[:, None], areas_b[None, :]))
    union = areas_a[:, None] + areas_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def _exact_iou(a: torch.Tensor, b: torch.Tensor, areas_a, areas_b) -> torch.Tensor:
    """(A, B) mask IoU of flattened 0/1 float rows via one matmul (exact: integer sums < 2**24 in fp32)."""
    inter = a @ b.T
    union = areas_a[:, None] + areas_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def mask_nms(packed: torch.Tensor, h: int, w: int, boxes: torch.Tensor, scores: torch.Tensor,
             thresh: float, block: int = 256) -> torch.Tensor:
    """Greedy NMS by exact mask IoU: indices kept, by decreasing score (ties: lower index first).

    A mask is dropped when its IoU with a kept, higher-scored mask exceeds ``thresh`` (the
    torchvision rule, on masks). Vectorised per block of candidates: each block is compared with
    the kept masks and within itself by matmul, only on pairs whose box/area bound can exceed
    ``thresh``, so cost grows with the number of near-duplicates, not with K squared.
    """
    k = packed.shape[0]
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=packed.device)
    dev = packed.device
    fdt = torch.float32 if h * w < 2 ** 24 else torch.float64
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes = boxes.to(dev, fdt)
    areas = torch.cat([unpack_masks(packed[i:i + 1024], h, w).flatten(1).sum(1) for i in range(0, k, 1024)]).to(fdt)
    kept_idx = torch.zeros(0, dtype=torch.long, device=dev)
    for start in range(0, k, block):
        rows = order[start:start + block]
        alive = torch.ones(len(rows), dtype=torch.bool, device=dev)
        rows_f = None
        if len(kept_idx):
            ub = _iou_upper_bound(boxes[rows], areas[rows], boxes[kept_idx], areas[kept_idx])
            cols = (ub > thresh).any(0).nonzero().squeeze(1)
            rr = (ub[:, cols] > thresh).any(1).nonzero().squeeze(1)
            if len(cols) and len(rr):
                rows_f = unpack_masks(packed[rows], h, w).flatten(1).to(fdt)
                kc = kept_idx[cols]
                iou = _exact_iou(rows_f[rr], unpack_masks(packed[kc], h, w).flatten(1).to(fdt), areas[rows[rr]], areas[kc])
                alive[rr[(iou > thresh).any(1)]] = False
        live = alive.nonzero().squeeze(1)
        ub = _iou_upper_bound(boxes[rows[live]], areas[rows[live]], boxes[rows[live]], areas[rows[live]])
        ub = torch.triu(ub > thresh, diagonal=1)
        inv = ub.any(0) | ub.any(1)
        sup = torch.zeros(len(live), len(live), dtype=torch.bool, device=dev)
        if inv.any():
            sub = inv.nonzero().squeeze(1)
            if rows_f is None:
                rows_f = unpack_masks(packed[rows], h, w).flatten(1).to(fdt)
            f = rows_f[live[sub]]
            iou = _exact_iou(f, f, areas[rows[live[sub]]], areas[rows[live[sub]]])
            sup[sub[:, None], sub[None, :]] = torch.triu(iou > thresh, diagonal=1)
        keep_live = _greedy(sup)
        new = rows[live[keep_live]]
        kept_idx = torch.cat([kept_idx, new])
    return kept_idx


def _greedy(sup: torch.Tensor) -> torch.Tensor:
    """Indices kept by greedy suppression on an upper-triangular (N, N) "i suppresses j" matrix."""
    n = sup.shape[0]
    removed = torch.zeros(n, dtype=torch.bool, device=sup.device)
    cand = sup.any(1).nonzero().squeeze(1).tolist()  # only rows that suppress something matter
    for i in cand:
        if not removed[i]:
            removed |= sup[i]
    return (~removed).nonzero().squeeze(1)
