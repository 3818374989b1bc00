"""Test doubles for the text-to-mask task: a model that returns ground truth, a tiny RefCOCO
release written in its native layout (refs pickle + instances JSON + PNGs), flat-colour scenes,
and a tiny random open_clip model saved to disk. Everything is generated at test time."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import torch
from pycocotools import mask as mask_utils

from sam_bench.data.base import Dataset, Instance, Item, Sample
from sam_bench.models.text import TextMasks, TextModel
from sam_bench.models.base import LOW_RES, ModelInfo, Prediction, PromptableModel

TINY_CLIP = {"embed_dim": 32,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
             "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}

TINY_SAM3 = {
    "vision_config": {"backbone_config": {"model_type": "sam3_vit_model", "hidden_size": 32, "intermediate_size": 64,
                                          "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 112,
                                          "patch_size": 14, "window_size": 4, "global_attn_indexes": [1],
                                          "pretrain_image_size": 56},
                      "fpn_hidden_size": 32, "backbone_feature_sizes": [[32, 32], [16, 16], [8, 8]]},
    "text_config": {"model_type": "clip_text_model", "vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64,
                    "projection_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                    "max_position_embeddings": 32},
    "geometry_encoder_config": {"hidden_size": 32, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
    "detr_encoder_config": {"hidden_size": 32, "num_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
    "detr_decoder_config": {"hidden_size": 32, "num_layers": 1, "num_queries": 10, "num_attention_heads": 2,
                            "intermediate_size": 64},
    "mask_decoder_config": {"hidden_size": 32, "num_attention_heads": 2},
}


def rle_of(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in r["size"]], "counts": r["counts"].decode("ascii")}


def box_of(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


class GroundTruthModel(PromptableModel):
    """Answers every prompt with a ground-truth mask of the current image.

    Box prompt: the instance whose mask box is closest (L1) to the box. Point prompt: the instance
    holding the first point (empty mask on background). Multimask: [GT eroded (score 0.5), GT
    (0.9), its box (0.1)], so picking the highest predicted IoU gives the GT.
    """

    def __init__(self, masks_by_item: dict[str, list[np.ndarray]]):
        super().__init__(ModelInfo(name="ground-truth"))
        self.masks_by_item = masks_by_item
        self.prompts: list[tuple[str, int]] = []

    def set_image(self, image, image_id=None):
        self.item = image_id
        super().set_image(image, image_id)

    def _encode(self, image):
        pass

    def _pick(self, points, boxes) -> list[np.ndarray]:
        masks = self.masks_by_item[self.item]
        h, w = masks[0].shape
        out = []
        for b in range(len(boxes if boxes is not None else points)):
            if boxes is not None:
                ref = np.stack([box_of(m) for m in masks])
                out.append(masks[int(np.abs(ref - boxes[b].cpu().numpy()).sum(1).argmin())])
                self.prompts.append(("box", b))
            else:
                x, y = (int(v) for v in points[b, 0].round().tolist())
                hit = [m for m in masks if m[min(y, h - 1), min(x, w - 1)]]
                out.append(hit[0] if hit else np.zeros((h, w), bool))
                self.prompts.append(("point", b))
        return out

    def _decode(self, points, labels, boxes, mask_input, multimask):
        picked = self._pick(points, boxes)
        logit = lambda m: torch.where(torch.as_tensor(m), 10.0, -10.0)
        n = len(picked)
        if not multimask:
            return Prediction(torch.stack([logit(m) for m in picked])[:, None], torch.ones(n, 1),
                              torch.zeros(n, 1, LOW_RES, LOW_RES))
        k = np.ones((3, 3), np.uint8)
        stacks = []
        for m in picked:
            ero = cv2.erode(m.astype(np.uint8), k).astype(bool)
            box = np.zeros_like(m)
            if m.any():
                x0, y0, x1, y1 = box_of(m).astype(int)
                box[y0:y1, x0:x1] = True
            stacks.append(torch.stack([logit(ero), logit(m), logit(box)]))
        scores = torch.tensor([[0.5, 0.9, 0.1]]).expand(n, 3).clone()
        return Prediction(torch.stack(stacks), scores, torch.zeros(n, 3, LOW_RES, LOW_RES))


def gt_masks(ds: Dataset) -> dict[str, list[np.ndarray]]:
    return {it.id: [i.mask() for i in it.load().instances] for it in ds.items}


COLOURS = {"red": (230, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 230)}


def colour_scene(n_images: int = 2) -> Dataset:
    """Flat red, green and blue squares of different sizes on grey; texts "red square" etc."""
    items = []
    h, w = 96, 128
    layouts = [((8, 8, 40), (50, 20, 30), (20, 80, 24)), ((60, 60, 28), (10, 90, 20), (10, 10, 44))]
    for i in range(n_images):
        image = np.full((h, w, 3), 128, np.uint8)
        instances = []
        for k, ((y, x, s), (name, rgb)) in enumerate(zip(layouts[i % 2], COLOURS.items())):
            m = np.zeros((h, w), bool)
            m[y:y + s, x:x + s] = True
            image[m] = rgb
            instances.append(Instance(id=k + 1, rle=rle_of(m), texts=[f"{name} square", f"the {name} one"]))
        items.append(Item(id=f"scene{i}", loader=lambda it, im=image, ins=instances: Sample(im, list(ins))))
    return Dataset(name="colours", items=items, format="test")


def colour_clip(device="cpu"):
    """(model, tokenizer, size, mean, std) standing in for ``load_clip``: the image embedding of a crop
    is its mean normalised colour, the text embedding the normalised colour its first word names."""
    mean = torch.tensor([0.5, 0.5, 0.5])
    std = torch.tensor([0.25, 0.25, 0.25])
    names = list(COLOURS)
    targets = (torch.tensor([COLOURS[n] for n in names], dtype=torch.float32) / 255 - mean) / std

    class Clip(torch.nn.Module):
        def encode_image(self, crops):  # (K, 3, S, S) -> (K, 3)
            return crops.mean((2, 3))

        def encode_text(self, tokens):  # (T,) colour index -> (T, 3)
            return targets[tokens]

    def tokenizer(texts):
        return torch.tensor([names.index(t.split()[-2] if t.startswith("the ") else t.split()[0]) for t in texts])

    return Clip(), tokenizer, 16, mean, std


def save_tiny_clip(folder: Path) -> tuple[Path, Path]:
    """(config JSON, state dict .pt) of a randomly initialised tiny open_clip model."""
    import open_clip

    cfg = folder / "tiny-clip.json"
    cfg.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip", pretrained=None)
    weights = folder / "tiny-clip.pt"
    torch.save(model.state_dict(), weights)
    return cfg, weights


def write_refcoco(root: Path, n_images: int = 2) -> dict:
    """A RefCOCO release in the refer-toolkit layout: ``root/refcoco/refs(unc).p`` (a pickled list
    of refs), ``root/refcoco/instances.json`` (COCO 2014 style) and PNGs under
    ``root/images/mscoco/images/train2014``. Returns {file_name: [(ref_id, mask, sentences)]}."""
    rng = np.random.default_rng(7)
    h, w = 80, 100
    img_dir = root / "images" / "mscoco" / "images" / "train2014"
    img_dir.mkdir(parents=True)
    (root / "refcoco").mkdir()
    images, anns, refs, truth = [], [], [], {}
    for i in range(n_images):
        image_id = 581857 + i
        fname = f"COCO_train2014_{image_id:012d}.jpg"
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        masks = [np.zeros((h, w), bool) for _ in range(3)]
        masks[0][5:40, 5:50] = True
        masks[1][45:75, 10:30] = True
        cv2.circle(masks[2].view(np.uint8), (75, 50), 15, 1, -1)
        for m in masks:
            image[m] = rng.integers(0, 256, 3)
        cv2.imwrite(str(img_dir / fname), image[:, :, ::-1])
        images.append({"id": image_id, "file_name": fname, "height": h, "width": w})
        truth[fname] = []
        for k, m in enumerate(masks):
            ann_id = 1000 * (i + 1) + k
            ys, xs = np.nonzero(m)
            contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            poly = [c.reshape(-1).astype(float).tolist() for c in contours]
            anns.append({"id": ann_id, "image_id": image_id, "category_id": 1 + k, "segmentation": poly,
                         "area": float(m.sum()), "bbox": [float(xs.min()), float(ys.min()),
                                                          float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)],
                         "iscrowd": 0})
            if k == 2 and i == 1:
                continue  # one annotation nobody refers to
            ref_id = 50 + 10 * i + k
            sents = [{"sent_id": 900 + 10 * ref_id + s, "raw": f"Thing {k} #{s}", "sent": f"thing {k} number {s}",
                      "tokens": ["thing", str(k), "number", str(s)]} for s in range(2)]
            split = "testA" if (i, k) == (0, 1) else "val"
            refs.append({"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "split": split,
                         "sentences": sents, "sent_ids": [s["sent_id"] for s in sents], "category_id": 1 + k,
                         "file_name": fname.replace(".jpg", f"_{ann_id}.jpg")})
            if split == "val":
                truth[fname].append((ref_id, m, [s["sent"] for s in sents]))
    with open(root / "refcoco" / "refs(unc).p", "wb") as fh:
        pickle.dump(refs, fh, protocol=2)
    (root / "refcoco" / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]}))
    return truth


def save_openai_style_clip(folder: Path) -> tuple[Path, torch.nn.Module]:
    """A TorchScript CLIP like OpenAI's ``ViT-L-14-336px.pt`` (tiny; QuickGELU; weights exact in fp16,
    as OpenAI's are) and the module it was scripted from."""
    import open_clip

    cfg = folder / "jit-clip.json"
    cfg.write_text(json.dumps({"embed_dim": 32, "quick_gelu": True,
                               "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
                               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1,
                                            "layers": 1}}))
    open_clip.add_model_config(cfg)
    torch.manual_seed(1)
    model = open_clip.create_model("jit-clip", pretrained=None).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    path = folder / "ViT-tiny-openai.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    return path, model


class FakeTextModel(TextModel):
    """Takes text: the instance whose colour word the text holds gets score 0.8, the others 0.1."""

    def __init__(self, ds):
        self.info = ModelInfo(name="fake-text")
        self.device = torch.device("cpu")
        self.by_item = {it.id: it.load().instances for it in ds.items}

    def set_image(self, image, image_id=None):
        self.item = image_id

    def latency(self):
        return {}

    def predict_text(self, texts):
        insts = self.by_item[self.item]
        masks = torch.stack([torch.from_numpy(i.mask()) for i in insts])
        out = []
        for t in texts:
            scores = torch.tensor([0.8 if i.texts[0].split()[0] in t else 0.1 for i in insts])
            out.append(TextMasks(masks, scores) if "nothing" not in t else TextMasks(masks[:0], scores[:0]))
        return out
