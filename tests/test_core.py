"""The spine's contracts: registry, result store, prediction helpers, prompt validation, CLI help."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sam_bench import registry
from sam_bench.cli import main
from sam_bench.errors import ConfigError, SamBenchError
from sam_bench.models.base import BatchTuner, ModelInfo, Prediction, PromptableModel
from sam_bench.results import ItemStore, atomic_write_json, config_hash, merge_items, read_jsonl


class DiskModel(PromptableModel):
    """Predicts a disk of radius 5 around the first point (or the box), 3 masks with scores."""

    def _encode(self, image):
        self.h, self.w = image.shape[:2]

    def _decode(self, points, labels, boxes, mask_input, multimask):
        b = (points if points is not None else boxes).shape[0]
        yy, xx = torch.meshgrid(torch.arange(self.h), torch.arange(self.w), indexing="ij")
        centers = points[:, 0] if points is not None else (boxes[:, :2] + boxes[:, 2:]) / 2
        d = ((xx[None] - centers[:, 0, None, None]) ** 2 + (yy[None] - centers[:, 1, None, None]) ** 2).sqrt()
        m = 3 if multimask else 1
        logits = torch.stack([5.0 - d + k for k in range(m)], 1)
        scores = torch.tensor([0.5, 0.9, 0.7][:m]).expand(b, m)
        return Prediction(logits, scores.clone(), torch.zeros(b, m, 256, 256))


def test_registry_unknown_name_suggests():
    with pytest.raises(ConfigError, match="Did you mean sam_vit_b"):
        registry.get("models", "sam_vit_bb")


def test_registry_runtime_registration():
    registry.register("models", "unit-disk", lambda **kw: "built")
    assert registry.get("models", "unit-disk")() == "built"
    assert "unit-disk" in registry.names("models")


def test_item_store_resume_and_torn_line(tmp_path):
    path = tmp_path / "items.jsonl"
    store = ItemStore(path)
    store.add("ds", "a", {"v": 1})
    store.add("ds", "b", skip="corrupt")
    store.add("ds", "a", {"v": 2})  # already done: ignored, not duplicated
    with open(path, "a") as fh:
        fh.write('{"dataset": "ds", "item": "c", "sta')  # killed mid-write
    again = ItemStore(path)
    assert again.done("ds", "a") and not again.done("ds", "c")
    assert not again.done("ds", "b")  # a skip is retried on resume
    again.add("ds", "c", {"v": 3})
    again.add("ds", "b", {"v": 4})  # the retry succeeded: it supersedes the skip
    lines = list(read_jsonl(path))
    assert [(ln["item"], ln["status"]) for ln in lines] == [("a", "ok"), ("b", "skip"), ("c", "ok"), ("b", "ok")]
    assert lines[0]["record"] == {"v": 1}
    merged = {m["item"]: m for m in merge_items([path])}
    assert merged["b"]["status"] == "ok" and merged["b"]["record"] == {"v": 4}


def test_merge_items_deduplicates(tmp_path):
    a, b = ItemStore(tmp_path / "r0.jsonl"), ItemStore(tmp_path / "r1.jsonl")
    a.add("ds", "1", {"x": 1})
    b.add("ds", "2", {"x": 2})
    b.add("ds", "1", {"x": 9})
    merged = merge_items([tmp_path / "r0.jsonl", tmp_path / "r1.jsonl"])
    assert sorted((m["item"], m["record"]["x"]) for m in merged) == [("1", 1), ("2", 2)]


def test_atomic_write_json_roundtrip_numpy(tmp_path):
    atomic_write_json(tmp_path / "r.json", {"a": np.float32(0.5), "b": np.arange(3), "n": float("nan")})
    text = (tmp_path / "r.json").read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert data["a"] == 0.5 and data["b"] == [0, 1, 2] and data["n"] is None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_config_hash_changes_with_settings():
    assert config_hash({"a": 1}) == config_hash({"a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_prediction_best_and_select():
    logits = torch.randn(2, 3, 4, 4)
    pred = Prediction(logits, torch.tensor([[0.1, 0.9, 0.2], [0.8, 0.1, 0.3]]), torch.randn(2, 3, 256, 256))
    best = pred.best()
    assert best.logits.shape == (2, 1, 4, 4)
    assert torch.equal(best.logits[0, 0], logits[0, 1]) and torch.equal(best.logits[1, 0], logits[1, 0])
    assert torch.equal(best.masks, best.logits > 0)


def test_promptable_contract_counts_and_chunks():
    model = DiskModel(ModelInfo("disk"), prompt_batch=2)
    with pytest.raises(SamBenchError, match="before set_image"):
        model.predict(points=[[[1, 1]]], labels=[[1]])
    model.set_image(np.zeros((20, 30, 3), np.uint8))
    pts = np.array([[[5, 5]], [[10, 10]], [[20, 15]], [[25, 3]], [[1, 1]]], float)
    pred = model.predict(points=pts, labels=np.ones((5, 1)), multimask=True)
    assert pred.logits.shape == (5, 3, 20, 30)
    assert model.encoder_calls == 1 and model.decoder_calls == 3 and model.decoded_prompts == 5
    one = model.predict(points=pts[2:3], labels=np.ones((1, 1)))
    assert torch.equal(one.logits[0], pred.logits[2])
    assert bool(pred.best().masks[1, 0, 10, 10]) and not bool(pred.best().masks[1, 0, 0, 29])


def test_batch_tuner_probes_every_candidate_then_keeps_the_fastest():
    cost = {1: 0.010, 4: 0.030, 16: 0.100, 64: 0.500}  # seconds per call: 16 is fastest per prompt
    tuner, chunks, left = BatchTuner(), [], 300
    while left:
        b = min(tuner.next_chunk(left), left)
        tuner.record(b, cost.get(b, 1.0))
        chunks.append(b)
        left -= b
    assert chunks[0] == 4  # warm-up, not timed
    assert chunks[1:1 + 16 + 4 + 1 + 1] == [1] * 16 + [4] * 4 + [16] + [64]
    assert tuner.best == 16 and set(chunks[23:-1]) == {16} and chunks[-1] <= 16
    assert tuner.ms_per_prompt(64) == pytest.approx(500 / 64) and tuner.as_dict()["chosen"] == 16
    assert sum(chunks) == 300


def test_batch_tuner_waits_for_a_call_big_enough():
    tuner = BatchTuner(candidates=(1, 8), probe=2)
    tuner.record(tuner.next_chunk(5), 1.0)  # warm-up
    assert [tuner.next_chunk(5) for _ in range(1)] == [1]
    tuner.record(1, 0.5)
    tuner.record(1, 0.5)
    assert tuner.next_chunk(5) == 1 and tuner.best is None  # 8 does not fit: best measured that fits
    tuner.record(tuner.next_chunk(8), 8.0)
    assert tuner.best == 1  # 0.5 s per prompt one at a time vs 1 s at 8


class SlowBatchModel(DiskModel):
    """DiskModel whose decode costs 1 ms + 2 ms per prompt over 16 (so 16 is the best batch)."""

    def _decode(self, points, labels, boxes, mask_input, multimask):
        import time
        b = points.shape[0]
        time.sleep(0.004 + 0.0005 * max(0, 16 - b) + 0.002 * max(0, b - 16))
        return super()._decode(points, labels, boxes, mask_input, multimask)


def test_promptable_model_tunes_its_batch_on_cpu_and_reports_it():
    model = SlowBatchModel(ModelInfo("slow"))
    model.set_image(np.zeros((8, 8, 3), np.uint8))
    pts = np.full((150, 1, 2), 4.0)
    pred = model.predict(points=pts, labels=np.ones((150, 1)), multimask=False)
    assert pred.logits.shape == (150, 1, 8, 8) and model.decoded_prompts == 150
    assert model.tuner.best == 16 and model.default_prompt_batch() == 16 and not model.tuning_batch
    lat = model.latency()
    assert lat["prompt_batch"] == 16 and lat["prompt_batch_tuning"]["chosen"] == 16
    fixed = SlowBatchModel(ModelInfo("slow"), prompt_batch=3)
    assert not fixed.tuning_batch and SlowBatchModel(ModelInfo("slow")).tuning_batch
    fixed.set_image(np.zeros((8, 8, 3), np.uint8))
    fixed.predict(points=pts[:7], labels=np.ones((7, 1)))
    assert fixed.decoder_calls == 3 and fixed.latency()["prompt_batch_tuning"] is None


@pytest.mark.parametrize("kwargs, message", [
    ({}, "at least one"),
    ({"points": [[[40, 5]]], "labels": [[1]]}, "outside"),
    ({"points": [[[4, 5]]]}, "labels must be given"),
    ({"boxes": [[10, 10, 5, 12]]}, "XYXY"),
    ({"points": [[[4, 5]]], "labels": [[1]], "boxes": [[1, 1, 4, 4], [1, 1, 3, 3]]}, "disagree"),
    ({"mask_input": np.zeros((1, 1, 64, 64))}, "256, 256"),
])
def test_prompt_validation(kwargs, message):
    model = DiskModel(ModelInfo("disk"))
    model.set_image(np.zeros((20, 30, 3), np.uint8))
    with pytest.raises(ConfigError, match=message):
        model.predict(**kwargs)


def test_set_image_rejects_wrong_array():
    with pytest.raises(ConfigError, match="uint8"):
        DiskModel(ModelInfo("disk")).set_image(np.zeros((20, 30), np.float32))


def test_cli_help_and_unknown_model(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in ("run", "reproduce", "compare", "report", "latency", "models", "datasets"):
        assert verb in out
