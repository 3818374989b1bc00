"""Several tasks in one pass over their images: each image is loaded once and encoded once.

``evaluate_many(jobs, model)`` is ``runner.evaluate`` for several (task, datasets, out) jobs at
once. Each job keeps its own ``OUT/`` (run.json, items.jsonl, results.json) and resumes on its
own: an item done for one job and not another is run for the other only. Items are grouped by
(dataset name, item id); within a group the sample is loaded once when the jobs share the item
(``open_shared`` gives jobs with the same datasets the same items), and ``set_image`` runs only
when the image differs from the one the model holds, so every job's records equal a run of that
job alone. A task must leave the model on the item's image when ``process`` returns (AMG's crop
layers restore it). Each job's latency counts its own encoder calls, the images it took from an
earlier job of the pass (``encoder_shared``) and the encoder seconds that saved; its ``wall_seconds``
is the time the pass spent on its items (an image's load and encoder run count for the first job
that needed it) plus its scoring, and ``pass_wall_seconds`` the whole pass's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sam_bench import distributed
from sam_bench.data.base import Dataset
from sam_bench.errors import BadInput, ConfigError
from sam_bench.models.base import cache_of
from sam_bench.progress import track
from sam_bench.results import ItemStore, keep_prediction
from sam_bench.runlock import RunLock
from sam_bench.runner import MAX_SKIP_FRACTION, _items_path, begin, finish, unique_names
from sam_bench.tasks.base import Task
from sam_bench.timing import StageTimes, Stopwatch

log = logging.getLogger("sam_bench")

_MODEL = ("encoder_calls", "encoder_seconds", "decoder_calls", "decoder_seconds", "decoded_prompts")
_CACHE = ("hits", "misses", "seconds_saved", "load_seconds", "evicted", "write_errors")


@dataclass
class Job:
    """One task of a shared pass: what ``runner.evaluate`` takes for it, and what it has counted."""

    task: Task
    datasets: list[Dataset]
    out: Path
    limit: int | None = None
    data_options: dict = field(default_factory=dict)
    not_run: list[dict] = field(default_factory=list)
    max_skip_fraction: float = MAX_SKIP_FRACTION
    stages: StageTimes = field(default_factory=StageTimes)
    counts: dict[str, float] = field(default_factory=dict)
    shared: int = 0  # images whose encoder output came from an earlier job of the pass
    seconds_shared: float = 0.0
    seconds: float = 0.0  # wall time the pass spent on this job's items (loads, encoder runs, process)
    store: ItemStore | None = None
    intervals: Any = None  # bootstrap.Settings of the metrics' intervals (None: the default)
    save_predictions: bool = True


def _counts(model: Any) -> dict[str, float]:
    from sam_bench.models.base import PromptableModel

    out = {"encoder_calls": model.encoder_calls, "encoder_seconds": model.encoder_seconds,
           "decoder_calls": model.decoder_calls, "decoder_seconds": model.decoder_seconds,
           "decoded_prompts": model.decoded_prompts if isinstance(model, PromptableModel) else 0}
    cache = cache_of(model)
    out.update({f"cache_{k}": vars(cache)[k] if cache is not None else 0 for k in _CACHE})
    return out


def _add(job: Job, before: dict, after: dict) -> None:
    for k in after:
        job.counts[k] = job.counts.get(k, 0) + after[k] - before[k]


def _latency(job: Job, model: Any, pass_seconds: float) -> dict:
    """The model's latency record with this job's own counts (and what the pass shared with it)."""
    c = {k: job.counts.get(k, 0) for k in [*_MODEL, *(f"cache_{k}" for k in _CACHE)]}
    lat = {**model.latency(), "encoder_calls": c["encoder_calls"], "decoder_calls": c["decoder_calls"],
           "decoded_prompts": c["decoded_prompts"],
           "encoder_ms_per_image": c["encoder_seconds"] / c["encoder_calls"] * 1e3 if c["encoder_calls"] else None,
           "decoder_ms_per_prompt": c["decoder_seconds"] / c["decoded_prompts"] * 1e3 if c["decoded_prompts"] else None}
    if cache_of(model) is not None:
        lat.update(embedding_cache_hits=c["cache_hits"], embedding_cache_misses=c["cache_misses"],
                   embedding_cache_load_seconds=round(c["cache_load_seconds"], 4),
                   embedding_cache_evicted=c["cache_evicted"], embedding_cache_write_errors=c["cache_write_errors"])
    lat["encoder_shared"] = job.shared
    lat["encoder_seconds_saved"] = round(c["cache_seconds_saved"] + job.seconds_shared, 4)
    lat["pass_wall_seconds"] = round(pass_seconds, 4)
    lat["pass_share_seconds"] = round(job.seconds, 4)
    return lat


def evaluate_many(jobs: list[Job], model: Any, *, progress: bool | None = None,
                  restart: bool = False) -> list[dict | None]:
    """Run every job with ``model`` in one pass; write each ``job.out/results.json``; return them (rank 0)."""
    outs = [Path(j.out).resolve() for j in jobs]
    if len(set(outs)) < len(outs):
        raise ConfigError(f"two tasks of one pass write to the same folder ({', '.join(map(str, outs))}); "
                          f"give each its own")
    rank, size = distributed.init()
    for job in jobs:
        if job.limit is not None and job.limit < 1:
            raise ConfigError(f"--limit {job.limit}: give at least 1 item per dataset (or leave it out for all)")
        job.task.check_model(model)
        job.out = Path(job.out)
        job.out.mkdir(parents=True, exist_ok=True)
        unique_names(job.datasets)
        job.task.setup()
        for ds in job.datasets:
            job.task.prepare(ds)
    with contextlib.ExitStack() as stack:
        for job in jobs:
            stack.enter_context(RunLock(job.out, enabled=rank == 0))
        for job in jobs:
            begin(job.task, model, job.datasets, job.out, rank, limit=job.limit, restart=restart,
                  data_options=job.data_options)
        distributed.barrier()
        for job in jobs:
            job.store = ItemStore(_items_path(job.out, rank, size))
        t_start = time.perf_counter()
        groups = _groups(jobs, rank, size)
        label = "+".join(j.task.name for j in jobs)
        for members in track(list(groups.values()), len(groups), label, progress):
            _run_group(model, members)
        distributed.barrier()
        pass_seconds = time.perf_counter() - t_start
        if rank != 0:
            return [None] * len(jobs)
        results = []
        for job in jobs:
            job.stages.add("encoder", job.counts.get("encoder_seconds", 0.0), int(job.counts.get("encoder_calls", 0)))
            job.stages.add("decoder", job.counts.get("decoder_seconds", 0.0), int(job.counts.get("decoder_calls", 0)))
            if cache_of(model) is not None:
                job.stages.add("embedding_cache", job.counts.get("cache_load_seconds", 0.0),
                               int(job.counts.get("cache_hits", 0)))
            # finish() counts wall_seconds from its t_start: this job's share of the pass, then its own scoring
            job_start = time.perf_counter() - job.seconds
            latency = {**_latency(job, model, pass_seconds), "pass_tasks": [j.task.name for j in jobs]}
            results.append(finish(job.task, model, job.datasets, job.out, job.stages, latency, job_start, size,
                                  limit=job.limit, max_skip_fraction=job.max_skip_fraction,
                                  data_options=job.data_options, not_run=job.not_run, intervals=job.intervals))
        return results


def _groups(jobs: list[Job], rank: int, size: int) -> OrderedDict:
    """{(dataset name, item id): [(job, dataset, item)]} of the items some job still has to run, in
    the first job's order."""
    groups: OrderedDict = OrderedDict()
    for job in jobs:
        for ds in job.datasets:
            items = distributed.shard(ds.items[:job.limit] if job.limit else ds.items, rank, size)
            todo = [it for it in items if not job.store.done(ds.name, it.id)]
            if len(todo) < len(items):
                log.info("%s %s: resuming, %d of %d items already done", job.task.name, ds.name,
                         len(items) - len(todo), len(items))
            for it in todo:
                groups.setdefault((ds.name, it.id), []).append((job, ds, it))
    return groups


def _run_group(model: Any, members: list) -> None:
    """One item for every job that needs it: loaded once per distinct item, encoded once per distinct image."""
    loaded: list = []  # (item, sample) loaded for this group
    current: np.ndarray | None = None  # the image the model holds, set in this group
    cost = 0.0  # encoder seconds that image took (or saved from the embedding cache)
    for job, ds, item in members:
        t_member = time.perf_counter()
        try:
            sample = next((s for it, s in loaded if it is item), None)
            if sample is None:
                with Stopwatch() as sw:
                    sample = item.load()
                job.stages.add("load", sw.seconds)
                loaded.append((item, sample))
            before = _counts(model)
            with Stopwatch() as sw:
                if current is not None and (current is sample.image or np.array_equal(current, sample.image)):
                    job.shared += 1
                    job.seconds_shared += cost
                else:
                    current = None
                    model.set_image(sample.image, image_id=item.id)
                    mid = _counts(model)
                    cost = (mid["encoder_seconds"] - before["encoder_seconds"]
                            + mid["cache_seconds_saved"] - before["cache_seconds_saved"])
                    current = sample.image
                record = job.task.process(model, item, sample)
            keep_prediction(record, job.save_predictions, f"{ds.name}/{item.id}")
            after = _counts(model)
            _add(job, before, after)
            model_s = sum(after[k] - before[k] for k in ("encoder_seconds", "decoder_seconds", "cache_load_seconds"))
            metric_s = float(record.get("metric_seconds", 0.0))
            job.stages.add("postprocess", sw.seconds - model_s - metric_s)
            job.stages.add("metric", metric_s)
        except BadInput as exc:
            log.warning("skip %s/%s (%s): %s", ds.name, item.id, job.task.name, exc)
            job.store.add(ds.name, item.id, skip=str(exc))
            continue
        finally:
            job.seconds += time.perf_counter() - t_member
        job.store.add(ds.name, item.id, record)


def open_shared(specs: list, data_root: str | None, data_options: dict, opened: dict) -> list[Dataset]:
    """``catalog.open_for_run(specs, data_root, data_options)``, opened once per distinct (specs, options)
    in ``opened``; each caller gets its own Dataset objects (``missing``, ``meta`` and the item list
    are the job's: ``Task.prepare`` writes to them) over the same Item objects."""
    from sam_bench.data import catalog

    key = json.dumps([list(specs), str(data_root), data_options], sort_keys=True, default=str)
    if key not in opened:
        opened[key] = catalog.open_for_run(specs, data_root, data_options)
    return [dataclasses.replace(ds, items=list(ds.items), missing=list(ds.missing), meta=dict(ds.meta))
            for ds in opened[key]]


def run_tasks(tasks: list[dict], model: Any, *, data_root: str | None = None, progress: bool | None = None,
              restart: bool = False, intervals: Any = None, save_predictions: bool = True,
              **model_kw: Any) -> list[dict | None]:
    """Programmatic entry point of a shared pass (what ``sam-bench run A,B`` calls).

    ``tasks``: one dict per job, ``{"task": name, "out": folder, "options": {...}, "datasets": [...]
    (None: the task's own), "data_options": {...}, "limit": N, "max_skip_fraction": F}``; the data
    options go over the task's ``data_defaults`` as in ``runner.run_task``. ``model`` and
    ``model_kw`` as ``runner.prepare_model``; ``intervals`` and ``save_predictions`` as ``runner.evaluate``.
    """
    from sam_bench import registry
    from sam_bench.data import catalog
    from sam_bench.runner import prepare_model, resolve_data_options

    model = prepare_model(model, **model_kw)
    jobs, opened = [], {}
    for spec in tasks:
        cls = registry.get_task(spec["task"])
        specs, absent = catalog.expand(list(spec.get("datasets") or cls.default_datasets), data_root)
        for name, reason in absent:
            log.warning("%s: dataset %s not run: %s", spec["task"], name, reason)
        data = resolve_data_options(cls.data_defaults, spec.get("data_options"))
        jobs.append(Job(cls(**spec.get("options", {})), open_shared(specs, data_root, data, opened), Path(spec["out"]),
                        limit=spec.get("limit"), data_options=data,
                        not_run=[{"dataset": n, "reason": r} for n, r in absent],
                        max_skip_fraction=spec.get("max_skip_fraction", MAX_SKIP_FRACTION), intervals=intervals,
                        save_predictions=save_predictions))
    return evaluate_many(jobs, model, progress=progress, restart=restart)
