"""The one runner: every task, every model, every dataset goes through ``evaluate``.

It owns the loop (sharding across ranks, progress bars, resume), image loading and the single
``set_image`` per item, bad-input skips, per-item storage, and writing ``results.json``. Tasks
only say what to do with one loaded item and how to score a dataset (``sam_bench.tasks.base``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from sam_bench import distributed
from sam_bench.data.base import Dataset, is_entry_skip
from sam_bench.data.fingerprint import changes, fingerprint, option_files
from sam_bench.errors import BadInput, ConfigError
from sam_bench.metrics import bootstrap
from sam_bench.progress import track
from sam_bench.results import (ItemStore, SCHEMA_VERSION, atomic_write_json, config_hash, keep_prediction, load_json,
                               mark_undefined, merge_items, prediction_sizes, provenance)
from sam_bench.runlock import RunLock
from sam_bench.tasks.base import Task
from sam_bench.timing import StageTimes, Stopwatch

if TYPE_CHECKING:
    from sam_bench.models.base import Model

log = logging.getLogger("sam_bench")


def _items_path(out: Path, rank: int, size: int) -> Path:
    return out / ("items.jsonl" if size == 1 else f"items.rank{rank}.jsonl")


MAX_SKIP_FRACTION = 0.05
RUN_FILES = ("run.json", "results.json")


def _check_resume(out: Path, header: dict) -> None:
    """Write ``run.json``, or check an existing one describes the same run on the same inputs (else refuse)."""
    path = out / "run.json"
    if path.exists():
        old = load_json(path)
        if old.get("config_hash") != header["config_hash"] or old.get("task") != header["task"] \
                or old.get("model", {}).get("name") != header["model"]["name"]:
            raise ConfigError(f"{out} holds a different run ({old.get('task')}, {old.get('model', {}).get('name')}, "
                              f"config {old.get('config_hash')}); choose another --out, or --restart to start "
                              f"it over")
        what = changes(old["inputs"], header["inputs"]) if "inputs" in old else \
            [f"{path} records no input fingerprints (written by an older sam-bench)"]
        if what:
            raise ConfigError(f"{out}: the inputs changed since this run started, so its finished items no longer "
                              f"hold: {'; '.join(what)}. Rerun with --restart to start over, or choose another --out")
    else:
        atomic_write_json(path, header)


def _restart(out: Path) -> None:
    """Remove what a previous run left in ``out`` (its items, run.json, results.json), nothing else."""
    for p in list(out.glob("items*.jsonl")) + [out / f for f in RUN_FILES]:
        if p.exists():
            p.unlink()


def unique_names(datasets: list[Dataset]) -> None:
    """Give every dataset of a run its own id (``NAME``, ``NAME#2``, ...): stored items are keyed by it."""
    seen: Counter = Counter()
    for ds in datasets:
        seen[ds.name] += 1
        if seen[ds.name] > 1:
            new = f"{ds.name}#{seen[ds.name]}"
            log.warning("two datasets are both called %s; the one at %s is stored as %s", ds.name, ds.root, new)
            ds.name = new


def _model_seconds(model: Model) -> float:
    from sam_bench.models.base import cache_of

    cache = cache_of(model)
    return model.encoder_seconds + model.decoder_seconds + (cache.load_seconds if cache is not None else 0.0)


def evaluate(task: Task, model: Model, datasets: Iterable[Dataset], out: str | Path, *, limit: int | None = None,
             progress: bool | None = None, restart: bool = False, max_skip_fraction: float = MAX_SKIP_FRACTION,
             data_options: dict | None = None, not_run: list[dict] | None = None,
             intervals: bootstrap.Settings | None = None, save_predictions: bool = True) -> dict | None:
    """Run ``task`` with ``model`` over ``datasets``; write ``out/results.json``; return it (rank 0).

    Finished items found in ``out`` are not run again, so an interrupted run resumes where it
    stopped; skipped items are tried again. Resuming over changed inputs (data files, annotation
    or ``--boxes`` files) is refused, naming what changed; ``restart`` starts over. Under torchrun
    each rank takes a strided share of items and appends to its own JSONL; rank 0 merges them and
    computes the metrics, which therefore equal a one-process run. ``results["failures"]`` lists
    why the run should not count (a dataset that evaluated nothing, too many skips).
    ``data_options``: what the datasets were opened with (split, subsampling...), recorded in the
    run's identity. ``not_run``: requested datasets that could not be opened ({"dataset", "reason"}),
    reported in the results and among the failures when nothing else ran. ``intervals``: the
    bootstrap of the metrics' confidence intervals (default ``bootstrap.Settings()``: 1000, 95%).
    ``save_predictions``: keep each record's ``prediction`` (what the report draws; ``results.keep_prediction`` bounds
    its size), else drop it; never part of the run's identity, never read by ``Task.evaluate``.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit {limit}: give at least 1 item per dataset (or leave it out for all)")
    task.check_model(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rank, size = distributed.init()
    datasets = list(datasets)
    unique_names(datasets)
    task.setup()  # the files its options name (detections, grounders), once
    for ds in datasets:
        task.prepare(ds)
    with RunLock(out, enabled=rank == 0):
        return _evaluate(task, model, datasets, out, rank, size, limit=limit, progress=progress, restart=restart,
                         max_skip_fraction=max_skip_fraction, data_options=dict(data_options or {}),
                         not_run=list(not_run or []), intervals=intervals, save_predictions=save_predictions)


def begin(task: Task, model: Model, datasets: list[Dataset], out: Path, rank: int, *, limit: int | None,
          restart: bool, data_options: dict) -> None:
    """Write (or check, to resume) ``out/run.json``: the run's identity and input fingerprints (rank 0)."""
    header = {"task": task.name, "model": model.info.as_dict(), "config": task.config, "data_options": data_options,
              "datasets": [d.name for d in datasets], "limit": limit,
              "config_hash": config_hash({"task": task.name, "config": task.scoring_config(task.config), "limit": limit,
                                          "data_options": data_options, "model": model.info.as_dict(),
                                          "datasets": [d.name for d in datasets]})}
    if rank == 0:
        header["inputs"] = {"datasets": {d.name: fingerprint(d) for d in datasets},
                            "files": option_files(task.scoring_config(task.config))}
        if restart:
            _restart(out)
        _check_resume(out, header)


def _evaluate(task: Task, model: Model, datasets: list[Dataset], out: Path, rank: int, size: int, *,
              limit: int | None, progress: bool | None, restart: bool, max_skip_fraction: float,
              data_options: dict, not_run: list[dict], intervals: bootstrap.Settings | None,
              save_predictions: bool) -> dict | None:
    begin(task, model, datasets, out, rank, limit=limit, restart=restart, data_options=data_options)
    distributed.barrier()
    store = ItemStore(_items_path(out, rank, size))
    t_start = time.perf_counter()
    stages = StageTimes()  # this process's share: load, post-processing (task work beyond the model), metric
    for ds in datasets:
        items = distributed.shard(ds.items[:limit] if limit else ds.items, rank, size)
        todo = [it for it in items if not store.done(ds.name, it.id)]
        if len(todo) < len(items):
            log.info("%s: resuming, %d of %d items already done", ds.name, len(items) - len(todo), len(items))
        for item in track(todo, len(todo), f"{task.name} {ds.name}", progress):
            try:
                with Stopwatch() as sw:
                    sample = item.load()
                stages.add("load", sw.seconds)
                model_s = _model_seconds(model)
                with Stopwatch() as sw:
                    model.set_image(sample.image, image_id=item.id)
                    record = task.process(model, item, sample)
                metric_s = float(record.get("metric_seconds", 0.0))
                stages.add("postprocess", sw.seconds - (_model_seconds(model) - model_s) - metric_s)
                stages.add("metric", metric_s)
                keep_prediction(record, save_predictions, f"{ds.name}/{item.id}")
            except BadInput as exc:
                log.warning("skip %s/%s: %s", ds.name, item.id, exc)
                store.add(ds.name, item.id, skip=str(exc))
                continue
            store.add(ds.name, item.id, record)
    distributed.barrier()
    if rank != 0:
        return None
    stages.add("encoder", model.encoder_seconds, model.encoder_calls)
    stages.add("decoder", model.decoder_seconds, model.decoder_calls)
    from sam_bench.models.base import cache_of

    cache = cache_of(model)
    if cache is not None:
        stages.add("embedding_cache", cache.load_seconds, cache.hits)
    return finish(task, model, datasets, out, stages, model.latency(), t_start, size, limit=limit,
                  max_skip_fraction=max_skip_fraction, data_options=data_options, not_run=not_run, intervals=intervals)


def finish(task: Task, model: Model, datasets: list[Dataset], out: Path, stages: StageTimes, latency: dict,
           t_start: float, size: int, *, limit: int | None, max_skip_fraction: float, data_options: dict,
           not_run: list[dict], intervals: bootstrap.Settings | None = None) -> dict:
    """Merge the ranks' items, score them, write ``out/results.json`` (with ``latency``) and the task's outputs."""
    lines = merge_items(sorted(out.glob("items*.jsonl")))
    with Stopwatch() as sw:
        results = summarise(task, model.info.as_dict(), datasets, lines, limit=limit, data_options=data_options,
                            intervals=intervals)
    stages.add("metric", sw.seconds)
    results["latency"] = {**latency, "stages": stages.as_dict(), "wall_seconds": time.perf_counter() - t_start,
                          "world_size": size}
    results["provenance"] = provenance(model.device)
    results["predictions"] = prediction_sizes(lines)
    if not_run:
        results["not_run"] = not_run
    results["failures"] = failures(results, max_skip_fraction) + task.gate(results)
    atomic_write_json(out / "results.json", results)
    from sam_bench.reports.render import write_run_outputs  # the task's files, its declared tables and plots

    write_run_outputs(results, out, task=type(task), datasets=datasets)
    return results


def _item_skips(ds: Dataset, skips: list[dict]) -> tuple[int, int]:
    """(skipped items that count, images declared absent): entry-level skips (annotations ``#ann``,
    detections ``#det``) and the images a dataset card declares absent (``meta["declared_absent"]``)
    are reported but not counted."""
    item_level = [s for s in skips if not is_entry_skip(s)]
    absent = sum(1 for m in ds.missing if not is_entry_skip(m))
    declared = min(int(ds.meta.get("declared_absent", 0) or 0), absent)
    return len(item_level) - declared, declared


def failures(results: dict, max_skip_fraction: float = MAX_SKIP_FRACTION) -> list[str]:
    """Why a run must not pass as a result: no dataset, a dataset with no item evaluated, too many skips."""
    out = []
    if not results.get("datasets"):
        out.append("no dataset was evaluated" + "".join(
            f"; {n['dataset']}: {n['reason']}" for n in results.get("not_run", [])))
    for name, d in results.get("datasets", {}).items():
        n_ok, counted = d["num_items"], d.get("num_skipped_counted", d["num_skipped"])
        if n_ok == 0:
            out.append(f"{name}: no item was evaluated ({d['num_skipped']} skipped)")
        elif counted and counted / (n_ok + counted) > max_skip_fraction:
            out.append(f"{name}: {counted} of {n_ok + counted} items skipped "
                       f"({100 * counted / (n_ok + counted):.1f}% > --max-skip-fraction {max_skip_fraction:g})")
    return out


def skip_summary(results: dict, top: int = 3) -> list[str]:
    """One line per dataset with skips: how many, and the commonest reasons (file names stripped)."""
    lines = []
    for name, d in results.get("datasets", {}).items():
        if not d["num_skipped"]:
            continue
        reasons = Counter(str(s["reason"]).split(": ", 1)[-1] for s in d["skips"])
        common = "; ".join(f"{n} x {r}" for r, n in reasons.most_common(top))
        lines.append(f"{name}: {d['num_skipped']} skipped ({common})")
    return lines


def summarise(task: Task, model_info: dict, datasets: list[Dataset], lines: list[dict],
              limit: int | None = None, data_options: dict | None = None,
              intervals: bootstrap.Settings | None = None) -> dict:
    """The results schema from merged per-item lines (also used by ``sam-bench report``).

    With ``intervals`` (default 1000 resamples, 95%) every metric the task can resample
    (``Task.resampler``) gets ``METRIC_ci`` [lo, hi] beside it: per dataset over its own units, and
    for the headline by the task's ``aggregate`` of each replicate of every dataset.
    """
    intervals = bootstrap.Settings() if intervals is None else intervals
    per_ds: dict[str, dict] = {}
    reps: dict[str, dict] = {}
    units: dict[str, str] = {}
    for ds in datasets:
        wanted = {it.id for it in (ds.items[:limit] if limit else ds.items)}
        mine = [ln for ln in lines if ln["dataset"] == ds.name and ln["item"] in wanted]
        ok = sorted((ln for ln in mine if ln["status"] == "ok"), key=lambda ln: ln["item"])
        skips = [{"item": ln["item"], "reason": ln["reason"]} for ln in mine if ln["status"] == "skip"]
        skips += list(ds.missing)
        metrics, res = task.score(ds, [{"item": ln["item"], **ln["record"]} for ln in ok],
                                  resample=intervals.replicates > 0) if ok else ({}, None)
        if res is not None and len(res):
            reps[ds.name] = bootstrap.replicates(res, intervals.replicates, bootstrap.rng_for(intervals.seed, ds.name))
            metrics.update(bootstrap.intervals(reps[ds.name], intervals.level))
            units[ds.name] = res.unit
        counted, declared = _item_skips(ds, skips)
        per_ds[ds.name] = {"metrics": metrics, "undefined": mark_undefined(metrics), "num_items": len(ok),
                           "num_available": len(ds.items), "num_skipped": len(skips),
                           "num_skipped_counted": counted, "declared_absent": declared, "skips": skips}
    agg = task.aggregate({k: v["metrics"] for k, v in per_ds.items() if v["metrics"]})
    if reps and set(reps) == {k for k, v in per_ds.items() if v["metrics"]}:
        agg.update({k: v for k, v in bootstrap.intervals(bootstrap.combine(reps, task.aggregate), intervals.level).items()
                    if k[:-3] in agg})
    return {"schema_version": SCHEMA_VERSION, "task": task.name, "model": model_info,
            "untrained": bool(model_info.get("untrained")), "config": task.config,
            "data_options": dict(data_options or {}), "limit": limit,
            "datasets": per_ds, "metrics": agg, "undefined": mark_undefined(agg),
            "bootstrap": {**intervals.as_dict(), "units": units}}


def add_prediction_argument(group) -> None:
    """``--no-save-predictions``, the one spelling of ``save_predictions`` (``run`` and ``reproduce``)."""
    group.add_argument("--no-save-predictions", dest="save_predictions", action="store_false",
                       help="do not keep each item's prediction (masks as RLE, edge maps) in items.jsonl; "
                            "report.html then has tables and plots but no gallery (never changes a metric)")


def resolve_data_options(*layers: dict | None) -> dict:
    """The run's data options: later layers over earlier ones (task defaults, dict, named), unset (None) left out."""
    out: dict = {}
    for layer in layers:
        out.update({k: v for k, v in (layer or {}).items() if v is not None})
    return out


def run_task(task: str, model: str | Any, *, datasets: list[str] | None = None, data_root: str | None = None,
             out: str | Path, limit: int | None = None, checkpoint: str | None = None, untrained: bool = False,
             device: str | None = None, dtype: str | None = None, prompt_batch: int | None = None,
             model_options: dict | None = None, progress: bool | None = None, restart: bool = False,
             max_skip_fraction: float = MAX_SKIP_FRACTION, split: str | None = None, split_by: str | None = None,
             subsample: bool | None = None, subsample_seed: int | None = None, data_options: dict | None = None,
             intervals: bootstrap.Settings | None = None, save_predictions: bool = True, embedding_cache: Any = None,
             **options: Any) -> dict | None:
    """Programmatic entry point: names in, ``results.json`` out (what ``sam-bench run`` calls).

    ``model`` is a registered name (built here) or an already built adapter. ``options`` are the
    task's own settings (what its command-line options set). The data options (``split``,
    ``split_by``, ``subsample``, ``subsample_seed``, and readers' own in ``data_options``, e.g. a
    folder mask ``threshold``) go straight to the data layer (``catalog.open_for_run``), over the
    task's ``data_defaults``, and are recorded in the run's identity. ``save_predictions``: see
    ``evaluate``. ``embedding_cache``: a folder (or ``EmbeddingCache``) of encoder outputs read and
    filled (``prepare_model``).
    """
    from sam_bench import registry
    from sam_bench.data import catalog

    task_cls = registry.get_task(task)
    task_obj = task_cls(**options)
    model = prepare_model(model, checkpoint=checkpoint, untrained=untrained, device=device, dtype=dtype,
                          prompt_batch=prompt_batch, model_options=model_options, embedding_cache=embedding_cache)
    specs, absent = catalog.expand(list(datasets or task_cls.default_datasets), data_root)
    for name, reason in absent:
        log.warning("dataset %s not run: %s", name, reason)
    named = {"split": split, "split_by": split_by, "subsample": subsample, "subsample_seed": subsample_seed}
    data = resolve_data_options(task_cls.data_defaults, data_options, named)
    opened = catalog.open_for_run(specs, data_root, data)
    return evaluate(task_obj, model, opened, out, limit=limit, progress=progress, restart=restart,
                    max_skip_fraction=max_skip_fraction, data_options=data,
                    not_run=[{"dataset": n, "reason": r} for n, r in absent], intervals=intervals,
                    save_predictions=save_predictions)


def prepare_model(model: str | Any, *, checkpoint: str | None = None, untrained: bool = False,
                  device: str | None = None, dtype: str | None = None, prompt_batch: int | None = None,
                  model_options: dict | None = None, embedding_cache: Any = None) -> Any:
    """``model`` built when it is a name; its prompt batch and embedding cache set (``embedding_cache``:
    a folder, an ``EmbeddingCache``, else ``$SAM_BENCH_EMBEDDING_CACHE``; promptable models only)."""
    from sam_bench.models.base import attach, build_model
    from sam_bench.models.embedding_cache import EmbeddingCache

    if isinstance(model, str):
        model = build_model(model, checkpoint=checkpoint, untrained=untrained, device=device, dtype=dtype,
                            **(model_options or {}))
    if prompt_batch and "promptable" in model.kinds:
        model.prompt_batch = prompt_batch
    cache = embedding_cache if isinstance(embedding_cache, EmbeddingCache) else EmbeddingCache.from_env(embedding_cache)
    attach(model, cache)
    return model
