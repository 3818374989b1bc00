"""Model-side speed ratios, measured in one run on one device (random-weight SAM ViT-B; latency
does not depend on the weights):

1. runner overhead: ``SamV1Model.set_image`` + ``predict`` over the raw official ``SamPredictor``
   (``set_image`` + ``predict_torch``) on the same image and prompts, same batch (target <= 5%);
2. prompt batch: the runner's per-prompt decode time at its own batch choice (on CPU measured by
   its ``BatchTuner`` on the first decoder calls) vs the best the official predictor reaches at
   batch 1 / 4 / 16 / 64 (target within 5%);
3. automatic mask generation at 16x16, filters off: ours vs ``SamAutomaticMaskGenerator``
   (target >= 1.3x faster, identical masks). Both include the encoder pass.

Repeats are interleaved and medians taken (the CPU is shared). Both sides keep every chunk's
outputs, as a caller must; the runner also concatenates them into one ``Prediction``. Writes
benchmarks/results/bench_models_<device>.json.

    python benchmarks/bench_models.py --device cpu
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def main() -> None:
    from segment_anything import SamAutomaticMaskGenerator, SamPredictor

    from sam_bench.amg import AMGConfig, generate
    from sam_bench.config import resolve_device
    from sam_bench.latency import tune
    from sam_bench.models.sam_v1 import build_sam_vit_b
    from sam_bench.results import provenance

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", help="cpu or cuda (default: CUDA when available)")
    ap.add_argument("--prompts", type=int, default=64, help="single-point prompts per decode timing")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats (medians reported)")
    ap.add_argument("--amg-repeats", type=int, default=1, help="repeats of the AMG comparison")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"), help="results folder")
    args = ap.parse_args()
    device = resolve_device(args.device)
    model = build_sam_vit_b(untrained=True, device=str(device))
    pred = SamPredictor(model.sam)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    pts = np.random.default_rng(1).uniform([0, 0], [640, 480], (args.prompts, 1, 2))
    labels = np.ones((args.prompts, 1))
    res: dict = {"device": str(device), "model": "sam_vit_b (random weights)", "image": [480, 640],
                 "prompts": args.prompts, "threads": torch.get_num_threads()}

    def official_decode(b):
        coords = torch.as_tensor(pred.transform.apply_coords(pts, image.shape[:2]), device=device)
        lab = torch.ones(len(pts), 1, dtype=torch.int, device=device)
        out = []  # kept, as a caller must keep them (the runner returns every prompt's masks)
        with torch.inference_mode():
            for s in range(0, len(pts), b):
                out.append(pred.predict_torch(coords[s:s + b], lab[s:s + b], return_logits=True))
        return out

    def ours_decode(b=None):
        model.predict(points=pts, labels=labels, batch_size=b)

    # warm-up both paths; the runner's first calls choose its batch (CPU)
    pred.set_image(image)
    model.set_image(image)
    official_decode(4)
    tune(model, pts, labels)
    res["runner_prompt_batch"] = model.default_prompt_batch()
    res["runner_batch_tuning"] = model.latency()["prompt_batch_tuning"]
    print("runner batch", res["runner_prompt_batch"], res["runner_batch_tuning"], flush=True)

    # 1. runner overhead, encoder and decoder, same batch
    b = model.default_prompt_batch()
    enc_o, enc_s, dec_o, dec_s = [], [], [], []
    for _ in range(args.repeats):
        enc_o.append(timed(lambda: pred.set_image(image), device)[0])
        enc_s.append(timed(lambda: model.set_image(image), device)[0])
        dec_o.append(timed(lambda: official_decode(b), device)[0])
        dec_s.append(timed(lambda: ours_decode(b), device)[0])
    med = statistics.median
    res["overhead"] = {"batch": b, "official_encoder_s": med(enc_o), "runner_encoder_s": med(enc_s),
                       "official_decode_s": med(dec_o), "runner_decode_s": med(dec_s),
                       "encoder_overhead_pct": 100 * (med(enc_s) / med(enc_o) - 1),
                       "decode_overhead_pct": 100 * (med(dec_s) / med(dec_o) - 1),
                       "total_overhead_pct": 100 * ((med(enc_s) + med(dec_s)) / (med(enc_o) + med(dec_o)) - 1)}
    print("overhead", res["overhead"], flush=True)

    # 2. per-prompt decode: official at 1/4/16/64 vs the runner's default batch
    per: dict[str, list[float]] = {str(k): [] for k in (1, 4, 16, 64)} | {"runner": []}
    for _ in range(args.repeats):
        for k in (1, 4, 16, 64):
            per[str(k)].append(timed(lambda: official_decode(k), device)[0] / len(pts) * 1e3)
        per["runner"].append(timed(lambda: ours_decode(), device)[0] / len(pts) * 1e3)
    ms = {k: med(v) for k, v in per.items()}
    best = min(ms[k] for k in ("1", "4", "16", "64"))
    res["prompt_batch"] = {"official_ms_per_prompt": {k: ms[k] for k in ("1", "4", "16", "64")},
                           "runner_ms_per_prompt": ms["runner"], "best_official_ms_per_prompt": best,
                           "runner_vs_best_pct": 100 * (ms["runner"] / best - 1)}
    print("prompt batch", res["prompt_batch"], flush=True)

    # 3. AMG 16x16, no filters, official box NMS at 0.7
    kw = dict(points_per_side=16, pred_iou_thresh=0, stability_score_thresh=0)
    cfg = AMGConfig(points_per_side=16, pred_iou_thresh=None, stability_score_thresh=None)
    t_off, t_own, same = [], [], True
    for _ in range(args.amg_repeats):
        t, ref = timed(lambda: SamAutomaticMaskGenerator(model.sam, **kw).generate(image), device)
        t_off.append(t)
        t, ours = timed(lambda: (model.set_image(image), generate(model, image, cfg))[1], device)
        t_own.append(t)
        same &= len(ref) == len(ours) and all(np.array_equal(r["segmentation"], m)
                                              for r, m in zip(ref, ours.masks.cpu().numpy()))
    res["amg16"] = {"official_s": med(t_off), "ours_s": med(t_own), "speedup": med(t_off) / med(t_own),
                    "masks": len(ours), "identical_masks": bool(same), "official_points_per_batch": 64,
                    "ours_points_per_batch": model.default_prompt_batch(),
                    "candidates": 16 * 16 * 3}
    print("amg16", res["amg16"], flush=True)
    res["provenance"] = provenance(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"bench_models_{device.type}.json").write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
