"""What every dataset gives: items of one image each, loaded lazily.

``Dataset.items`` is a cheap list of ``Item`` (ids and file paths only); ``Item.load()`` reads the
image and its annotations into a ``Sample`` and raises ``BadInput`` (naming the file) when it
cannot, which the runner records as a skip. Masks stay as pycocotools RLE until a metric needs
pixels (``Instance.mask()``).

A dataset is named by a catalog name (``GrabCut``, ``BSDS500``, ...; case-insensitive), found as
``<data-root>/<Name>/``, or ad hoc by format and paths: ``coco:ANN.json:IMAGES``,
``lvis:ANN.json:IMAGES``, ``folder:IMAGES:MASKS``, ``bsds:ROOT``, ``refcoco:ROOT``,
``synthetic[:N]``. Formats are plugins (entry-point group ``sam_bench.formats``).

After the positional paths an ad hoc spec takes ``key=value`` options of its opener, e.g.
``folder:IMAGES:MASKS:threshold=0:ignore=255`` or ``synthetic:8:seed=3``; values that look like an
int, float, bool (true/false) or none become one. Unknown keys are a ``ConfigError`` listing the
opener's keys. A path that itself looks like ``key=value`` must be written ``./key=value``.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sam_bench.errors import BadInput, ConfigError

_OPTION = re.compile(r"^([A-Za-z_]\w*)=(.*)$")


@dataclass
class Instance:
    """One annotated object. ``rle``: pycocotools RLE dict (counts as str or bytes), image-sized."""

    id: int | str
    rle: dict
    category_id: int | None = None
    iscrowd: bool = False
    area: float | None = None
    bbox: list[float] | None = None  # XYWH, COCO convention
    texts: list[str] = field(default_factory=list)  # referring expressions / descriptions

    def mask(self) -> np.ndarray:
        """(H, W) bool."""
        from pycocotools import mask as mask_utils

        return mask_utils.decode(self.rle).astype(bool)


@dataclass
class Sample:
    """A loaded item: the image and whatever annotations the format has."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    instances: list[Instance] = field(default_factory=list)
    ignore: np.ndarray | None = None  # (H, W) bool, pixels excluded from IoU (GrabCut band, crowd)
    boundaries: list[np.ndarray] | None = None  # per annotator (H, W) bool, edge datasets
    segmentations: list[np.ndarray] | None = None  # per annotator (H, W) int labels, edge datasets


@dataclass
class Item:
    """One image of a dataset, not yet loaded. ``id`` is unique within its dataset."""

    id: str
    loader: Callable[["Item"], Sample]
    image_path: Path | None = None
    image_id: int | None = None  # the COCO/LVIS image id where there is one
    height: int | None = None
    width: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Sample:
        return self.loader(self)


@dataclass
class Dataset:
    """A named list of items plus metadata.

    ``categories``: {id: {"name", "frequency"?}}; ``gt_json``: path of a COCO/LVIS-style JSON for
    evaluators that read it; ``missing``: items listed by the annotations whose image is absent,
    as {"item": id, "reason": str} (reported as skips, never silently dropped); ``gt``: the
    ground truth that passed the open-time checks (``sam_bench.data.validate.CheckedGT``), which
    evaluators score instead of the raw file (None: the format has no such checks).
    """

    name: str
    items: list[Item]
    format: str
    root: Path | None = None
    domain: str | None = None
    categories: dict[int, dict] = field(default_factory=dict)
    gt_json: Path | None = None
    missing: list[dict] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    gt: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.items)


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; ``BadInput`` naming the file if it is missing or cannot be decoded."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: image file is missing")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise BadInput(f"{path}: cannot decode image (corrupt or not an image)")
    return np.ascontiguousarray(img[:, :, ::-1])


def open_dataset(spec: str, data_root: str | Path | None = None, **options: Any) -> Dataset:
    """A dataset from a catalog name or a ``format:path[:path]`` spec (see module docstring)."""
    from sam_bench import registry
    from sam_bench.config import data_root as resolve_root
    from sam_bench.data import catalog

    fmt, sep, _ = spec.partition(":")
    if sep and fmt in registry.names("formats"):
        opener = registry.get_format(fmt)
        positional, given = split_spec(spec)
        merged = merge_options(spec, opener, given, options)
        check_arguments(spec, opener, positional, merged)
        return opener(*positional, **merged)
    if spec in registry.names("formats") and spec == "synthetic":
        return registry.get_format("synthetic")(**options)
    return catalog.open_catalog(spec, resolve_root(data_root), **options)


def spec_value(text: str) -> Any:
    """A spec option's value: ``"3"`` -> 3, ``"0.5"`` -> 0.5, true/false -> bool, none/null -> None, else text
    (so are nan and inf)."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return value if np.isfinite(value) else text
    return text


def split_spec(spec: str) -> tuple[list[str], dict[str, Any]]:
    """``format:a:b:k=v`` -> (["a", "b"], {"k": v}); ``ConfigError`` on a path after an option or a repeated key."""
    positional: list[str] = []
    options: dict[str, Any] = {}
    _, _, rest = spec.partition(":")
    for part in rest.split(":") if rest else []:
        m = _OPTION.match(part)
        if m is None and options:
            raise ConfigError(f"dataset {spec!r}: {part!r} comes after key=value options; put the paths first")
        if m is None:
            positional.append(part)
        elif m.group(1) in options:
            raise ConfigError(f"dataset {spec!r}: option {m.group(1)!r} given twice")
        else:
            options[m.group(1)] = spec_value(m.group(2))
    return positional, options


def option_keys(opener: Callable) -> list[str] | None:
    """The keyword options an opener takes (parameters with a default); None if it has no signature."""
    try:
        params = inspect.signature(opener).parameters.values()
    except (TypeError, ValueError):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty]


def merge_options(spec: str, opener: Callable, given: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The spec's options checked against the opener's keys, merged with caller ``options``.

    ``ConfigError`` for an unknown key (listing the valid ones) or a key the caller set differently.
    """
    keys = option_keys(opener)
    unknown = [k for k in given if keys is not None and k not in keys]
    if unknown:
        raise ConfigError(f"dataset {spec!r}: unknown option {', '.join(map(repr, unknown))}; "
                          f"{spec.partition(':')[0]} takes {', '.join(keys) or 'no options'}")
    clash = [k for k in given if k in options and options[k] != given[k]]
    if clash:
        key = clash[0]
        raise ConfigError(f"dataset {spec!r}: {key}={given[key]!r} in the spec but {options[key]!r} from the task "
                          f"options; set it once, with --{key.replace('_', '-')}")
    return {**options, **given}


def check_arguments(spec: str, opener: Callable, positional: list[str], options: dict[str, Any]) -> None:
    """``ConfigError`` naming the spec when its parts do not fit the opener (too few/many paths, a key twice)."""
    try:
        signature = inspect.signature(opener)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*positional, **options)
    except TypeError as exc:
        raise ConfigError(f"dataset {spec!r}: {exc}") from None
