"""List models; download and verify official checkpoints (``sam-bench models list|download|verify``).

Every official checkpoint is listed in ``CHECKPOINTS`` with its file name, URL and the hash we
can check it against. A note on the hex suffix of Meta's SAM v1 names (``sam_vit_h_4b8939.pth``):
it is the start of the file's **MD5**, not of its sha256 (published MD5 4b8939a8...; sha256
a7bf3b02...). We therefore check the full sha256 where it is published, else the MD5 prefix from
the name, and refuse a file that fails either, naming the file, the expected and the actual hash.
A file with no published hash (SAM 2.1, HQ-SAM, TinySAM, EfficientViT-SAM) is *unverified*: it loads with its
sha256 recorded and a warning, and is refused if it changed since its download record was written.

Downloads go to ``<cache>/checkpoints/NAME`` through ``NAME.part`` (resumed with an HTTP
``Range`` request; see ``sam_bench.fetch``), are hash-checked, then renamed atomically. Without a
published hash, a body shorter than the server's ``Content-Length`` or an HTML page is refused and
deleted, and ``NAME.download.json`` records the file as unverified with its sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sam_bench import fetch
from sam_bench.errors import CheckpointError, ConfigError
from sam_bench.models.cards import MODEL_CARDS, ModelCard, params_text

log = logging.getLogger("sam_bench.checkpoints")

CHUNK = 1 << 20


@dataclass(frozen=True)
class Checkpoint:
    """One official checkpoint file. ``model``: the builder name that loads it; ``options``: what
    that builder needs to pick the architecture; ``extra``: the pip extra that provides the package."""

    name: str
    model: str
    filename: str
    url: str
    sha256: str | None = None
    md5_prefix: str | None = None
    extra: str | None = None
    options: dict = field(default_factory=dict)
    note: str = ""


_FB = "https://dl.fbaipublicfiles.com"
_HQ = "https://huggingface.co/lkeab/hq-sam/resolve/main"
_RITM = "https://github.com/SamsungLabs/ritm_interactive_segmentation/releases/download/v1.0"  # no hashes published

CHECKPOINTS: dict[str, Checkpoint] = {c.name: c for c in [
    Checkpoint("sam_vit_b", "sam_vit_b", "sam_vit_b_01ec64.pth", f"{_FB}/segment_anything/sam_vit_b_01ec64.pth",
               sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912", md5_prefix="01ec64"),
    Checkpoint("sam_vit_l", "sam_vit_l", "sam_vit_l_0b3195.pth", f"{_FB}/segment_anything/sam_vit_l_0b3195.pth",
               sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622", md5_prefix="0b3195"),
    Checkpoint("sam_vit_h", "sam_vit_h", "sam_vit_h_4b8939.pth", f"{_FB}/segment_anything/sam_vit_h_4b8939.pth",
               sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e", md5_prefix="4b8939"),
    *[Checkpoint(f"sam2.1_hiera_{v}", "sam2", f"sam2.1_hiera_{f}.pt", f"{_FB}/segment_anything_2/092824/sam2.1_hiera_{f}.pt",
                 extra="sam2", options={"variant": v}) for v, f in
      [("t", "tiny"), ("s", "small"), ("b+", "base_plus"), ("l", "large")]],
    *[Checkpoint(f"sam_hq_vit_{v}", "hq-sam", f"sam_hq_vit_{v}.pth", f"{_HQ}/sam_hq_vit_{v}.pth", extra="hq",
                 options={"variant": f"vit_{v}"}) for v in ("b", "l", "h")],
    Checkpoint("sam_hq_vit_tiny", "hq-sam", "sam_hq_vit_tiny.pth", f"{_HQ}/sam_hq_vit_tiny.pth", extra="hq",
               options={"variant": "vit_tiny"}),
    Checkpoint("mobile_sam", "mobile-sam", "mobile_sam.pt",
               "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
               sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f", extra="mobile"),
    *[Checkpoint(n, "tinysam", f"{n}.pth", f"https://github.com/xinghaochen/TinySAM/releases/download/{r}/{n}.pth",
                 extra="mobile", options={"variant": v}) for n, r, v in [("tinysam_42.3", "3.0", "42.3"),
                                                                         ("tinysam", "1.0", "41.9")]],
    *[Checkpoint(f"efficientvit_sam_{v}", "efficientvit-sam", f"efficientvit_sam_{v}.pt",
                 f"https://huggingface.co/mit-han-lab/efficientvit-sam/resolve/main/efficientvit_sam_{v}.pt",
                 extra="efficientvit", options={"variant": v}) for v in ("l0", "l1", "l2", "xl0", "xl1")],
    Checkpoint("efficient_sam_vitt", "efficient_sam", "efficient_sam_vitt.pt",
               "https://github.com/yformer/EfficientSAM/raw/main/weights/efficient_sam_vitt.pt",
               note="not a built-in adapter; see docs/models.md"),
    *[Checkpoint(f"{f}_itermask", "ritm", f"{f}_itermask.pth", f"{_RITM}/{f}_itermask.pth", extra="ritm", options={
        "variant": f.removeprefix("coco_lvis_")}) for f in ("coco_lvis_h18", "coco_lvis_h32", "coco_lvis_h18s", "sbd_h18")],
]}

def checkpoint_dir(cache: str | os.PathLike | None = None) -> Path:
    from sam_bench.config import cache_dir

    return cache_dir(cache) / "checkpoints"


def get(name: str) -> Checkpoint:
    if name not in CHECKPOINTS:
        import difflib

        close = difflib.get_close_matches(name, list(CHECKPOINTS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown checkpoint {name!r}.{hint} Known: {', '.join(CHECKPOINTS)}.")
    return CHECKPOINTS[name]


def by_filename(filename: str) -> Checkpoint | None:
    return next((c for c in CHECKPOINTS.values() if c.filename == filename), None)


# -- hashing ---------------------------------------------------------------------------------
_HASH_CACHE: dict[tuple[str, int, int, str], str] = {}


def file_hash(path: str | os.PathLike, algo: str = "sha256") -> str:
    """Hex digest of a file, computed once per (path, mtime, size) and remembered in memory."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, algo)
    if key not in _HASH_CACHE:
        h = hashlib.new(algo)
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                h.update(block)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def verify(path: str | os.PathLike, entry: Checkpoint) -> str:
    """The file's sha256 if it matches ``entry``'s published hash; ``CheckpointError`` otherwise."""
    path = Path(path)
    sha = file_hash(path)
    if entry.sha256 and sha != entry.sha256:
        raise CheckpointError(f"{path}: sha256 mismatch for {entry.filename}: expected {entry.sha256}, got {sha}. "
                              f"The file is corrupt, truncated or not the official one; delete it and run "
                              f"`sam-bench models download {entry.name}`.")
    if not entry.sha256 and entry.md5_prefix:
        md5 = file_hash(path, "md5")
        if not md5.startswith(entry.md5_prefix):
            raise CheckpointError(f"{path}: MD5 mismatch for {entry.filename}: expected a hash starting "
                                  f"{entry.md5_prefix}, got {md5}.")
    if not entry.sha256 and not entry.md5_prefix:
        changed = fetch.record_mismatch(path, sha)
        if changed:
            raise CheckpointError(f"{changed}; it is truncated or replaced: delete it and run "
                                  f"`sam-bench models download {entry.name}`.")
        log.warning("%s: no published hash for %s; unverified, sha256 %s", path, entry.filename, sha)
    return sha


def trust(entry: Checkpoint, sha: str) -> str:
    """How far a file that passed ``verify`` is trusted, for messages: verified or unverified, and its sha256."""
    if entry.sha256:
        return f"verified (sha256 {sha})"
    if entry.md5_prefix:
        return f"verified (md5 starts {entry.md5_prefix}; sha256 {sha})"
    return f"unverified (sha256 {sha}): no published hash"


def resolve(model: str, checkpoint: str | os.PathLike | None, default: str | None = None,
            cache: str | os.PathLike | None = None) -> tuple[Path, str]:
    """(path, sha256) of the checkpoint ``model`` should load.

    ``checkpoint`` given: it must exist; an official file name is verified (and must belong to
    ``model``), any other file loads with a warning and its sha256 recorded. Not given: the
    official file ``default`` (a CHECKPOINTS name) in the cache dir; missing -> a clear error
    naming the download command and URL.
    """
    if checkpoint is None:
        if default is None:
            raise CheckpointError(f"model {model!r} has no default checkpoint: pass --checkpoint PATH")
        entry = get(default)
        path = checkpoint_dir(cache) / entry.filename
        if not path.is_file():
            raise CheckpointError(f"checkpoint for {model} not found at {path}. Run `sam-bench models download "
                                  f"{entry.name}` (downloads {entry.url}), or pass --checkpoint PATH, or use "
                                  f"--untrained for random weights.")
        return path, verify(path, entry)
    path = Path(checkpoint).expanduser()
    if not path.exists():
        raise CheckpointError(f"--checkpoint {path}: no such file")
    entry = by_filename(path.name)
    if entry is None:
        sha = file_hash(path) if path.is_file() else "directory"
        log.warning("%s is not an official checkpoint file name; loading it unverified (sha256 %s)", path, sha)
        return path, sha
    if entry.model != model:
        raise CheckpointError(f"--checkpoint {path}: this is the official {entry.name} checkpoint (model "
                              f"{entry.model!r}), not one for {model!r}")
    return path, verify(path, entry)


def load_state_dict(path: str | os.PathLike, key: str | None = None) -> dict:
    """``torch.load(path, weights_only=True)`` on CPU (no pickled code runs); ``key`` picks a sub-dict."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise CheckpointError(f"{path}: cannot load as a weights-only torch checkpoint ({exc})") from exc
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            raise CheckpointError(f"{path}: expected a dict with key {key!r}")
        state = state[key]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def load_into(module: Any, path: str | os.PathLike, key: str | None = None, strict: bool = True) -> None:
    """Load a weights-only state dict into ``module``; a mismatch names the file and the keys."""
    state = load_state_dict(path, key)
    result = module.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        msg = (f"{path}: does not fit the architecture (missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
               f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})")
        if strict:
            raise CheckpointError(msg + "; wrong model size?")
        log.warning(msg)


# -- download --------------------------------------------------------------------------------
def download(entry: Checkpoint | str, cache: str | os.PathLike | None = None, *, force: bool = False,
             progress: bool = True, opener: Callable[..., Any] | None = None) -> Path:
    """Download ``entry`` into the checkpoint cache (see ``ensure``); the file's path."""
    path, note = ensure(entry, cache, force=force, progress=progress, opener=opener)
    log.info("%s: %s", path, note)
    return path


def _present(entry: Checkpoint, dest: Path) -> str | None:
    """"present, ..." for a cached file that passes ``verify``; None (file removed) when a file with no
    published hash changed since its download record; ``CheckpointError`` on a published-hash mismatch."""
    try:
        return f"present, {trust(entry, verify(dest, entry))}" + (
            "" if entry.sha256 or entry.md5_prefix or fetch.read_record(dest) else
            "; no download record (placed by hand?)")
    except CheckpointError as exc:
        if entry.sha256 or entry.md5_prefix:
            raise
        log.warning("%s; downloading it again", exc)
        dest.unlink()
        fetch.record_path(dest).unlink(missing_ok=True)
        return None


def ensure(entry: Checkpoint | str, cache: str | os.PathLike | None = None, *, force: bool = False,
           progress: bool = True, opener: Callable[..., Any] | None = None) -> tuple[Path, str]:
    """(path, note) of ``entry`` in the checkpoint cache, downloading it if absent (or ``force``).

    The download resumes a ``.part``, is checked (published hash; else size and not-HTML), renamed
    atomically, and, without a published hash, recorded as unverified in ``NAME.download.json``.
    ``note`` says "present" or "downloaded" and "verified" or "unverified", with the sha256.
    ``opener`` replaces ``urllib.request.urlopen`` (tests). Offline -> ``CheckpointError`` saying
    where to put the file by hand.
    """
    entry = get(entry) if isinstance(entry, str) else entry
    dest = checkpoint_dir(cache) / entry.filename
    if dest.is_file() and not force:
        note = _present(entry, dest)
        if note:
            return dest, note
    part = dest.with_name(dest.name + ".part")
    try:
        fetch.download_file(entry.url, part, opener=opener, progress=progress, desc=entry.filename)
    except fetch.DownloadError as exc:
        hint = (f"; are you offline? Fetch it elsewhere and put it at {dest}, or pass --checkpoint PATH"
                if exc.offline else "")
        raise CheckpointError(f"{exc}{hint}") from exc
    try:
        sha = verify(part, entry)
    except CheckpointError:
        part.unlink()
        raise
    os.replace(part, dest)
    published = bool(entry.sha256 or entry.md5_prefix)
    fetch.write_record(dest, url=entry.url, sha256=sha, verified=published,
                       note="matches the published hash" if published else "no published hash")
    return dest, f"downloaded, {trust(entry, sha)}"


# -- command line ----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="registered models and official checkpoints, and which are in the cache")
    p.add_argument("--cache-dir", help="cache folder (default: $SAM_BENCH_CACHE or the user cache dir)")
    p = sub.add_parser("download", help="download official checkpoints (resumable, hash-checked)")
    p.add_argument("names", nargs="+", metavar="NAME", help=f"checkpoint names: {', '.join(CHECKPOINTS)}")
    p.add_argument("--cache-dir", help="cache folder (default: $SAM_BENCH_CACHE or the user cache dir)")
    p.add_argument("--force", action="store_true", help="download again even if the file is present")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = sub.add_parser("verify", help="check a checkpoint file against its published hash")
    p.add_argument("path", help="checkpoint file (official file name)")


def _option_keys(name: str) -> str:
    """The keys ``--model-option`` accepts for ``name`` (its builder's declaration; nothing is built)."""
    from sam_bench import registry
    from sam_bench.errors import NotBuilt
    from sam_bench.models.options import options_of

    try:
        spec = options_of(registry.get_model_builder(name))
    except NotBuilt:
        return "(not built)"
    return "any" if spec is None else ", ".join(spec) or "-"


def _rows(cache: str | None) -> list[dict]:
    from sam_bench import registry

    rows = []
    names = registry.names("models")
    for name in names:
        card = MODEL_CARDS.get(name, ModelCard("?"))
        kinds, extra = card.kinds, card.extra
        options = _option_keys(name)
        about = {"family": card.family, "params": params_text(card), "package": card.package}
        ckpts = [c for c in CHECKPOINTS.values() if c.model == name]
        if not ckpts:
            rows.append({"model": name, "kind": kinds, **about, "options": options, "checkpoint": "-", "file": "-",
                         "present": "-", "extra": extra or "-"})
        for c in ckpts:
            present = (checkpoint_dir(cache) / c.filename).is_file()
            rows.append({"model": name, "kind": kinds, **about, "options": options, "checkpoint": c.name,
                         "file": c.filename,
                         "present": "yes" if present else "no", "extra": c.extra or extra or "-"})
    for c in CHECKPOINTS.values():
        if c.model not in names:
            present = (checkpoint_dir(cache) / c.filename).is_file()
            rows.append({"model": f"({c.model})", "kind": "promptable", "family": "-", "params": "-", "package": "-",
                         "options": "-", "checkpoint": c.name,
                         "file": c.filename,
                         "present": "yes" if present else "no", "extra": c.note or "-"})
    return rows


def main(args: argparse.Namespace) -> int:
    if args.action == "list":
        from tabulate import tabulate  # what pandas' to_markdown calls, without importing pandas

        print(tabulate(_rows(args.cache_dir), headers="keys", tablefmt="pipe"))
        print(f"\ncheckpoint cache: {checkpoint_dir(args.cache_dir)}")
        print("options: --model-option KEY=VALUE on run, latency and reproduce; a wrong key lists the defaults")
        return 0
    if args.action == "download":
        for name in args.names:
            path, note = ensure(name, args.cache_dir, force=args.force, progress=not args.no_progress)
            print(f"{name}: {note}: {path}")
        return 0
    path = Path(args.path)
    entry = by_filename(path.name)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if entry is None:
        print(json.dumps({"path": str(path), "official": False, "sha256": file_hash(path)}))
        return 0
    print(json.dumps({"path": str(path), "official": entry.name, "sha256": verify(path, entry), "ok": True}))
    return 0
