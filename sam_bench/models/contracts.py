"""The written contracts between models and the runner: what a result records about a model
(``ModelInfo``), what a promptable model returns (``Prediction``), and one ``typing.Protocol`` per
kind of model (``Model``, ``Promptable``, ``EdgeDetector``, ``MaskProposer``; the text kind is in
``models/text.py``). The base classes in ``models/base.py`` implement them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:  # torch loads on first use
    import torch


@dataclass
class ModelInfo:
    """What results record about a model."""

    name: str
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    untrained: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        sha = "untrained" if self.untrained else self.checkpoint_sha256
        return {"name": self.name, "checkpoint": self.checkpoint, "checkpoint_sha256": sha,
                "untrained": self.untrained, **self.extra}


@dataclass
class Prediction:
    """Decoder output for B prompts with M masks each (M = 3 multimask, 1 single), torch tensors.

    ``logits``: (B, M, H, W) float, full image resolution; mask = logits > ``threshold``.
    ``iou_scores``: (B, M) predicted IoU, or None for a model that has none (then ``best`` takes
    the first mask, and automatic mask generation, which ranks by it, refuses the model).
    ``low_res_logits``: (B, M, 256, 256) to feed back as a mask prompt, or None (then the tasks'
    mask-prompt steps, such as box refinement and ``--feed-logits``, are not applied and say so).
    """

    logits: torch.Tensor
    iou_scores: torch.Tensor | None = None
    low_res_logits: torch.Tensor | None = None
    threshold: float = 0.0

    @property
    def masks(self) -> torch.Tensor:
        return self.logits > self.threshold

    def __len__(self) -> int:
        return self.logits.shape[0]

    def select(self, index: torch.Tensor) -> "Prediction":
        """One mask per prompt: ``index`` (B,) picks along M; M becomes 1."""
        import torch

        b = torch.arange(len(self), device=self.logits.device)
        index = index.to(self.logits.device)
        pick = lambda t: None if t is None else t[b, index.to(t.device)][:, None]
        return Prediction(self.logits[b, index][:, None], pick(self.iou_scores), pick(self.low_res_logits),
                          self.threshold)

    def best(self) -> "Prediction":
        """The mask with the highest predicted IoU for each prompt (the first mask without scores)."""
        import torch

        if self.iou_scores is None:
            return self.select(torch.zeros(len(self), dtype=torch.long))
        return self.select(self.iou_scores.argmax(dim=1))

    @staticmethod
    def cat(parts: list["Prediction"]) -> "Prediction":
        import torch

        join = lambda ts: None if any(t is None for t in ts) else torch.cat(ts)
        return Prediction(torch.cat([p.logits for p in parts]), join([p.iou_scores for p in parts]),
                          join([p.low_res_logits for p in parts]), parts[0].threshold)


@runtime_checkable
class Model(Protocol):
    """What the runner calls on every model, of any kind; every base class here provides all of it."""

    info: ModelInfo
    kind: str  # the main kind, named in messages
    kinds: tuple[str, ...]  # every kind it serves: "promptable", "text", "edges", "proposals"
    device: torch.device
    encoder_calls: int  # calls and seconds inside the model (the runner's encoder/decoder stages)
    decoder_calls: int
    encoder_seconds: float
    decoder_seconds: float

    def set_image(self, image: np.ndarray, image_id: str | None = None) -> None: ...

    def latency(self) -> dict: ...


@runtime_checkable
class Promptable(Model, Protocol):
    """Kind "promptable": masks from point / box / mask-logit prompts on the image set last."""

    mask_threshold: float
    prompt_batch: int | None
    needs_previous_mask: bool  # its protocol feeds the previous mask back with each click (RITM)

    def predict(self, points: Any = None, labels: Any = None, boxes: Any = None, mask_input: Any = None,
                multimask: bool = True, batch_size: int | None = None) -> Prediction: ...

    def predict_refined(self, boxes: Any = None, points: Any = None, labels: Any = None,
                        refine: bool = True) -> tuple[Prediction, bool]: ...


@runtime_checkable
class EdgeDetector(Model, Protocol):
    """Kind "edges": ``edge_map()`` (H, W) float32 in [0, 1] of the image set last."""

    def edge_map(self) -> np.ndarray: ...


@runtime_checkable
class MaskProposer(Model, Protocol):
    """Kind "proposals": ``propose(max_masks)`` -> (K, H, W) bool masks, (K,) scores, best first."""

    def propose(self, max_masks: int = 1000) -> tuple[np.ndarray, np.ndarray]: ...
