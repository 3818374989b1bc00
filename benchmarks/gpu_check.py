"""GPU sanity (needs CUDA): every adapter on cuda in fp32/bf16/fp16 (random weights), AMG equality with the
official generator on cuda at 16x16 and 32x32, the CUDA-event stopwatch against perf_counter, and the
paper's 64x64 proposal setting's time and memory.
Writes gpu_check.json to $OUT (default benchmarks/results).

    python benchmarks/gpu_check.py
"""
import time, json, os, numpy as np, torch
from segment_anything import SamAutomaticMaskGenerator
from sam_bench.models.base import build_model
from sam_bench.amg import AMGConfig, generate
out = {}
img = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
pts = np.random.default_rng(1).uniform([0,0],[640,480],(64,1,2)); lab = np.ones((64,1))
for name, kw in [("sam_vit_b", {}), ("hf-sam", {}), ("sam2", {"variant": "t"}), ("hq-sam", {"variant": "vit_b"})]:
    for dt in ("fp32", "bf16", "fp16"):
        try:
            m = build_model(name, untrained=True, device="cuda", dtype=dt, **kw)
            m.set_image(img); p = m.predict(points=pts, labels=lab)
            p1 = m.predict(points=pts[:1], labels=lab[:1])
            out[f"{name}/{dt}"] = {"ok": True, "dtype": str(p.logits.dtype), "finite": bool(torch.isfinite(p.logits).all()),
                                   "batch_vs_one_maxdiff": float((p.logits[0]-p1.logits[0]).abs().max()), "pb": m.default_prompt_batch()}
        except Exception as e:
            out[f"{name}/{dt}"] = {"ok": False, "error": repr(e)[:300]}
        print(name, dt, out[f"{name}/{dt}"], flush=True)
m = build_model("sam_vit_b", untrained=True, device="cuda")
for n in (16, 32):
    kw = dict(points_per_side=n, pred_iou_thresh=0, stability_score_thresh=0, box_nms_thresh=1.0, stability_score_offset=0.05)
    gen = SamAutomaticMaskGenerator(m.sam, **kw)
    torch.cuda.synchronize(); t = time.perf_counter(); ref = gen.generate(img); torch.cuda.synchronize(); tr = time.perf_counter() - t
    cfg = AMGConfig(points_per_side=n, pred_iou_thresh=None, stability_score_thresh=None, nms_thresh=1.0, stability_score_offset=0.05, points_per_batch=64)
    torch.cuda.synchronize(); t = time.perf_counter(); m.set_image(img); o = generate(m, img, cfg); torch.cuda.synchronize(); to = time.perf_counter() - t
    same = len(ref) == len(o) and all(np.array_equal(r["segmentation"], x) for r, x in zip(ref, o.masks.cpu().numpy()))
    ndiff = sum(int((r["segmentation"] != x).sum()) for r, x in zip(ref, o.masks.cpu().numpy())) if len(ref)==len(o) else -1
    out[f"amg{n}"] = {"ref": len(ref), "own": len(o), "identical": same, "pixels_differing": ndiff, "t_official": tr, "t_own": to}
    print(out[f"amg{n}"], flush=True)
# CUDA-event stopwatch (sam_bench.timing) vs perf_counter around a synchronised encoder pass
from sam_bench.timing import Stopwatch
torch.cuda.synchronize(); t = time.perf_counter()
with Stopwatch("cuda") as sw:
    m.set_image(img)
torch.cuda.synchronize(); wall = time.perf_counter() - t
out["stopwatch"] = {"cuda_events_s": sw.seconds, "perf_counter_s": wall, "ratio": sw.seconds / wall}
print(out["stopwatch"], flush=True)
p = AMGConfig.paper_proposals(); m.set_image(img)
torch.cuda.synchronize(); t = time.perf_counter(); o = generate(m, img, p); torch.cuda.synchronize()
out["proposals64"] = {"n": len(o), "s": time.perf_counter() - t, "cands": o.extra["num_candidates"], "max_mem_gb": torch.cuda.max_memory_allocated()/1e9}
print(out["proposals64"], flush=True)
dest = os.environ.get("OUT", os.path.join(os.path.dirname(__file__), "results"))
os.makedirs(dest, exist_ok=True)
json.dump(out, open(os.path.join(dest, "gpu_check.json"), "w"), indent=1)
