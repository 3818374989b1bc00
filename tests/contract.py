"""The runner contract every promptable adapter passes (SAM v1, HF, SAM 2, HQ-SAM, the lightweight
families, RITM): one encoder call per image however many prompts, float32 outputs of the documented
shapes, low-res logits accepted back as mask input, and a batched decode equal to one-by-one; and
what loading a checkpoint without a published hash records."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from sam_fixtures import make_image

IMG = make_image(90, 120)
PTS = np.array([[[10, 20], [50, 60]], [[100, 30], [0, 0]], [[60, 45], [0, 0]]], np.float32)
LABELS = np.array([[1, 0], [1, -1], [1, -1]])
BOXES = np.array([[5, 5, 60, 50], [50, 10, 119, 89], [0, 0, 119, 89]], np.float32)


def check_promptable_contract(model, image: np.ndarray = IMG, atol: float = 1e-4, boxes: bool = True) -> None:
    """Assert the contract on ``model`` (already built, any weights). ``atol`` bounds the logit
    difference between a batched and a one-by-one decode (float sums depend on the batch)."""
    h, w = image.shape[:2]
    model.set_image(image)
    calls = model.encoder_calls
    p = model.predict(points=PTS, labels=LABELS)
    k = p.logits.shape[1]
    assert p.logits.shape == (3, k, h, w) and p.logits.dtype == torch.float32
    assert p.iou_scores.shape == (3, k) and p.iou_scores.dtype == torch.float32
    assert p.low_res_logits is not None and p.low_res_logits.shape[:2] == (3, k)
    q = model.predict(points=PTS[:, :1], labels=LABELS[:, :1], mask_input=p.low_res_logits[:, :1], multimask=False)
    assert q.logits.shape == (3, 1, h, w)
    kw = dict(boxes=BOXES) if boxes else {}
    both = model.predict(points=PTS, labels=LABELS, batch_size=3, **kw)
    for i in range(3):
        one = model.predict(points=PTS[i:i + 1], labels=LABELS[i:i + 1], batch_size=1,
                            **({"boxes": BOXES[i:i + 1]} if boxes else {}))
        torch.testing.assert_close(one.logits[0], both.logits[i], rtol=0, atol=atol)
        torch.testing.assert_close(one.iou_scores[0], both.iou_scores[i], rtol=0, atol=atol)
    assert model.encoder_calls == calls, "prompts on one image must not re-run the encoder"
    assert model.decoded_prompts >= 12


def check_unverified_checkpoint(name: str, path: Path, state: dict, caplog, **options):
    """``build_model(name, checkpoint=path)`` warns that the file has no published hash, records the
    file, its sha256 and trained weights, and holds ``state``'s parameters; returns the model."""
    from sam_bench.models.base import build_model

    with caplog.at_level(logging.WARNING):
        model = build_model(name, checkpoint=str(path), device="cpu", **options)
    assert f"no published hash for {path.name}" in caplog.text
    assert model.info.checkpoint_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.info.as_dict()["checkpoint"] == str(path) and not model.info.untrained
    for key, p in model.sam.named_parameters():
        assert torch.equal(p, state[key]), key
    return model
