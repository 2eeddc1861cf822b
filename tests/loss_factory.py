"""Tiny logits/targets and paper-formula helpers shared by the loss tests."""

from __future__ import annotations

import math

import torch

from winnow.losses import IGNORE_INDEX

COUNTS = [40, 12, 5, 3]
K = len(COUNTS)
B = 7


def logits_for(shape: tuple[int, ...], dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator, dtype=torch.float64) * 2).to(dtype).requires_grad_()


def class_targets(*, ignore: bool = True) -> torch.Tensor:
    targets = torch.tensor([0, 3, 1, 2, 0, 1, 3])
    if ignore:
        targets[2] = IGNORE_INDEX
    return targets


def multi_hot(*, mask: bool = True, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    targets = (torch.arange(B * K).reshape(B, K) % 3 == 0).to(dtype)
    if mask:
        targets[1, 2] = targets[4, 0] = float("nan")
    return targets


def binary_targets() -> torch.Tensor:
    return torch.tensor([1, 0, 0, 1, IGNORE_INDEX, 1, 0])


def weighted_mean(losses: list[float], weights: list[float]) -> float:
    return sum(w * l for w, l in zip(weights, losses)) / sum(weights)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def softmax(row: list[float]) -> list[float]:
    top = max(row)
    exps = [math.exp(v - top) for v in row]
    return [e / sum(exps) for e in exps]


def effective(counts: list[int], beta: float) -> list[float]:
    raw = [(1 - beta) / (1 - beta**n) for n in counts]
    return [w * len(counts) / sum(raw) for w in raw]


def naive_sigmoid_focal_term(z: float, t: float, gamma: float, alpha: float | None) -> float:
    p = sigmoid(z)
    p_t = p if t == 1 else 1 - p
    alpha_t = 1.0 if alpha is None else (alpha if t == 1 else 1 - alpha)
    return -alpha_t * (1 - p_t) ** gamma * math.log(p_t)
