"""Referring expressions (RefCOCO, RefCOCO+, RefCOCOg) in the ``refer`` toolkit layout.

``ROOT/<dataset>/refs(<split_by>).p`` (a pickled list of refs) + ``ROOT/<dataset>/instances.json``
(COCO 2014 train annotations of the referred objects); images in ``ROOT/images/mscoco/images/train2014``
(or ``ROOT/images/train2014``, ``ROOT/train2014``, ``ROOT/train2017``, or ``image_dir=``). One item per
image of the split; one ``Instance`` per ref, ``id`` = ref_id, ``texts`` = its expressions.
The refs pickle is read by ``RefsUnpickler``, which builds only lists, dicts, tuples, strings and
numbers and refuses every global (class or function), so a crafted file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from sam_bench.data.base import Dataset
from sam_bench.data.coco import check_coco_dict, instance_dataset, read_json
from sam_bench.errors import BadInput, ConfigError

DEFAULT_SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
IMAGE_DIRS = ("images/mscoco/images/train2014", "images/train2014", "train2014", "images/train2017", "train2017")


class RefsUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global: the refer-toolkit refs files hold only builtin
    containers and scalars (built by opcodes), so any class or function reference is foreign code."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refused global {module}.{name} (refs files hold only lists, dicts, "
                                     f"strings and numbers; nothing from this file was run)")


def load_refs_pickle(fh) -> Any:
    """``pickle.load(fh, encoding="latin1")`` without globals; ``pickle.UnpicklingError`` if one appears."""
    return RefsUnpickler(fh, encoding="latin1").load()


def read_refs(path: Path) -> list[dict]:
    """The refs list of a ``refs(*).p`` file (Python 2 pickles included); ``BadInput`` naming the file."""
    if not path.is_file():
        raise BadInput(f"{path}: refs file not found")
    try:
        with open(path, "rb") as fh:
            refs = load_refs_pickle(fh)
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError, KeyError,
            IndexError, TypeError, MemoryError) as exc:
        raise BadInput(f"{path}: cannot unpickle refs ({type(exc).__name__}: {exc})") from None
    need = {"ref_id", "ann_id", "image_id", "split", "sentences"}
    if not isinstance(refs, list):
        raise BadInput(f"{path}: not a refer-toolkit refs list (got {type(refs).__name__})")
    bad = next((i for i, r in enumerate(refs) if not isinstance(r, dict) or not need <= set(r)), None)
    if bad is not None:
        raise BadInput(f"{path}: ref #{bad} is not a refer-toolkit ref (need {', '.join(sorted(need))})")
    return refs


def _dataset_dir(root: Path, dataset: str) -> Path:
    if (root / dataset).is_dir():
        return root / dataset
    if list(root.glob("refs(*).p")):
        return root
    raise BadInput(f"{root}: no {dataset}/ folder with refs(*).p and instances.json")


def open_refcoco(root: str | Path, dataset: str = "refcoco", split_by: str | None = None, split: str = "val", *,
                 image_dir: str | Path | None = None, name: str | None = None, **_: Any) -> Dataset:
    """Items of one split (val, test, testA, testB, train) of a referring-expression dataset."""
    root = Path(root)
    dataset = dataset.lower()
    if dataset not in DEFAULT_SPLIT_BY:
        raise ConfigError(f"refcoco dataset {dataset!r}: choose one of {', '.join(DEFAULT_SPLIT_BY)}")
    split_by = split_by or DEFAULT_SPLIT_BY[dataset]
    folder = _dataset_dir(root, dataset)
    refs = read_refs(folder / f"refs({split_by}).p")
    splits = sorted({r["split"] for r in refs})
    if split not in splits:
        raise ConfigError(f"--split {split!r}: {folder / f'refs({split_by}).p'} has splits {', '.join(splits)}")
    inst_path = folder / "instances.json"
    data = read_json(inst_path)
    check_coco_dict(data, inst_path)
    anns = {a["id"]: a for a in data["annotations"]}
    chosen = [r for r in refs if r["split"] == split]
    lost = [r["ref_id"] for r in chosen if r["ann_id"] not in anns]
    if lost:
        raise BadInput(f"{inst_path}: refs {lost[:5]} point at annotations missing from this file")
    ref_anns = [{**anns[r["ann_id"]], "id": r["ref_id"], "ann_id": r["ann_id"],
                 "sentences": [s.get("sent", s.get("raw", "")) for s in r["sentences"]]} for r in chosen]
    wanted = {r["image_id"] for r in chosen}
    sub = {"images": [i for i in data["images"] if i["id"] in wanted], "annotations": ref_anns,
           "categories": data["categories"]}
    if image_dir is None:
        image_dir = next((root / d for d in IMAGE_DIRS if (root / d).is_dir()), None)
        if image_dir is None:
            raise BadInput(f"{root}: no COCO train2014 image folder (looked for {', '.join(IMAGE_DIRS)}); "
                           f"pass image_dir=")
    ds = instance_dataset(sub, image_dir, name=name or f"{dataset}-{split_by}-{split}", fmt="refcoco",
                          gt_json=None, texts_of=lambda a: a["sentences"], keep_empty_images=False)
    ds.domain = "natural images"
    ds.meta.update(dataset=dataset, split_by=split_by, split=split, num_refs=len(chosen),
                   num_sentences=sum(len(a["sentences"]) for a in ref_anns))
    return ds
