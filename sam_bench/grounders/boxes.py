"""Text-to-box grounder: boxes from a text-conditioned detector (Grounding DINO, OWL-ViT, ...), read from a file.

The detector runs elsewhere; its results file maps each expression's phrase id
(``"<item id>/<instance id>/<sentence index>"``, recorded as ``phrase`` in every run's
``items.jsonl``) to its boxes, XYXY in original-image pixels, and scores. Either a JSON object

    {"<phrase id>": {"boxes": [[x0, y0, x1, y1], ...], "scores": [0.9, ...], "text": "optional"}}

or a JSON list (or JSON Lines) of ``{"phrase_id": ..., "boxes": ..., "scores": ..., "text"?: ...}``.
Where ``text`` is given it must equal the expression (this catches files made for another split).
The top-scoring box prompts the model; an expression with no entry or no box is "not found".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sam_bench.data.base import Item, Sample
from sam_bench.errors import BadInput, ConfigError
from sam_bench.grounders.base import Grounder, Grounding, Query
from sam_bench.options import Options, option


def load_boxes_file(path: str | Path) -> dict[str, dict]:
    """{phrase id: {"boxes": (K, 4) float XYXY, "scores": (K,) float, "text": str | None}}; ConfigError naming the entry."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--boxes-file {path}: no such file")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--boxes-file {path}: neither JSON nor JSON Lines ({exc})") from None
    if isinstance(data, dict):
        entries = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        if any(not isinstance(e, dict) or "phrase_id" not in e for e in data):
            raise ConfigError(f"--boxes-file {path}: every list entry needs a 'phrase_id'")
        entries = [(str(e["phrase_id"]), e) for e in data]
    else:
        raise ConfigError(f"--boxes-file {path}: expected a JSON object or list, got {type(data).__name__}")
    out: dict[str, dict] = {}
    for pid, e in entries:
        if not isinstance(e, dict) or "boxes" not in e:
            raise ConfigError(f"--boxes-file {path}: entry {pid!r} has no 'boxes'")
        try:
            boxes = np.asarray(e["boxes"], dtype=np.float64).reshape(-1, 4) if len(e["boxes"]) else np.zeros((0, 4))
            scores = np.asarray(e.get("scores", [1.0] * len(boxes)), dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ConfigError(f"--boxes-file {path}: entry {pid!r}: boxes must be [x0, y0, x1, y1] numbers and "
                              f"scores numbers") from None
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise ConfigError(f"--boxes-file {path}: entry {pid!r} has a box or score that is not a finite number")
        if len(scores) != len(boxes):
            raise ConfigError(f"--boxes-file {path}: entry {pid!r} has {len(boxes)} boxes but {len(scores)} scores")
        if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
            raise ConfigError(f"--boxes-file {path}: entry {pid!r} has a box with x1 < x0 or y1 < y0 (want XYXY)")
        if pid in out:
            raise ConfigError(f"--boxes-file {path}: phrase id {pid!r} appears twice")
        out[pid] = {"boxes": boxes, "scores": scores, "text": e.get("text")}
    return out


@dataclass(frozen=True)
class BoxesFileOptions(Options):
    """The boxes file's path (read when the grounder is built)."""

    boxes_file: str | None = option(None, "for --grounder boxes-from: JSON {phrase id: {boxes: [[x0,y0,x1,y1],...], "
                                    "scores: [...]}}, phrase id = '<item>/<instance>/<sentence index>' (see "
                                    "items.jsonl)", metavar="PATH")

    def __post_init__(self):
        if not self.boxes_file:
            raise ConfigError("--grounder boxes-from needs --boxes-file PATH (phrase id -> boxes, scores)")
        self.normalise(boxes_file=str(Path(self.boxes_file).expanduser().resolve()))


class BoxesFromFile(Grounder):
    """The detector's top box per expression (option ``boxes_file``)."""

    name = "boxes-from"
    Options = BoxesFileOptions

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.path = Path(self.options.boxes_file)
        self.entries = load_boxes_file(self.path)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "boxes_file": str(self.path), "num_phrases": len(self.entries)}

    def ground(self, model: Any, item: Item, sample: Sample, queries: list[Query]) -> list[Grounding]:
        out = []
        for q in queries:
            e = self.entries.get(q.phrase_id)
            if e is None:
                out.append(Grounding.not_found("no entry in the boxes file"))
                continue
            if e["text"] is not None and e["text"].strip() != q.text.strip():
                raise BadInput(f"{self.path}: phrase {q.phrase_id!r} is {e['text']!r} there but {q.text!r} in the "
                               f"dataset (a file made for another dataset or split?)")
            if not len(e["boxes"]):
                out.append(Grounding.not_found("the detector returned no box"))
                continue
            top = int(np.argmax(e["scores"]))
            out.append(Grounding(score=float(e["scores"][top]), box=e["boxes"][top],
                                 extra={"num_boxes": len(e["boxes"])}))
        return out
