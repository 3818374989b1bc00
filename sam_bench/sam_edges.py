"""The SAM edge map (paper section 7.2, appendix D.2) from automatically generated masks.

For each mask k of a ``MaskSet`` (``keep_logits=True``): the Sobel gradient magnitude of its
unthresholded probability map sigmoid(logits_k), kept only on the mask's boundary pixels; then
the pixel-wise maximum over masks, divided by its maximum so the map spans [0, 1]. The edge NMS
comes after (the task applies it to every model alike).

"Boundary pixels" (the paper says "outer boundary"; its code was not released) is a documented
choice: ``boundary="inside"`` (default) takes the mask's own pixels with a 4-neighbour outside it
(mask minus its erosion), ``"outside"`` the background pixels with a 4-neighbour in the mask
(dilation minus mask). Pixels beyond the image count as outside the mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BOUNDARIES = ("inside", "outside")
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(prob: torch.Tensor) -> torch.Tensor:
    """(K, H, W) float -> (K, H, W) 3x3 Sobel gradient magnitude, replicated borders."""
    k = torch.stack([_SOBEL_X, _SOBEL_X.T]).to(prob)[:, None]  # (2, 1, 3, 3)
    g = F.conv2d(F.pad(prob[:, None], (1, 1, 1, 1), mode="replicate"), k)
    return torch.sqrt(g[:, 0] ** 2 + g[:, 1] ** 2)


def mask_boundary(masks: torch.Tensor, side: str = "inside") -> torch.Tensor:
    """(K, H, W) bool -> (K, H, W) bool boundary pixels (4-connectivity; see module docstring)."""
    if side not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {side!r}")
    m = masks[:, None].float()
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]], device=m.device)[None, None]
    if side == "inside":
        eroded = F.conv2d(F.pad(m, (1, 1, 1, 1), value=0.0), cross) >= 5  # all five pixels of the cross inside
        return masks & ~eroded[:, 0]
    dilated = F.conv2d(F.pad(m, (1, 1, 1, 1), value=0.0), cross) > 0
    return dilated[:, 0] & ~masks


def edge_map_from_logits(logits: torch.Tensor, threshold: float = 0.0, boundary: str = "inside",
                         chunk: int = 64) -> torch.Tensor:
    """(K, H, W) mask logits -> (H, W) float32 edge map in [0, 1] (before edge NMS).

    Masks are ``logits > threshold``; K = 0 gives an all-zero map. Processed ``chunk`` masks at a
    time to bound memory.
    """
    if logits.ndim != 3:
        raise ValueError(f"logits must be (K, H, W), got {tuple(logits.shape)}")
    out = torch.zeros(logits.shape[1:], dtype=torch.float32, device=logits.device)
    for s in range(0, logits.shape[0], chunk):
        lg = logits[s:s + chunk].float()
        resp = sobel_magnitude(torch.sigmoid(lg))
        resp = torch.where(mask_boundary(lg > threshold, boundary), resp, torch.zeros_like(resp))
        out = torch.maximum(out, resp.amax(0))
    top = out.max() if out.numel() else out.new_zeros(())
    return out / top if top > 0 else out


def sam_edge_map(mask_set, threshold: float = 0.0, boundary: str = "inside") -> torch.Tensor:
    """The edge map of a ``sam_bench.amg.MaskSet`` generated with ``keep_logits=True``."""
    if mask_set.logits is None:
        raise ValueError("the MaskSet has no logits: generate it with AMGConfig(keep_logits=True)")
    return edge_map_from_logits(mask_set.logits, threshold, boundary)
