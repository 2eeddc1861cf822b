"""Center loss (Wen et al. 2016, "A Discriminative Feature Learning Approach for Deep Face
Recognition") (`loss: center`).

``L_C = 1/2 * mean_i ||x_i - c_{y_i}||^2`` over the batch's embeddings ``x_i`` and their class
centres ``c_j`` (the paper sums over the batch; the mean keeps the weight independent of the
batch size). The centres are not trained by the optimiser: after each training-mode call they move
towards the batch (the paper's Eq. 4)::

    delta c_j = sum_{i: y_i = j} (c_j - x_i) / (1 + n_j)      c_j <- c_j - alpha * delta c_j

with ``n_j`` the batch's images of class j (classes absent from the batch keep their centre). The
centres start at 0 and live in a persistent buffer, so checkpoints keep them. pytorch-metric-learning
has no center loss, hence this module. Use it with a classification term, as in the paper
(softmax + lambda * center): ``loss: joint``, ``terms: [{loss: ce}, {loss: center, weight: 0.01}]``
(the weight is the paper's lambda). `loss_params`: ``alpha`` (0.5), in (0, 1].
"""

from __future__ import annotations

from numbers import Real

import torch

from winnow.constraints import Interval, check_value
from winnow.losses.context import LossContext
from winnow.losses.embedding import EmbeddingLoss
from winnow.losses.params import take_params

CENTER_PARAMS: dict[str, object] = {"alpha": 0.5}


class CenterLoss(EmbeddingLoss):
    """Half the mean squared distance of embeddings `[B, D]` to their class centres `[K, D]`.

    Args:
        num_classes: K.
        embedding_size: D.
        alpha: centre learning rate of Eq. 4, in (0, 1].
    """

    name = "center"
    centers: torch.Tensor

    def __init__(self, num_classes: int, embedding_size: int, *, alpha: float = 0.5) -> None:
        super().__init__(num_classes)
        self.alpha = float(check_value("center alpha", alpha, [Interval(Real, 0, 1, closed="right")],
                                       hint="it is the centres' learning rate; the paper uses 0.5"))
        self.register_buffer("centers", torch.zeros(num_classes, embedding_size))

    def embedding_loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if embeddings.shape[1] != self.centers.shape[1]:
            raise ValueError(f"loss 'center': embeddings have {embeddings.shape[1]} dimensions but the centres "
                             f"{self.centers.shape[1]}; build the loss with the model's embedding size")
        centers = self.centers.to(device=embeddings.device, dtype=embeddings.dtype)
        loss = 0.5 * (embeddings - centers[labels]).pow(2).sum(dim=1).mean()
        if self.training:
            self.update_centers(embeddings.detach(), labels)
        return loss

    @torch.no_grad()
    def update_centers(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """Eq. 4 of the paper for embeddings `[N, D]` with labels `[N]` (the loss was computed first)."""
        centers = self.centers.to(embeddings.device)
        counts = torch.bincount(labels, minlength=self.num_classes).to(centers.dtype)[:, None]
        sums = torch.zeros_like(centers).index_add_(0, labels, embeddings.to(centers.dtype))
        delta = (counts * centers - sums) / (1.0 + counts)
        self.centers.copy_(centers - self.alpha * delta)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, embedding_size={self.centers.shape[1]}, alpha={self.alpha}"


def center_loss(params: dict | None, context: LossContext) -> CenterLoss:
    """Registry factory of `center`."""
    values = take_params("loss_params of loss 'center'", params, CENTER_PARAMS)
    return CenterLoss(context.num_classes, context.require_embedding_size("center"), alpha=values["alpha"])
