"""Time the image encoder (ms per image) and the prompt decoder (ms per prompt) of models.

Latency of an architecture does not depend on its weights, so ``--untrained`` measures the real
SAM ViT-B/L/H (or any registered promptable model) without a checkpoint; such rows say "random
weights". Writes OUT/latency.{md,csv,tex} and OUT/latency.json (with provenance).

examples:
  sam-bench latency --model sam_vit_b sam_vit_l sam_vit_h --untrained --dtype fp32 bf16
  sam-bench latency --model sam_vit_h --checkpoint sam_vit_h_4b8939.pth --device cuda --prompts 256
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from sam_bench.errors import ConfigError
from sam_bench.results import RANDOM_WEIGHTS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", nargs="+", required=True, metavar="NAME", help="registered promptable models")
    p.add_argument("--checkpoint", help="checkpoint (only with a single --model; default: the official file)")
    p.add_argument("--untrained", action="store_true", help="random weights (timings are the architecture's)")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when available, else CPU)")
    p.add_argument("--dtype", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"], help="precisions to time")
    p.add_argument("--image-size", nargs=2, type=int, default=[480, 640], metavar=("H", "W"),
                   help="test image size (SAM resizes to 1024 long side, so the encoder cost barely depends on it)")
    p.add_argument("--images", type=int, default=3, help="timed encoder runs per model (after one warm-up)")
    p.add_argument("--prompts", type=int, default=64, help="single-point prompts decoded per timing")
    p.add_argument("--prompt-batch", type=int, nargs="+", metavar="B",
                   help="decoder batch sizes to time (default: the model's own choice)")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a model's own option, e.g. variant=t for sam2, given to every --model (repeatable; "
                        "options and defaults: `sam-bench models list`)")
    p.add_argument("--out", default="runs/latency", help="output folder (default: runs/latency)")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model, image: np.ndarray, images: int = 3, prompts: int = 64, batches: list[int | None] | None = None,
            seed: int = 0) -> list[dict]:
    """Median encoder ms/image over ``images`` runs and decoder ms/prompt per batch size (one warm-up each)."""
    model.set_image(image)  # warm-up (allocations, kernels)
    enc = []
    for _ in range(images):
        _sync(model.device)
        t0 = time.perf_counter()
        model.set_image(image)
        _sync(model.device)
        enc.append((time.perf_counter() - t0) * 1e3)
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
        times = []
        for _ in range(2):
            _sync(model.device)
            t0 = time.perf_counter()
            model.predict(points=pts, labels=labels, batch_size=b)
            _sync(model.device)
            times.append((time.perf_counter() - t0) * 1e3 / prompts)
        rows.append({"encoder_ms_per_image": statistics.median(enc), "images_per_s": 1e3 / statistics.median(enc),
                     "prompt_batch": b, "decoder_ms_per_prompt": min(times)})
    return rows


def tune(model, pts: np.ndarray, labels: np.ndarray, rounds: int = 4) -> None:
    """Decode until the model's batch tuner (CPU) has chosen, so the runner's own batch is timed."""
    for _ in range(rounds):
        if not model.tuning_batch:
            return
        model.predict(points=np.resize(pts, (128, *pts.shape[1:])), labels=np.resize(labels, (128, labels.shape[1])))


def main(args: argparse.Namespace) -> int:
    import pandas as pd

    from sam_bench.config import resolve_device
    from sam_bench.models.base import build_model
    from sam_bench.models.options import parse_pairs
    from sam_bench.reports.tables import write_table
    from sam_bench.results import atomic_write_json, provenance

    if args.checkpoint and len(args.model) > 1:
        raise ConfigError("--checkpoint goes with a single --model")
    device = resolve_device(args.device)
    h, w = args.image_size
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    options = parse_pairs(args.model_option)
    shown = " ".join(f"{k}={v}" for k, v in options.items())
    rows = []
    for name in args.model:
        for dtype in args.dtype:
            model = build_model(name, checkpoint=args.checkpoint, untrained=args.untrained, device=str(device),
                                dtype=dtype, **options)
            if "promptable" not in model.kinds:
                raise ConfigError(f"latency times promptable models; {name!r} is a {model.kind} model")
            info = model.info.as_dict()
            weights = RANDOM_WEIGHTS if info.get("untrained") else Path(info.get("checkpoint") or "-").name
            for r in measure(model, image, args.images, args.prompts, args.prompt_batch):
                rows.append({"model": name, **({"options": shown} if shown else {}), "weights": weights,
                             "device": str(device), "dtype": dtype, **r})
                print(f"{name}{' ' + shown if shown else ''} [{weights}] {device} {dtype}: encoder {r['encoder_ms_per_image']:.1f} ms/image, "
                      f"decoder {r['decoder_ms_per_prompt']:.2f} ms/prompt at batch {r['prompt_batch']}")
            del model
    out = Path(args.out)
    df = pd.DataFrame(rows)
    caption = "Latency: encoder ms/image, decoder ms/prompt" + (" (random weights: timings of the architecture)"
                                                                 if args.untrained else "")
    write_table(df, out, "latency", caption=caption, floatfmt=".2f")
    atomic_write_json(out / "latency.json", {"rows": rows, "image_size": [h, w], "prompts": args.prompts,
                                             "untrained": args.untrained, "provenance": provenance(device)})
    print(f"latency table: {out / 'latency.md'}")
    return 0
