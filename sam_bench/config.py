"""Settings resolved from arguments, environment and defaults: data root, cache dir, device."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from sam_bench.errors import ConfigError

DATA_ENV = "SAM_BENCH_DATA"
CACHE_ENV = "SAM_BENCH_CACHE"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def data_root(arg: str | os.PathLike | None = None) -> Path:
    """``--data-root`` if given, else ``$SAM_BENCH_DATA``, else the user data dir."""
    if arg:
        return Path(arg).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path(platformdirs.user_data_dir("sam-bench")) / "data"


def cache_dir(arg: str | os.PathLike | None = None) -> Path:
    """Where downloaded checkpoints and generated data live: ``$SAM_BENCH_CACHE`` or the user cache dir."""
    if arg:
        return Path(arg).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(platformdirs.user_cache_dir("sam-bench"))


def preset_dirs() -> list[Path]:
    """Folders holding ``tasks/*.toml`` (presets) and ``datasets/*.toml`` (cards).

    A source checkout (and an editable install) reads the top-level folders, where they are
    written; a wheel carries copies in ``sam_bench/_presets`` (see setup.py).
    """
    if (PROJECT_ROOT / "tasks").is_dir() and (PROJECT_ROOT / "datasets").is_dir() \
            and (PROJECT_ROOT / "pyproject.toml").is_file():
        return [PROJECT_ROOT]
    from importlib.resources import files

    return [Path(str(files("sam_bench") / "_presets"))]


def resolve_device(arg: str | None = None):
    """``--device`` if given, else CUDA when available, else CPU."""
    import torch

    if arg in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(arg)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {arg}: CUDA is not available on this machine")
    return dev


DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def resolve_dtype(arg: str | None):
    import torch

    if arg in (None, "fp32"):
        return torch.float32
    if arg not in DTYPES:
        raise ConfigError(f"--dtype {arg!r}: choose one of {', '.join(DTYPES)}")
    return getattr(torch, DTYPES[arg])
