"""Run every paper experiment and write the full report: ``results/<run-id>/``.

For every paper preset (``tasks/*.toml`` with ``[[paper]]`` rows, plus ``text_to_mask``, whose
paper results are only qualitative) this runs the preset's task in the paper's settings with the
chosen model, then writes the paper's tables with its numbers beside ours and the difference
(Markdown, CSV, LaTeX), plots, a latency table and ``report.md`` (``sam_bench.reports.report``).

Models: ``--model M`` runs M on every task it can do (others are listed as not run). Without it,
the classical baselines: single point, interactive and instances (ground-truth boxes) with
``grabcut``; edges with ``sobel``, ``canny`` and ``felzenszwalb``; proposals with
``felzenszwalb`` and ``slic-proposals`` (selective search); text-to-mask with ``grabcut``
prompted by the oracle grounder (the referred object's ground-truth box: an upper bound, as CLIP
needs weights; ``--clip-checkpoint`` switches to the CLIP grounder). The single-output proposal
ablation is only run for promptable models.

Data: without ``--data-root`` every task runs on the ``synthetic`` scenes, so a fresh machine
with nothing downloaded shows a full report. With a data root, each preset runs on those of its
datasets that are present there; the others are listed as not run with the command that
prepares them. ``--substitute COCO=COCO_tiny`` runs a small stand-in where a paper dataset is
absent (the tables say so).

Each run goes to ``OUT/<preset>-<model>/`` and resumes if interrupted: rerun with the same
``--run-id`` (or ``--out``). Presets that come out identical (same task, model, data and
settings) run once. ``--quick`` runs a few items per dataset with lighter settings (CI).

examples:
  sam-bench reproduce                                          # synthetic data, classical baselines
  sam-bench reproduce --data-root ../shared/data --quick       # real data present, a few items each
  sam-bench reproduce --model sam_vit_h --checkpoint sam_vit_h_4b8939.pth --data-root ~/data
  sam-bench reproduce --model sam_vit_b --untrained --quick --tasks edges proposals
  sam-bench reproduce --model sam2 --untrained --model-option variant=t --quick --tasks single-point
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from sam_bench.errors import ConfigError, NotBuilt, SamBenchError
from sam_bench.results import atomic_write_json, load_json

log = logging.getLogger("sam_bench")

MANIFEST = "reproduce.json"
CLASSICAL = {"single-point": ["grabcut"], "edges": ["sobel", "canny", "felzenszwalb"],
             "proposals": ["felzenszwalb", "slic-proposals"], "instances": ["grabcut"], "text-to-mask": ["grabcut"]}
EXTRA_PRESETS = ("text_to_mask",)  # run although they have no [[paper]] rows (the paper is qualitative)
PROMPTABLE_ONLY = {"proposals_single_output": "an ablation of SAM's multimask output: promptable models only"}
QUICK_LIMIT = 2
QUICK_OPTIONS = {  # lighter settings for --quick, applied where the task has the option
    "single-point": {"max_clicks": 9},
    "proposals": {"grid": 16},
    "edges": {"grid": 8},
    "text-to-mask": {"candidates": "grid=8,top_k=16,ranking=score"},
}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_")


def task_defaults(task_cls: Any) -> dict:
    """The task's option defaults as ``sam-bench run`` would pass them (argparse dests)."""
    parser = argparse.ArgumentParser(add_help=False)
    task_cls.add_arguments(parser)
    return {a.dest: a.default for a in parser._actions if a.dest != argparse.SUPPRESS}


def paper_presets(only: list[str] | None = None) -> dict[str, dict]:
    """The presets ``reproduce`` runs, optionally only those named (preset or task names)."""
    from sam_bench.presets import load_presets

    presets = {n: p for n, p in load_presets().items() if p.get("paper") or n in EXTRA_PRESETS}
    if not only:
        return presets
    chosen = {n: p for n, p in presets.items() if n in only or p["task"] in only}
    unknown = [x for x in only if x not in presets and x not in {p["task"] for p in presets.values()}]
    if unknown:
        raise ConfigError(f"--tasks {' '.join(unknown)}: not a paper preset or task; choose from "
                          f"{', '.join(sorted(presets))} or {', '.join(sorted({p['task'] for p in presets.values()}))}")
    return chosen


def parse_substitutes(pairs: list[str] | None) -> dict[str, list[str]]:
    out = {}
    for pair in pairs or []:
        paper, sep, standin = pair.partition("=")
        if not sep or not paper or not standin:
            raise ConfigError(f"--substitute {pair!r}: write PAPER=STANDIN[,STANDIN...], e.g. COCO=COCO_tiny")
        out[paper.lower()] = [s for s in standin.split(",") if s]
    return out


def parse_sets(pairs: list[str] | None) -> dict[str, dict]:
    """``TASK.OPTION=VALUE`` -> {task: {option: value}}.

    VALUE is read as a TOML value (1, 0.5, true, [1, 2], "x"), else kept as text.
    """
    import tomllib

    out: dict[str, dict] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        task, dot, option = key.rpartition(".")
        if not sep or not dot or not task or not option:
            raise ConfigError(f"--set {pair!r}: write TASK.OPTION=VALUE, e.g. single-point.max_clicks=9")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        out.setdefault(task, {})[option.replace("-", "_")] = value
    return out


def split_model_sets(pairs: list[str] | None, models: list[str], chosen: str | None) -> tuple[list[str], dict]:
    """Separate ``--set MODEL.KEY=VALUE`` (a model being run; ``model.`` is ``--model``) from task sets.

    Returns the task pairs and {model: {key: text}}; the text is typed by ``check_options``.
    """
    tasks, out = [], {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        scope, dot, option = key.rpartition(".")
        if scope == "model" and dot and sep:
            if not chosen:
                raise ConfigError(f"--set {pair}: model.KEY=VALUE sets an option of --model; name the model "
                                  f"(one of {', '.join(models)}) or give --model")
            scope = chosen
        if scope in models and dot and sep and option:
            out.setdefault(scope, {})[option.replace("-", "_")] = text
        else:
            tasks.append(pair)
    return tasks, out


def plan_model_options(args: argparse.Namespace, presets: dict) -> tuple[list[str], dict[str, dict]]:
    """The task ``--set`` pairs and each run model's options ({model: {key: text}}), checked against
    the model's builder now, so a wrong key or value stops before anything runs."""
    from sam_bench import registry
    from sam_bench.models.options import check_options, options_of, parse_pairs

    models = [args.model] if args.model else sorted({m for p in presets.values() for m in CLASSICAL.get(p["task"], [])})
    given = parse_pairs(args.model_option)
    if given and not args.model:
        raise ConfigError("--model-option sets an option of --model; without --model use --set MODEL.KEY=VALUE "
                          f"for one of the baselines ({', '.join(models)})")
    task_pairs, sets = split_model_sets(args.set, models, args.model)
    if given:
        sets[args.model] = {**given, **sets.get(args.model, {})}
    checked = {}
    for model, opts in sets.items():
        try:
            spec = options_of(registry.get_model_builder(model.partition(":")[0]))
        except NotBuilt:
            spec = None  # reported when the model is built
        check_options(model, spec, opts)
        checked[model] = opts
    return task_pairs, checked


def plan_datasets(preset: dict, args: argparse.Namespace, subs: dict[str, list[str]]):
    """(dataset specs to run, {spec: paper dataset it stands in for}, [(dataset, reason)] not run)."""
    from sam_bench.data import catalog

    if args.dataset:
        return list(args.dataset), {}, []
    if not args.data_root:
        return ["synthetic"], {"synthetic": ", ".join(preset.get("datasets", []))}, []
    specs, standin_for, absent = [], {}, []
    for name in preset.get("datasets", []):
        wanted, missing = catalog.expand([name], args.data_root)
        specs += wanted
        if not missing:
            continue
        if name.lower() in subs and not wanted:
            present, still = catalog.expand(subs[name.lower()], args.data_root)
            for s in present:
                standin_for[s] = name
            specs += present
            absent += missing if not present else []
            absent += still
        else:
            absent += missing
    return list(dict.fromkeys(specs)), standin_for, absent


def plan(args: argparse.Namespace) -> list[dict]:
    """One entry per (preset, model): what to run, or why not."""
    from sam_bench import registry

    subs = parse_substitutes(args.substitute)
    presets = paper_presets(args.tasks)
    task_pairs, model_options = plan_model_options(args, presets)
    sets = parse_sets(task_pairs)
    scopes = set(presets) | {p["task"] for p in presets.values()}
    if set(sets) - scopes:
        raise ConfigError(f"--set {sorted(set(sets) - scopes)[0]}.*: not a preset or task being run, nor a model "
                          f"being run (or `model`); choose from {', '.join(sorted(scopes))}")
    entries = []
    for name, preset in presets.items():
        task = preset["task"]
        try:
            task_cls = registry.get_task(task)
        except SamBenchError as exc:
            entries.append({"preset": name, "task": task, "model": args.model or "-", "status": "not run",
                            "reason": f"task not available: {exc}"})
            continue
        options = {**task_defaults(task_cls), **preset.get("options", {})}
        if preset.get("split"):
            options["split"] = preset["split"]
        if args.quick:
            options.update({k: v for k, v in QUICK_OPTIONS.get(task, {}).items() if k in options})
        if task == "text-to-mask":
            options["grounder"] = "clip" if args.clip_checkpoint else "oracle"
            options["clip_checkpoint"] = args.clip_checkpoint
        for scope in (task, name):
            unknown = set(sets.get(scope, {})) - set(options)
            if unknown:
                raise ConfigError(f"--set {scope}.{sorted(unknown)[0]}: not an option of task {task!r}; its options: "
                                  f"{', '.join(sorted(options))}")
            options.update(sets.get(scope, {}))
        specs, standin_for, absent = plan_datasets(preset, args, subs)
        for model in [args.model] if args.model else CLASSICAL.get(task, []):
            entry = {"preset": name, "task": task, "model": model, "options": options, "datasets": specs,
                     "model_options": model_options.get(model, {}),
                     "standin_for": standin_for, "not_run_datasets": [{"dataset": d, "reason": r} for d, r in absent],
                     "dir": slug(f"{name}-{model}"), "status": "planned"}
            if not specs:
                entry.update(status="not run", reason="no dataset of this preset is present (see the list below)")
            entries.append(entry)
    return entries


def _model_fits(entry: dict, model: Any, task_cls: Any) -> str | None:
    """Why ``model`` cannot run this entry (None: it can)."""
    kinds = set(getattr(model, "kinds", (model.kind,)))
    if entry["preset"] in PROMPTABLE_ONLY and "promptable" not in kinds:
        return PROMPTABLE_ONLY[entry["preset"]]
    if not kinds & set(task_cls.model_kinds):
        return f"{entry['model']} is a {'/'.join(sorted(kinds))} model; {entry['task']} takes " \
               f"{' or '.join(task_cls.model_kinds)}"
    return None


def _same_run(a: dict, b: dict) -> bool:
    keys = ("task", "model", "model_options", "options", "datasets")
    return all(a.get(k) == b.get(k) for k in keys)


def execute(entries: list[dict], args: argparse.Namespace, out: Path, manifest: dict) -> None:
    """Run the planned entries in order, saving the manifest after each."""
    from sam_bench import registry
    from sam_bench.models.base import build_model
    from sam_bench.runner import run_task

    limit = args.limit if args.limit is not None else (QUICK_LIMIT if args.quick else None)
    for entry in entries:
        if entry["status"] != "planned":
            continue
        twin = next((e for e in entries if e is not entry and e.get("status") == "done" and _same_run(e, entry)), None)
        if twin is not None:
            entry.update(status="done", dir=twin["dir"], reason=f"identical to {twin['preset']}: results shared")
            continue
        task_cls = registry.get_task(entry["task"])
        t0 = time.perf_counter()
        try:
            model = build_model(entry["model"], checkpoint=args.checkpoint, untrained=args.untrained,
                                device=args.device, dtype=args.dtype, **entry.get("model_options", {}))
            why = _model_fits(entry, model, task_cls)
            if why:
                entry.update(status="not run", reason=why)
                continue
            log.info("reproduce: %s with %s on %s", entry["preset"], entry["model"], ", ".join(entry["datasets"]))
            results = run_task(entry["task"], model, datasets=entry["datasets"], data_root=args.data_root,
                               out=out / entry["dir"], limit=limit, progress=False if args.no_progress else None,
                               **entry["options"])
        except NotBuilt as exc:
            entry.update(status="not run", reason=f"not available in this install: {exc}")
        except SamBenchError as exc:
            log.error("reproduce: %s with %s failed: %s", entry["preset"], entry["model"], exc)
            entry.update(status="failed", reason=str(exc))
        else:
            if results and results.get("failures"):
                log.error("reproduce: %s with %s failed: %s", entry["preset"], entry["model"],
                          "; ".join(results["failures"]))
                entry.update(status="failed", reason="; ".join(results["failures"]))
            else:
                entry.update(status="done", untrained=bool(results and results.get("untrained")))
        finally:
            entry["seconds"] = round(time.perf_counter() - t0, 2)
            manifest["runs"] = entries
            atomic_write_json(out / MANIFEST, manifest)


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
    g.add_argument("--model", help="run this registered model on every task it can do (default: the classical "
                   "baselines per task: grabcut, sobel, canny, felzenszwalb, slic-proposals)")
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
    g.add_argument("--quick", action="store_true", help=f"{QUICK_LIMIT} items per dataset and lighter settings "
                   f"({'; '.join(f'{t}: {o}' for t, o in QUICK_OPTIONS.items())})")
    g.add_argument("--limit", type=int, help="only the first N items of each dataset (overrides --quick's)")
    g = p.add_argument_group("output")
    g.add_argument("--results-dir", default="results", help="parent of run folders (default: results)")
    g.add_argument("--run-id", help="run folder name (default: DATE-TIME-MODEL); an existing one is resumed")
    g.add_argument("--out", help="run folder (overrides --results-dir/--run-id)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


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
    print(f"report: {out / 'report.md'} ({len(paths)} files; {sum(e['status'] == 'done' for e in entries)} runs "
          f"done, {sum(e['status'] == 'not run' for e in entries)} not run, {len(failed)} failed, "
          f"{manifest['seconds']:.0f} s)")
    if not any(e["status"] == "done" for e in entries):
        print("sam-bench: failed: reproduce ran nothing (no preset, model or dataset was usable; see report.md)",
              file=sys.stderr)
        return 1
    return 1 if failed else 0
