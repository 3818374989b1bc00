"""List, verify and prepare the datasets of the catalog (``datasets/*.toml`` cards).

examples:
  sam-bench datasets list --data-root ~/data
  sam-bench datasets verify --data-root ~/data            # every dataset found there
  sam-bench datasets verify BSDS500 GrabCut --quick                # counts only, no decoding
  sam-bench datasets prepare NDD20 --data-root /data               # instructions, then convert
  sam-bench datasets prepare BBBC038v1 --download                  # fetch the public archive too
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from sam_bench import fetch as fetchlib
from sam_bench.data import catalog
from sam_bench.data.base import is_entry_skip
from sam_bench.errors import BadInput, ConfigError, SamBenchError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-root", help="folder holding the datasets (default: $SAM_BENCH_DATA, then the user "
                        "data dir)")
    sub.add_parser("list", parents=[common], help="catalog datasets: name, tasks, format, found or not")
    v = sub.add_parser("verify", parents=[common], help="count images, annotations and annotators against the "
                       "cards; exit 1 if anything is missing or corrupt")
    v.add_argument("names", nargs="*", metavar="NAME", help="catalog names (default: every dataset found)")
    v.add_argument("--split", help="only this split (default: every split of the card)")
    v.add_argument("--quick", action="store_true", help="count files and annotations without decoding images")
    v.add_argument("--show", type=int, default=5, help="problems listed per dataset (default 5)")
    pr = sub.add_parser("prepare", parents=[common], help="download instructions (URL, checksum), optional "
                        "download, and conversion of the native files into what the readers take")
    pr.add_argument("name", metavar="NAME", help="catalog name")
    pr.add_argument("--download", action="store_true", help="fetch the card's public download URLs (checksum "
                    "verified where the card has one, else recorded unverified with its sha256) and unpack them "
                    "(unsafe archive members are refused)")
    pr.add_argument("--allow-http", action="store_true", help="allow plain-http download URLs (refused by default)")


def main(args: argparse.Namespace) -> int:
    from sam_bench.config import data_root

    root = data_root(args.data_root)
    if args.action == "list":
        return list_datasets(root)
    if args.action == "verify":
        return verify(root, args.names, split=args.split, quick=args.quick, show=args.show)
    return prepare(root, args.name, download=args.download, allow_http=args.allow_http)


def list_datasets(root: Path) -> int:
    rows = []
    for name, card in catalog.cards().items():
        ok, why = catalog.status(card, root)
        folder = catalog.dataset_dir(card, root)
        rows.append({"name": name, "sa23": "yes" if card.get("sa23") else "", "tasks": ",".join(card["tasks"]),
                     "format": card["format"], "found": "yes" if ok else ("needs prepare" if folder else "no"),
                     "where": str(folder) if folder else ""})
    print(f"data root: {root}")
    print(text_table(rows))
    return 0


def text_table(rows: list[dict]) -> str:
    """``rows`` laid out as pandas' ``DataFrame(rows).to_string(index=False)`` lays out text cells (right-aligned
    columns one space apart), without importing pandas for a listing."""
    cols = list(rows[0]) if rows else []
    cells = [[str(r[c]) for r in rows] for c in cols]
    widths = [max([len(c), *map(len, col)]) for c, col in zip(cols, cells)]
    lines = [" ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += [" ".join(col[i].rjust(w) for col, w in zip(cells, widths)) for i in range(len(rows))]
    return "\n".join(lines)


def _matches(value: int, want: Any) -> bool:
    return value in want if isinstance(want, list) else value == want


def count(ds, quick: bool) -> tuple[dict, list[str]]:
    """(counts, problems) of an opened dataset; loads every item unless ``quick``."""
    from sam_bench.data.coco import read_json

    counts = {"images": len(ds.items)}
    problems = []
    missing_images = [m for m in ds.missing if not is_entry_skip(m)]
    bad_anns = [m for m in ds.missing if "#ann" in m["item"]]
    counts["listed_images"] = len(ds.items) + len(missing_images)
    counts["missing_images"] = len(missing_images)
    problems += [f"annotation unusable: {m['reason']}" for m in bad_anns]
    if ds.gt_json is not None and Path(ds.gt_json).is_file():
        data = read_json(ds.gt_json)
        counts["annotations"] = len(data.get("annotations", []))
        counts["categories"] = len(data.get("categories", []))
    if quick:
        if "annotations" not in counts and ds.format == "folder":
            counts["annotations"] = len(ds.items)
        return counts, problems
    n_inst, n_annot = 0, 0
    for item in ds.items:
        try:
            s = item.load()
        except BadInput as exc:
            problems.append(f"corrupt: {exc}")
            continue
        n_inst += len(s.instances)
        n_annot += len(s.boundaries or [])
        if item.meta.get("dropped_empty_annotations"):
            problems.append(f"{item.image_path}: annotations {item.meta['dropped_empty_annotations']} are empty masks")
    if ds.format == "bsds":
        counts["annotators"] = n_annot
    else:
        counts.setdefault("annotations", n_inst)
        counts["loaded_instances"] = n_inst
    return counts, problems


def verify_one(card: dict, root: Path, split: str | None, quick: bool) -> tuple[bool, str, list[str]]:
    """(ok, one-line summary, problem lines) for one split of one card."""
    label = card["name"] + (f" [{split}]" if card.get("splits") else "")
    try:
        ds = catalog.open_catalog(card["name"], root, split=split if card.get("splits") else None,
                                  subsample_masks=False)
        counts, problems = count(ds, quick)
    except SamBenchError as exc:
        return False, f"FAIL {label}: cannot open: {exc}", []
    exp = catalog.expected(card, split)
    parts, ok = [], not problems
    for key, value in counts.items():
        want = exp.get(key)
        if want is None:
            if key in ("images", "annotations", "annotators", "loaded_instances") or (key == "missing_images" and value):
                parts.append(f"{key} {value}")
            continue
        good = _matches(value, want)
        ok &= good
        shown = "/".join(map(str, want)) if isinstance(want, list) else want
        parts.append(f"{key} {value} (expected {shown}){'' if good else ' MISMATCH'}")
    for key in set(exp) - set(counts) - {"note", "videos"}:
        parts.append(f"{key}: not counted in {'--quick mode' if quick else 'this format'}")
    if counts["missing_images"]:
        expected_missing = exp.get("missing_images")
        note = "expected per the card" if expected_missing is not None and _matches(counts["missing_images"],
                                                                                   expected_missing) else "MISSING"
        ok &= note != "MISSING"
        missing = [m for m in ds.missing if not is_entry_skip(m)]
        problems = [f"missing ({note}): {m['reason']}" for m in missing] + problems
    return ok, f"{'OK  ' if ok else 'FAIL'} {label}: " + ", ".join(parts), problems


def verify(root: Path, names: list[str], split: str | None = None, quick: bool = False, show: int = 5) -> int:
    """Check each dataset (every found one by default) against its card; 1 if anything failed."""
    cards = [catalog.get_card(n) for n in names] if names else list(catalog.cards().values())
    print(f"data root: {root}")
    failed = False
    for card in cards:
        folder = catalog.dataset_dir(card, root)
        if folder is None:
            if names:
                print(f"FAIL {card['name']}: not found under {root}; see `sam-bench datasets prepare {card['name']}`")
                failed = True
            continue
        splits = [split] if split else (catalog.split_names(card) if card.get("splits") else [None])
        for sp in splits:
            ok, line, problems = verify_one(card, root, sp, quick)
            print(line)
            for p in problems[:show]:
                print(f"     {p}")
            if len(problems) > show:
                print(f"     ... and {len(problems) - show} more")
            failed |= not ok
    if not names:
        absent = [c["name"] for c in cards if catalog.dataset_dir(c, root) is None]
        print(f"not present (not checked): {', '.join(absent)}" if absent else "every catalog dataset is present")
    return 1 if failed else 0


def _card_checksum(entry: dict) -> tuple[str, str] | None:
    """(algorithm, hex digest) the card publishes for a download, sha256 preferred; None if none."""
    algo = next((a for a in ("sha256", "md5") if a in entry), None)
    return (algo, str(entry[algo]).lower()) if algo else None


def _entry_paths(entry: dict, dest: Path) -> tuple[Path, Path]:
    """(downloaded file, extraction folder) of a card download; ``ConfigError`` for a path that leaves ``dest``."""
    name = entry.get("file", entry["url"].rsplit("/", 1)[-1])
    sub = entry.get("extract_to", ".")
    if "/" in name.replace("\\", "/") or fetchlib.unsafe_name(name) or name in (".", ""):
        raise ConfigError(f"card download {entry['url']}: file = {name!r} must be a plain file name")
    if fetchlib.unsafe_name(sub):
        raise ConfigError(f"card download {entry['url']}: extract_to = {sub!r} must stay inside the dataset folder")
    return dest / name, dest / sub


def _unverified(target: Path, sha: str, why: str) -> str:
    print(f"  WARNING: {target}: {why}; kept as UNVERIFIED, sha256 {sha} (recorded in "
          f"{fetchlib.record_path(target).name})")
    return f"unverified (sha256 {sha})"


def _reuse(target: Path, url: str, check: tuple[str, str] | None) -> str | None:
    """A note when the file already at ``target`` can be used; None to download it again."""
    if check:
        algo, want = check
        return f"present, verified ({algo} {want})" if fetchlib.digest(target, algo) == want else None
    sha = fetchlib.digest(target)
    changed = fetchlib.record_mismatch(target, sha)
    if changed:
        print(f"  WARNING: {changed}; downloading it again")
        return None
    if fetchlib.read_record(target) is None:
        fetchlib.write_record(target, url=url, sha256=sha, verified=False,
                              note="found on disk; no checksum on the card")
    return "present, " + _unverified(target, sha, "no checksum on the card")


def _download(url: str, target: Path, check: tuple[str, str] | None, allow_http: bool,
              opener: Callable[..., Any] | None) -> str:
    """Download ``url`` to ``target`` via ``.part``; checksum-checked when the card has one, else recorded
    unverified. A mismatch, short body or HTML page removes the download (``BadInput``)."""
    part = target.with_name(target.name + ".part")
    print(f"downloading {url} -> {target}")
    try:
        fetchlib.download_file(url, part, opener=opener, allow_http=allow_http, timeout=30)
    except fetchlib.DownloadError as exc:
        if exc.offline:
            raise ConfigError(f"{exc}; this machine may be offline: fetch it by hand into {target.parent}") from None
        raise BadInput(str(exc)) from None
    sha = fetchlib.digest(part)
    if check:
        algo, want = check
        got = sha if algo == "sha256" else fetchlib.digest(part, algo)
        if got != want:
            part.unlink()
            raise BadInput(f"{url}: {algo} checksum mismatch (expected {want}, got {got}); download removed, "
                           f"nothing extracted")
    part.replace(target)
    fetchlib.write_record(target, url=url, sha256=sha, verified=bool(check),
                          note=f"matches the card's {check[0]}" if check else "no checksum on the card")
    if check:
        return f"downloaded, verified ({check[0]} {check[1]})"
    return "downloaded, " + _unverified(target, sha, "no checksum on the card")


def fetch(entry: dict, dest: Path, *, allow_http: bool = False, opener: Callable[..., Any] | None = None) -> Path:
    """Fetch one card download into ``dest`` (kept if already there and trusted), then unpack an archive.

    The checksum is checked before extraction; extraction refuses unsafe members (``sam_bench.fetch``).
    Plain http is refused unless ``allow_http``. ``opener`` replaces ``urllib.request.urlopen`` (tests).
    """
    url = entry["url"]
    fetchlib.check_scheme(url, allow_http)
    target, out = _entry_paths(entry, dest)
    check = _card_checksum(entry)
    dest.mkdir(parents=True, exist_ok=True)
    note = _reuse(target, url, check) if target.is_file() else None
    note = note or _download(url, target, check, allow_http, opener)
    print(f"  {target.name}: {note}")
    if fetchlib.is_archive(target):
        print(f"unpacking {target} -> {out}")
        print(f"  {fetchlib.extract(target, out)} files written")
    return target


def prepare(root: Path, name: str, download: bool = False, allow_http: bool = False) -> int:
    """Print where and how to get ``name``; with ``download``, fetch it; run its converter if any. 0 if ready."""
    from sam_bench.data.converters import convert

    card = catalog.get_card(name)
    name = card["name"]
    folder = catalog.dataset_dir(card, root) or root / name
    print(f"{name}: {card.get('description', card.get('domain', ''))}")
    print(f"  homepage: {card.get('homepage', '?')}\n  licence:  {card.get('license', '?')}")
    print(f"  native format: {card.get('native_format', card['format'])}\n  expected at: {folder}")
    for entry in card.get("download", []):
        sums = (", ".join(f"{a} {entry[a]}" for a in ("sha256", "md5") if a in entry)
                or "no public checksum: recorded unverified")
        print(f"  download: {entry['url']} ({sums})")
    print(f"  how: {card.get('prepare', {}).get('instructions', 'see the homepage')}")
    if download:
        if not card.get("download"):
            raise ConfigError(f"{name} has no public download URL (registration or manual steps): follow the "
                              f"instructions above")
        for entry in card["download"]:
            fetch(entry, folder, allow_http=allow_http)
    conv = card.get("prepare", {}).get("converter")
    if conv and folder.is_dir():
        out = folder / card["open"]["ann_json"]
        summary = convert(conv, folder, out, **card["prepare"].get("args", {}))
        print(f"  converted with {conv}: {summary['images']} images, {summary['annotations']} masks -> {out}")
        for line in summary["skipped"][:10]:
            print(f"     skipped: {line}")
        if len(summary["skipped"]) > 10:
            print(f"     ... and {len(summary['skipped']) - 10} more skipped")
    ok, why = catalog.status(card, root)
    print(f"  status: {'ready' if ok else 'not ready: ' + why}")
    return 0 if ok else 1

