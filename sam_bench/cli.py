"""The ``sam-bench`` command line. Each verb is a small module with ``add_arguments`` and ``main``."""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from pathlib import Path

from sam_bench import __version__
from sam_bench.errors import ConfigError, SamBenchError

VERBS = {
    "run": ("sam_bench.cli", "evaluate one task with one model", None),
    "reproduce": ("sam_bench.reproduce", "run every paper experiment and write the full report", None),
    "report": ("sam_bench.reports.report", "rebuild tables, plots and report.md from a saved run", None),
    "compare": ("sam_bench.reports.compare", "compare two runs metric by metric; exit 1 on a regression", None),
    "latency": ("sam_bench.latency", "time the image encoder and prompt decoder of a model", None),
    "models": ("sam_bench.models.checkpoints", "list models; download official checkpoints", None),
    "datasets": ("sam_bench.data.commands", "list, verify and prepare datasets", None),
    "tasks": ("sam_bench.tasks.commands", "list the tasks and paper presets", None),
    "parity": ("sam_bench.parity_cli", "check a model against a reference on the same prompts; exit 1 beyond "
               "a tolerance", None),
}

EPILOG = """examples:
  sam-bench reproduce                                  # every experiment, synthetic data, classical models
  sam-bench run single-point --model grabcut --dataset GrabCut Berkeley --data-root ~/data
  sam-bench run edges --model sam_vit_h --checkpoint sam_vit_h_4b8939.pth --dataset BSDS500 --split test
  sam-bench run proposals --model sam_vit_b --untrained --limit 2     # code path, random weights
  sam-bench run proposals,instances --model sam_vit_b --untrained --dataset LVIS --limit 2  # one encoder pass
  sam-bench compare results/baseline runs/new --tolerance 0.5
"""


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", required=True, help="registered model name (see `sam-bench models list`), "
                   "or edges-from:DIR for precomputed edge maps")
    g.add_argument("--checkpoint", help="checkpoint file (default: the official file in the cache dir); for hf-sam "
                   "and sam3 a save_pretrained folder or a Hugging Face model id in the local HF cache")
    g.add_argument("--untrained", action="store_true",
                   help="build the real architecture with random weights (latency and code paths; "
                        "every result says so)")
    g.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when available, else CPU)")
    g.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="model precision")
    g.add_argument("--prompt-batch", type=int, help="prompts per decoder call (default: chosen per device)")
    g.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a model's own option, e.g. variant=t for sam2 (repeatable; each model's options and "
                        "defaults: `sam-bench models list`); recorded in results.json")
    add_cache_arguments(g)


def add_cache_arguments(g) -> None:
    """The embedding cache's options (``sam_bench.models.embedding_cache``)."""
    g.add_argument("--embedding-cache", metavar="DIR", help="keep encoder outputs in DIR and reuse them on a later "
                   "run of the same model, weights, dtype and device on the same image (default: "
                   "$SAM_BENCH_EMBEDDING_CACHE; none)")
    g.add_argument("--embedding-cache-size", metavar="SIZE", help="bound DIR (e.g. 20G), least recently used "
                   "entries removed first (default: $SAM_BENCH_EMBEDDING_CACHE_SIZE; unbounded)")
    g.add_argument("--embedding-cache-dtype", choices=["native", "bf16", "fp16"], default="native",
                   help="storage precision: native (the encoder's own; hits are bit-identical) or half (half the "
                        "disk, outputs change slightly)")


def embedding_cache(args: argparse.Namespace):
    """The EmbeddingCache the arguments (or the environment) name, or None."""
    from sam_bench.models.embedding_cache import EmbeddingCache

    return EmbeddingCache.from_env(args.embedding_cache, args.embedding_cache_size, args.embedding_cache_dtype)


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data-root", help="folder holding the datasets (default: $SAM_BENCH_DATA, then the user "
                   "data dir)")
    g.add_argument("--dataset", nargs="+", metavar="NAME", help="catalog names (case-insensitive), `sa23`, "
                   "`synthetic`, or ad hoc coco:ANN:IMAGES, lvis:ANN:IMAGES, folder:IMAGES:MASKS, bsds:ROOT, "
                   "refcoco:ROOT (default: the task's own)")
    g.add_argument("--split", help="dataset split where the format has splits (e.g. BSDS500 test)")
    g.add_argument("--split-by", metavar="NAME", help="refcoco datasets: the refs file, e.g. unc, google, umd "
                   "(default: unc for RefCOCO/RefCOCO+, umd for RefCOCOg)")
    g.add_argument("--limit", type=positive_int, help="only the first N items of each dataset (quick checks)")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return value


def add_run_control_arguments(g) -> None:
    """Options of every command that runs items: restart, the skip gate, progress."""
    g.add_argument("--restart", action="store_true", help="discard what an earlier run left in OUT and start over "
                   "(needed when its inputs changed)")
    g.add_argument("--max-skip-fraction", type=fraction, default=0.05, metavar="F",
                   help="exit 1 when more than this fraction of a dataset's items were skipped (default 0.05; "
                        "images a dataset card declares absent are not counted)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars or progress lines")
    g.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples of each metric's "
                   "confidence interval, METRIC_ci in results.json (default 1000; 0: none)")
    g.add_argument("--ci", type=float, default=0.95, help="confidence interval level (default 0.95)")
    g.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap resamples (default 0)")
    from sam_bench.runner import add_prediction_argument

    add_prediction_argument(g)


def report_outcome(results: dict) -> int:
    """Print the skip summary and the failures of a finished run; its exit code (1 if it failed)."""
    from sam_bench.runner import skip_summary

    for line in skip_summary(results):
        print(f"skipped: {line}")
    for line in results.get("failures", []):
        print(f"sam-bench: failed: {line}", file=sys.stderr)
    return 1 if results.get("failures") else 0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def _same_name(a: str, b: str) -> bool:
    return a.replace("_", "-") == b.replace("_", "-")


def _run_entries() -> list[tuple[str, str, dict]]:
    """(name, task, preset) for every task and preset ``run`` accepts, in listing order."""
    from sam_bench import registry
    from sam_bench.presets import load_presets

    tasks = registry.names("tasks")
    entries = [(n, n, {}) for n in tasks]
    entries += [(name, pre["task"], pre) for name, pre in load_presets().items() if name not in tasks]
    return entries


def _add_run(sub: argparse._SubParsersAction, chosen: str | None) -> None:
    """The ``run`` verb; only the chosen task's options are built (importing nothing heavy for --help)."""
    from sam_bench import registry
    from sam_bench.errors import NotBuilt

    p = sub.add_parser("run", help=VERBS["run"][1], description="Evaluate one task (or paper preset) with one "
                       "model. Finished items are kept in OUT/items.jsonl, so rerunning the same command "
                       "resumes an interrupted run.", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=EPILOG)
    tasks = p.add_subparsers(dest="task", metavar="TASK", required=True)
    entries = _run_entries()
    task_names = [n for n, _, pre in entries if not pre]
    for name, task_name, pre in entries:
        twin = next((t for t in task_names if pre and _same_name(t, name)), None)
        if twin and name != chosen:
            continue  # a preset named like its task (single_point): listed once, under the task
        try:
            cls = registry.get_task(task_name)
            doc = pre.get("description") or cls.description
        except (NotBuilt, SamBenchError) as exc:
            tp = tasks.add_parser(name, help=f"(not built: {exc})")
            tp.set_defaults(task_cls=None, not_built=str(exc))
            continue
        same = next((n for n, _, q in entries if q and n != name and _same_name(n, name)), None)
        if same and not pre:
            doc += f" [paper settings: `sam-bench run {same}`]"
        tp = tasks.add_parser(name, help=doc, description=doc)
        if name != chosen:
            continue
        _task_arguments(tp, name, task_name, cls, pre)


def _task_arguments(tp: argparse.ArgumentParser, name: str, task_name: str, cls, pre: dict) -> None:
    add_model_arguments(tp)
    add_data_arguments(tp)
    g = tp.add_argument_group("output")
    g.add_argument("--out", help="run directory (default: runs/TASK-MODEL); resumed if it exists")
    add_run_control_arguments(g)
    before = {a.dest for a in tp._actions}
    cls.add_arguments(tp.add_argument_group(f"{name} options"))
    own = [a.dest for a in tp._actions if a.dest not in before]
    defaults = dict(pre.get("options", {}))
    if pre.get("datasets"):
        defaults["dataset"] = pre["datasets"]
    if pre.get("split"):
        defaults["split"] = pre["split"]
    unknown = set(pre.get("options", {})) - set(own)
    if unknown:
        raise SamBenchError(f"{pre['path']}: options {sorted(unknown)} are not options of task {task_name!r}")
    tp.set_defaults(task_cls=cls, task_name=task_name, preset=name if pre else None, task_options=own, **defaults)


def _intervals(args: argparse.Namespace):
    """The bootstrap settings of --bootstrap / --ci / --bootstrap-seed (ConfigError naming a bad one)."""
    from sam_bench.metrics.bootstrap import Settings

    try:
        return Settings(args.bootstrap, args.ci, args.bootstrap_seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def run_main(args: argparse.Namespace) -> int:
    from sam_bench.runner import run_task

    if args.task_cls is None:
        raise SamBenchError(f"task {args.task!r} is not built in this install: {args.not_built}")
    from sam_bench.models.options import parse_pairs

    options = {k: getattr(args, k) for k in args.task_options}
    model_options = parse_pairs(args.model_option)
    chosen = "".join(f"-{k}_{v}" for k, v in model_options.items())
    out = args.out or str(Path("runs") / _slug(f"{args.task}-{args.model}{chosen}"
                                               f"{'-untrained' if args.untrained else ''}"))
    results = run_task(args.task_name, args.model, datasets=args.dataset, data_root=args.data_root, out=out,
                       limit=args.limit, checkpoint=args.checkpoint, untrained=args.untrained, device=args.device,
                       dtype=args.dtype, prompt_batch=args.prompt_batch, model_options=model_options,
                       progress=False if args.no_progress else None, restart=args.restart,
                       max_skip_fraction=args.max_skip_fraction, split=args.split, split_by=args.split_by,
                       intervals=_intervals(args), save_predictions=args.save_predictions,
                       embedding_cache=embedding_cache(args), **options)
    if results is None:
        return 0
    from sam_bench.reports.tables import print_summary

    print_summary(results)
    print(f"results: {Path(out) / 'results.json'}")
    return report_outcome(results)


def _chosen(argv: list[str], names) -> str | None:
    """The first word of ``argv`` that is one of ``names`` (skipping options and their values)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word in ("--plugin",):
            skip = True
            continue
        if word.startswith("-"):
            continue
        return word if word in names else None
    return None


def _several(rest: list[str]) -> list[str] | None:
    """The task names of ``run A,B[,...]`` (None: one task)."""
    word = next((w for w in rest if not w.startswith("-")), "")
    return [w for w in word.split(",") if w] if "," in word else None


def load_plugins(modules: list[str]) -> None:
    """Import ``--plugin`` modules (and ``$SAM_BENCH_PLUGINS``): they register models, tasks, formats by name."""
    import os

    names = list(modules) + [m for m in os.environ.get("SAM_BENCH_PLUGINS", "").split(",") if m.strip()]
    for name in names:
        try:
            importlib.import_module(name.strip())
        except ImportError as exc:
            raise SamBenchError(f"--plugin {name}: cannot import it ({exc})") from None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the verb named in ``argv`` imports its module (``--help`` imports none)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="sam-bench", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Zero-shot evaluation of Segment Anything models: the SAM paper's five experiments "
                    "(single-point masks, edges, proposals, instances, text-to-mask) for any SAM-family model, "
                    "with classical baselines, paper-style tables, and regression checks.")
    parser.add_argument("--version", action="version", version=f"sam-bench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first, so what it registers (models, tasks, formats) can be named "
                             "(repeatable; also $SAM_BENCH_PLUGINS, comma-separated)")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    chosen = _chosen(argv, VERBS)
    for verb, (module, help_text, _) in VERBS.items():
        if verb != chosen:
            sub.add_parser(verb, help=help_text)
            continue
        if verb == "run":
            rest = argv[argv.index("run") + 1:]
            _add_run(sub, _chosen(rest, {n for n, _, _ in _run_entries()}))
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            sub.add_parser(verb, help=f"(not built: {exc})").set_defaults(func=None, not_built=str(exc))
            continue
        p = sub.add_parser(verb, help=help_text, description=(mod.__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(func=mod.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--plugin", action="append", default=[])
        load_plugins(pre.parse_known_args(argv)[0].plugin)
        many = _chosen(argv, VERBS) == "run" and _several(argv[argv.index("run") + 1:])
        if many:
            from sam_bench.cli_multi import run_many

            return run_many(many, argv, sys.modules[__name__])
        parser = build_parser(argv)
        args, unknown = parser.parse_known_args(argv)
        if unknown and not (args.verb == "run" and getattr(args, "task_cls", 0) is None):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        if args.verbose:
            logging.getLogger().setLevel(logging.DEBUG)
        if args.verb == "run":
            return run_main(args)
        if args.func is None:
            raise SamBenchError(f"command {args.verb!r} is not built in this install: {args.not_built}")
        return int(args.func(args) or 0)
    except SamBenchError as exc:
        print(f"sam-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sam-bench: interrupted; finished items are saved, rerun the same command to resume", file=sys.stderr)
        return 130
