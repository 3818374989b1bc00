"""torch.distributed helpers: one process is the degenerate case, so callers never branch."""

from __future__ import annotations

import os


def world() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment; (0, 1) when not launched by it."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init() -> tuple[int, int]:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); no-op for one process."""
    rank, size = world()
    if size > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and os.environ.get("SAM_BENCH_BACKEND") != "gloo" else "gloo"
            dist.init_process_group(backend=backend)
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    return rank, size


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shard(items: list, rank: int, size: int) -> list:
    """Rank ``rank``'s share of ``items`` (strided, so ranks get similar mixes)."""
    return items[rank::size]
