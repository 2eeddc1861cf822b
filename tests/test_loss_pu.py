"""uPU / nnPU losses (`winnow.losses.pu`): per-sample references, the correction step's gradient, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from winnow.losses import IGNORE_INDEX, create_loss

from loss_factory import sigmoid


def naive_risks(logits: list[float], targets: list[int], prior: float, *,
                l=lambda z: sigmoid(-z)) -> tuple[float, float]:  # noqa: E741
    """Kiryo et al. 2017, eq. (3)-(4) with the loss l(z) (the paper's sigmoid(-z)), sample by sample."""
    pos = [z for z, t in zip(logits, targets) if t == 1]
    unl = [z for z, t in zip(logits, targets) if t == 0]
    risk_p = prior * sum(l(z) for z in pos) / max(1, len(pos))
    risk_n = sum(l(-z) for z in unl) / max(1, len(unl)) - prior * sum(l(-z) for z in pos) / max(1, len(pos))
    return risk_p, risk_n


def logistic_loss(z: float) -> float:
    """l(z) = log(1 + exp(-z))."""
    return math.log1p(math.exp(-z))


def naive_grad(logits: list[float], targets: list[int], prior: float, *, wp: float, wn: float) -> list[float]:
    """d(wp * R_p + wn * R_n)/dz per sample, with sigmoid'(z) = s(z)(1 - s(z))."""
    n_p = max(1, sum(1 for t in targets if t == 1))
    n_u = max(1, sum(1 for t in targets if t == 0))
    grads = []
    for z, t in zip(logits, targets):
        d = sigmoid(z) * (1 - sigmoid(z))
        grads.append(wp * prior * -d / n_p - wn * prior * d / n_p if t == 1 else wn * d / n_u if t == 0 else 0.0)
    return grads


TARGETS = [1, 0, 0, 1, IGNORE_INDEX, 0, 0, 1]


def _call(name, params, logits):
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = create_loss(name, params=params, class_counts=[5, 3])
    value = loss(z, torch.tensor(TARGETS))
    value.backward()
    return loss, value.item(), z.grad.tolist()


def test_upu_matches_naive_loop():
    logits = [0.3, -1.2, 2.0, 1.5, 9.0, -0.4, 0.8, -2.2]
    _, value, grad = _call("upu", {"prior": 0.3, "surrogate": "sigmoid"}, logits)
    risk_p, risk_n = naive_risks(logits, TARGETS, 0.3)
    assert value == pytest.approx(risk_p + risk_n, rel=1e-12)
    assert grad == pytest.approx(naive_grad(logits, TARGETS, 0.3, wp=1, wn=1), rel=1e-9)


def test_nnpu_without_correction_steps_on_the_full_risk():
    logits = [2.0, 1.0, 0.5, 3.0, 0.0, 1.5, 2.5, 1.0]  # unlabelled scored high: R_n > 0
    loss, value, grad = _call("nnpu", {"prior": 0.4, "surrogate": "sigmoid"}, logits)
    risk_p, risk_n = naive_risks(logits, TARGETS, 0.4)
    assert risk_n > 0 and not loss.corrected
    assert value == pytest.approx(risk_p + risk_n, rel=1e-12)
    assert grad == pytest.approx(naive_grad(logits, TARGETS, 0.4, wp=1, wn=1), rel=1e-9)


@pytest.mark.parametrize("gamma", [1.0, 0.5])
def test_nnpu_correction_steps_on_minus_gamma_negative_risk(gamma):
    logits = [-3.0, -4.0, -5.0, -2.0, 0.0, -6.0, -3.5, -2.5]  # positives scored low: R_n < 0
    loss, value, grad = _call("nnpu", {"prior": 0.6, "gamma": gamma, "surrogate": "sigmoid"}, logits)
    risk_p, risk_n = naive_risks(logits, TARGETS, 0.6)
    assert risk_n < 0 and loss.corrected
    assert value == pytest.approx(risk_p, rel=1e-12)  # the nnPU risk R_p + max(0, R_n)
    assert grad == pytest.approx(naive_grad(logits, TARGETS, 0.6, wp=0, wn=-gamma), rel=1e-9)
    assert sum(g for g, t in zip(grad, TARGETS) if t == 0) < 0  # the step raises the unlabelled scores' R_n


def test_nnpu_beta_tolerates_a_slightly_negative_risk():
    logits = [-3.0, -4.0, -5.0, -2.0, 0.0, -6.0, -3.5, -2.5]
    risk_p, risk_n = naive_risks(logits, TARGETS, 0.6)
    loss, value, grad = _call("nnpu", {"prior": 0.6, "beta": -risk_n + 0.01, "surrogate": "sigmoid"}, logits)
    assert not loss.corrected and value == pytest.approx(risk_p, rel=1e-12)
    assert grad == pytest.approx(naive_grad(logits, TARGETS, 0.6, wp=1, wn=1), rel=1e-9)


def test_nnpu_training_keeps_the_negative_risk_from_collapsing():
    torch.manual_seed(0)
    x = torch.cat([torch.randn(40, 2) + 2, torch.randn(60, 2) - 2, torch.randn(40, 2) + 2])
    targets = torch.tensor([1] * 40 + [0] * 100)  # 40 hidden positives among 100 unlabelled: prior 0.4
    losses = {}
    for name in ("upu", "nnpu"):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
        loss = create_loss(name, params={"prior": 0.4, "surrogate": "sigmoid"}, class_counts=[100, 40])
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(150):
            optimizer.zero_grad()
            loss(model(x), targets).backward()
            optimizer.step()
        with torch.no_grad():
            losses[name] = naive_risks(model(x)[:, 0].tolist(), targets.tolist(), 0.4)[1]
            hidden = (model(x)[100:, 0] > 0).float().mean().item()
        if name == "nnpu":
            assert hidden > 0.8  # hidden positives among the unlabelled are found
    assert losses["nnpu"] > -0.05


def naive_logistic_grad(logits: list[float], targets: list[int], prior: float) -> list[float]:
    """d(R_p + R_n)/dz per sample for l(z) = log(1 + exp(-z)): l'(z) = -sigmoid(-z), d l(-z)/dz = sigmoid(z)."""
    n_p = max(1, sum(1 for t in targets if t == 1))
    n_u = max(1, sum(1 for t in targets if t == 0))
    return [prior * -sigmoid(-z) / n_p - prior * sigmoid(z) / n_p if t == 1 else sigmoid(z) / n_u if t == 0 else 0.0
            for z, t in zip(logits, targets)]


@pytest.mark.parametrize("name", ["upu", "nnpu"])
def test_logistic_surrogate_matches_naive_loop(name):
    logits = [2.0, 1.0, 0.5, 3.0, 0.0, 1.5, 2.5, 1.0]  # R_n > 0: nnPU steps on the full risk too
    loss, value, grad = _call(name, {"prior": 0.4, "surrogate": "logistic"}, logits)
    risk_p, risk_n = naive_risks(logits, TARGETS, 0.4, l=logistic_loss)
    assert risk_n > 0 and value == pytest.approx(risk_p + risk_n, rel=1e-12)
    assert grad == pytest.approx(naive_logistic_grad(logits, TARGETS, 0.4), rel=1e-9)
    assert "surrogate=logistic" in repr(loss)


@pytest.mark.parametrize("name", ["upu", "nnpu"])
def test_the_default_surrogate_is_logistic(name):
    assert create_loss(name, params={"prior": 0.3}, class_counts=[5, 3]).surrogate == "logistic"


def test_logistic_surrogate_keeps_the_positive_gradient_where_sigmoid_saturates():
    logits = [-12.0] * 8  # every score far below 0, as after the first steps with a small prior
    grads = {surrogate: _call("nnpu", {"prior": 0.01, "surrogate": surrogate}, logits)[2]
             for surrogate in ("sigmoid", "logistic")}
    positive = [i for i, t in enumerate(TARGETS) if t == 1]
    assert max(abs(grads["sigmoid"][i]) for i in positive) < 1e-6
    assert min(abs(grads["logistic"][i]) for i in positive) > 1e-3


@pytest.mark.parametrize("params, match", [
    ({"prior": 0.3, "surrogate": "hinge"}, r"surrogate.*\['logistic', 'sigmoid'\].*'hinge'"),
    ({}, "prior"),
    ({"prior": 0.0}, "prior"),
    ({"prior": 1.0}, "prior"),
    ({"prior": 0.3, "gamma": 0.0}, "gamma"),
    ({"prior": 0.3, "beta": -1.0}, "beta"),
    ({"prior": 0.3, "delta": 1}, "delta"),
])
def test_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        create_loss("nnpu", params=params, class_counts=[5, 3])


def test_multiclass_logits_are_refused():
    loss = create_loss("upu", params={"prior": 0.3}, class_counts=[5, 3])
    with pytest.raises(ValueError, match="binary"):
        loss(torch.zeros(4, 3), torch.zeros(4, 3))
