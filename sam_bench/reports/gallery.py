"""A run's gallery: per dataset the ``WORST`` worst and ``RANDOM`` random (seeded) items, drawn from
the saved records and the reopened images into ``RUN/report_files/``.

The records come from ``items.jsonl`` (their ``prediction``: ``--no-save-predictions`` leaves none
to draw); the images from the run's datasets: those the runner opened, or reopened by the names and data options its
``run.json`` records (``sam_bench.data.catalog``), under ``$SAM_BENCH_DATA`` or the data root the
run read. What cannot be drawn (a data root that is gone, a task without a view) becomes a note
on the page, never an error. ``gallery.json`` in the same folder lists what was drawn, so a
folder's page shows its runs' galleries without drawing them again.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path

from sam_bench.errors import SamBenchError
from sam_bench.reports.draw import encode
from sam_bench.reports.views import VIEWS, Unit
from sam_bench.results import PREDICTION, atomic_write_bytes, atomic_write_json, load_json, merge_items

log = logging.getLogger("sam_bench")

WORST, RANDOM, SEED = 12, 12, 0
FILES = "report_files"
MANIFEST = "gallery.json"


def choose(units: list[Unit], worst: int = WORST, rand: int = RANDOM, seed: int = SEED) -> list[tuple[str, Unit]]:
    """[("worst" | "random", unit)]: the ``worst`` lowest scores (ties by item), then ``rand`` of the
    others drawn with ``seed``."""
    ranked = sorted(units, key=lambda u: (u.score, u.item, str(u.key)))
    low, rest = ranked[:worst], ranked[worst:]
    picked = random.Random(seed).sample(rest, min(rand, len(rest)))
    return [("worst", u) for u in low] + [("random", u) for u in sorted(picked, key=lambda u: (u.item, str(u.key)))]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"


def open_datasets(run: dict, names: list[str]) -> dict[str, object]:
    """{dataset: Dataset, or the reason it cannot be opened} for the run's ``names`` (``run.json``)."""
    from sam_bench.data import catalog

    out: dict[str, object] = {}
    roots = run.get("inputs", {}).get("datasets", {})
    for name in names:
        spec = name.split("#")[0]
        tried = [None]  # $SAM_BENCH_DATA / the user data dir first, then where the run read it
        if roots.get(name, {}).get("root"):
            tried.append(str(Path(roots[name]["root"]).parent))
        why = "not reopened"
        for root in tried:
            try:
                if spec != "synthetic" and ":" not in spec and catalog.find_card(spec) is not None:
                    ok, why = catalog.status(catalog.find_card(spec), catalog.resolve_root(root))
                    if not ok:
                        continue
                out[name] = catalog.open_for_run([spec], root, run.get("data_options") or {})[0]
                break
            except Exception as exc:  # any reader's failure: a note on the page, not a failed report
                why = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SamBenchError) else str(exc)
        else:
            out[name] = f"images not available ({why})"
    return out


def build(run_dir: str | Path, results: dict, datasets: list | None = None) -> list[dict]:
    """Draw the gallery of the run in ``run_dir``; its sections [{"dataset", "note", "units", "items":
    [{"group", "src", "caption", "score"}]}] (``src`` relative to ``run_dir``), also written to
    ``report_files/gallery.json``. ``datasets``: the run's opened datasets (else reopened)."""
    run_dir = Path(run_dir)
    task = results.get("task")
    sections = _sections(run_dir, results, task, {d.name: d for d in datasets} if datasets is not None else None)
    atomic_write_json(run_dir / FILES / MANIFEST, {"task": task, "sections": sections})
    return sections


def _sections(run_dir: Path, results: dict, task: str, opened: dict | None) -> list[dict]:
    names = list(results.get("datasets", {}))
    if task not in VIEWS:
        return [{"dataset": n, "note": f"no gallery: task {task!r} has no view", "items": []} for n in names]
    units_of, draw_one = VIEWS[task]
    lines = [ln for ln in merge_items(sorted(run_dir.glob("items*.jsonl"))) if ln.get("status") == "ok"]
    if not any(PREDICTION in (ln.get("record") or {}) for ln in lines):
        return [{"dataset": n, "note": "no gallery: this run saved no predictions (--no-save-predictions, or "
                 "written by an older sam-bench)", "items": []} for n in names]
    run = load_json(run_dir / "run.json") if (run_dir / "run.json").exists() else {}
    datasets = opened if opened is not None else open_datasets(run, names)
    out = []
    for name in names:
        ds = datasets.get(name)
        metrics = results["datasets"][name].get("metrics", {})
        ctx = {"dataset": ds if not isinstance(ds, str) else None, "ods_threshold": metrics.get("ods_threshold"),
               "thinning": results.get("config", {}).get("thinning", True),
               "thresholds": results.get("config", {}).get("thresholds", 99)}
        records = {ln["item"]: ln["record"] for ln in lines if ln["dataset"] == name}
        units = [u for item, rec in records.items() for u in units_of(item, rec, ctx)]
        section = {"dataset": name, "note": "", "items": [], "units": len(units)}
        out.append(section)
        if isinstance(ds, str) or ds is None:
            section["note"] = f"no gallery for {name}: {ds or 'not opened'}"
            continue
        for old in (run_dir / FILES / _slug(name)).glob("*.jpg"):  # an earlier gallery's pictures
            old.unlink()
        by_id = {it.id: it for it in ds.items}
        loaded: dict[str, object] = {}
        for n, (group, unit) in enumerate(choose(units)):
            try:
                if unit.item not in loaded:
                    loaded = {unit.item: by_id[unit.item].load()}  # one image held at a time
                img = draw_one(unit, records[unit.item], loaded[unit.item], ctx)
            except Exception as exc:  # a picture that cannot be drawn never fails the run it shows
                log.warning("gallery %s/%s: not drawn: %s", name, unit.item, exc)
                section["note"] = f"some items could not be drawn (e.g. {unit.item}: {exc})"
                continue
            src = f"{FILES}/{_slug(name)}/{n:02d}_{group}_{_slug(unit.item)}.jpg"
            atomic_write_bytes(run_dir / src, encode(img))
            section["items"].append({"group": group, "src": src, "caption": unit.caption, "score": unit.score})
    return out


def load_or_build(run_dir: str | Path, results: dict) -> list[dict]:
    """The sections ``report_files/gallery.json`` lists when its images are all there, else built anew."""
    path = Path(run_dir) / FILES / MANIFEST
    if path.exists():
        saved = load_json(path)
        sections = saved.get("sections", [])
        if saved.get("task") == results.get("task") and all((Path(run_dir) / it["src"]).exists()
                                                            for s in sections for it in s["items"]):
            return sections
    return build(run_dir, results)
