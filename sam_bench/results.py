"""The result schema and its storage: per-item JSONL (append, resumable) and atomic results.json.

Layout of a run directory ``OUT/``::

    OUT/run.json            the task, model, config and data options the run was started with (resume checks it)
    OUT/items.jsonl         one line per finished item (``items.rank<R>.jsonl`` under torchrun)
    OUT/results.json        the final schema below, written atomically at the end

``results.json`` (``SCHEMA_VERSION`` 1)::

    {"schema_version": 1, "task": str, "model": {"name", "checkpoint", "checkpoint_sha256", "untrained"},
     "config": {...task options...}, "data_options": {...split, subsampling...}, "datasets": {NAME: {"metrics": {...}, "num_items": int, "num_skipped": int,
     "skips": [{"item": id, "reason": str}]}}, "metrics": {...aggregate...}, "latency": {...},
     "provenance": {...}, "untrained": bool}

Metrics are in the paper's units: mIoU, AR and AP in percent; edge ODS/OIS/AP/R50 in 0-1.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from sam_bench import __version__
from sam_bench.errors import ConfigError

SCHEMA_VERSION = 1


def _default(obj: Any):
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode("ascii")
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def strict(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (strict JSON has no NaN or Infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):
        return strict(obj.tolist())
    return obj


def dumps(obj: Any, indent: int | None = None, *, allow_nan: bool = True) -> str:
    """JSON text; ``allow_nan=False`` writes strict JSON (NaN and Infinity as null)."""
    if not allow_nan:
        return json.dumps(strict(obj), default=_default, indent=indent, allow_nan=False)
    return json.dumps(obj, default=_default, indent=indent, allow_nan=True)


def mark_undefined(metrics: dict) -> list[str]:
    """Names of the metrics in ``metrics`` that are undefined (NaN or None), sorted."""
    return sorted(k for k, v in metrics.items()
                  if v is None or (isinstance(v, float) and not math.isfinite(v)))


def _umask_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give (mkstemp's files are 0600 whatever the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so readers see the old file or the whole new one, never a part."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON (NaN written as null), atomically."""
    atomic_write_text(path, dumps(obj, indent=2, allow_nan=False) + "\n")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a synced temporary file, then rename), with the umask's mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None


def load_results(path: str | os.PathLike) -> dict:
    """A results.json with its undefined metrics (written as null) read back as NaN."""
    res = load_json(path)
    if not isinstance(res, dict) or not isinstance(res.get("datasets", {}), dict):
        raise ConfigError(f"{path}: not a sam-bench results.json (its 'datasets' is not a mapping)")
    blocks = [res] + list(res.get("datasets", {}).values())
    for block in blocks:
        metrics = block.get("metrics") if isinstance(block, dict) else None
        if isinstance(metrics, dict):
            block["metrics"] = {k: float("nan") if v is None else v for k, v in metrics.items()}
    return res


RANDOM_WEIGHTS = "random weights"  # how every table, summary and message names --untrained weights


def weights_label(untrained: bool) -> str:
    """"random weights" or "trained weights"."""
    return RANDOM_WEIGHTS if untrained else "trained weights"


def model_label(results: dict) -> str:
    """The model's name as tables show it, flagged "(untrained)" when its weights were random."""
    name = (results.get("model") or {}).get("name", "?")
    return f"{name} (untrained)" if results.get("untrained") else name


def untrained_banner(results: dict) -> str:
    """The loud flag after a run's headline ("" for trained weights)."""
    return f"[UNTRAINED: {RANDOM_WEIGHTS}]" if results.get("untrained") else ""


def run_settings(results: dict) -> dict:
    """Everything that set a run's numbers: its task ``config`` and its ``data_options`` (split,
    subsampling...) in one mapping. Runs written before data options had their own key carried
    them in ``config``, so the two read alike."""
    return {**(results.get("config") or {}), **(results.get("data_options") or {})}


class ItemStore:
    """Append-only JSONL of per-item records; the unit of resume.

    Each line is ``{"dataset", "item", "status": "ok"|"skip", "reason"?, "record"?}``. A line is
    written and flushed in one call once its item is finished, so a crash loses at most the item
    in flight; a torn last line (killed mid-write) is ignored on reading and rewritten on resume.
    Only finished items count as done: a skipped item is tried again on resume, and its new line
    supersedes the skip (``merge_items``).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._done = {(r["dataset"], r["item"]) for r in self.read() if r.get("status") == "ok"}
        self._repair()

    def _repair(self) -> None:
        """Drop a torn trailing line so later appends start on a fresh line."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            atomic_write_bytes(self.path, keep)

    def read(self) -> Iterator[dict]:
        if not self.path.exists():
            return iter(())
        return iter(list(read_jsonl(self.path)))

    def done(self, dataset: str, item: str) -> bool:
        """True once the item has a finished (not skipped) record."""
        return (dataset, str(item)) in self._done

    def add(self, dataset: str, item: str, record: dict | None = None, *, skip: str | None = None) -> None:
        key = (dataset, str(item))
        if key in self._done:
            return
        line: dict[str, Any] = {"dataset": dataset, "item": str(item)}
        if skip is not None:
            line.update(status="skip", reason=skip)
        else:
            line.update(status="ok", record=record)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(dumps(line) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if skip is None:
            self._done.add(key)


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Complete lines of a JSONL file; a torn last line is skipped."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            line = line.strip()
            if line:
                yield json.loads(line)


def merge_items(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """Per-item lines of several JSONL files (ranks), one per (dataset, item).

    The first finished line wins; a skip counts only while no finished line exists, and a later
    skip (a retry that failed again) replaces an earlier one.
    """
    seen: dict[tuple[str, str], dict] = {}
    for p in paths:
        if Path(p).exists():
            for line in read_jsonl(p):
                key = (line["dataset"], line["item"])
                if key not in seen or (seen[key]["status"] == "skip"):
                    seen[key] = line
    return list(seen.values())


def config_hash(config: dict) -> str:
    """A stable hash of the settings that change numbers (used to refuse resuming a different run)."""
    return hashlib.sha256(dumps(config).encode()).hexdigest()[:16]


def git_sha() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(device: Any = None) -> dict:
    """Versions and machine facts recorded with every result."""
    import numpy
    import torch

    cuda = torch.version.cuda if torch.cuda.is_available() else None
    dev_name = None
    if device is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        dev_name = torch.cuda.get_device_name(torch.device(device))
    return {
        "sam_bench": __version__,
        "git_sha": git_sha(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": cuda,
        "numpy": numpy.__version__,
        "device": str(device) if device is not None else None,
        "device_name": dev_name or platform.processor() or platform.machine(),
        "host": platform.node(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# -- predictions: what a report draws, kept in the records ------------------------------------
PREDICTION = "prediction"  # the record key a task fills with what its pictures need (``Task.process``)
MAX_PREDICTION_BYTES = 256 * 1024  # a larger prediction is dropped (a warning, and the record says so)
_log = logging.getLogger("sam_bench")


def keep_prediction(record: dict, save: bool, where: str, limit: int = MAX_PREDICTION_BYTES) -> None:
    """Keep ``record["prediction"]`` when ``save`` and its JSON is at most ``limit`` bytes, else
    drop it (in place); a dropped one leaves ``prediction_dropped``: its size in bytes."""
    pred = record.pop(PREDICTION, None)
    if not save or pred is None:
        return
    size = len(dumps(pred))
    if size > limit:
        _log.warning("%s: its prediction takes %d bytes, over %d: not saved for the report", where, size, limit)
        record["prediction_dropped"] = size
        return
    record[PREDICTION] = pred


def prediction_sizes(lines: Iterable[dict]) -> dict:
    """{"items", "mean_bytes", "max_bytes", "dropped", "limit_bytes"}: the saved predictions of
    finished per-item lines (their JSON size)."""
    records = [ln.get("record") or {} for ln in lines if ln.get("status") == "ok"]
    sizes = [len(dumps(r[PREDICTION])) for r in records if PREDICTION in r]
    return {"items": len(sizes), "mean_bytes": round(sum(sizes) / len(sizes), 1) if sizes else 0,
            "max_bytes": max(sizes, default=0), "dropped": sum("prediction_dropped" in r for r in records),
            "limit_bytes": MAX_PREDICTION_BYTES}
