"""Oracle grounder: the referred object's ground-truth box (an upper bound for any text grounder)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sam_bench.data.base import Item, Sample
from sam_bench.grounders.base import Grounder, Grounding, Query, mask_box


class OracleGrounder(Grounder):
    """Reads the answer from the annotation: box = the referred instance's mask box, XYXY
    (COCO convention, x1 = last column + 1), score 1. What is left is the model's box-to-mask error."""

    name = "oracle"

    def ground(self, model: Any, item: Item, sample: Sample, queries: list[Query]) -> list[Grounding]:
        out = []
        for q in queries:
            box = mask_box(q.instance.mask())
            out.append(Grounding.not_found("empty ground-truth mask") if box is None
                       else Grounding(score=1.0, box=np.asarray(box)))
        return out
