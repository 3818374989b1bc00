"""The dataset catalog: one TOML card per dataset under ``datasets/`` (see ``datasets/README.md``).

A card names the dataset (plus aliases, matched case-insensitively), its tasks, domain, licence,
native format, download, how ``sam-bench datasets prepare`` turns the download into what a reader
takes, the opener arguments (``[open]``, paths relative to ``<data-root>/<Name>/``), per-split
overrides (``[splits.NAME]``) and the counts ``verify`` checks (``[expected]`` or
``[splits.NAME.expected]``). ``sa23 = true`` marks the paper's 23 single-point datasets; those
with more than 15k masks are subsampled to about 10k (whole images, seeded; ``subsample``).
"""

from __future__ import annotations

import difflib
import inspect
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sam_bench.config import data_root as resolve_root
from sam_bench.data.base import Dataset
from sam_bench.data.specs import accepted, adhoc_opener, open_adhoc
from sam_bench.errors import ConfigError

PATH_KEYS = ("ann_json", "image_dir", "mask_dir", "root")
SUBSAMPLE_THRESHOLD, SUBSAMPLE_TARGET = 15000, 10000
RUN_OPTIONS = ("split", "split_by", "subsample", "subsample_seed")  # applied where a dataset has them
CATALOG_OPTIONS = ("split", "subsample", "subsample_seed")  # taken by open_catalog itself, not the card's opener


def card_dirs() -> list[Path]:
    from sam_bench.config import preset_dirs

    return [d / "datasets" for d in preset_dirs()]


@lru_cache(maxsize=1)
def cards() -> dict[str, dict]:
    """{name: card dict}, in name order; ``card["path"]`` is the TOML file."""
    found: dict[str, dict] = {}
    for folder in card_dirs():
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else []:
            try:
                card = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: bad dataset card ({exc})") from None
            for key in ("name", "format", "tasks"):
                if key not in card:
                    raise ConfigError(f"{path}: dataset card lacks {key!r}")
            card["path"] = str(path)
            found.setdefault(card["name"], card)
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def _keys(card: dict) -> list[str]:
    return [card["name"].lower()] + [a.lower() for a in card.get("aliases", [])]


def find_card(name: str) -> dict | None:
    low = name.lower()
    for card in cards().values():
        if low in _keys(card):
            return card
    return None


def get_card(name: str) -> dict:
    """The card of a catalog name or alias; ``ConfigError`` with suggestions if unknown."""
    card = find_card(name)
    if card is None:
        known = list(cards())
        close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=3, cutoff=0.5)
        close = [k for k in known if k.lower() in close]
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown dataset {name!r}.{hint} Known: {', '.join(known)}, sa23, synthetic, or "
                          f"coco:ANN:IMAGES, lvis:ANN:IMAGES, folder:IMAGES:MASKS, bsds:ROOT, refcoco:ROOT.")
    return card


def sa23_names() -> list[str]:
    return [n for n, c in cards().items() if c.get("sa23")]


def dataset_dir(card: dict, root: str | Path | None) -> Path | None:
    """``<root>/<Name>`` matched case-insensitively against the name and aliases; None if absent."""
    if root is None:
        return None
    root = Path(root)
    if not root.is_dir():
        return None
    keys = _keys(card)
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() in keys:
            return child
    return None


def split_names(card: dict) -> list[str]:
    return list(card.get("splits", {})) or [card.get("split", "all")]


def default_split(card: dict) -> str:
    return card.get("default_split") or split_names(card)[0]


def open_args(card: dict, folder: Path, split: str | None) -> dict:
    """The opener's keyword arguments for one split, paths made absolute under ``folder``."""
    splits = card.get("splits", {})
    split = split or default_split(card)
    if splits and split not in splits:
        raise ConfigError(f"--split {split!r}: {card['name']} has splits {', '.join(splits)}")
    args = {**card.get("open", {}), **{k: v for k, v in splits.get(split, {}).items() if k != "expected"}}
    for key in PATH_KEYS:
        if key in args:
            args[key] = str(folder / args[key])
    return args


def expected(card: dict, split: str | None) -> dict:
    split = split or default_split(card)
    return dict(card.get("splits", {}).get(split, {}).get("expected", card.get("expected", {})))


def status(card: dict, root: str | Path | None, split: str | None = None) -> tuple[bool, str]:
    """(usable, explanation): folder found and the opener's paths exist?"""
    folder = dataset_dir(card, root)
    name = card["name"]
    if folder is None:
        return False, f"not found under {root} (expected a folder {name}/); see `sam-bench datasets prepare {name}`"
    args = open_args(card, folder, split)
    lacking = [args[k] for k in PATH_KEYS if k in args and not Path(args[k]).exists()]
    if lacking:
        if card.get("prepare", {}).get("converter"):
            return False, (f"{folder} is there but not converted ({lacking[0]} missing): run "
                           f"`sam-bench datasets prepare {name}`")
        return False, f"{folder} lacks {', '.join(lacking)}; see `sam-bench datasets prepare {name}`"
    return True, str(folder)


def subsample(ds: Dataset, *, threshold: int = SUBSAMPLE_THRESHOLD, target: int = SUBSAMPLE_TARGET,
              seed: int = 0) -> Dataset:
    """Cut a dataset with more than ``threshold`` masks to about ``target`` by sampling whole images.

    Images are drawn in a seeded random order until their masks (``item.meta["num_masks"]``) reach
    ``target``; kept items stay in dataset order. ``meta["sampled_image_ids"]`` records the choice
    (None when no cut was needed).
    """
    counts = np.array([it.meta.get("num_masks", 0) for it in ds.items], dtype=np.int64)
    total = int(counts.sum())
    ds.meta["subsample"] = {"threshold": threshold, "target": target, "seed": seed, "masks_before": total,
                            "images_before": len(ds.items)}
    if total <= threshold:
        ds.meta["sampled_image_ids"] = None
        ds.meta["subsample"]["masks_after"] = total
        return ds
    order = np.random.default_rng(seed).permutation(len(ds.items))
    cum = np.cumsum(counts[order])
    n_take = int(np.searchsorted(cum, target) + 1)
    keep = np.sort(order[:n_take])
    ds.items = [ds.items[i] for i in keep]
    ds.meta["sampled_image_ids"] = [it.id for it in ds.items]
    ds.meta["subsample"]["masks_after"] = int(counts[keep].sum())
    if "image_ids" in ds.meta:
        ds.meta["image_ids"] = [it.image_id for it in ds.items]
    return ds


def open_catalog(name: str, root: str | Path | None, split: str | None = None, subsample_masks: bool | None = None,
                 subsample_seed: int = 0, **options: Any) -> Dataset:
    """Open catalog dataset ``name`` (case-insensitive, aliases too) from ``<root>/<Name>/``.

    ``split``: one of the card's splits (default: its first). ``options`` override the card's
    opener arguments. ``subsample_masks`` (default: the card's ``subsample``) applies the paper's
    >15k -> ~10k mask cut, seeded by ``subsample_seed``.
    """
    from sam_bench import registry

    card = get_card(name)
    sub = options.pop("subsample", None)
    if subsample_masks is None:
        subsample_masks = bool(card.get("subsample", False) if sub is None else sub)
    if split is not None and not card.get("splits") and split != card.get("split", split):
        raise ConfigError(f"--split {split!r}: {card['name']} has one split, {card.get('split')!r}")
    ok, why = status(card, root, split if card.get("splits") else None)
    if not ok:
        raise ConfigError(f"dataset {card['name']}: {why}")
    folder = dataset_dir(card, root)
    args = {**open_args(card, folder, split if card.get("splits") else None), **options}
    opener = registry.get_format(card["format"])
    positional = [args.pop(k) for k in _positional(opener) if k in args]
    ds = opener(*positional, **args)
    ds.name = card["name"]
    ds.domain = card.get("domain", ds.domain)
    ds.meta.update(card=Path(card["path"]).name, split=split or default_split(card), license=card.get("license"))
    ds.meta["declared_absent"] = int(expected(card, split if card.get("splits") else None).get("missing_images", 0))
    if subsample_masks:
        subsample(ds, seed=subsample_seed)
    return ds


def _positional(opener) -> list[str]:
    return [p.name for p in inspect.signature(opener).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]


def expand(specs: list[str], data_root: str | Path | None) -> tuple[list[str], list[tuple[str, str]]]:
    """Expand ``sa23`` to the catalog's 23 present under the data root; report absent catalog names.

    Returns (specs to open, [(name, reason)] for requested catalog datasets that are not usable).
    Ad hoc ``format:...`` specs, ``synthetic`` and unknown names pass through (opening an unknown
    name raises the did-you-mean error).
    """
    from sam_bench import registry

    root = resolve_root(data_root)
    out: list[str] = []
    absent: list[tuple[str, str]] = []
    formats = set(registry.names("formats"))
    for spec in specs:
        names = sa23_names() if spec.lower() == "sa23" else [spec]
        for name in names:
            fmt = name.partition(":")[0]
            card = None if (":" in name and fmt in formats) or name == "synthetic" else find_card(name)
            if card is None:
                out.append(name)
                continue
            ok, why = status(card, root)
            if ok:
                out.append(card["name"])
            else:
                absent.append((card["name"], why))
    return list(dict.fromkeys(out)), absent


def open_dataset(spec: str, data_root: str | Path | None = None, **options: Any) -> Dataset:
    """A dataset from a catalog name or a ``format:path[:path]`` spec (``sam_bench.data.specs``)."""
    if adhoc_opener(spec) is not None:
        return open_adhoc(spec, **options)
    return open_catalog(spec, resolve_root(data_root), **options)


def spec_opener(spec: str) -> Callable | None:
    """The reader that opens ``spec``: its format's opener, a card's; None for an unknown name."""
    from sam_bench import registry

    opener = adhoc_opener(spec)
    card = None if opener is not None else find_card(spec)
    return opener if card is None else registry.get_format(card["format"])


def options_for(spec: str, data_options: dict[str, Any]) -> dict[str, Any]:
    """The run's data options that reach ``spec``, chosen by what its opener accepts (its signature).

    Catalog names also take the catalog's own ``split`` (cards with splits only; a single-split card
    ignores it), ``subsample`` and ``subsample_seed``; the rest reaches the card's opener the same way.
    """
    opts = {k: v for k, v in data_options.items() if v is not None}
    opener = spec_opener(spec)
    if opener is None:
        return {}
    card = None if adhoc_opener(spec) is not None else find_card(spec)
    if card is None:
        return accepted(opener, opts)
    own = {k: opts[k] for k in CATALOG_OPTIONS if k in opts and (k != "split" or card.get("splits"))}
    return {**accepted(opener, {k: v for k, v in opts.items() if k not in CATALOG_OPTIONS}), **own}


def open_for_run(specs: list[str], data_root: str | Path | None, data_options: dict[str, Any] | None = None
                 ) -> list[Dataset]:
    """Open every dataset of a run with its share of the run's data options (``options_for``).

    ``split``, ``split_by`` and the subsampling apply where a dataset has them; any other option
    (a reader's own, e.g. a folder mask ``threshold``) that no dataset of the run takes is a
    ``ConfigError`` naming it and the datasets.
    """
    opts = {k: v for k, v in (data_options or {}).items() if v is not None}
    taken = {k for spec in specs for k in options_for(spec, opts)}
    unused = sorted(set(opts) - taken - set(RUN_OPTIONS))
    if unused:
        raise ConfigError(f"data option {', '.join(map(repr, unused))}: no dataset of this run "
                          f"({', '.join(specs)}) takes it")
    out = []
    for spec in specs:
        mine = options_for(spec, opts)
        if ":" not in spec and find_card(spec) is not None:
            out.append(open_catalog(spec, resolve_root(data_root), split=mine.pop("split", None),
                                    subsample_masks=mine.pop("subsample", None),
                                    subsample_seed=mine.pop("subsample_seed", 0), **mine))
        else:
            out.append(open_dataset(spec, data_root, **mine))
    return out
