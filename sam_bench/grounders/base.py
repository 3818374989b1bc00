"""The grounder contract: referring expressions of one image -> prompts (or masks) for the model.

A grounder turns text into something a promptable model can segment from. The text-to-mask
task builds one from its options (``build_grounder(name, config)``), then for each image calls

    groundings = grounder.ground(model, item, sample, queries)

once, with every referring expression of that image (so per-image work, such as generating and
embedding candidate masks, is done once). The model's image is already set. Each ``Grounding``
holds a box and/or points for the model to decode, or a final mask, or nothing (not found).

Grounders are plugins: entry-point group ``sam_bench.grounders`` (``clip``, ``boxes-from``,
``native``, ``oracle``), looked up with ``sam_bench.registry.get("grounders", name)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from sam_bench.data.base import Instance, Item, Sample
from sam_bench.errors import ConfigError
from sam_bench.options import Options


@dataclass
class Query:
    """One referring expression: ``text`` refers to ``instance``; ``phrase_id`` names it in files
    (``"<item id>/<instance id>/<sentence index>"``, see ``phrase_id``)."""

    phrase_id: str
    text: str
    instance: Instance
    index: int = 0


def phrase_id(item_id: str, instance_id: Any, index: int) -> str:
    """The stable name of an expression: ``"<item id>/<instance id>/<sentence index>"``."""
    return f"{item_id}/{instance_id}/{index}"


@dataclass
class Grounding:
    """Where the grounder found the referred object, in original-image pixels.

    ``box``: (4,) XYXY; ``points``: (N, 2) (X, Y) with ``labels`` (N,) 1 foreground / 0
    background: prompts the task decodes with the model (box and points may come together).
    ``mask``: (H, W) bool, a final mask when there is no prompt (e.g. the best CLIP candidate).
    Nothing at all: not found (scored as an empty mask). ``score``: the grounder's confidence.
    ``extra``: small JSON-ready facts recorded with the expression (candidate count, rank...).
    """

    score: float = float("nan")
    box: np.ndarray | None = None
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    mask: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float64).reshape(4)
            if self.box[2] < self.box[0] or self.box[3] < self.box[1]:
                raise ValueError(f"grounding box {self.box.tolist()} is not XYXY (x1 < x0 or y1 < y0)")
        if self.points is not None:
            self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
            self.labels = (np.ones(len(self.points), np.int64) if self.labels is None
                           else np.asarray(self.labels, dtype=np.int64).reshape(-1))
            if self.labels.shape != (len(self.points),):
                raise ValueError(f"grounding has {len(self.points)} points but {self.labels.shape} labels")
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)

    @property
    def prompt(self) -> str:
        """What the model is asked with: "box", "points", "box+points", "mask" (no model call) or "none"."""
        parts = [k for k, v in (("box", self.box), ("points", self.points)) if v is not None]
        if parts:
            return "+".join(parts)
        return "mask" if self.mask is not None else "none"

    @classmethod
    def not_found(cls, reason: str) -> "Grounding":
        return cls(score=float("nan"), extra={"not_found": reason})


class Grounder:
    """Subclass: set ``name``, declare your options (``Options``), implement ``ground``.

    ``Options``: a frozen dataclass (``sam_bench.options``) of the task-config keys this grounder
    reads; the text-to-mask task offers them as its own flags and records them in its config.
    ``needs_model_kinds``: model kinds this grounder can drive (the task refuses other models).
    Building a grounder loads what its options name (the task's ``setup`` does it, once).
    """

    name: ClassVar[str] = ""
    needs_model_kinds: ClassVar[tuple[str, ...]] = ("promptable",)
    Options: ClassVar[type[Options]] = Options

    def __init__(self, config: dict[str, Any]):
        self.options = self.check_options(config)
        self.config = config

    @classmethod
    def check_options(cls, config: dict[str, Any]) -> Options:
        """This grounder's options from the task config (keys it does not declare left out), checked
        without reading a file: the task calls it when it is created, before the model is built."""
        own = {f.name for f in fields(cls.Options)}
        return cls.Options.build({k: v for k, v in config.items() if k in own}, f"--grounder {cls.name}")

    def ground(self, model: Any, item: Item, sample: Sample, queries: list[Query]) -> list[Grounding]:
        """One ``Grounding`` per query, in order, for the image the model holds (``sample.image``)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Facts recorded in results about this grounder (checkpoint hashes...)."""
        return {"name": self.name}


def grounder_class(name: str) -> type[Grounder]:
    """The Grounder subclass registered as ``name`` (entry-point group ``sam_bench.grounders``)."""
    from sam_bench import registry

    cls = registry.get("grounders", name)
    if not (isinstance(cls, type) and issubclass(cls, Grounder)):
        raise ConfigError(f"grounder {name!r} is registered as {cls!r}, which is not a Grounder subclass")
    return cls


def build_grounder(name: str, config: dict[str, Any]) -> Grounder:
    """The grounder registered as ``name``, built from ``config`` (the task's options)."""
    return grounder_class(name)(config)


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """(4,) XYXY box of a (H, W) bool mask, COCO convention (x1 = last column + 1); None if empty."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def mask_center(mask: np.ndarray) -> np.ndarray | None:
    """(2,) (X, Y) of the pixel farthest from the mask's boundary (the paper's "center" click); None if empty."""
    from sam_bench.metrics.clicks import center_click

    if not mask.any():
        return None
    click = center_click(mask)
    return np.array([click.x, click.y], dtype=np.float64)
