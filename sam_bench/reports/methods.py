"""Which paper row reports the model we ran: a model name matched with a paper row's ``method``.

A difference (ours minus paper) means something only against the same model: the same family
and the same size. ``sam_vit_h`` is the paper's "SAM ViT-H" (and the SAM paper's plain "SAM",
which is ViT-H throughout); ``sam_vit_b`` is not; GrabCut is no SAM at all, so no difference is
shown for it. A method the table does not know matches only a model of exactly that name.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# family -> pattern at the start of a (lower-case) name; most specific first
FAMILIES = (("hq-sam", r"hq[-_ ]?sam"), ("sam3", r"sam[-_ ]?3"), ("sam2", r"sam[-_ ]?2(?:\.1)?"),
            ("sam", r"sam"), ("sobel", r"sobel"), ("canny", r"canny"), ("felzenszwalb", r"felzenszwalb"),
            ("grabcut", r"grab[-_ ]?cut"), ("slic", r"slic"))
SIZED = {"sam": "h", "hq-sam": None, "sam2": None}  # families with sizes -> a paper row's size when unnamed
_SIZE = re.compile(r"(?:vit[-_ ]?|hiera[-_ ]?|[-_ ])(b\+|[tsblh])(?![a-z0-9])")
_END = r"(?![a-z0-9])"


class Identity(NamedTuple):
    """``family`` (None: a method this module does not know), ``size`` (vit h/l/b, hiera t/s/b+/l),
    ``extra``: the words left (a protocol variant such as "single output"), ``name``: the input."""

    family: str | None
    size: str | None
    extra: str
    name: str


def identify(name: str, variant: str | None = None) -> Identity:
    """The model a name denotes. ``variant``: a model option naming the size (``vit_h``, ``l``)."""
    low = re.sub(r"^hf[-_]", "", name.strip().lower())
    for family, pattern in FAMILIES:
        m = re.match(pattern + _END, low)
        if m:
            break
    else:
        return Identity(None, None, "", low)
    rest = low[m.end():]
    size = None
    if family in SIZED:
        found = (_SIZE.search(f" {variant.lower()}") if variant else None) or _SIZE.search(rest)
        size = found.group(1) if found else None
        rest = _SIZE.sub(" ", rest, count=1)
    extra = " ".join(re.sub(r"[-_()]+", " ", rest).split())
    return Identity(family, size, extra, low)


def same_model(ours: Identity, paper: Identity) -> bool:
    """True when ``paper`` reports the model ``ours`` names: same family and size (see module docstring);
    a sized model of ours whose size is unknown matches nothing."""
    if ours.family is None or paper.family is None:
        return ours.family is None and paper.family is None and ours.name == paper.name
    if ours.family != paper.family:
        return False
    if ours.family not in SIZED:
        return True
    paper_size = paper.size or SIZED[ours.family]  # the SAM paper's plain "SAM" is ViT-H
    return ours.size is not None and ours.size == paper_size


def matching_row(model: str, rows: list[dict], variant: str | None = None) -> dict | None:
    """The paper row (``{"method": ...}``) that reports ``model``, else None; of several, the one with
    the fewest extra words (plain "SAM" before "SAM single output"), then the first."""
    ours = identify(model, variant)
    found = [r for r in rows if same_model(ours, identify(str(r.get("method", ""))))]
    return min(found, key=lambda r: len(identify(str(r["method"])).extra.split()), default=None)
