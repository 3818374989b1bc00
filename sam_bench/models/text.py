"""The text-promptable contract: models that segment from text themselves (SAM 3 and the like).

A model takes text when it implements ``TextPromptable`` on its current image (set by the runner):
``kinds`` contains "text" and ``predict_text(texts) -> list[TextMasks]``, one per text, where
``TextMasks.masks`` is (K, H, W) bool at the original image size and ``TextMasks.scores`` (K,) the
model's confidence that each mask is the referred object (K may be 0). ``TextModel`` is the base
class that fills in the rest of ``Model`` (kinds, counters, latency); ``--grounder native``
(``sam_bench.grounders.native``) drives any such model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import numpy as np

from sam_bench.models.base import Model, _Timed

if TYPE_CHECKING:  # torch loads on first use
    import torch


@dataclass
class TextMasks:
    """A text prompt's answer: ``masks`` (K, H, W) bool, ``scores`` (K,) float, any order."""

    masks: torch.Tensor
    scores: torch.Tensor


@runtime_checkable
class TextPromptable(Model, Protocol):
    """Kind "text": one ``TextMasks`` per expression on the image set last."""

    def predict_text(self, texts: list[str]) -> list[TextMasks]: ...


class TextModel(_Timed):
    """Base of text-promptable adapters: subclasses implement ``set_image`` and ``predict_text``."""

    kind: ClassVar[str] = "text"
    kinds: ClassVar[tuple[str, ...]] = ("text",)

    def set_image(self, image: np.ndarray, image_id: str | None = None) -> None:
        raise NotImplementedError

    def predict_text(self, texts: list[str]) -> list[TextMasks]:
        raise NotImplementedError
