"""What a run read, from content: the identity that resume checks so a changed input never yields a stale number.

A dataset's fingerprint holds its resolved root, a digest of its item ids, the count, total size
and a digest of (path, size, mtime) of every file its items name (images, masks, ground-truth
files), the sha256 of each annotation file, and a digest of its reader options. Option files of a
task (``--boxes``, detections) are fingerprinted by sha256. ``changes`` says, in words, what
differs between two fingerprints.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from sam_bench.data.base import Dataset

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (cached per process by path, size and mtime)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        with open(path, "rb") as fh:
            _SHA_CACHE[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _SHA_CACHE[key]


def _digest(lines: Iterable[str]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()[:16]


def _item_files(ds: Dataset) -> list[Path]:
    """Every file the items name: the image and each ``*_path`` meta entry (a mask, a GT file)."""
    files: list[Path] = []
    for it in ds.items:
        if it.image_path is not None:
            files.append(Path(it.image_path))
        files += [Path(v) for k, v in it.meta.items() if k.endswith("_path") and isinstance(v, (str, Path))]
    return files


def listing(files: Iterable[Path]) -> dict:
    """{"files", "bytes", "digest"} of (path, size, mtime_ns); a missing file counts as size -1."""
    rows, total, n = [], 0, 0
    for p in files:
        try:
            st = os.stat(p)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, 0
        rows.append(f"{p}\t{size}\t{mtime}")
        total += max(size, 0)
        n += 1
    return {"files": n, "bytes": total, "digest": _digest(rows)}


def _annotation_files(ds: Dataset) -> list[Path]:
    found = [Path(ds.gt_json)] if ds.gt_json else []
    for key, value in ds.meta.items():
        if isinstance(value, (str, Path)) and key.endswith(("json", "_file", "_path")) and os.path.isfile(value):
            found.append(Path(value))
    return list(dict.fromkeys(found))


def fingerprint(ds: Dataset) -> dict:
    """The content identity of an opened dataset (see module docstring)."""
    meta = json.dumps(ds.meta, sort_keys=True, default=str)
    return {
        "name": ds.name,
        "format": ds.format,
        "root": str(Path(ds.root).resolve()) if ds.root else None,
        "items": len(ds.items),
        "item_ids": _digest(str(it.id) for it in ds.items),
        "listing": listing(_item_files(ds)),
        "annotations": {str(p.resolve()): sha256_file(p) for p in _annotation_files(ds)},
        "options": _digest([meta]),
    }


def option_files(config: dict) -> dict:
    """{option: {"path", "sha256"}} for task options that name an existing file (``--boxes``, ...)."""
    out = {}
    for key, value in sorted(config.items()):
        if isinstance(value, (str, Path)) and value and os.path.isfile(value):
            out[key] = {"path": str(Path(value).resolve()), "sha256": sha256_file(value)}
    return out


def changes(old: dict, new: dict) -> list[str]:
    """What differs between two run-input records (``{"datasets": {id: fp}, "files": {...}}``), in words."""
    out: list[str] = []
    old_ds, new_ds = old.get("datasets", {}), new.get("datasets", {})
    for name in sorted(old_ds.keys() | new_ds.keys()):
        a, b = old_ds.get(name), new_ds.get(name)
        if a is None or b is None:
            out.append(f"dataset {name} {'added' if a is None else 'removed'}")
            continue
        if a.get("root") != b.get("root"):
            out.append(f"dataset {name}: root {a.get('root')} -> {b.get('root')}")
        if a.get("items") != b.get("items") or a.get("item_ids") != b.get("item_ids"):
            out.append(f"dataset {name}: items changed ({a.get('items')} -> {b.get('items')})")
        la, lb = a.get("listing", {}), b.get("listing", {})
        if la != lb:
            out.append(f"dataset {name}: image/mask files changed ({la.get('files')} files, {la.get('bytes')} "
                       f"bytes -> {lb.get('files')} files, {lb.get('bytes')} bytes, or newer mtimes)")
        for path in sorted(a.get("annotations", {}).keys() | b.get("annotations", {}).keys()):
            ha, hb = a.get("annotations", {}).get(path), b.get("annotations", {}).get(path)
            if ha != hb:
                out.append(f"dataset {name}: annotation file {path} changed (sha256 {str(ha)[:12]} -> "
                           f"{str(hb)[:12]})")
        if a.get("options") != b.get("options") and a.get("format") == b.get("format"):
            out.append(f"dataset {name}: reader options changed")
    of, nf = old.get("files", {}), new.get("files", {})
    for key in sorted(of.keys() | nf.keys()):
        if of.get(key) != nf.get(key):
            fa, fb = of.get(key) or {}, nf.get(key) or {}
            out.append(f"option {key}: file {fa.get('path') or fb.get('path')} changed (sha256 "
                       f"{str(fa.get('sha256'))[:12]} -> {str(fb.get('sha256'))[:12]})")
    return out
