"""Fault injection for the run as a whole: changed inputs on resume, colliding dataset names, retried
skips, runs that evaluated nothing or skipped too much, --limit 0, strict JSON, two runs in one --out.

Each test makes its input broken the way a user would, runs the real command (``sam_bench.cli.main``
or ``runner.evaluate``) and asserts the outcome: an error naming what is wrong, a recorded skip with
its reason, or a refusal; never a silent different number.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sam_bench import runner
from sam_bench.cli import main
from sam_bench.data.base import Dataset, Item, Sample
from sam_bench.errors import ConfigError
from sam_bench.runlock import RunLock
from test_runner import ToyModel, ToyTask, dataset, expected_mean


def write_folder(root: Path, n: int = 3, empty: tuple[int, ...] = (), size: int = 40) -> tuple[Path, Path]:
    """``root/images/obj_i.png`` with a bright square on dark, and its 0/255 mask in ``root/masks``."""
    img_dir, mask_dir = root / "images", root / "masks"
    img_dir.mkdir(parents=True)
    mask_dir.mkdir(parents=True)
    for i in range(n):
        rng = np.random.default_rng(i)
        img = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
        mask = np.zeros((size, size), np.uint8)
        if i not in empty:
            mask[8 + i:28, 10:30 - i] = 255
        img[mask > 0] = 220
        cv2.imwrite(str(img_dir / f"obj_{i}.png"), img)
        cv2.imwrite(str(mask_dir / f"obj_{i}.png"), mask)
    return img_dir, mask_dir


def run_sp(spec: str, out: Path, *extra: str) -> int:
    return main(["run", "single-point", "--model", "grabcut", "--dataset", *spec.split(), "--out", str(out),
                 "--max-clicks", "2", "--clicks", "1", "--no-progress", *extra])


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))


def test_resume_over_changed_masks_refuses_and_restart_recomputes(tmp_path, capsys):
    img_dir, mask_dir = write_folder(tmp_path / "d")
    spec = f"folder:{img_dir}:{mask_dir}"
    assert run_sp(spec, tmp_path / "out") == 0
    first = results(tmp_path / "out")["metrics"]["miou_1"]
    mask = np.zeros((40, 40), np.uint8)
    mask[2:6, 2:6] = 255  # a different object
    time.sleep(0.01)
    cv2.imwrite(str(mask_dir / "obj_0.png"), mask)
    assert run_sp(spec, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "inputs changed" in err and "image/mask files changed" in err and "--restart" in err
    assert results(tmp_path / "out")["metrics"]["miou_1"] == first  # nothing was overwritten
    assert run_sp(spec, tmp_path / "out", "--restart") == 0
    again = results(tmp_path / "out")
    assert again["metrics"]["miou_1"] != first and again["datasets"][f"folder:images"]["num_items"] == 3


def test_resume_over_changed_annotation_file_names_it(tmp_path):
    ann = tmp_path / "boxes.json"
    ann.write_text("[]")
    task = ToyTask(boxes=str(ann))
    runner.evaluate(task, ToyModel(), [dataset(n=2)], tmp_path / "out", progress=False)
    ann.write_text('[{"image_id": 1}]')
    with pytest.raises(ConfigError, match=r"option boxes: file .*boxes\.json changed"):
        runner.evaluate(ToyTask(boxes=str(ann)), ToyModel(), [dataset(n=2)], tmp_path / "out", progress=False)
    gt = tmp_path / "gt.json"
    gt.write_text("{}")
    ds = dataset(n=2)
    ds.gt_json = gt
    runner.evaluate(ToyTask(), ToyModel(), [ds], tmp_path / "out2", progress=False)
    gt.write_text('{"images": []}')
    with pytest.raises(ConfigError, match=r"annotation file .*gt\.json changed"):
        runner.evaluate(ToyTask(), ToyModel(), [ds], tmp_path / "out2", progress=False)


def test_two_datasets_with_one_name_are_both_kept(tmp_path):
    a = dataset("folder:images", n=3)
    b = Dataset("folder:images", [Item(f"img-{i}", a.items[0].loader) for i in range(4, 9)], format="toy")
    res = runner.evaluate(ToyTask(), ToyModel(), [a, b], tmp_path, progress=False)
    assert set(res["datasets"]) == {"folder:images", "folder:images#2"}
    assert res["datasets"]["folder:images"]["num_items"] == 3 and res["datasets"]["folder:images#2"]["num_items"] == 5
    assert res["datasets"]["folder:images#2"]["metrics"]["mean"] == pytest.approx(
        expected_mean([f"img-{i}" for i in range(4, 9)]))


def test_fixed_corrupt_image_is_retried(tmp_path):
    img_dir, mask_dir = write_folder(tmp_path / "d")
    good = (img_dir / "obj_1.png").read_bytes()
    (img_dir / "obj_1.png").write_bytes(b"not a png")
    spec = f"folder:{img_dir}:{mask_dir}"
    assert run_sp(spec, tmp_path / "out", "--max-skip-fraction", "0.5") == 0
    d = results(tmp_path / "out")["datasets"]["folder:images"]
    assert d["num_items"] == 2 and "cannot decode image" in d["skips"][0]["reason"]
    (img_dir / "obj_1.png").write_bytes(good)
    assert run_sp(spec, tmp_path / "out", "--restart") == 0
    d = results(tmp_path / "out")["datasets"]["folder:images"]
    assert d["num_items"] == 3 and d["num_skipped"] == 0


def test_run_that_evaluated_nothing_exits_1_after_writing(tmp_path, capsys):
    img_dir, mask_dir = write_folder(tmp_path / "d", n=2, empty=(0, 1))
    assert run_sp(f"folder:{img_dir}:{mask_dir}", tmp_path / "out") == 1
    res = results(tmp_path / "out")
    assert res["datasets"]["folder:images"]["num_items"] == 0
    assert "no item was evaluated" in res["failures"][0]
    out, err = capsys.readouterr()
    assert "skipped: folder:images: 2 skipped" in out and "no foreground" in out
    assert "failed: folder:images: no item was evaluated" in err


def test_no_data_root_exits_1(tmp_path, capsys):
    code = main(["run", "single-point", "--model", "grabcut", "--dataset", "GrabCut", "--data-root",
                 str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 1
    assert "no dataset was evaluated" in capsys.readouterr().err


def test_too_many_skips_exit_1_unless_allowed(tmp_path):
    img_dir, mask_dir = write_folder(tmp_path / "d", n=4, empty=(3,))
    spec = f"folder:{img_dir}:{mask_dir}"
    assert run_sp(spec, tmp_path / "a") == 1  # 1 of 4 > 5%
    assert "1 of 4 items skipped (25.0% > --max-skip-fraction 0.05)" in results(tmp_path / "a")["failures"][0]
    assert run_sp(spec, tmp_path / "b", "--max-skip-fraction", "0.3") == 0


def test_declared_absent_images_are_reported_not_counted():
    ds = dataset(n=10)
    ds.missing = [{"item": str(i), "reason": "image not found"} for i in range(82)]
    ds.meta["declared_absent"] = 82
    res = runner.summarise(ToyTask(), {"name": "m"}, [ds], [
        {"dataset": "toy", "item": it.id, "status": "ok", "record": {"value": 0.5}} for it in ds.items])
    d = res["datasets"]["toy"]
    assert d["num_skipped"] == 82 and d["num_skipped_counted"] == 0 and d["declared_absent"] == 82
    assert runner.failures(res) == []
    ds.missing.append({"item": "x", "reason": "image not found"})  # one more than the card declares
    res = runner.summarise(ToyTask(), {"name": "m"}, [ds], [])
    assert res["datasets"]["toy"]["num_skipped_counted"] == 1


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_limit_below_one_refused(tmp_path, capsys, limit):
    with pytest.raises(SystemExit) as exc:
        main(["run", "single-point", "--model", "grabcut", "--limit", limit, "--out", str(tmp_path)])
    assert exc.value.code == 2 and "below 1" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--limit"):
        runner.evaluate(ToyTask(), ToyModel(), [dataset()], tmp_path, limit=int(limit))


def test_results_json_is_strict_with_undefined_listed(tmp_path):
    class NanTask(ToyTask):
        def evaluate(self, ds, records):
            return {"mean": float("nan"), "count": len(records)}

    runner.evaluate(NanTask(), ToyModel(), [dataset(n=2)], tmp_path, progress=False)
    res = results(tmp_path)
    assert res["datasets"]["toy"]["metrics"] == {"mean": None, "count": 2}
    assert res["datasets"]["toy"]["undefined"] == ["mean"] and res["undefined"] == ["mean"]


def test_second_run_into_a_locked_out_is_refused(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(ConfigError, match=f"in use by another sam-bench run \\(pid {os.getpid()}"):
            runner.evaluate(ToyTask(), ToyModel(), [dataset(n=2)], tmp_path, progress=False)
    res = runner.evaluate(ToyTask(), ToyModel(), [dataset(n=2)], tmp_path, progress=False)  # released
    assert res["datasets"]["toy"]["num_items"] == 2


def test_result_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        runner.evaluate(ToyTask(), ToyModel(), [dataset(n=2)], tmp_path, progress=False)
    finally:
        os.umask(old)
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o644


def test_progress_lines_outside_a_terminal(tmp_path, caplog):
    """No tty (CI logs): one line per tenth of the items, with the rate and the time left."""
    caplog.set_level("INFO", logger="sam_bench")
    runner.evaluate(ToyTask(), ToyModel(), [dataset(n=20)], tmp_path, progress=None)
    lines = [r.getMessage() for r in caplog.records if "items/s" in r.getMessage()]
    assert len(lines) == 10 and lines[0].startswith("toy toy: 2/20 items (10%)")
    assert lines[-1].startswith("toy toy: 20/20 items (100%)") and lines[-1].endswith("0:00 left")
