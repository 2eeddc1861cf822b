"""Positive-unlabelled risks uPU and nnPU (Kiryo, Niu, du Plessis, Sugiyama, NeurIPS 2017).

`loss: upu` / `loss: nnpu` on a single-logit binary head: logits `[B]` or `[B, 1]`, targets `[B]`
with 1 = labelled positive, 0 = unlabelled (IGNORE_INDEX or NaN ignored). With a loss ``l(z)`` (the
``surrogate``: logistic ``softplus(-z)`` by default, or the paper's sigmoid ``sigmoid(-z)``) and class
prior ``pi`` = P(y = 1) of the unlabelled data:

- positive risk ``R_p = pi * E_p[l(z)]``;
- negative risk ``R_n = E_u[l(-z)] - pi * E_p[l(-z)]`` (the factor pi on the positives' term is
  the one that is easy to drop: without it the estimate is biased, not just noisy);
- uPU minimises ``R_p + R_n``; its ``R_n`` goes negative once a flexible model over-fits.
- nnPU: while ``R_n >= -beta`` it steps on ``R_p + R_n``; when ``R_n < -beta`` it steps on
  ``-gamma * R_n`` alone (the paper's Algorithm 1: a step that pushes the negative risk back up).

Each expectation is a mean over the batch's labelled positives or unlabelled samples (a batch
without one of them gives 0 for its terms, as the authors' code with its max(1, n) counts).

How nnPU fits a plain ``loss.backward()`` loop: the value returned is always the nnPU risk
estimate ``R_p + max(0, R_n)`` (what the logs and validation show), and in the correction branch
it is a surrogate ``risk.detach() + (-gamma * R_n) - (-gamma * R_n).detach()``, whose value is
the risk and whose gradient is exactly that of ``-gamma * R_n``. The optimizer thus takes the
paper's correction step without any change to the training loop.

`loss_params`: ``prior`` (required, in (0, 1)), ``surrogate`` (``logistic``, the default:
``l(z) = softplus(-z)``; or ``sigmoid``, the paper's), and for nnpu ``beta`` (0, >= 0) and ``gamma``
(1, in (0, 1]).

Why ``logistic`` by default: the sigmoid loss saturates. With a small prior the positive risk weighs little,
the first steps push every score far below 0, and there ``sigmoid'`` is ~0, so the labelled
positives' gradient vanishes and training never recovers (bench/pu.py, chromosomes-qband class 23,
prior 0.009: test AUC 0.50). The logistic loss keeps a gradient of ~1 on a positive scored low; with
the true prior it beat PN (unlabelled as negatives) on F1 in all eight bench/pu.py settings measured,
the sigmoid loss in five.
"""

from __future__ import annotations

from numbers import Real

import torch
import torch.nn.functional as F

from winnow.constraints import Interval, check_value
from winnow.losses.base import WinnowLoss
from winnow.losses.context import LossContext
from winnow.losses.params import REQUIRED, at_least, take_params
from winnow.losses.targets import label_inputs

SURROGATES = {"sigmoid": lambda z: torch.sigmoid(-z), "logistic": lambda z: F.softplus(-z)}
UPU_PARAMS: dict[str, object] = {"prior": REQUIRED, "surrogate": "logistic"}
NNPU_PARAMS: dict[str, object] = {"prior": REQUIRED, "surrogate": "logistic", "beta": 0.0, "gamma": 1.0}


def prior_value(name: str, value: object) -> float:
    """A class prior strictly inside (0, 1)."""
    return float(check_value(name, value, [Interval(Real, 0, 1, closed="neither")],
                             hint="it is the fraction of positives among the unlabelled images; "
                                  "train --prior auto estimates it"))


def surrogate_name(loss: str, value: object) -> str:
    """A name in SURROGATES, or a ValueError naming the parameter and the valid names."""
    if value not in SURROGATES:
        raise ValueError(f"loss_params surrogate of loss {loss!r}: expected one of {sorted(SURROGATES)}, got {value!r}")
    return str(value)


def pu_risks(logits: torch.Tensor, targets: torch.Tensor, prior: float, loss: str, *,
             surrogate: str = "logistic") -> tuple[torch.Tensor, torch.Tensor]:
    """The positive and negative risks ``(R_p, R_n)`` (scalars) of a batch; see the module doc."""
    batch = label_inputs(logits, targets, loss)
    if not batch.binary:
        raise ValueError(f"loss {loss!r} needs a single-logit binary head (logits [B] or [B, 1], targets [B] with "
                         f"1 = labelled positive, 0 = unlabelled), got logits {tuple(logits.shape)}; set head: binary")
    z, given = batch.logits[:, 0], batch.mask[:, 0]
    positive = given * batch.targets[:, 0]
    unlabelled = given * (1 - batch.targets[:, 0])
    n_p, n_u = positive.sum().clamp(min=1), unlabelled.sum().clamp(min=1)
    as_positive, as_negative = SURROGATES[surrogate](z), SURROGATES[surrogate](-z)  # l(z), l(-z)
    risk_p = prior * (positive * as_positive).sum() / n_p
    risk_n = (unlabelled * as_negative).sum() / n_u - prior * (positive * as_negative).sum() / n_p
    return risk_p, risk_n


class UPULoss(WinnowLoss):
    """Unbiased PU risk ``R_p + R_n`` (can go below 0 when over-fitting)."""

    def __init__(self, *, prior: float, surrogate: str = "logistic") -> None:
        super().__init__()
        self.prior = prior_value("upu prior", prior)
        self.surrogate = surrogate_name("upu", surrogate)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        risk_p, risk_n = pu_risks(logits, targets, self.prior, "upu", surrogate=self.surrogate)
        return risk_p + risk_n

    def extra_repr(self) -> str:
        return f"prior={self.prior}, surrogate={self.surrogate}"


class NNPULoss(WinnowLoss):
    """Non-negative PU risk with the correction step as a surrogate; see the module doc.

    Attributes:
        corrected: whether the last call took the correction branch (``R_n < -beta``).
    """

    def __init__(self, *, prior: float, surrogate: str = "logistic", beta: float = 0.0, gamma: float = 1.0) -> None:
        super().__init__()
        self.prior = prior_value("nnpu prior", prior)
        self.surrogate = surrogate_name("nnpu", surrogate)
        self.beta = at_least("nnpu beta", beta, 0.0, hint="the paper uses 0")
        self.gamma = float(check_value("nnpu gamma", gamma, [Interval(Real, 0, 1, closed="right")],
                                       hint="the paper uses 1"))
        self.corrected = False

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        risk_p, risk_n = pu_risks(logits, targets, self.prior, "nnpu", surrogate=self.surrogate)
        risk = risk_p + risk_n.clamp(min=0)
        self.corrected = bool(risk_n.detach() < -self.beta)
        if not self.corrected:
            return risk_p + risk_n if risk_n.detach() >= 0 else risk + (risk_n - risk_n.detach())
        step = -self.gamma * risk_n  # the gradient the paper steps on
        return risk.detach() + step - step.detach()

    def extra_repr(self) -> str:
        return f"prior={self.prior}, surrogate={self.surrogate}, beta={self.beta}, gamma={self.gamma}"


def upu_loss(params: dict | None, context: LossContext) -> UPULoss:
    """Registry factory of `upu`."""
    return UPULoss(**take_params("loss_params of loss 'upu'", params, UPU_PARAMS))


def nnpu_loss(params: dict | None, context: LossContext) -> NNPULoss:
    """Registry factory of `nnpu`."""
    return NNPULoss(**take_params("loss_params of loss 'nnpu'", params, NNPU_PARAMS))
