"""Deterministic test-time views of square images: the flips and the 8 symmetries of the square.

Each view is a callable on `[..., H, W]` tensors, so it applies alike to one image `[C, S, S]`
(inference's per-image views) and to a batch `[B, C, S, S]` (the trainer's test pass). Flips and
rotations commute with per-channel normalisation, so they may run before or after it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


ViewOp = Callable[[torch.Tensor], torch.Tensor]
VIEW_MODES = ("none", "flips", "d4")


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


def flip_ops() -> list[ViewOp]:
    """Identity, horizontal, vertical, both, on `[..., H, W]` tensors."""
    return [identity, lambda x: x.flip(-1), lambda x: x.flip(-2), lambda x: x.flip(-2, -1)]


def d4_ops() -> list[ViewOp]:
    """The 8 dihedral transforms of a square `[..., S, S]` tensor."""
    rotations = [lambda x, k=k: torch.rot90(x, k, dims=(-2, -1)) for k in range(4)]
    return rotations + [lambda x, r=r: r(x.transpose(-2, -1)) for r in rotations]


def view_ops(mode: str) -> list[ViewOp]:
    """The views of a deterministic mode: "none" (identity only), "flips" (4) or "d4" (8).

    Raises:
        ValueError: Another mode.
    """
    if mode not in VIEW_MODES:
        raise ValueError(f"test-time views: expected one of {list(VIEW_MODES)}, got {mode!r}")
    return {"none": [identity], "flips": flip_ops(), "d4": d4_ops()}[mode]
