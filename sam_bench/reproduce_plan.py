"""What ``sam-bench reproduce`` runs: one entry per (paper preset, model), or why not.

Nothing here is a table of tasks. Each task declares what reproduce needs of it: its classical
``baselines`` (the models run without ``--model``), its options' defaults and ``--quick`` values
(``sam_bench.options``), and any option reproduce sets from its own arguments
(``Task.reproduce_options``). Each preset (``tasks/*.toml``) declares whether it is run (its
``[[paper]]`` rows, or ``[reproduce] run = true``) and for which models (``[reproduce]
model_kinds``, with ``why``).
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from sam_bench.errors import ConfigError, NotBuilt, SamBenchError


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text).strip("_")


def reproduced(preset: dict) -> bool:
    """Whether ``reproduce`` runs a preset: it has ``[[paper]]`` rows or says ``[reproduce] run = true``."""
    return bool(preset.get("paper")) or bool(preset.get("reproduce", {}).get("run"))


def paper_presets(only: list[str] | None = None) -> dict[str, dict]:
    """The presets ``reproduce`` runs, optionally only those named (preset or task names)."""
    from sam_bench.presets import load_presets

    presets = {n: p for n, p in load_presets().items() if reproduced(p)}
    if not only:
        return presets
    chosen = {n: p for n, p in presets.items() if n in only or p["task"] in only}
    unknown = [x for x in only if x not in presets and x not in {p["task"] for p in presets.values()}]
    if unknown:
        raise ConfigError(f"--tasks {' '.join(unknown)}: not a paper preset or task; choose from "
                          f"{', '.join(sorted(presets))} or {', '.join(sorted({p['task'] for p in presets.values()}))}")
    return chosen


def task_classes(names) -> dict[str, Any]:
    """{task name: class} of the loadable tasks among ``names``."""
    from sam_bench import registry

    out = {}
    for name in names:
        try:
            out[name] = registry.get_task(name)
        except SamBenchError:
            continue
    return out


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


def baseline_models(presets: dict) -> list[str]:
    """The classical models the presets' tasks declare (``Task.baselines``), sorted."""
    classes = task_classes({p["task"] for p in presets.values()})
    return sorted({m for cls in classes.values() for m in cls.baselines})


def plan_model_options(args: argparse.Namespace, presets: dict) -> tuple[list[str], dict[str, dict]]:
    """The task ``--set`` pairs and each run model's options ({model: {key: text}}), checked against
    the model's builder now, so a wrong key or value stops before anything runs."""
    from sam_bench import registry
    from sam_bench.models.options import check_options, options_of, parse_pairs

    models = [args.model] if args.model else baseline_models(presets)
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


def task_options(task_cls: Any, preset: dict, args: argparse.Namespace, sets: dict, scopes: tuple) -> dict:
    """A preset's task options: the task's defaults, the preset's, the ``--quick`` values the task
    declares, what the task takes from reproduce's arguments, then ``--set`` (task, preset). The
    preset's ``split`` is a data option (``data_options``), not among these."""
    options = {**task_cls.option_defaults(), **preset.get("options", {})}
    if args.quick:
        options.update({k: v for k, v in task_cls.quick_options().items() if k in options})
    options.update(task_cls.reproduce_options(args))
    for scope in scopes:
        unknown = set(sets.get(scope, {})) - set(options)
        if unknown:
            raise ConfigError(f"--set {scope}.{sorted(unknown)[0]}: not an option of task {task_cls.name!r}; its "
                              f"options: {', '.join(sorted(options))}")
        options.update(sets.get(scope, {}))
    return options


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
        options = task_options(task_cls, preset, args, sets, (task, name))
        specs, standin_for, absent = plan_datasets(preset, args, subs)
        for model in [args.model] if args.model else task_cls.baselines:
            entry = {"preset": name, "task": task, "model": model, "options": options, "datasets": specs,
                     "data_options": {"split": preset["split"]} if preset.get("split") else {},
                     "model_options": model_options.get(model, {}),
                     "standin_for": standin_for, "not_run_datasets": [{"dataset": d, "reason": r} for d, r in absent],
                     "dir": slug(f"{name}-{model}"), "status": "planned"}
            if not specs:
                entry.update(status="not run", reason="no dataset of this preset is present (see the list below)")
            entries.append(entry)
    return entries


def model_fits(entry: dict, preset: dict, model: Any, task_cls: Any) -> str | None:
    """Why ``model`` cannot run this entry (None: it can): the preset's ``[reproduce] model_kinds``,
    then the task's ``model_kinds``."""
    kinds = set(model.kinds)
    wanted = preset.get("reproduce", {}).get("model_kinds")
    if wanted and not kinds & set(wanted):
        return preset["reproduce"].get("why") or f"this preset runs {' or '.join(wanted)} models only"
    if not kinds & set(task_cls.model_kinds):
        return f"{entry['model']} is a {'/'.join(sorted(kinds))} model; {entry['task']} takes " \
               f"{' or '.join(task_cls.model_kinds)}"
    return None


def same_run(a: dict, b: dict) -> bool:
    keys = ("task", "model", "model_options", "options", "datasets")
    return all(a.get(k) == b.get(k) for k in keys)
