"""torchrun support: process-group set-up, and what the ranks must agree on.

Rank 0 decides (the run folder, each epoch's row) and alone writes files; the other ranks receive
its decisions with `broadcast_object`. Evaluation is sharded: rank r scores images r, r + W,
r + 2W... of a split (W ranks, no padding, so no image twice) and `gather_predictions` puts
every rank's predictions back in split order, identically on every rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """This process's place among the torchrun processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # before any NCCL call: collectives use the current device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(dist.get_rank(), world_size, local_rank)


def all_reduce(value: float, info: DistInfo, device: torch.device, *, op: str = "mean") -> float:
    """Sum (`op="sum"`) or average (`op="mean"`) a scalar over ranks; identity when not distributed."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], device=device, dtype=torch.float64)
    dist.all_reduce(tensor)
    total = float(tensor.item())
    return total / info.world_size if op == "mean" else total


def broadcast_object(value: T, info: DistInfo) -> T:
    """Rank 0's `value` on every rank (any picklable object; the other ranks' `value` is ignored)."""
    if not info.enabled:
        return value
    box = [value if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_module(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers into `module` on every rank, in place.

    DDP keeps parameters equal, but each rank's last forward pass updates its own BatchNorm
    statistics (and EMA copies of them), and weights loaded from a file on rank 0 exist there
    only; evaluation must use what rank 0 saves.
    """
    if not info.enabled:
        return
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=0)


def gather_predictions(probabilities: Any, targets: Any, loss: float, info: DistInfo) -> tuple[Any, Any, float, int]:
    """Every rank's shard of an evaluation, in split order, on every rank.

    Args:
        probabilities, targets: This rank's arrays (`[n, ...]`, or {task: array}) for images
            rank, rank + W, rank + 2W... of the split.
        loss: This rank's mean loss (nan when its shard is empty).
        info: The ranks.

    Returns:
        Probabilities and targets of the whole split, its mean loss, and the number of images.
    """
    count = _length(probabilities)
    if not info.enabled:
        return probabilities, targets, loss, count
    parts: list[Any] = [None] * info.world_size
    dist.all_gather_object(parts, (probabilities, targets, loss, count))
    filled = [part for part in parts if part[3]]
    total = sum(part[3] for part in filled)
    mean_loss = sum(part[2] * part[3] for part in filled) / total if total else float("nan")
    return (interleave([part[0] for part in parts]), interleave([part[1] for part in parts]), mean_loss, total)


def interleave(parts: list[Any]) -> Any:
    """Undo sharding by `items[rank::world_size]`: `parts[r]` holds items r, r + W...; returns all items.

    Parts are arrays `[n_r, ...]` or {name: array}; an empty shard may be a bare empty array.
    """
    filled = [part for part in parts if _length(part)]
    if not filled:
        return parts[0]
    if isinstance(filled[0], dict):
        return {name: interleave([part[name] if _length(part) else part for part in parts]) for name in filled[0]}
    template = np.asarray(filled[0])
    out = np.empty((sum(_length(part) for part in parts), *template.shape[1:]), dtype=template.dtype)
    for rank, part in enumerate(parts):
        if _length(part):
            out[rank::len(parts)] = part
    return out


def _length(value: Any) -> int:
    if isinstance(value, dict):
        return len(next(iter(value.values()))) if value else 0
    return len(value)
