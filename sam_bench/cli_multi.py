"""``sam-bench run A,B[,...] ARGS``: several tasks (or presets) in one pass over their images.

Each image is loaded and encoded once and handed to every task (``sam_bench.multitask``). ARGS
are read for each task as ``sam-bench run TASK ARGS`` reads them: the model, data and output
options are common; a task option goes to every listed task that has it (``--grid 8`` sets the
grid of both edges and proposals), and an option no listed task takes is an error. ``--out OUT``
(default ``runs/A+B-MODEL``) holds one run folder per task, ``OUT/A`` and ``OUT/B``, each
resumable on its own.

examples:
  sam-bench run proposals,instances --model sam_vit_b --untrained --dataset LVIS_v0.5_val100 --limit 2
  sam-bench run edges,proposals --model sam_vit_h --embedding-cache ~/.cache/sam-embeddings
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

from sam_bench.errors import ConfigError, SamBenchError


def run_many(names: list[str], argv: list[str], cli: ModuleType) -> int:
    """Parse ``argv`` once per task in ``names``, run them in one pass, print each summary; the exit code.

    ``cli``: the ``sam_bench.cli`` module (its parser and helpers), handed in so that the two modules
    import in one direction only."""
    from sam_bench.models.options import parse_pairs
    from sam_bench.multitask import run_tasks
    from sam_bench.reports.tables import print_summary

    at = argv.index("run")
    head, rest = argv[:at], argv[at + 1:]
    rest.remove(",".join(names))
    if len(set(names)) < len(names):
        raise ConfigError(f"run {','.join(names)}: a task is named twice")
    if "-h" in rest or "--help" in rest:
        print(__doc__.strip())
        print(f"\neach task's options: {'; '.join(f'sam-bench run {n} --help' for n in names)}")
        return 0
    parsed, unknown = [], None
    for name in names:
        words = [*head, "run", name, *rest]
        args, extra = cli.build_parser(words).parse_known_args(words)
        if getattr(args, "task_cls", None) is None:
            raise SamBenchError(f"task {name!r} is not built in this install: {getattr(args, 'not_built', '?')}")
        unknown = set(extra) if unknown is None else unknown & set(extra)
        parsed.append(args)
    if unknown:
        raise ConfigError(f"run {','.join(names)}: no listed task takes {' '.join(sorted(unknown))}")
    first = parsed[0]
    if first.verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    model_options = parse_pairs(first.model_option)
    chosen = "".join(f"-{k}_{v}" for k, v in model_options.items())
    out = Path(first.out or Path("runs") / cli._slug(f"{'+'.join(names)}-{first.model}{chosen}"
                                                     f"{'-untrained' if first.untrained else ''}"))
    specs = [{"task": a.task_name, "out": out / cli._slug(name), "options": {k: getattr(a, k) for k in a.task_options},
              "datasets": a.dataset, "data_options": {"split": a.split, "split_by": a.split_by}, "limit": a.limit,
              "max_skip_fraction": a.max_skip_fraction} for name, a in zip(names, parsed)]
    results = run_tasks(specs, first.model, data_root=first.data_root, progress=False if first.no_progress else None,
                        restart=first.restart, checkpoint=first.checkpoint, untrained=first.untrained,
                        device=first.device, dtype=first.dtype, prompt_batch=first.prompt_batch,
                        model_options=model_options, embedding_cache=cli.embedding_cache(first),
                        intervals=cli._intervals(first), save_predictions=first.save_predictions)
    code = 0
    for spec, res in zip(specs, results):
        if res is None:
            continue
        print_summary(res)
        print(f"results: {Path(spec['out']) / 'results.json'}")
        code = max(code, cli.report_outcome(res))
    return code
