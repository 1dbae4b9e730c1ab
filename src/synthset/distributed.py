"""Running under ``torchrun``: which rank this process is, and the few collectives the
engine needs (PyTorch's own ``torch.distributed``; gloo on CPU, NCCL on CUDA).

What is sharded and what is replicated, for the matching methods: every rank draws the same
numbers from the run's one generator (network initialisation, the real batch's indices,
the augmentation), so the synthetic images, their optimiser and every network are the same
on every rank; each rank forwards only its positions ``rank, rank + size, ...`` of each
class's real batch, and the matched real statistics (class means of embeddings and attention
maps, real gradients for gradient matching) are summed over ranks. The loss is then the
one-process loss on the whole batch, up to the order of a sum.

A process that was not started by ``torchrun`` (no ``WORLD_SIZE`` in the environment, or a
world of one) is a world of one and never touches ``torch.distributed``.
"""
from __future__ import annotations

import datetime
import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a run (a world of one by default)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    # what this process's all-reduces moved and waited (the run records rank 0's)
    comm: dict = field(default_factory=lambda: {"all_reduces": 0, "bytes": 0, "seconds": 0.0},
                       compare=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def positions(self, n: int) -> torch.Tensor:
        """This rank's positions among ``n`` (every size-th, from the rank): a deterministic
        shard, the same on every run of the same world size."""
        return torch.arange(self.rank, n, self.size)

    def sum_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Sum each tensor over the ranks, in place (one flat all-reduce for all of them)."""
        if not self.active or not tensors:
            return
        flat = torch.cat([t.reshape(-1).float() for t in tensors])
        t0 = time.perf_counter()
        dist.all_reduce(flat)
        self.comm["seconds"] += time.perf_counter() - t0
        self.comm["all_reduces"] += 1
        self.comm["bytes"] += flat.numel() * flat.element_size()
        i = 0
        for t in tensors:
            t.copy_(flat[i:i + t.numel()].view_as(t))
            i += t.numel()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects; tensors come back on the CPU)."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> Optional[list]:
        """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere)."""
        if not self.active:
            return [obj]
        out = [None] * self.size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def current() -> World:
    """The world of this process: torch.distributed's if initialised, else a world of one."""
    if dist.is_available() and dist.is_initialized():
        return World(rank=dist.get_rank(), size=dist.get_world_size(),
                     local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def launched() -> bool:
    """Whether ``torchrun`` (or an equivalent launcher) started this process in a world of
    more than one."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str = "auto", *, timeout_s: float = 1800.0) -> World:
    """Join the process group that ``torchrun`` describes in the environment (RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT): NCCL when the run uses CUDA, else gloo. Returns
    the world; a process not started by torchrun stays a world of one."""
    if not launched():
        return World()
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; run without torchrun")
    if not dist.is_initialized():
        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if cuda else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_s))
    return current()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
