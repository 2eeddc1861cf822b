"""Checking logits and targets, and the target forms the losses accept.

- multi-class: logits `[B, K]` with class indices `[B]` (IGNORE_INDEX marks ignored samples),
  or class probabilities `[B, K]` (e.g. from mixup).
- binary (single logit): logits `[B]` or `[B, 1]` with targets `[B]` in {0, 1} (integer targets:
  IGNORE_INDEX is ignored; float targets: NaN is ignored).
- multi-label: logits `[B, K]` with multi-hot float targets `[B, K]` in [0, 1]; NaN is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


@dataclass
class LabelBatch:
    """Binary or multi-label targets as independent labels.

    Attributes:
        logits: `[B, K]` (K = 1 for a binary head), float32 or float64.
        targets: `[B, K]` in [0, 1]; 0 where ignored.
        mask: `[B, K]` 1.0 where a target is given, 0.0 where ignored.
        binary: True for a single-logit binary head.
    """

    logits: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    binary: bool


def float_logits(logits: torch.Tensor, loss: str) -> torch.Tensor:
    """Logits in float32 or float64 (half precision is computed in float32)."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        kind = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TypeError(f"loss {loss!r}: logits must be a floating-point tensor, got {kind}")
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def is_hard(targets: torch.Tensor) -> bool:
    """Class indices `[B]` (as opposed to probabilities `[B, K]`)."""
    return targets.ndim == 1


def multiclass_inputs(logits: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """Checked float logits `[B, K]` for class indices `[B]` or probabilities `[B, K]`."""
    logits = float_logits(logits, loss)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"loss {loss!r} needs logits [B, K] with K >= 2 classes, got shape {tuple(logits.shape)}; "
                         "for a single-logit binary head use loss 'bce' (or focal with variant: sigmoid)")
    if targets.ndim == 1 and not targets.is_floating_point() and targets.dtype != torch.bool:
        _check_batch(logits, targets, loss)
        _check_class_range(targets, logits.shape[1], loss)
        return logits
    if targets.shape == logits.shape and targets.is_floating_point():
        return logits
    raise ValueError(f"loss {loss!r}: targets must be class indices [B] (integer) or class probabilities "
                     f"[B, K] (float) for logits {tuple(logits.shape)}, got {targets.dtype} {tuple(targets.shape)}")


def _check_batch(logits: torch.Tensor, targets: torch.Tensor, loss: str) -> None:
    if targets.shape[0] != logits.shape[0]:
        raise ValueError(f"loss {loss!r}: {logits.shape[0]} rows of logits but {targets.shape[0]} targets; "
                         "pass one target per sample")


def _check_class_range(targets: torch.Tensor, num_classes: int, loss: str) -> None:
    bad = ((targets < 0) & (targets != IGNORE_INDEX)) | (targets >= num_classes)
    if bad.any():
        raise ValueError(f"loss {loss!r}: targets must be class indices in [0, {num_classes}) or "
                         f"{IGNORE_INDEX} (ignored), got {targets[bad].unique().tolist()}; check the labels "
                         "and that the head has one output per class")


def is_multiclass_indices(logits: torch.Tensor, targets: torch.Tensor) -> bool:
    """Class indices `[B]` for multi-class logits `[B, K]`, K > 1 (not a binary head)."""
    return targets.ndim == 1 and logits.ndim == 2 and logits.shape[1] > 1


def label_inputs(logits: torch.Tensor, targets: torch.Tensor, loss: str) -> LabelBatch:
    """Binary targets `[B]` for logits `[B]`/`[B, 1]`, or multi-label targets `[B, K]`, as a LabelBatch."""
    logits = float_logits(logits, loss)
    if targets.ndim == 1 and (logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1)):
        logits = logits.reshape(-1, 1)
        _check_batch(logits, targets, loss)
        return _label_batch(logits, targets.reshape(-1, 1), loss, binary=True)
    if targets.ndim == 2 and targets.shape == logits.shape and targets.is_floating_point():
        return _label_batch(logits, targets, loss, binary=False)
    raise ValueError(f"loss {loss!r}: expected binary targets [B] with logits [B] or [B, 1], or multi-hot float "
                     f"targets [B, K] with logits [B, K]; got logits {tuple(logits.shape)} and targets "
                     f"{targets.dtype} {tuple(targets.shape)}. For class indices with logits [B, K] use a "
                     "multi-class loss (ce, focal)")


def _label_batch(logits: torch.Tensor, targets: torch.Tensor, loss: str, *, binary: bool) -> LabelBatch:
    if targets.is_floating_point():
        given = ~torch.isnan(targets)
    else:
        given = targets != IGNORE_INDEX
    values = torch.where(given, targets.to(logits.dtype), torch.zeros((), dtype=logits.dtype, device=logits.device))
    if ((values < 0) | (values > 1)).any():
        raise ValueError(f"loss {loss!r}: label targets must be in [0, 1] (NaN or {IGNORE_INDEX} = ignored), got "
                         f"values from {values.min().item()} to {values.max().item()}")
    return LabelBatch(logits, values, given.to(logits.dtype), binary)


def class_distribution(targets: torch.Tensor, num_classes: int, *, label_smoothing: float,
                       dtype: torch.dtype) -> torch.Tensor:
    """Target distribution `[B, K]` with label smoothing; rows of ignored indices are arbitrary."""
    if is_hard(targets):
        targets = F.one_hot(targets.clamp(min=0), num_classes).to(dtype)
    else:
        targets = targets.to(dtype)
    return targets * (1.0 - label_smoothing) + label_smoothing / num_classes


def smooth_labels(targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Independent binary labels `[B, K]` pulled towards 0.5 by `label_smoothing`."""
    return targets * (1.0 - label_smoothing) + label_smoothing / 2.0


def check_per_class(loss: str, name: str, values: torch.Tensor | None, num_classes: int, *,
                    scalar_ok: bool = False) -> None:
    """Raise when per-class values `[K']` (or, if `scalar_ok`, a scalar `[1]`) do not match K classes."""
    if values is not None and values.numel() != num_classes and not (scalar_ok and values.numel() == 1):
        raise ValueError(f"loss {loss!r}: {name} has {values.numel()} values but the logits have {num_classes} "
                         "classes; make class_counts (and per-class lists) match the model's outputs")
