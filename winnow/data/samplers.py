"""Epoch samplers: which images an epoch draws, with a seed per draw; shardable across ranks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

SEED_MIX = 0x9E3779B1  # spreads (seed, epoch, position) over the seed space


def uniform_weights(targets: list[int], num_classes: int) -> torch.Tensor | None:
    """No weights: every image once per epoch, shuffled."""
    return None


def class_balanced_weights(targets: list[int], num_classes: int) -> torch.Tensor:
    """Per-image weights so that every class is drawn equally often."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    return torch.as_tensor(1.0 / counts[np.asarray(targets)], dtype=torch.float64)


SAMPLERS: dict[str, Callable[[list[int], int], torch.Tensor | None]] = {
    "random": uniform_weights,
    "balanced": class_balanced_weights,
}


def sampler_weights(name: str, targets: list[int], num_classes: int) -> torch.Tensor | None:
    """Look up a sampler by name and compute its per-image weights (None = plain shuffle)."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; valid samplers: {', '.join(sorted(SAMPLERS))}")
    return SAMPLERS[name](targets, num_classes)


class EpochSampler(Sampler):
    """Yields `(index, seed)` pairs; `set_epoch` picks the epoch's permutation or draw.

    Args:
        num_samples: images in the dataset.
        weights: per-image draw weights (with replacement), or None for a permutation.
        seed: run seed.
        rank, world_size: shard for distributed training (each rank sees a disjoint part).
    """

    def __init__(self, num_samples: int, *, weights: torch.Tensor | None = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        self.num_samples, self.weights, self.seed = num_samples, weights, seed
        self.rank, self.world_size, self.epoch, self.skip = rank, world_size, 0, 0

    def set_epoch(self, epoch: int, *, skip: int = 0) -> None:
        """Select the epoch's draw; `skip` drops its first positions (mid-epoch resume)."""
        self.epoch, self.skip = epoch, skip

    def epoch_indices(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is None:
            indices = torch.randperm(self.num_samples, generator=generator)
        else:
            indices = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=generator)
        total = self.per_rank() * self.world_size  # pad so every rank gets the same count
        indices = torch.cat([indices, indices[: total - len(indices)]])
        return indices[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        base = (self.seed * SEED_MIX + self.epoch * 7919 * self.world_size) % 2**62
        indices = self.epoch_indices().tolist()
        for position in range(self.skip, len(indices)):
            yield indices[position], (base + position * self.world_size + self.rank) % 2**62

    def __len__(self) -> int:
        return self.per_rank() - self.skip

    def per_rank(self) -> int:
        return -(-self.num_samples // self.world_size)


def class_mix(targets: list[int], weights: torch.Tensor | None, num_classes: int) -> np.ndarray:
    """Expected share of each class in one epoch under these weights."""
    targets_array = np.asarray(targets)
    w = np.ones(len(targets)) if weights is None else weights.numpy()
    mix = np.bincount(targets_array, weights=w, minlength=num_classes)
    return mix / mix.sum()
