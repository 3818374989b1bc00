"""Native text prompts: the hook for models that segment from text themselves (SAM 3 and the like).

A model takes text directly when it implements the ``TextPromptable`` protocol on its current
image (set by the runner):

    model.kinds  contains "text"
    model.predict_text(texts: list[str]) -> list[TextMasks]   # one per text

where ``TextMasks.masks`` is (K, H, W) bool at the original image size and ``TextMasks.scores``
(K,) the model's confidence that each mask is the referred object (K may be 0). The grounder
takes the highest-scoring mask as the answer. ``sam_bench.models.sam3`` adapts transformers'
``Sam3Model`` (model name ``sam3``); any other text-promptable model needs only this method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sam_bench.data.base import Item, Sample
from sam_bench.errors import SamBenchError
from sam_bench.grounders.base import Grounder, Grounding, Query

if TYPE_CHECKING:
    import torch


@dataclass
class TextMasks:
    """A text prompt's answer: ``masks`` (K, H, W) bool, ``scores`` (K,) float, any order."""

    masks: torch.Tensor
    scores: torch.Tensor


@runtime_checkable
class TextPromptable(Protocol):
    def predict_text(self, texts: list[str]) -> list[TextMasks]:
        ...


class NativeTextGrounder(Grounder):
    """The model's own best mask for each expression (no separate grounding step)."""

    name = "native"
    needs_model_kinds = ("text",)

    def ground(self, model: Any, item: Item, sample: Sample, queries: list[Query]) -> list[Grounding]:
        if not isinstance(model, TextPromptable):
            raise SamBenchError(f"--grounder native: model {model.info.name!r} has no predict_text(texts) method")
        if not queries:
            return []
        answers = model.predict_text([q.text for q in queries])
        if len(answers) != len(queries):
            raise SamBenchError(f"{model.info.name}.predict_text returned {len(answers)} answers for {len(queries)} texts")
        h, w = sample.image.shape[:2]
        out = []
        for ans in answers:
            if ans.masks.shape[1:] != (h, w) or ans.masks.shape[0] != ans.scores.shape[0]:
                raise SamBenchError(f"{model.info.name}.predict_text: masks {tuple(ans.masks.shape)} and scores "
                                    f"{tuple(ans.scores.shape)} do not fit a {w}x{h} image")
            if not len(ans.scores):
                out.append(Grounding.not_found("the model returned no mask"))
                continue
            k = int(ans.scores.argmax())
            out.append(Grounding(score=float(ans.scores[k]), mask=ans.masks[k].cpu().numpy(),
                                 extra={"num_masks": int(len(ans.scores))}))
        return out
