"""Time promptable models: image encoder (ms per image), prompt decoder (ms per prompt at batch
1 / 16 / 64), automatic mask generation on a 16x16 grid (ms per image), peak memory and
parameter count, one row per model and precision, in one table and one plot.

Latency of an architecture does not depend on its weights, so ``--untrained`` measures every
registered promptable model without a checkpoint; such rows say "random weights". ``--model all``
takes every registered promptable model (``--variants`` each variant its card lists); a model
whose package is not installed is a recorded skip with the reason. The table is rewritten after
each model, so an interrupted run keeps what it measured. Writes OUT/latency.{md,csv,tex,json}
and OUT/latency.png.

examples:
  sam-bench latency --model all --untrained --images 1
  sam-bench latency --model sam_vit_b sam_vit_l sam_vit_h --untrained --dtype fp32 bf16
  sam-bench latency --model sam2 --untrained --variants
  sam-bench latency --model sam_vit_h --checkpoint sam_vit_h_4b8939.pth --device cuda --prompts 256
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from sam_bench.errors import ConfigError, NotBuilt
from sam_bench.results import RANDOM_WEIGHTS

BATCHES = (1, 16, 64)
AMG_GRID = 16


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", nargs="+", required=True, metavar="NAME",
                   help="registered promptable models, or all (every registered promptable model)")
    p.add_argument("--variants", action="store_true", help="time every variant a model's card lists, not only "
                   "its default (e.g. sam2 t, s, b+, l)")
    p.add_argument("--checkpoint", help="checkpoint (only with a single --model; default: the official file)")
    p.add_argument("--untrained", action="store_true", help="random weights (timings are the architecture's)")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when available, else CPU)")
    p.add_argument("--dtype", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"], help="precisions to time")
    p.add_argument("--image-size", nargs=2, type=int, default=[480, 640], metavar=("H", "W"),
                   help="test image size (SAM resizes to 1024 long side, so the encoder cost barely depends on it)")
    p.add_argument("--images", type=int, default=3, help="timed encoder runs per model (after one warm-up)")
    p.add_argument("--prompts", type=int, default=64, help="single-point prompts decoded per timing")
    p.add_argument("--prompt-batch", type=int, nargs="+", default=list(BATCHES), metavar="B",
                   help="decoder batch sizes to time (default: 1 16 64)")
    p.add_argument("--amg-grid", type=int, default=AMG_GRID, metavar="N",
                   help="points per side of the automatic-mask-generation timing (default: 16; 0: off)")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a model's own option, e.g. variant=t for sam2, given to every --model (repeatable; "
                        "options and defaults: `sam-bench models list`)")
    p.add_argument("--out", default="runs/latency", help="output folder (default: runs/latency)")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(model, fn) -> float:
    """Milliseconds ``fn()`` takes, the device synchronised before and after."""
    _sync(model.device)
    t0 = time.perf_counter()
    fn()
    _sync(model.device)
    return (time.perf_counter() - t0) * 1e3


def measure(model, image: np.ndarray, images: int = 3, prompts: int = 64, batches: list[int | None] | None = None,
            seed: int = 0) -> list[dict]:
    """Median encoder ms/image over ``images`` runs and decoder ms/prompt per batch size (one warm-up
    each); a batch of None times the model's own choice (the CPU tuner's, see ``tune``)."""
    model.set_image(image)  # warm-up (allocations, kernels)
    enc = statistics.median(_timed(model, lambda: model.set_image(image)) for _ in range(images))
    h, w = image.shape[:2]
    rng = np.random.default_rng(seed)
    pts = rng.uniform([0, 0], [w, h], size=(prompts, 1, 2))
    labels = np.ones((prompts, 1))
    rows = []
    for batch in batches or [None]:
        if batch is None:
            tune(model, pts, labels)
        b = batch or model.default_prompt_batch()
        model.predict(points=pts[:b], labels=labels[:b], batch_size=b)  # warm-up
        dec = min(_timed(model, lambda: model.predict(points=pts, labels=labels, batch_size=b)) / prompts
                  for _ in range(2))
        rows.append({"encoder_ms_per_image": enc, "images_per_s": 1e3 / enc, "prompt_batch": b,
                     "decoder_ms_per_prompt": dec})
    return rows


def amg_ms(model, image: np.ndarray, grid: int) -> float:
    """Milliseconds of automatic mask generation on a grid x grid point grid, the image already set
    (decoder, stability, NMS: what AMG adds to one encoder pass)."""
    from sam_bench.amg import AMGConfig, generate

    model.set_image(image)
    return _timed(model, lambda: generate(model, image, AMGConfig(points_per_side=grid)))


def tune(model, pts: np.ndarray, labels: np.ndarray, rounds: int = 4) -> None:
    """Decode until the model's batch tuner (CPU) has chosen, so the runner's own batch is timed."""
    for _ in range(rounds):
        if not model.tuning_batch:
            return
        model.predict(points=np.resize(pts, (128, *pts.shape[1:])), labels=np.resize(labels, (128, labels.shape[1])))


class PeakMemory:
    """Peak memory (MB) a block adds: CUDA's max allocated bytes, or on CPU the process's peak
    resident set (Linux VmHWM, reset through /proc/self/clear_refs) above its size before."""

    def __init__(self, device):
        self.device, self.mb = device, None

    @staticmethod
    def _status(key: str) -> float | None:
        try:
            line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key))
        except (OSError, StopIteration):
            return None
        return float(line.split()[1]) / 1024

    def __enter__(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        self.base = self._status("VmRSS:")
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.type == "cuda":
            self.mb = torch.cuda.max_memory_allocated(self.device) / 2**20 - self.base
        else:
            peak = self._status("VmHWM:")
            self.mb = None if peak is None or self.base is None else peak - self.base


def targets(names: list[str], variants: bool, options: dict) -> list[tuple[str, dict]]:
    """(model, options) pairs to time: ``all`` expands to the registered promptable models, and
    ``variants`` to each variant a model's card lists."""
    from sam_bench import registry
    from sam_bench.models.cards import MODEL_CARDS, ModelCard

    if "all" in names:
        names = [n for n in registry.names("models") if "promptable" in MODEL_CARDS.get(n, ModelCard("?")).kinds]
    out = []
    for name in names:
        card_variants = [v for v in MODEL_CARDS.get(name, ModelCard("?")).params if v]
        if variants and card_variants and "variant" not in options:
            out += [(name, {**options, "variant": v}) for v in card_variants]
        else:
            out.append((name, dict(options)))
    return out


def time_model(model, image: np.ndarray, args: argparse.Namespace) -> dict:
    """One wide row: encoder ms, decoder ms per prompt at each batch, AMG ms, parameters."""
    row = {"params_M": (model.parameter_count() or 0) / 1e6 or None}
    for r in measure(model, image, args.images, args.prompts, args.prompt_batch):
        row["encoder_ms_per_image"] = r["encoder_ms_per_image"]
        row[f"decoder_ms_b{r['prompt_batch']}"] = r["decoder_ms_per_prompt"]
    if args.amg_grid:
        row[f"amg{args.amg_grid}_ms_per_image"] = amg_ms(model, image, args.amg_grid)
    return row


def main(args: argparse.Namespace) -> int:
    from sam_bench.config import resolve_device
    from sam_bench.models.base import build_model
    from sam_bench.models.options import parse_pairs
    from sam_bench.results import provenance

    if args.checkpoint and (len(args.model) > 1 or "all" in args.model):
        raise ConfigError("--checkpoint goes with a single --model")
    device = resolve_device(args.device)
    h, w = args.image_size
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    jobs = targets(args.model, args.variants, parse_pairs(args.model_option))
    rows, skipped = [], []
    meta = {"image_size": [h, w], "prompts": args.prompts, "untrained": args.untrained, "amg_grid": args.amg_grid}
    for i, (name, options) in enumerate(jobs, 1):
        shown = " ".join(f"{k}={v}" for k, v in options.items())
        for dtype in args.dtype:
            label = f"[{i}/{len(jobs)}] {name}{' ' + shown if shown else ''} {device} {dtype}"
            try:
                with PeakMemory(device) as mem:
                    model = build_model(name, checkpoint=args.checkpoint, untrained=args.untrained,
                                        device=str(device), dtype=dtype, **options)
                    if "promptable" not in model.kinds:
                        raise ConfigError(f"latency times promptable models; {name!r} is a {model.kind} model")
                    row = time_model(model, image, args)
            except NotBuilt as exc:
                skipped.append({"model": name, "options": shown, "dtype": dtype, "reason": str(exc)})
                print(f"{label}: skipped ({exc})", flush=True)
                continue
            info = model.info.as_dict()
            weights = RANDOM_WEIGHTS if info.get("untrained") else Path(info.get("checkpoint") or "-").name
            rows.append({"model": name, "options": shown, "weights": weights, "device": str(device), "dtype": dtype,
                         **row, "peak_mem_MB": mem.mb})
            del model
            print(f"{label} [{weights}]: encoder {row['encoder_ms_per_image']:.1f} ms/image, decoder "
                  + ", ".join(f"{row[f'decoder_ms_b{b}']:.2f}" for b in args.prompt_batch)
                  + f" ms/prompt at batch {'/'.join(map(str, args.prompt_batch))}", flush=True)
            write(Path(args.out), rows, skipped, meta, provenance(device))
    if not rows:
        raise ConfigError(f"latency measured no model ({len(skipped)} skipped: "
                          + "; ".join(f"{s['model']}: {s['reason']}" for s in skipped) + ")")
    write(Path(args.out), rows, skipped, meta, provenance(device))
    print(f"latency table: {Path(args.out) / 'latency.md'}" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return 0


def write(out: Path, rows: list[dict], skipped: list[dict], meta: dict, prov: dict) -> None:
    """latency.{md,csv,tex,json} and latency.png from the rows measured so far."""
    import pandas as pd

    from sam_bench.reports.plots import latency_plot
    from sam_bench.reports.tables import write_table
    from sam_bench.results import atomic_write_json

    df = pd.DataFrame(rows)
    if not df["options"].astype(bool).any():
        df = df.drop(columns="options")
    untrained = all(r["weights"] == RANDOM_WEIGHTS for r in rows)
    caption = ("Latency: encoder ms/image, decoder ms/prompt at batch B, automatic mask generation ms/image, "
               "peak memory MB, parameters (M)" + (" (random weights: timings of the architecture)" if untrained else ""))
    write_table(df, out, "latency", caption=caption, floatfmt=".2f")
    latency_plot(rows, out / "latency.png", title=caption.split(":")[0] + (" (random weights)" if untrained else ""))
    atomic_write_json(out / "latency.json", {"rows": rows, "skipped": skipped, **meta, "provenance": prov})
