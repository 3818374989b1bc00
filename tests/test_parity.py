"""Weight converters (round trips, outputs after ``transfer``) and the parity task / ``sam-bench parity``.

A tiny SAM (1-block 64-wide ViT, the real prompt encoder and decoder) stands in for ViT-B on both
sides: ``tiny-sam`` (official ``segment_anything``) and ``tiny-hf-sam`` (transformers ``SamModel``),
registered for these tests. Full ViT-B key sets are checked on the meta device (no memory, no compute).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from sam_bench import registry
from sam_bench.cli import main
from sam_bench.errors import ConfigError, NotBuilt
from sam_bench.models import convert
from sam_bench.models.base import ModelInfo, Prediction
from sam_bench.models.convert import hf_to_sam, sam_to_hf, transfer
from sam_fixtures import make_image, tiny_hf, tiny_hq, tiny_sam

pytest.importorskip("transformers")
pytest.importorskip("segment_anything")

PERTURBED = "mask_decoder.output_upscaling.3.weight"  # the last upscaling conv: every mask's logits move


def build_tiny(checkpoint=None, untrained: bool = False, device=None, dtype=None, prompt_batch=None, seed: int = 0):
    """``tiny-sam``: the official implementation; ``checkpoint``: a state dict file."""
    from sam_bench.config import resolve_dtype
    from sam_bench.models.sam_v1 import SamV1Model

    sam = tiny_sam(seed)
    if checkpoint:
        sam.load_state_dict(torch.load(checkpoint, weights_only=True))
    return SamV1Model(sam, ModelInfo("tiny-sam", checkpoint=checkpoint, untrained=untrained), "cpu",
                      resolve_dtype(dtype), prompt_batch)


def build_tiny_hf(checkpoint=None, untrained: bool = False, device=None, dtype=None, prompt_batch=None,
                  seed: int = 1):
    """``tiny-hf-sam``: the transformers implementation (other random weights until it receives some)."""
    from transformers import SamImageProcessor

    from sam_bench.config import resolve_dtype
    from sam_bench.models.hf_sam import HFSamModel

    return HFSamModel(tiny_hf(seed), SamImageProcessor(), ModelInfo("tiny-hf-sam", untrained=untrained), "cpu",
                      resolve_dtype(dtype), prompt_batch)


@pytest.fixture
def tiny_models(monkeypatch):
    monkeypatch.setitem(registry._extra["models"], "tiny-sam", build_tiny)
    monkeypatch.setitem(registry._extra["models"], "tiny-hf-sam", build_tiny_hf)


def parity(tmp_path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "run"
    code = main(["parity", "--model", "tiny-sam", "--untrained", "--limit", "2", "--out", str(out), "--no-progress",
                 *args])
    return code, json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}


# -- converters ----------------------------------------------------------------------------
def test_round_trip_official_hf_official_gives_every_tensor_back():
    sam = tiny_sam(0)
    state = sam.state_dict()
    hf = tiny_hf()
    hf.load_state_dict(sam_to_hf(state), strict=True)  # every HF tensor named, every shape right
    back = hf_to_sam(hf.state_dict())
    assert sorted(back) == sorted(state)
    assert all(torch.equal(back[k], state[k]) for k in state)
    assert not torch.equal(hf.state_dict()["mask_decoder.iou_token.weight"], tiny_hf().state_dict()[
        "mask_decoder.iou_token.weight"])  # the load really replaced the HF model's own init


def test_round_trip_hf_official_hf_and_hq():
    hf = tiny_hf(3).state_dict()
    again = sam_to_hf(hf_to_sam(hf))
    assert sorted(again) == sorted(hf) and all(torch.equal(again[k], hf[k]) for k in hf)
    hq = tiny_hq(0)
    hf_hq = tiny_hf(hq=True)
    hf_hq.load_state_dict(sam_to_hf(hq.state_dict()), strict=True)
    back = hf_to_sam(hf_hq.state_dict())
    assert sorted(back) == sorted(hq.state_dict())
    assert all(torch.equal(back[k], v) for k, v in hq.state_dict().items())


def test_hq_weights_transfer_gives_the_same_hq_masks_once_the_port_upscales_the_transformer_output():
    """transformers' SamHQMaskDecoder upscales its own input, not the two-way transformer's image
    output (benchmarks/hq_sam_port_difference.py); fed the latter, every HQ mask must agree."""
    from sam_bench.models.hf_sam import upscale_transformer_output

    off, hf = tiny_hq(0), tiny_hf(hq=True)
    hf.load_state_dict(sam_to_hf(off.state_dict()), strict=True)
    pts, lab = torch.tensor([[[300.0, 400.0]]]), torch.ones(1, 1, dtype=torch.int)
    with torch.no_grad():
        emb, interm = off.image_encoder(torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0)))
        sparse, dense = off.prompt_encoder(points=(pts, lab), boxes=None, masks=None)
        for patch in (False, True):
            handles = upscale_transformer_output(hf.mask_decoder) if patch else ()
            for multimask, hq_only in ((False, False), (True, False), (True, True)):
                want, wscore = off.mask_decoder(emb, off.prompt_encoder.get_dense_pe(), sparse, dense, multimask,
                                                hq_only, interm)
                out = hf(image_embeddings=emb, intermediate_embeddings=interm, input_points=pts[:, None],
                         input_labels=lab[:, None], multimask_output=multimask, hq_token_only=hq_only)
                diff = (out.pred_masks[:, 0, :1] - want).abs().max() / want.abs().max()
                assert torch.allclose(out.iou_scores[:, 0, :1], wscore, atol=1e-4)
                assert diff < 1e-3 if patch else diff > 0.1, (
                    f"patched={patch} multimask={multimask} hq_token_only={hq_only}: relative mask difference "
                    f"{diff:.2e}" + ("" if patch else "; has transformers fixed its SamHQ upscaling input?"))
            for handle in handles:
                handle.remove()


@pytest.mark.parametrize("variant", ["vit_b", "vit_h"])
def test_full_size_key_sets_match_on_the_meta_device(variant):
    from segment_anything import sam_model_registry
    from transformers import SamConfig, SamModel
    from transformers.models.sam.configuration_sam import SamVisionConfig

    from sam_bench.models.hf_sam import VARIANTS

    with torch.device("meta"):
        off = sam_model_registry[variant]().state_dict()
        hf = SamModel(SamConfig(vision_config=SamVisionConfig(**VARIANTS[variant]).to_dict())).state_dict()
    conv = sam_to_hf(off)
    assert sorted(conv) == sorted(hf)
    assert all(conv[k].shape == hf[k].shape for k in hf)
    assert sorted(set(hf_to_sam(conv)) ^ set(off)) == []


def test_converter_refuses_other_normalisation_and_a_split_positional_embedding():
    state = tiny_sam(0).state_dict()
    state["pixel_mean"] = torch.zeros(3, 1, 1)  # a checkpoint file holding its own normalisation
    with pytest.raises(ConfigError, match="pixel_mean"):
        sam_to_hf(state)
    hf = tiny_hf().state_dict()
    hf["shared_image_embedding.positional_embedding"] = hf["shared_image_embedding.positional_embedding"] + 1
    with pytest.raises(ConfigError, match="cannot be converted without loss"):
        hf_to_sam(hf)


def test_registry_names_implementations_and_loads_lazy_converters(monkeypatch):
    assert convert.implementation(tiny_sam(0)) == "segment_anything.Sam"
    assert convert.implementation(tiny_hf()) == "transformers.SamModel"
    assert convert.converter("a.X", "a.X") is convert.copy
    monkeypatch.setitem(convert.CONVERTERS, ("a.X", "b.Y"), "sam_bench.models.convert:hf_to_sam")
    assert convert.converter("a.X", "b.Y") is hf_to_sam
    monkeypatch.setitem(convert.CONVERTERS, ("a.X", "b.Y"), "sam_bench.models.no_such_module:f")
    with pytest.raises(NotBuilt, match="no_such_module"):
        convert.converter("a.X", "b.Y")
    with pytest.raises(ConfigError, match="no weight converter from a.X to c.Z"):
        convert.converter("a.X", "c.Z")


def test_after_transfer_the_two_implementations_give_the_same_outputs():
    a, b = build_tiny(seed=0), build_tiny_hf(seed=1)
    assert transfer(a, b) == "sam_to_hf"
    img = make_image()
    a.set_image(img)
    b.set_image(img)
    pts, lab = np.array([[[60, 50]], [[250, 100]]], np.float32), np.ones((2, 1), np.int64)
    for kw in (dict(points=pts, labels=lab), dict(boxes=np.array([[40, 30, 200, 150], [220, 0, 300, 200]]))):
        for multimask in (True, False):
            pa, pb = a.predict(multimask=multimask, **kw), b.predict(multimask=multimask, **kw)
            assert pa.logits.shape == pb.logits.shape == (2, 3 if multimask else 1, 200, 300)
            scale = pa.logits.abs().max()
            assert (pa.logits - pb.logits).abs().max() <= 1e-4 * scale
            assert torch.allclose(pa.iou_scores, pb.iou_scores, atol=5e-4)
    b.model.mask_decoder.iou_token.weight.data += 1  # the outputs really depend on the transferred weights
    assert not torch.allclose(a.predict(points=pts, labels=lab).iou_scores, b.predict(points=pts, labels=lab).iou_scores,
                              atol=1e-3)


def test_transfer_into_another_size_names_the_variant():
    from transformers import SamConfig, SamImageProcessor, SamModel

    from sam_bench.models.hf_sam import HFSamModel

    with torch.device("meta"):
        big = SamModel(SamConfig())
    target = HFSamModel.__new__(HFSamModel)
    target.model, target.processor, target.info = big, SamImageProcessor(), ModelInfo("hf-sam")
    with pytest.raises(ConfigError, match=r"tiny-sam -> hf-sam: the converted weights do not fit .*variant"):
        transfer(build_tiny(), target)


# -- the comparison ------------------------------------------------------------------------
def test_compare_counts_iou_differences_and_the_chosen_mask():
    from sam_bench.tasks.parity import compare

    la = torch.full((1, 2, 4, 4), -1.0)
    la[0, 0, :2] = 1.0  # 8 pixels
    la[0, 1, :, :1] = 1.0  # 4 pixels
    lb = la.clone()
    lb[0, 0, 1] = -1.0  # 4 of the 8 left: IoU 0.5
    lb[0, 1, 0, 0] = 0.5  # same mask, logit 0.5 off
    a = Prediction(la, torch.tensor([[0.9, 0.1]]))
    b = Prediction(lb, torch.tensor([[0.2, 0.7]]))
    got = compare(a, b)
    assert got["iou"] == [[0.5, 1.0]]
    assert got["logit_diff"] == [2.0] and got["logit_max"] == [1.0]
    assert got["score_diff"] == [pytest.approx(0.7)] and got["chosen_differs"] == [True]
    empty = Prediction(torch.full((1, 1, 3, 3), -1.0), torch.tensor([[0.5]]))
    assert compare(empty, empty)["iou"] == [[1.0]]  # two empty masks agree
    one = Prediction(lb[:, 1:], torch.tensor([[0.7]]))  # only its best mask (official HQ-SAM's multimask)
    got = compare(a, one)  # a's best: its first mask (rows 0-1, 8 px) against column 0 (4 px): 2 / 10
    assert got["best_only"] == [True] and got["iou"] == [[pytest.approx(0.2)]] and got["chosen_differs"] == [False]


def test_gate_names_each_tolerance():
    from sam_bench.tasks.parity import ParityTask

    task = ParityTask(reference="x", min_iou=0.999, max_rel_logit_diff=1e-3, max_logit_diff=0.5)
    ok = {"miou": 0.9995, "iou_min": 0.99, "rel_logit_diff": 1e-4, "max_logit_diff": 0.1}
    bad = {"miou": 0.99, "iou_min": 0.5, "rel_logit_diff": 0.02, "max_logit_diff": 0.6}
    assert task.gate({"datasets": {"a": {"metrics": ok}}}) == []
    out = task.gate({"datasets": {"a": {"metrics": ok}, "b": {"metrics": bad}}})
    assert [s.split(":")[0] for s in out] == ["b", "b", "b"]
    assert "below --min-iou" in out[0] and "--max-rel-logit-diff" in out[1] and "--max-logit-diff" in out[2]


def test_options_are_checked():
    from sam_bench.tasks.parity import ParityTask

    with pytest.raises(ConfigError, match="--reference-option"):
        ParityTask(reference="x", reference_option=["dtype"])
    with pytest.raises(ConfigError, match="--min-iou"):
        ParityTask(reference="x", min_iou=2)


# -- the task end to end (tiny models) -----------------------------------------------------
def test_a_model_against_itself_agrees_exactly(tmp_path, tiny_models):
    code, res = parity(tmp_path, "--reference", "tiny-sam")
    m = res["metrics"]
    assert code == 0 and res["failures"] == []
    assert m["miou"] == 1.0 and m["iou_min"] == 1.0 and m["max_logit_diff"] == 0.0 and m["chosen_differs"] == 0.0
    assert m["num_images"] == 2 and m["num_prompts"] == 4 * sum(
        len(r["record"]["objects"]) for r in map(json.loads, (tmp_path / "run" / "items.jsonl").open()))
    assert res["config"]["reference_model"]["name"] == "tiny-sam"
    assert (tmp_path / "run" / "parity.md").exists()


def test_official_vs_transformers_pass_and_a_perturbed_weight_fails(tmp_path, tiny_models):
    code, res = parity(tmp_path, "--reference", "tiny-hf-sam")
    assert code == 0, res.get("failures")
    m = res["metrics"]
    assert m["miou"] >= 0.999 and 0 < m["rel_logit_diff"] < 1e-3
    assert {f"{k}_{s}_miou" for k in ("point", "box") for s in ("multi", "single")} <= set(m)
    state = tiny_sam(0).state_dict()
    state[PERTURBED] = state[PERTURBED] * 1.01
    path = tmp_path / "perturbed.pt"
    torch.save(state, path)
    code, res = parity(tmp_path, "--reference", "tiny-sam", "--reference-checkpoint", str(path),
                       "--restart")
    assert code == 1
    assert any("--max-rel-logit-diff" in f for f in res["failures"]), res["failures"]
    assert res["metrics"]["rel_logit_diff"] > 1e-3


def test_reference_settings_reach_the_reference(tmp_path, tiny_models):
    code, res = parity(tmp_path, "--reference", "tiny-sam", "--reference-option", "dtype=bf16", "--min-iou", "0",
                       "--max-rel-logit-diff", "1")
    assert code == 0
    assert res["config"]["reference_model"]["prompt_batch"] is None
    assert 0 < res["metrics"]["max_logit_diff"] and 0.5 < res["metrics"]["miou"] < 1
    code, res = parity(tmp_path, "--reference", "tiny-sam", "--reference-option", "prompt_batch=4", "--prompt-batch",
                       "1", "--grid", "3", "--restart")
    assert code == 0 and res["config"]["reference_model"]["prompt_batch"] == 4
    assert "grid_multi_miou" in res["metrics"] and res["metrics"]["grid_single_iou_min"] >= 0.99


def test_bad_reference_settings_exit_2(tmp_path, tiny_models, capsys):
    assert main(["parity", "--model", "tiny-sam", "--untrained", "--out", str(tmp_path / "a")]) == 2
    assert "parity needs --reference MODEL" in capsys.readouterr().err
    assert main(["parity", "--model", "tiny-sam", "--untrained", "--reference", "tiny-sam", "--reference-option",
                 "compile=no_such_child", "--limit", "1", "--out", str(tmp_path / "b")]) == 2
    assert "not children of tiny-sam's module" in capsys.readouterr().err


@pytest.mark.slow
def test_sam_vit_b_against_hf_sam_end_to_end(tmp_path):
    """The real command on ViT-B (random init shared through the converter), 2 synthetic scenes."""
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-m", "sam_bench", "parity", "--model", "sam_vit_b", "--reference", "hf-sam",
                        "--untrained", "--limit", "2", "--out", str(out), "--no-progress"],
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-2000:]
    m = json.loads((out / "results.json").read_text())["metrics"]
    assert m["miou"] >= 0.999 and m["num_images"] == 2
