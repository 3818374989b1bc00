"""Grounders: the registry, the Grounding contract, CLIP crop geometry and scoring, CLIP loading from
local files (open_clip state dict, OpenAI TorchScript), detector box files, and the native text hook
(a fake text model and transformers' Sam3Model with a tiny random config)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sam_bench import registry
from sam_bench.data.base import Instance
from sam_bench.errors import BadInput, CheckpointError, ConfigError, SamBenchError
from sam_bench.grounders import Grounder, Grounding, Query, build_grounder
from sam_bench.grounders.base import mask_box, mask_center
from sam_bench.grounders.boxes import BoxesFromFile, load_boxes_file
from sam_bench.grounders.clip import ClipGrounder, crop_batch, load_clip, parse_candidates, square_boxes
from sam_bench.grounders.native import NativeTextGrounder
from sam_bench.grounders.oracle import OracleGrounder
from text_fakes import (TINY_SAM3, FakeTextModel, GroundTruthModel, colour_clip, colour_scene, gt_masks, rle_of,
                        save_openai_style_clip, save_tiny_clip)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip"))


def _queries(item, sample):
    return [Query(f"{item.id}/{i.id}/{k}", t, i, k) for i in sample.instances for k, t in enumerate(i.texts)]


def _ready(model, item):
    sample = item.load()
    model.set_image(sample.image, image_id=item.id)
    return sample


# -- contract ------------------------------------------------------------------------------------
def test_registry_names_the_four_grounders():
    expected = {"clip": ClipGrounder, "boxes-from": BoxesFromFile, "native": NativeTextGrounder,
                "oracle": OracleGrounder}
    for name, cls in expected.items():
        assert registry.get("grounders", name) is cls and cls.name == name
    with pytest.raises(ConfigError, match="Did you mean oracle"):
        build_grounder("orcle", {})


def test_grounding_checks_and_prompt_kind():
    assert Grounding(box=[1, 2, 3, 4]).prompt == "box"
    g = Grounding(points=[[5, 6]])
    assert g.prompt == "points" and g.labels.tolist() == [1]
    assert Grounding(box=[0, 0, 1, 1], points=[[0, 0]], labels=[0]).prompt == "box+points"
    assert Grounding(mask=np.zeros((2, 2))).prompt == "mask"
    assert Grounding.not_found("x").prompt == "none"
    with pytest.raises(ValueError, match="not XYXY"):
        Grounding(box=[10, 0, 5, 5])
    with pytest.raises(ValueError, match="labels"):
        Grounding(points=[[1, 1], [2, 2]], labels=[1])


def test_mask_box_and_center():
    m = np.zeros((10, 12), bool)
    m[2:7, 3:8] = True  # rows 2-6, columns 3-7: the one center is row 4, column 5
    assert mask_box(m).tolist() == [3, 2, 8, 7]
    assert mask_center(m).tolist() == [5, 4]
    assert mask_box(np.zeros((3, 3), bool)) is None and mask_center(np.zeros((3, 3), bool)) is None


def test_oracle_returns_the_referred_box():
    ds = colour_scene(1)
    item = ds.items[0]
    model = GroundTruthModel(gt_masks(ds))
    sample = _ready(model, item)
    out = OracleGrounder({}).ground(model, item, sample, _queries(item, sample))
    assert [g.box.tolist() for g in out[::2]] == [[8, 8, 48, 48], [20, 50, 50, 80], [80, 20, 104, 44]]


# -- CLIP ----------------------------------------------------------------------------------------
def test_parse_candidates():
    cfg = parse_candidates("grid=8,iou=none,stability=0.9,nms_kind=mask,multimask=false")
    assert (cfg.points_per_side, cfg.pred_iou_thresh, cfg.stability_score_thresh, cfg.nms, cfg.multimask) == \
        (8, None, 0.9, "mask", False)
    assert (cfg.top_k, cfg.ranking, cfg.nms_thresh) == (64, "score", 0.7)  # our defaults, then official ones
    assert parse_candidates("top_k=none").top_k is None
    for bad, msg in [("grid", "key=value"), ("colour=red", "key=value"), ("grid=x", "not a number"),
                     ("grid=none", "cannot be switched off"), ("grid=0", "points_per_side"),
                     ("multimask=maybe", "true or false"), ("keep_logits=true", "key=value")]:
        with pytest.raises(ConfigError, match=msg):
            parse_candidates(bad)


def test_square_boxes():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0], [5.0, 5.0, 5.0, 5.0]])
    out = square_boxes(boxes, 1.5)
    assert out[0].tolist() == [-10.0, 10.0, 50.0, 70.0]  # side 40 * 1.5 = 60 around (20, 40)
    assert out[1].tolist() == [4.5, 4.5, 5.5, 5.5]  # a point becomes a 1-px square


def test_crop_batch_reads_the_box_and_zeroes_background():
    img = torch.zeros(3, 8, 8)
    img[0, :, :4] = 1.0  # left half red
    img[2, :, 4:] = 1.0  # right half blue
    mean, std = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.5, 0.5, 0.5])
    boxes = torch.tensor([[0.0, 0.0, 4.0, 8.0], [4.0, 0.0, 8.0, 8.0], [8.0, 0.0, 16.0, 8.0]])
    crops = crop_batch(img, None, boxes, 4, mean, std)
    assert torch.allclose(crops[0, 0], torch.ones(4, 4)) and torch.allclose(crops[0, 2], -torch.ones(4, 4))
    assert torch.allclose(crops[1, 2], torch.ones(4, 4)) and torch.allclose(crops[1, 0], -torch.ones(4, 4))
    assert torch.allclose(crops[2, :, :, 2:], -torch.ones(3, 4, 2))  # outside the image reads black
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[0, :4, :4] = True  # top half of the first crop only
    crops = crop_batch(img, masks, boxes, 4, mean, std)
    assert torch.allclose(crops[0, 0, :2], torch.ones(2, 4)) and (crops[0, :, 2:] == 0).all()
    assert (crops[1] == 0).all()


def _colour_grounder(**options):
    g = ClipGrounder({"clip_checkpoint": "unused.pt", **options})
    g._clip, g._device = colour_clip(), torch.device("cpu")
    return g


@pytest.mark.parametrize("zero_background", [False, True])
def test_clip_picks_the_named_colour(zero_background):
    ds = colour_scene(2)
    model = GroundTruthModel(gt_masks(ds))
    g = _colour_grounder(candidates="grid=8", zero_background=zero_background, crop_expand=1.0)
    for item in ds.items:
        sample = _ready(model, item)
        out = g.ground(model, item, sample, _queries(item, sample))
        for q, res in zip(_queries(item, sample), out):
            assert res.prompt == "mask" and res.extra["num_candidates"] == 3
            assert np.array_equal(res.mask, q.instance.mask()), q.text
            assert res.score == pytest.approx(1.0, abs=1e-5)  # crop colour = the named colour


def test_clip_center_click_refinement_and_empty_candidates():
    ds = colour_scene(1)
    item = ds.items[0]
    model = GroundTruthModel(gt_masks(ds))
    sample = _ready(model, item)
    out = _colour_grounder(candidates="grid=8", refine_center_click=True).ground(model, item, sample,
                                                                                 _queries(item, sample))
    assert [g.prompt for g in out] == ["points"] * 6
    assert out[0].points.tolist() == [[27, 27]]  # center of the 40x40 red square at (8..47, 8..47)
    out = _colour_grounder(candidates="grid=8,iou=0.95").ground(model, item, sample, _queries(item, sample))
    assert all(g.prompt == "none" and "filters" in g.extra["not_found"] for g in out)  # GT model scores 0.9


def test_clip_needs_a_local_checkpoint():
    with pytest.raises(ConfigError, match="--clip-checkpoint"):
        ClipGrounder({})
    with pytest.raises(ConfigError, match="--crop-expand"):
        ClipGrounder({"clip_checkpoint": "x.pt", "crop_expand": 0.5})
    with pytest.raises(ConfigError, match="--clip-template"):
        ClipGrounder({"clip_checkpoint": "x.pt", "clip_template": "a photo"})


def test_load_clip_state_dict(tiny_clip, tmp_path):
    import open_clip

    cfg, weights = tiny_clip
    model, tokenizer, size, mean, std = load_clip(str(cfg), weights, torch.device("cpu"))
    assert size == 32 and mean.tolist() == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    ref = open_clip.create_model("tiny-clip", pretrained=None)
    ref.load_state_dict(torch.load(weights, weights_only=True))
    tokens = tokenizer(["small red triangle"])
    with torch.no_grad():
        assert torch.equal(model.encode_text(tokens), ref.encode_text(tokens))
    with pytest.raises(CheckpointError, match="wrong architecture"):
        load_clip("ViT-B-32", weights, torch.device("cpu"))
    with pytest.raises(CheckpointError, match="no such file"):
        load_clip(str(cfg), tmp_path / "absent.pt", torch.device("cpu"))
    with pytest.raises(ConfigError, match="not an open_clip architecture"):
        load_clip("ViT-Nope", weights, torch.device("cpu"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot load"):
        load_clip(str(cfg), tmp_path / "junk.pt", torch.device("cpu"))


def test_load_clip_openai_torchscript(tmp_path):
    path, ref = save_openai_style_clip(tmp_path)
    model, tokenizer, size, mean, std = load_clip("ignored-for-torchscript", path, torch.device("cpu"))
    tokens = tokenizer(["the red one"])
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(model.encode_text(tokens), ref.encode_text(tokens))
        assert torch.allclose(model.encode_image(x), ref.encode_image(x), atol=1e-6)


def test_clip_grounder_with_real_open_clip(tiny_clip):
    cfg, weights = tiny_clip
    ds = colour_scene(1)
    item = ds.items[0]
    model = GroundTruthModel(gt_masks(ds))
    sample = _ready(model, item)
    g = ClipGrounder({"clip_checkpoint": str(weights), "clip_arch": str(cfg), "candidates": "grid=8",
                      "zero_background": True, "crop_expand": 1.3})
    qs = _queries(item, sample)
    out = g.ground(model, item, sample, qs)
    cands = [i.mask() for i in sample.instances]
    for res in out:  # random CLIP: any candidate, but always one of them, scored by cosine similarity
        assert any(np.array_equal(res.mask, c) for c in cands) and -1.0 <= res.score <= 1.0
    # the score is the cosine similarity of the chosen candidate's crop and the text, recomputed here
    from sam_bench.amg import generate

    mset = generate(model, sample.image, g.amg)
    img_emb = g.embed_masks(sample.image, mset, torch.device("cpu"))
    txt_emb = g.embed_texts([q.text for q in qs], torch.device("cpu"))
    sims = img_emb @ txt_emb.T
    assert [r.score for r in out] == pytest.approx(sims.max(0).values.tolist(), abs=1e-6)
    assert g.describe()["clip_checkpoint_sha256"] and g.describe()["candidates"]["points_per_side"] == 8


# -- detector boxes ------------------------------------------------------------------------------
def test_boxes_file_formats_and_errors(tmp_path):
    as_dict = {"a/1/0": {"boxes": [[0, 0, 5, 5], [1, 1, 9, 9]], "scores": [0.2, 0.7], "text": "red"},
               "a/2/0": {"boxes": [], "scores": []}}
    p1 = tmp_path / "d.json"
    p1.write_text(json.dumps(as_dict))
    p2 = tmp_path / "l.jsonl"
    p2.write_text("\n".join(json.dumps({"phrase_id": k, **v}) for k, v in as_dict.items()))
    for p in (p1, p2):
        e = load_boxes_file(p)
        assert e["a/1/0"]["boxes"].shape == (2, 4) and e["a/2/0"]["boxes"].shape == (0, 4)
    bad = [({"x": {"scores": [1]}}, "no 'boxes'"), ({"x": {"boxes": [[0, 0, 1, 1]], "scores": [1, 2]}}, "2 scores"),
           ({"x": {"boxes": [[5, 0, 1, 1]]}}, "XYXY"), ([{"boxes": []}], "phrase_id"), (3, "object or list")]
    for content, msg in bad:
        (tmp_path / "b.json").write_text(json.dumps(content))
        with pytest.raises(ConfigError, match=msg):
            load_boxes_file(tmp_path / "b.json")
    with pytest.raises(ConfigError, match="needs --boxes-file"):
        BoxesFromFile({})
    with pytest.raises(ConfigError, match="no such file"):
        BoxesFromFile({"boxes_file": str(tmp_path / "none.json")})

    g = BoxesFromFile({"boxes_file": str(p1)})
    inst = Instance(id=1, rle=rle_of(np.ones((10, 10), bool)))
    out = g.ground(None, None, None, [Query("a/1/0", "red", inst), Query("a/2/0", "x", inst), Query("a/3/0", "y", inst)])
    assert out[0].box.tolist() == [1, 1, 9, 9] and out[0].score == pytest.approx(0.7)  # the top-scoring box
    assert [g_.prompt for g_ in out] == ["box", "none", "none"]
    assert "no box" in out[1].extra["not_found"] and "no entry" in out[2].extra["not_found"]
    with pytest.raises(BadInput, match="another dataset or split"):
        g.ground(None, None, None, [Query("a/1/0", "blue", inst)])


# -- native text prompts -------------------------------------------------------------------------
def test_native_grounder_takes_the_models_best_mask():
    ds = colour_scene(1)
    item = ds.items[0]
    model = FakeTextModel(ds)
    sample = item.load()
    model.set_image(sample.image, item.id)
    qs = _queries(item, sample)
    out = NativeTextGrounder({}).ground(model, item, sample, qs + [Query("x", "nothing here", qs[0].instance)])
    for q, g in zip(qs, out):
        assert g.prompt == "mask" and np.array_equal(g.mask, q.instance.mask()) and g.score == pytest.approx(0.8)
    assert out[-1].prompt == "none"
    with pytest.raises(SamBenchError, match="predict_text"):
        NativeTextGrounder({}).ground(GroundTruthModel({}), item, sample, qs)


def test_sam3_adapter_matches_a_direct_forward():
    from open_clip.tokenizer import SimpleTokenizer

    from sam_bench.models.base import build_model

    torch.manual_seed(0)
    model = build_model("sam3", untrained=True, config=TINY_SAM3)  # registered as model "sam3"
    assert model.kinds == ("text",) and model.info.untrained
    with pytest.raises(CheckpointError, match="--checkpoint DIR"):
        build_model("sam3")
    with pytest.raises(CheckpointError, match="model folder"):
        build_model("sam3", checkpoint="missing-folder")
    image = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    with pytest.raises(SamBenchError, match="before set_image"):
        model.predict_text(["x"])
    model.set_image(image)
    out = model.predict_text(["red square", "the blue one"])
    assert len(out) == 2 and out[0].masks.shape == (10, 60, 80) and out[0].scores.shape == (10,)
    # independent check: normalise by hand, tokenise with CLIP's BPE, run Sam3Model, combine scores
    x = torch.nn.functional.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255, size=(112, 112),
                                        mode="bilinear", align_corners=False)
    ids = SimpleTokenizer(context_length=32)(["the blue one"])
    with torch.no_grad():
        res = model.model(pixel_values=(x - 0.5) / 0.5, input_ids=ids, attention_mask=(ids != 0).long())
    scores = res.pred_logits.sigmoid()[0] * res.presence_logits.sigmoid()[0]
    assert out[1].scores == pytest.approx(scores.tolist(), abs=2e-3)
    up = torch.nn.functional.interpolate(res.pred_masks.sigmoid(), size=(60, 80), mode="bilinear")[0] > 0.5
    assert (up == out[1].masks).float().mean() > 0.99
    g = NativeTextGrounder({}).ground(model, None, type("S", (), {"image": image})(), [
        Query("p", "the blue one", Instance(id=1, rle={}))])[0]
    assert g.score == pytest.approx(float(scores.max()), abs=2e-3) and g.mask.shape == (60, 80)


def test_grounder_base_is_abstract():
    with pytest.raises(NotImplementedError):
        Grounder({}).ground(None, None, None, [])
    assert Grounder({}).describe() == {"name": ""}
