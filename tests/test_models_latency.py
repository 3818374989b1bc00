"""`sam-bench latency` on a tiny registered SAM: table files, timings, and the random-weights label."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam_bench import registry
from sam_bench.cli import main
from sam_bench.errors import NotBuilt
from sam_fixtures import tiny_model


def _register():
    def build(untrained=False, **kw):
        model = tiny_model()
        model.info.extra["weights"] = "random weights"
        return model

    registry.register("models", "tiny-sam", build)


def test_latency_command_writes_one_labelled_row_per_model(tmp_path):
    _register()

    def missing(**kw):
        raise NotBuilt("needs the package tiny-extra: pip install tiny-extra")

    registry.register("models", "not-installed", missing)
    out = tmp_path / "lat"
    assert main(["latency", "--model", "tiny-sam", "not-installed", "--untrained", "--images", "1", "--prompts", "4",
                 "--prompt-batch", "1", "4", "--amg-grid", "4", "--image-size", "60", "80", "--out", str(out)]) == 0
    data = json.loads((out / "latency.json").read_text())
    [row] = data["rows"]
    assert row["weights"] == "random weights" and row["params_M"] == pytest.approx(tiny_model().parameter_count() / 1e6)
    assert row["encoder_ms_per_image"] > 0 and row["decoder_ms_b1"] > 0 and row["decoder_ms_b4"] > 0
    assert row["amg4_ms_per_image"] > 0 and row["peak_mem_MB"] is not None
    assert data["skipped"] == [{"model": "not-installed", "options": "", "dtype": "fp32",
                                "reason": "needs the package tiny-extra: pip install tiny-extra"}]
    md = (out / "latency.md").read_text()
    assert "random weights" in md and "decoder_ms_b4" in md
    assert (out / "latency.csv").is_file() and (out / "latency.tex").is_file() and (out / "latency.png").stat().st_size
    assert data["provenance"]["device"] == "cpu"


def test_latency_that_measured_nothing_fails(tmp_path):
    def missing(**kw):
        raise NotBuilt("not here")

    registry.register("models", "not-installed", missing)
    assert main(["latency", "--model", "not-installed", "--untrained", "--out", str(tmp_path)]) != 0


def test_all_expands_to_promptable_models_and_variants():
    from sam_bench.latency import targets

    every = targets(["all"], False, {})
    names = [n for n, _ in every]
    assert {"sam_vit_b", "sam_vit_h", "sam2", "hq-sam", "grabcut"} <= set(names)
    assert "sobel" not in names and "sam3" not in names
    assert ("sam2", {"variant": "t"}) in targets(["sam2"], True, {})
    assert targets(["sam2"], True, {"variant": "s"}) == [("sam2", {"variant": "s"})]


def test_latency_without_a_batch_times_the_runners_own_choice():
    from sam_bench.latency import measure

    model = tiny_model()
    assert model.tuning_batch
    image = np.zeros((60, 80, 3), np.uint8)
    rows = measure(model, image, images=1, prompts=4)
    assert not model.tuning_batch and model.tuner.best in (1, 4, 16, 64)
    assert [r["prompt_batch"] for r in rows] == [model.tuner.best]
