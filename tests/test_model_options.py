"""Model options from the command line: declared per builder, typed from text, refused with the valid
keys, recorded in results.json; hf-sam from a Hugging Face model id in a (hand-written) local cache."""

from __future__ import annotations

import json

import pytest

from sam_bench import registry
from sam_bench.cli import build_parser, main
from sam_bench.errors import CheckpointError, ConfigError
from sam_bench.models.base import ModelInfo, build_model
from sam_bench.models.options import check_options, options_of, parse_pairs


def test_invalid_key_names_the_model_and_lists_valid_keys_with_defaults():
    with pytest.raises(ConfigError) as exc:
        build_model("sam2", untrained=True, size="t")  # refused before sam2 builds anything
    assert str(exc.value) == ("model sam2: unknown option size; its options (with defaults): "
                              "variant=l (one of t, s, b+, l); seed=0")
    with pytest.raises(ConfigError, match=r"model grabcut: unknown options colour, radius; .*max_side=256; iters=3"):
        build_model("grabcut", colour="red", radius="2")
    with pytest.raises(ConfigError, match="prompt_batch is set by --prompt-batch"):
        check_options("sam2", options_of(registry.get_model_builder("sam2")), {"prompt_batch": "4"})


def test_invalid_value_lists_the_choices_or_the_type():
    with pytest.raises(ConfigError, match=r"model sam2: variant='z' is not allowed; choose one of t, s, b\+, l"):
        build_model("sam2", untrained=True, variant="z")
    with pytest.raises(ConfigError, match="model hq-sam: variant='vit_z'.*vit_b, vit_l, vit_h, vit_tiny"):
        build_model("hq-sam", untrained=True, variant="vit_z")
    with pytest.raises(ConfigError, match="mode='fancy' is not allowed; choose one of soft, hysteresis"):
        build_model("canny", mode="fancy")
    with pytest.raises(ConfigError, match=r"grabcut: iters='3.5' is not an integer \(default 3\)"):
        build_model("grabcut", iters="3.5")
    with pytest.raises(ConfigError, match="sobel: sigma='nan' is not a finite number"):
        build_model("sobel", sigma="nan")
    with pytest.raises(ConfigError, match="hq_token_only='maybe' is not true or false"):
        check_options("hf-sam", options_of(registry.get_model_builder("hf-sam")), {"hq_token_only": "maybe"})


def test_text_values_are_typed_by_the_default_and_recorded():
    hf = check_options("hf-sam", options_of(registry.get_model_builder("hf-sam")),
                       {"hq_token_only": "yes", "seed": "7", "path": "org/name"})
    assert hf == {"hq_token_only": True, "seed": 7, "path": "org/name"}
    model = build_model("grabcut", iters="5", probable_radii="(0.1, 0.25, 0.3)", max_side="128")
    assert (model.iters, model.max_side, model.probable_radii) == (5, 128, (0.1, 0.25, 0.3))
    info = model.info.as_dict()
    assert info["iters"] == 5 and info["probable_radii"] == [0.1, 0.25, 0.3]
    slic = build_model("slic-proposals", fh_scales="50,200", slic_segments="")
    assert slic.fh_scales == (50, 200) and slic.slic_segments == ()
    assert build_model("sobel", sigma="1.5").info.as_dict()["sigma"] == 1.5


def test_undeclared_plugin_takes_any_option_and_records_it():
    from sam_bench.models.edges import SobelEdges

    seen = {}

    def build(checkpoint=None, untrained=False, device=None, dtype=None, **kw):
        seen.update(kw)
        return SobelEdges()

    registry.register("models", "plugin-edges", build)
    model = build_model("plugin-edges", colour="red")
    assert seen == {"colour": "red"} and model.info.as_dict()["colour"] == "red"


def test_parse_pairs_refuses_malformed_and_conflicting():
    assert parse_pairs(["variant=t", "path=a=b"]) == {"variant": "t", "path": "a=b"}
    with pytest.raises(ConfigError, match="'variant': write KEY=VALUE"):
        parse_pairs(["variant"])
    with pytest.raises(ConfigError, match="variant given twice"):
        parse_pairs(["variant=t", "variant=l"])


def test_run_records_the_option_and_refuses_another_in_the_same_out(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "edges", "--model", "sobel", "--dataset", "synthetic", "--limit", "1", "--no-progress",
            "--out", str(out)]
    assert main(argv + ["--model-option", "sigma=1.0"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["name"] == "sobel" and results["model"]["sigma"] == 1.0
    assert main(argv + ["--model-option", "sigma=2.0"]) == 2  # another model identity: not resumed
    assert "holds a different run" in capsys.readouterr().err
    assert main(argv[:-2] + ["--model-option", "colour=red"]) == 2
    assert "model sobel: unknown option colour; its options (with defaults): sigma=0.0" in capsys.readouterr().err


def test_run_passes_the_options_and_names_the_default_out_by_them(monkeypatch):
    from sam_bench import cli, runner

    seen = {}
    monkeypatch.setattr(runner, "run_task", lambda task, model, **kw: seen.update(kw, model=model))
    argv = ["run", "edges", "--model", "sam2", "--model-option", "variant=b+", "--model-option", "seed=3"]
    assert cli.run_main(build_parser(argv).parse_args(argv)) == 0
    assert seen["model"] == "sam2" and seen["model_options"] == {"variant": "b+", "seed": "3"}
    assert seen["out"].endswith("edges-sam2-variant_b_-seed_3")


def test_latency_types_and_checks_options(tmp_path, capsys):
    argv = ["latency", "--model", "grabcut", "--images", "1", "--prompts", "2", "--image-size", "40", "60",
            "--out", str(tmp_path / "lat")]
    assert main(argv + ["--model-option", "iters=x"]) == 2
    assert "grabcut: iters='x' is not an integer" in capsys.readouterr().err
    assert main(argv + ["--model-option", "iters=1", "--model-option", "max_side=32"]) == 0
    rows = json.loads((tmp_path / "lat" / "latency.json").read_text())["rows"]
    assert rows[0]["options"] == "iters=1 max_side=32"


def _plan(argv):
    from sam_bench.reproduce_plan import plan

    return plan(build_parser(["reproduce"]).parse_args(["reproduce", *argv]))


def test_reproduce_sets_model_options():
    entries = _plan(["--tasks", "single-point", "--set", "grabcut.iters=2", "--set", "single-point.max_clicks=3"])
    assert {e["model"] for e in entries} == {"grabcut"}
    assert all(e["model_options"] == {"iters": "2"} and e["options"]["max_clicks"] == 3 for e in entries)
    entries = _plan(["--tasks", "single-point", "--model", "hq-sam", "--set", "hq-sam.variant=vit_tiny",
                     "--model-option", "hq_token_only=true"])
    assert all(e["model_options"] == {"hq_token_only": "true", "variant": "vit_tiny"} for e in entries)
    entries = _plan(["--tasks", "edges", "--model", "sam2", "--set", "model.variant=t"])
    assert all(e["model_options"] == {"variant": "t"} for e in entries)


@pytest.mark.parametrize("argv, message", [
    (["--model", "hq-sam", "--set", "hq-sam.variant=vit_z"], "variant='vit_z' is not allowed; choose one of"),
    (["--model", "sam2", "--set", "model.size=t"], "model sam2: unknown option size; .*variant=l"),
    (["--set", "grabcut.colour=red"], "model grabcut: unknown option colour"),
    (["--set", "model.variant=t"], "model.KEY=VALUE sets an option of --model"),
    (["--model-option", "variant=t"], "--model-option sets an option of --model"),
    (["--model", "sam2", "--set", "sam_vit_b.seed=1"], "not a preset or task being run, nor a model"),
])
def test_reproduce_refuses_bad_model_options(argv, message):
    with pytest.raises(ConfigError, match=message):
        _plan(["--tasks", "single-point", *argv])


def test_models_list_shows_option_keys(capsys):
    assert main(["models", "list"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    column = [c.strip() for c in lines[0].split("|")].index("options")
    rows = {line.split("|")[1].strip(): line.split("|")[column].strip() for line in lines}
    assert rows["sam2"] == "variant, seed" and rows["grabcut"] == "max_side, iters, sure_radius, probable_radii, seed"


# -- hf-sam from a Hugging Face model id ------------------------------------------------------------
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """A hub cache holding ``org/tiny-sam`` (random 1-layer SamModel) in huggingface_hub's layout."""
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    config = transformers.SamConfig(vision_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                       global_attn_indexes=[0], mlp_dim=64))
    repo = tmp_path / "hub" / "models--org--tiny-sam"
    snap = repo / "snapshots" / REVISION
    transformers.SamModel(config).save_pretrained(snap)
    transformers.SamImageProcessor().save_pretrained(snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return snap


def test_hf_sam_loads_a_model_id_from_the_local_cache(hf_cache):
    import numpy as np

    model = build_model("hf-sam", checkpoint="org/tiny-sam", device="cpu")
    info = model.info.as_dict()
    assert (info["checkpoint"], info["hf_id"], info["hf_revision"]) == ("org/tiny-sam", "org/tiny-sam", REVISION)
    assert len(info["checkpoint_sha256"]) == 64 and info["model_type"] == "sam"
    model.set_image(np.zeros((40, 60, 3), np.uint8))
    assert model.predict(points=[[[30, 20]]], labels=[[1]]).logits.shape == (1, 3, 40, 60)
    again = build_model("hf-sam", path="org/tiny-sam", device="cpu").info.as_dict()
    assert again["checkpoint_sha256"] == info["checkpoint_sha256"]
    local = build_model("hf-sam", checkpoint=str(hf_cache), device="cpu").info.as_dict()
    assert local["checkpoint"] == str(hf_cache) and "hf_revision" not in local


def test_hf_sam_missing_id_says_what_to_do(hf_cache, tmp_path):
    with pytest.raises(CheckpointError) as exc:
        build_model("hf-sam", checkpoint="facebook/sam-vit-base", device="cpu")
    msg = str(exc.value)
    assert "facebook/sam-vit-base is neither a local model folder nor a model id in the Hugging Face cache " \
           f"{tmp_path / 'hub'}" in msg
    assert "`hf download facebook/sam-vit-base`" in msg and "HF_HOME" in msg and "--checkpoint DIR" in msg
    with pytest.raises(CheckpointError, match="no such folder"):
        build_model("hf-sam", checkpoint=str(tmp_path / "no" / "such"), device="cpu")
    with pytest.raises(ConfigError, match="disagree"):
        build_model("hf-sam", checkpoint="org/tiny-sam", path="org/other", device="cpu")


def test_model_info_records_only_what_differs_from_defaults():
    from sam_bench.models.options import Option, record_options

    class M:
        info = ModelInfo("m")

    record_options(M, {"variant": Option("l"), "seed": Option(0)}, {"variant": "l", "seed": 3})
    assert M.info.as_dict() == {"name": "m", "checkpoint": None, "checkpoint_sha256": None, "untrained": False,
                                "seed": 3}
