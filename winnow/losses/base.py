"""The base class every winnow loss shares, and per-class weights that switch on at an epoch."""

from __future__ import annotations

from numbers import Integral

import torch
from torch import nn

from winnow.constraints import Interval, check_value
from winnow.losses.params import epoch_value


class EpochAware(nn.Module):
    """A module told which epoch is about to start; passes it on to its EpochAware children."""

    def set_epoch(self, epoch: int) -> None:
        """Prepare for the 0-based `epoch` about to start (deferred weights switch on here)."""
        check_value("epoch", epoch, [Interval(Integral, 0, None)], hint="the 0-based epoch about to start")
        for child in self.children():
            if isinstance(child, EpochAware):
                child.set_epoch(epoch)


class WinnowLoss(EpochAware):
    """A loss called as `loss(logits, targets) -> scalar tensor`, with `set_epoch(epoch)`.

    Without `set_epoch` calls a loss behaves as in epoch 0.

    Attributes:
        needs_embeddings: the loss is called as `loss(logits, targets, embeddings=E)` with the
            model's embeddings `E [B, D]` (the classifier's input); see `call_loss`.
        trains_classifier: the loss trains the classifier whose logits predictions use; a run's
            loss must (metric-learning losses alone train only the embedding).
        rank_local_state: the loss's state may differ between torchrun processes without harm
            (GHM's bin counts are statistics of each process's own batches); see `unsynced_state`.
    """

    needs_embeddings: bool = False
    trains_classifier: bool = True
    rank_local_state: bool = False


def unsynced_state(loss: nn.Module) -> list[str]:
    """Names of the state in `loss` that torchrun processes would let drift apart (e.g. `terms.1.W`).

    Every entry of its state_dict counts, except those of submodules that declare `rank_local_state`.
    """
    local = [name for name, module in loss.named_modules() if getattr(module, "rank_local_state", False)]
    return [key for key in loss.state_dict()
            if not any(name == "" or key.startswith(f"{name}.") for name in local)]


def call_loss(loss: nn.Module, logits, targets, embeddings: torch.Tensor | None = None) -> torch.Tensor:
    """`loss(logits, targets)`, passing `embeddings=` `[B, D]` to a loss whose `needs_embeddings` is set."""
    if getattr(loss, "needs_embeddings", False):
        return loss(logits, targets, embeddings=embeddings)
    return loss(logits, targets)


class DeferredWeights(EpochAware):
    """Per-class weights `[K]` that apply from the 0-based epoch `start_epoch` on (always when None).

    The weights are a non-persistent buffer: `.to(device)` moves them, and `current` also moves
    them to the logits' device and dtype.
    """

    weight: torch.Tensor | None

    def __init__(self, weight: torch.Tensor | None, *, start_epoch: int | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.start_epoch = epoch_value("start_epoch", start_epoch)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.epoch = epoch

    @property
    def active(self) -> bool:
        """Whether the weights apply in the current epoch."""
        return self.weight is not None and (self.start_epoch is None or self.epoch >= self.start_epoch)

    def current(self, like: torch.Tensor) -> torch.Tensor | None:
        """The weights `[K]` on `like`'s device and dtype, or None when they do not apply (yet)."""
        return self.weight.to(device=like.device, dtype=like.dtype) if self.active else None

    def extra_repr(self) -> str:
        weight = None if self.weight is None else [round(w, 4) for w in self.weight.tolist()]
        return f"weight={weight}, start_epoch={self.start_epoch}"
