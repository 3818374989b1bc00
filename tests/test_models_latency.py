"""`sam-bench latency` on a tiny registered SAM: table files, timings, and the random-weights label."""

from __future__ import annotations

import json

import numpy as np

from sam_bench import registry
from sam_bench.cli import main
from sam_fixtures import tiny_model


def test_latency_command_writes_labelled_table(tmp_path, capsys):
    def build(untrained=False, **kw):
        model = tiny_model()
        model.info.extra["weights"] = "random weights"
        return model

    registry.register("models", "tiny-sam", build)
    out = tmp_path / "lat"
    assert main(["latency", "--model", "tiny-sam", "--untrained", "--images", "1", "--prompts", "4",
                 "--prompt-batch", "1", "4", "--image-size", "60", "80", "--out", str(out)]) == 0
    data = json.loads((out / "latency.json").read_text())
    rows = data["rows"]
    assert [r["prompt_batch"] for r in rows] == [1, 4] and all(r["weights"] == "random weights" for r in rows)
    assert all(r["encoder_ms_per_image"] > 0 and r["decoder_ms_per_prompt"] > 0 for r in rows)
    md = (out / "latency.md").read_text()
    assert "random weights" in md and (out / "latency.csv").is_file() and (out / "latency.tex").is_file()
    assert data["provenance"]["device"] == "cpu"


def test_latency_without_a_batch_times_the_runners_own_choice():
    from sam_bench.latency import measure

    model = tiny_model()
    assert model.tuning_batch
    image = np.zeros((60, 80, 3), np.uint8)
    rows = measure(model, image, images=1, prompts=4)
    assert not model.tuning_batch and model.tuner.best in (1, 4, 16, 64)
    assert [r["prompt_batch"] for r in rows] == [model.tuner.best]
