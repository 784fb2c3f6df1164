"""Multi-process training: the process group ``torchrun`` sets up (DDP on GPUs, gloo on CPU).

One process (no ``WORLD_SIZE``) is the default and needs none of this; only rank 0
evaluates and writes, the others wait at :func:`barrier`.
"""
from __future__ import annotations

import os

import torch


def process_group() -> tuple[int, int, int]:
    """(world_size, rank, local_rank), initialising torch.distributed when torchrun launched us."""
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    if ws <= 1:
        return 1, 0, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_world_size(), dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))


def barrier(ws: int) -> None:
    """Wait for every rank (a no-op in one process)."""
    if ws > 1:
        import torch.distributed as dist

        dist.barrier()


__all__ = ["process_group", "barrier"]
