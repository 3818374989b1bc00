"""What the embedding cache and the shared pass save (issue #17), with ``--untrained --model sam_vit_b``.

    SAM_BENCH_DATA=... nice python benchmarks/bench_embedding_cache.py            # all parts
    SAM_BENCH_DATA=... nice python benchmarks/bench_embedding_cache.py --parts single-point edges

Parts (each command runs in a fresh ``sam-bench`` process, timed from outside; the figures from
results.json are the runner's own):
  single-point  ``run single-point`` on 10 GrabCut images twice, the second reading the cache the
                first filled (target: the second >= 10x faster)
  edges         ``run edges --grid 16`` then ``--grid 8`` on 5 BSDS500 test images over one cache
                (the ratio, and the second run's stage times: decoder, post-processing incl. NMS, metric)
  storage       bf16 / fp16 storage against fp32: the decoder's masks on 3 GrabCut images (IoU of
                the binary masks, largest logit change) and the file sizes
  reproduce     ``reproduce --quick [--tasks LIST] [--reproduce-args ...]`` with and without
                ``--no-share`` (encoder calls, wall); e.g. ``--reproduce-args --substitute
                LVIS=LVIS_v0.5_val100 --substitute COCO=COCO_tiny`` where the full sets are absent
Writes benchmarks/results/bench_embedding_cache_<tag>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the in-process part (storage) measures this checkout, as the commands do
MODEL = ["--model", "sam_vit_b", "--untrained", "--device", "cpu", "--no-progress"]


def sam_bench(*words: str) -> float:
    """Run ``sam-bench WORDS`` in a fresh interpreter; its wall seconds (a failure stops the benchmark)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sam_bench", *words], check=True, env=env, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _latency(out: Path) -> dict:
    lat = json.loads((out / "results.json").read_text())["latency"]
    keep = ("encoder_calls", "embedding_cache_hits", "embedding_cache_misses", "encoder_seconds_saved",
            "embedding_cache_load_seconds", "encoder_shared", "wall_seconds", "decoded_prompts")
    return {**{k: lat.get(k) for k in keep}, "stages": lat.get("stages", {})}


def twice(task: list[str], first: list[str], second: list[str], work: Path) -> dict:
    """A run that fills the cache, then one that reads it."""
    cache = work / "cache"
    rows = {}
    for name, extra in (("first", first), ("second", second)):
        out = work / name
        wall = sam_bench("run", *task, *MODEL, "--embedding-cache", str(cache), "--out", str(out), *extra)
        rows[name] = {"process_wall_s": round(wall, 2), **_latency(out)}
    rows["speedup_process"] = round(rows["first"]["process_wall_s"] / rows["second"]["process_wall_s"], 2)
    rows["speedup_runner"] = round(rows["first"]["wall_seconds"] / rows["second"]["wall_seconds"], 2)
    rows["cache_bytes"] = sum(p.stat().st_size for p in cache.rglob("*.safetensors"))
    return rows


def storage(data_root: str, images: int = 3, points: int = 16) -> dict:
    """The decoder's output from bf16 / fp16 stored embeddings against the fp32 one."""
    import numpy as np
    import torch

    from sam_bench.data import catalog
    from sam_bench.models.base import build_model
    from sam_bench.models.embedding_cache import EmbeddingCache

    ds = catalog.open_for_run(catalog.expand(["GrabCut"], data_root)[0], data_root, {})[0]
    model = build_model("sam_vit_b", untrained=True, device="cpu")
    model.prompt_batch = points  # one decoder call per image: the batch tuner's probes would chunk calls differently
    rng = np.random.default_rng(0)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        caches = {s: EmbeddingCache(Path(tmp) / s, store=s) for s in ("native", "bf16", "fp16")}
        for item in ds.items[:images]:
            image = item.load().image
            h, w = image.shape[:2]
            pts = rng.uniform([0, 0], [w, h], size=(points, 1, 2))
            model.embedding_cache = None
            model.set_image(image)
            ref = model.predict(points=pts, labels=np.ones((points, 1)))
            state = model._encoder_state()
            for store, cache in caches.items():
                cache.put(cache.key(model, image), *_entry(state))
                model.embedding_cache = cache
                model.set_image(image)  # a hit: the stored tensors
                got = model.predict(points=pts, labels=np.ones((points, 1)))
                a, b = ref.masks, got.masks
                iou = ((a & b).sum((-1, -2)).float() / (a | b).sum((-1, -2)).clamp(min=1).float())
                row = out.setdefault(store, {"mask_iou_min": 1.0, "mask_iou_mean": [], "max_abs_logit_diff": 0.0,
                                             "iou_score_max_diff": 0.0, "bit_identical": True})
                row["mask_iou_min"] = min(row["mask_iou_min"], float(iou.min()))
                row["mask_iou_mean"].append(float(iou.mean()))
                row["max_abs_logit_diff"] = max(row["max_abs_logit_diff"], float((ref.logits - got.logits).abs().max()))
                row["iou_score_max_diff"] = max(row["iou_score_max_diff"],
                                                float((ref.iou_scores - got.iou_scores).abs().max()))
                row["bit_identical"] &= bool(torch.equal(ref.logits, got.logits))
        for store, row in out.items():
            row["mask_iou_mean"] = sum(row["mask_iou_mean"]) / len(row["mask_iou_mean"])
            row["bytes_per_image"] = caches[store].size() // images
    return out


def _entry(state):
    tensors, sizes = state
    return tensors, {"sizes": sizes, "encoder_seconds": 0.0}


def reproduce(data_root: str, tasks: list[str], work: Path, more: list[str]) -> dict:
    rows = {}
    for name, extra in (("shared", []), ("not_shared", ["--no-share"])):
        out, seen = work / name, set()
        chosen = [] if tasks == ["all"] else ["--tasks", *tasks]
        wall = sam_bench("reproduce", *MODEL, "--quick", "--data-root", data_root, *chosen,
                         "--out", str(out), *more, *extra)
        manifest = json.loads((out / "reproduce.json").read_text())
        runs, calls = {}, 0
        for e in manifest["runs"]:
            run = runs[f'{e["preset"]}-{e.get("model", "")}'] = {"status": e["status"], "seconds": e.get("seconds")}
            if e.get("status") == "done" and (out / e["dir"] / "results.json").exists():
                lat = json.loads((out / e["dir"] / "results.json").read_text())["latency"]
                run.update(encoder_calls=lat["encoder_calls"], encoder_shared=lat.get("encoder_shared"))
                calls += lat["encoder_calls"] if e["dir"] not in seen else 0
                seen.add(e["dir"])
        rows[name] = {"process_wall_s": round(wall, 1), "encoder_calls": calls, "runs": runs}
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=["single-point", "edges", "storage", "reproduce"])
    p.add_argument("--reproduce-tasks", nargs="+", default=["all"],
                   help="presets of the reproduce part (default: all, i.e. no --tasks)")
    p.add_argument("--reproduce-args", nargs=argparse.REMAINDER, default=[],
                   help="more reproduce arguments, last (e.g. --limit 1 --set proposals.grid=8)")
    p.add_argument("--edges-images", type=int, default=5, help="BSDS500 test images of the edges part")
    p.add_argument("--storage-images", type=int, default=3, help="GrabCut images of the storage part")
    p.add_argument("--storage-points", type=int, default=16, help="random single-point prompts per image")
    p.add_argument("--tag", default="cpu_local2core")
    args = p.parse_args()
    data_root = os.environ.get("SAM_BENCH_DATA")
    if not data_root:
        p.error("set SAM_BENCH_DATA to the real data root")
    path = REPO / "benchmarks" / "results" / f"bench_embedding_cache_{args.tag}.json"
    found = json.loads(path.read_text()) if path.exists() else {}
    found["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    work = Path(tempfile.mkdtemp(prefix="bench_embcache_"))
    try:
        for part in args.parts:
            t0 = time.perf_counter()
            if part == "single-point":
                found[part] = twice(["single-point", "--dataset", "GrabCut", "--limit", "10", "--data-root", data_root],
                                    [], [], work / part)
            elif part == "edges":
                found[part] = twice(["edges", "--dataset", "BSDS500", "--split", "test", "--limit", str(args.edges_images),
                                     "--data-root", data_root], ["--grid", "16"], ["--grid", "8"], work / part)
            elif part == "storage":
                found[part] = {"images": args.storage_images, "points": args.storage_points,
                               **storage(data_root, args.storage_images, args.storage_points)}
            elif part == "reproduce":
                found[part] = {"tasks": args.reproduce_tasks, "args": args.reproduce_args,
                               **reproduce(data_root, args.reproduce_tasks, work / part, args.reproduce_args)}
            found[part]["bench_seconds"] = round(time.perf_counter() - t0, 1)
            on_disk = json.loads(path.read_text()) if path.exists() else {}  # another part may have run meanwhile
            path.write_text(json.dumps({**on_disk, "machine": found["machine"], part: found[part]}, indent=2) + "\n")
            print(part, json.dumps(found[part])[:600], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
