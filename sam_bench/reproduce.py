"""Run every paper experiment and write the full report: ``results/<run-id>/``.

For every paper preset (``tasks/*.toml`` with ``[[paper]]`` rows, or ``[reproduce] run = true``
as ``text_to_mask``, whose paper results are only qualitative) this runs the preset's task in the
paper's settings with the chosen model, then writes the paper's tables with its numbers beside ours and the difference
(Markdown, CSV, LaTeX), plots, a latency table and ``report.md`` (``sam_bench.reports.report``).

Models: ``--model M`` runs M on every task it can do (others are listed as not run). Without it,
the classical baselines each task declares (``Task.baselines``): single point, interactive and
instances (ground-truth boxes) with ``grabcut``; edges with ``sobel``, ``canny`` and
``felzenszwalb``; proposals with ``felzenszwalb`` and ``slic-proposals`` (selective search);
text-to-mask with ``grabcut`` prompted by the oracle grounder (the referred object's ground-truth
box: an upper bound, as CLIP needs weights; ``--clip-checkpoint`` switches to the CLIP grounder:
``TextToMaskTask.reproduce_options``). A preset may limit the models it runs for (``[reproduce]
model_kinds``: the single-output proposal ablation, promptable models only). What is run and how
is planned in ``sam_bench.reproduce_plan``; each run goes through ``sam_bench.runner.run_task``.

Data: without ``--data-root`` every task runs on the ``synthetic`` scenes, so a fresh machine
with nothing downloaded shows a full report. With a data root, each preset runs on those of its
datasets that are present there; the others are listed as not run with the command that
prepares them. ``--substitute COCO=COCO_tiny`` runs a small stand-in where a paper dataset is
absent (the tables say so).

Each run goes to ``OUT/<preset>-<model>/`` and resumes if interrupted: rerun with the same
``--run-id`` (or ``--out``). Presets that come out identical (same task, model, data and
settings) run once; presets of one model on the same images (proposals, its single-output
ablation and instances on LVIS) run in one pass, each image encoded once (``--no-share``: not). ``--quick`` runs a few items per dataset with the lighter settings each task
declares on its options (``option(..., quick=...)``; CI).

examples:
  sam-bench reproduce                                          # synthetic data, classical baselines
  sam-bench reproduce --data-root ~/data --quick       # real data present, a few items each
  sam-bench reproduce --model sam_vit_h --checkpoint sam_vit_h_4b8939.pth --data-root ~/data
  sam-bench reproduce --model sam_vit_b --untrained --quick --tasks edges proposals
  sam-bench reproduce --model sam2 --untrained --model-option variant=t --quick --tasks single-point
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shlex
import sys
import time
from pathlib import Path

from sam_bench.errors import ConfigError, NotBuilt, SamBenchError
from sam_bench.reproduce_plan import model_fits, plan, reproduced, same_run, slug, task_classes
from sam_bench.results import atomic_write_json, load_json

log = logging.getLogger("sam_bench")

MANIFEST = "reproduce.json"
QUICK_LIMIT = 2  # items per dataset under --quick


def task_declarations() -> dict[str, tuple[tuple[str, ...], dict]]:
    """{task: (its classical baselines, its --quick values)} of the tasks reproduce runs (for --help)."""
    from sam_bench.presets import load_presets

    try:
        names = sorted({p["task"] for p in load_presets().values() if reproduced(p)})
    except ConfigError:
        return {}
    return {n: (cls.baselines, cls.quick_options()) for n, cls in task_classes(names).items()}


def execute(entries: list[dict], args: argparse.Namespace, out: Path, manifest: dict) -> None:
    """Run the planned entries in order, saving the manifest after each; entries of one model on the
    same datasets run in one pass (each image encoded once) unless ``--no-share``."""
    from sam_bench import registry
    from sam_bench.models.base import build_model
    from sam_bench.presets import load_presets
    from sam_bench.runner import run_task

    presets = load_presets()
    limit = args.limit if args.limit is not None else (QUICK_LIMIT if args.quick else None)
    for entry in entries:
        if entry["status"] != "planned":
            continue
        twin = next((e for e in entries if e is not entry and e.get("status") == "done" and same_run(e, entry)), None)
        if twin is not None:
            entry.update(status="done", dir=twin["dir"], reason=f"identical to {twin['preset']}: results shared")
            continue
        group = [entry] if args.no_share else sharing(entries, entry)
        task_cls = registry.get_task(entry["task"])
        t0 = time.perf_counter()
        try:
            model = build_model(entry["model"], checkpoint=args.checkpoint, untrained=args.untrained,
                                device=args.device, dtype=args.dtype, **entry.get("model_options", {}))
            why = model_fits(entry, presets.get(entry["preset"], {}), model, task_cls)
            if why:
                entry.update(status="not run", reason=why)
                continue
            if len(group) > 1:
                group = [e for e in group if _fits(e, presets, model)]
            if len(group) > 1:
                _run_shared(group, model, args, out, limit)
                continue
            log.info("reproduce: %s with %s on %s", entry["preset"], entry["model"], ", ".join(entry["datasets"]))
            results = run_task(entry["task"], model, datasets=entry["datasets"], data_root=args.data_root,
                               out=out / entry["dir"], limit=limit, progress=False if args.no_progress else None,
                               data_options=entry["data_options"], embedding_cache=args.embedding_cache,
                               save_predictions=getattr(args, "save_predictions", True), **entry["options"])
        except NotBuilt as exc:
            entry.update(status="not run", reason=f"not available in this install: {exc}")
        except SamBenchError as exc:
            log.error("reproduce: %s with %s failed: %s", entry["preset"], entry["model"], exc)
            for e in group:
                e.update(status="failed", reason=str(exc))
        else:
            _outcome(entry, results)
        finally:
            elapsed = round(time.perf_counter() - t0, 2)
            for e in group:  # in a shared pass, each entry's own share (else the whole pass is the first's)
                e["seconds"] = e.pop("pass_share", elapsed if e is entry else e.get("seconds", 0.0))
            manifest["runs"] = entries
            atomic_write_json(out / MANIFEST, manifest)


def sharing(entries: list[dict], entry: dict) -> list[dict]:
    """``entry`` and the planned entries after it with the same model, model options, datasets and
    data options (so the same images), none a twin of another: they run in one pass."""
    key = lambda e: (e["model"], e.get("model_options"), e["datasets"], e["data_options"])
    group = [entry]
    for e in entries[entries.index(entry) + 1:]:
        if e["status"] == "planned" and key(e) == key(entry) and not any(same_run(e, g) for g in group):
            group.append(e)
    return group


def _fits(entry: dict, presets: dict, model) -> bool:
    from sam_bench import registry

    why = model_fits(entry, presets.get(entry["preset"], {}), model, registry.get_task(entry["task"]))
    if why:
        entry.update(status="not run", reason=why)
    return not why


def _run_shared(group: list[dict], model, args: argparse.Namespace, out: Path, limit: int | None) -> None:
    """The entries of ``group`` in one pass over their images (``sam_bench.multitask``)."""
    from sam_bench.multitask import run_tasks

    names = [e["preset"] for e in group]
    log.info("reproduce: %s with %s on %s, in one pass", " + ".join(names), group[0]["model"],
             ", ".join(group[0]["datasets"]))
    specs = [{"task": e["task"], "out": out / e["dir"], "options": e["options"], "datasets": e["datasets"],
              "data_options": e["data_options"], "limit": limit} for e in group]
    results = run_tasks(specs, model, data_root=args.data_root, progress=False if args.no_progress else None,
                        embedding_cache=args.embedding_cache, save_predictions=getattr(args, "save_predictions", True))
    for e, res in zip(group, results):
        e["shared_pass"] = [n for n in names if n != e["preset"]]
        if res:  # the pass's time on this preset's items plus its scoring (``multitask``)
            e["pass_share"] = round(res["latency"]["wall_seconds"], 2)
        _outcome(e, res)


def _outcome(entry: dict, results: dict | None) -> None:
    """Mark an entry done, or failed with the run's failures."""
    if results and results.get("failures"):
        log.error("reproduce: %s with %s failed: %s", entry["preset"], entry["model"], "; ".join(results["failures"]))
        entry.update(status="failed", reason="; ".join(results["failures"]))
    else:
        entry.update(status="done", untrained=bool(results and results.get("untrained")))


def command_line(args: argparse.Namespace, out: Path) -> str:
    """The ``sam-bench reproduce`` command that resumes (or repeats) this run."""
    words = ["sam-bench", "reproduce"]
    for flag in ("model", "checkpoint", "device", "clip_checkpoint", "data_root", "limit"):
        if getattr(args, flag) is not None:
            words += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.dtype != "fp32":
        words += ["--dtype", args.dtype]
    for flag in ("untrained", "quick"):
        if getattr(args, flag):
            words.append(f"--{flag}")
    for flag in ("dataset", "tasks"):
        if getattr(args, flag):
            words += [f"--{flag}", *getattr(args, flag)]
    for flag in ("substitute", "set", "model_option"):
        for value in getattr(args, flag) or []:
            words += [f"--{flag.replace('_', '-')}", value]
    return shlex.join(words + ["--out", str(out)])


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    declared = task_declarations()
    g.add_argument("--model", help="run this registered model on every task it can do (default: the classical "
                   "baselines each task declares: " + "; ".join(f"{t}: {', '.join(b)}" for t, (b, _) in
                                                               declared.items() if b) + ")")
    g.add_argument("--checkpoint", help="checkpoint file of --model")
    g.add_argument("--untrained", action="store_true", help="--model with random weights (code paths and "
                   "latency only; every table says so)")
    g.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when available)")
    g.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="model precision")
    g.add_argument("--model-option", action="append", metavar="KEY=VALUE",
                   help="an option of --model, e.g. variant=t for sam2 (repeatable; same as --set model.KEY=VALUE; "
                        "options and defaults: `sam-bench models list`)")
    g.add_argument("--clip-checkpoint", metavar="PATH", help="CLIP weights for the text-to-mask grounder "
                   "(default: the oracle grounder, ground-truth boxes)")
    g = p.add_argument_group("data")
    g.add_argument("--data-root", help="folder of the real datasets; without it every task runs on synthetic scenes")
    g.add_argument("--dataset", nargs="+", metavar="NAME", help="run every task on these datasets instead")
    g.add_argument("--substitute", action="append", metavar="PAPER=STANDIN",
                   help="when dataset PAPER is absent, run STANDIN[,STANDIN...] instead (repeatable; e.g. "
                        "COCO=COCO_tiny LVIS=LVIS_v0.5_val100 sa23=COCO_tiny)")
    g.add_argument("--tasks", nargs="+", metavar="NAME", help="only these presets or tasks (default: all paper "
                   "presets)")
    g.add_argument("--set", action="append", metavar="TASK.OPTION=VALUE",
                   help="override a task option in every preset of that task (or PRESET.OPTION=VALUE for one "
                        "preset), e.g. --set single-point.max_clicks=9; MODEL.KEY=VALUE (or model.KEY=VALUE for "
                        "--model) sets an option of a model being run, e.g. --set sam2.variant=t; recorded in each "
                        "run's config")
    g.add_argument("--quick", action="store_true", help=f"{QUICK_LIMIT} items per dataset and the lighter settings "
                   "each task declares (" + "; ".join(f"{t}: {', '.join(f'{k}={v}' for k, v in q.items())}"
                                                      for t, (_, q) in declared.items() if q) + ")")
    g.add_argument("--limit", type=int, help="only the first N items of each dataset (overrides --quick's)")
    g = p.add_argument_group("output")
    g.add_argument("--results-dir", default="results", help="parent of run folders (default: results)")
    g.add_argument("--run-id", help="run folder name (default: DATE-TIME-MODEL); an existing one is resumed")
    g.add_argument("--out", help="run folder (overrides --results-dir/--run-id)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    from sam_bench.runner import add_prediction_argument

    add_prediction_argument(g)
    g.add_argument("--no-share", action="store_true", help="run every preset on its own, even those on the same "
                   "images (default: those run in one pass, each image encoded once)")
    g.add_argument("--embedding-cache", metavar="DIR", help="keep encoder outputs in DIR for later runs (default: "
                   "$SAM_BENCH_EMBEDDING_CACHE; none)")


def main(args: argparse.Namespace) -> int:
    from sam_bench.reports.report import write_report
    from sam_bench.results import provenance

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit {args.limit}: must be >= 1")
    if args.untrained and not args.model:
        raise ConfigError("--untrained needs --model (the classical baselines have no weights)")
    if args.data_root and not Path(args.data_root).is_dir():
        raise ConfigError(f"--data-root {args.data_root}: no such folder")
    run_id = args.run_id or "-".join([dt.datetime.now().strftime("%Y%m%d-%H%M%S"), slug(args.model or "classical")]
                                     + (["untrained"] if args.untrained else []) + (["quick"] if args.quick else []))
    out = Path(args.out) if args.out else Path(args.results_dir) / run_id
    out.mkdir(parents=True, exist_ok=True)
    entries = plan(args)
    settings = {"model": args.model, "checkpoint": args.checkpoint, "untrained": args.untrained,
                "data_root": str(Path(args.data_root).resolve()) if args.data_root else None,
                "dataset": args.dataset, "substitute": args.substitute, "tasks": args.tasks, "quick": args.quick,
                "limit": args.limit, "clip_checkpoint": args.clip_checkpoint, "set": args.set}
    if args.model_option:
        settings["model_option"] = args.model_option
    old = load_json(out / MANIFEST) if (out / MANIFEST).exists() else None
    if old is not None and old.get("settings") != settings:
        raise ConfigError(f"{out} holds a reproduce run with other settings ({old.get('command')}); choose another "
                          f"--run-id / --out or remove it")
    manifest = {"schema_version": 1, "run_id": out.name, "command": command_line(args, out), "settings": settings,
                "started": old["started"] if old else provenance()["date"], "runs": entries}
    atomic_write_json(out / MANIFEST, manifest)
    t0 = time.perf_counter()
    execute(entries, args, out, manifest)
    manifest["seconds"] = round(time.perf_counter() - t0 + (old or {}).get("seconds", 0), 1)
    manifest["finished"] = provenance()["date"]
    atomic_write_json(out / MANIFEST, manifest)
    paths = write_report(out)
    failed = [e for e in entries if e["status"] == "failed"]
    print(f"report: {out / 'report.md'}, {out / 'report.html'} ({len(paths)} files; {sum(e['status'] == 'done' for e in entries)} runs "
          f"done, {sum(e['status'] == 'not run' for e in entries)} not run, {len(failed)} failed, "
          f"{manifest['seconds']:.0f} s)")
    if not any(e["status"] == "done" for e in entries):
        print("sam-bench: failed: reproduce ran nothing (no preset, model or dataset was usable; see report.md)",
              file=sys.stderr)
        return 1
    return 1 if failed else 0
