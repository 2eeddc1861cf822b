"""SimCLR and BYOL on two views of each image, with lightly's heads, losses and momentum update.

lightly is imported when one of these models is built, so that the rest of winnow works without it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from winnow.pretraining.views import VIEW_DEFAULTS, view_transform

SIMCLR_DEFAULTS = {"temperature": 0.1, "hidden_dim": 512, "projection_dim": 128, **VIEW_DEFAULTS}
BYOL_DEFAULTS = {"momentum": 0.99, "hidden_dim": 1024, "projection_dim": 128, **VIEW_DEFAULTS}


def _lightly():
    try:
        import lightly.loss
        import lightly.models.modules
        import lightly.models.utils
        import lightly.utils.scheduler
    except ImportError as error:
        raise ValueError(f"pretrain methods simclr and byol need the lightly package ({error}); install it with "
                         "`pip install lightly`, or use --method autoencoder") from error
    return lightly


class SimCLR(nn.Module):
    """Encoder + SimCLR projection head; `forward(views [B, 2C, S, S])` gives the two views' `[B, P]` projections."""

    def __init__(self, encoder: nn.Module, *, in_chans: int, img_size: int, params: dict, name: str) -> None:
        super().__init__()
        heads = _lightly().models.modules
        self.encoder = encoder
        self.projection = heads.SimCLRProjectionHead(encoder.num_features, int(params["hidden_dim"]),
                                                     int(params["projection_dim"]))

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first, second = views.chunk(2, dim=1)
        projections = self.projection(self.encoder(torch.cat([first, second])))  # one pass: BatchNorm sees both
        return projections.chunk(2)

    def set_epoch(self, epoch: int, epochs: int) -> None:
        """Nothing changes with the epoch."""


class BYOL(nn.Module):
    """Online encoder + projection + prediction, and their momentum (target) copies.

    The target networks follow the online ones by lightly's `update_momentum` before each training
    forward, with a momentum rising from `momentum` towards 1 over the epochs (lightly's `cosine_schedule`).
    `forward(views [B, 2C, S, S])` gives `(p0, z1, p1, z0)`: online predictions and target projections.
    """

    def __init__(self, encoder: nn.Module, *, in_chans: int, img_size: int, params: dict, name: str) -> None:
        super().__init__()
        lightly = _lightly()
        self._update, self._schedule = lightly.models.utils.update_momentum, lightly.utils.scheduler.cosine_schedule
        dim, hidden = int(params["projection_dim"]), int(params["hidden_dim"])
        self.encoder = encoder
        self.projection = lightly.models.modules.BYOLProjectionHead(encoder.num_features, hidden, dim)
        self.prediction = lightly.models.modules.BYOLPredictionHead(dim, hidden, dim)
        self.encoder_momentum = copy.deepcopy(encoder)
        self.projection_momentum = copy.deepcopy(self.projection)
        for module in (self.encoder_momentum, self.projection_momentum):
            lightly.models.utils.deactivate_requires_grad(module)
        self.start_momentum = float(params["momentum"])
        self.momentum = self.start_momentum

    def set_epoch(self, epoch: int, epochs: int) -> None:
        # over epochs + 1 steps: the first epoch uses `momentum`, the last one stays below 1 (a
        # one-epoch run's target network still moves)
        self.momentum = float(self._schedule(epoch, epochs + 1, self.start_momentum, 1.0))

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.training:
            self._update(self.encoder, self.encoder_momentum, m=self.momentum)
            self._update(self.projection, self.projection_momentum, m=self.momentum)
        first, second = views.chunk(2, dim=1)
        online = self.prediction(self.projection(self.encoder(torch.cat([first, second]))))
        with torch.no_grad():
            target = self.projection_momentum(self.encoder_momentum(torch.cat([first, second])))
        p0, p1 = online.chunk(2)
        z0, z1 = target.chunk(2)
        return p0, z1, p1, z0


class NTXent(nn.Module):
    """lightly's NT-Xent (SimCLR) loss on `(z0, z1)` (targets are unused)."""

    def __init__(self, params: dict) -> None:
        super().__init__()
        self.loss = _lightly().loss.NTXentLoss(temperature=float(params["temperature"]))

    def forward(self, outputs: tuple[torch.Tensor, torch.Tensor], targets=None) -> torch.Tensor:
        return self.loss(outputs[0].float(), outputs[1].float())


class SymmetricNegativeCosine(nn.Module):
    """BYOL's loss: lightly's negative cosine similarity, each view's prediction against the other's target."""

    def __init__(self, params: dict) -> None:
        super().__init__()
        self.loss = _lightly().loss.NegativeCosineSimilarity()

    def forward(self, outputs: tuple[torch.Tensor, ...], targets=None) -> torch.Tensor:
        p0, z1, p1, z0 = (value.float() for value in outputs)
        return 0.5 * (self.loss(p0, z1) + self.loss(p1, z0))


def train_views(mean: list[float], std: list[float], config, params: dict) -> nn.Module:
    """Two augmented views per image (`pretrain_params` shape them)."""
    return view_transform(mean, std, img_size=config.img_size, params=params)
