"""Losses: registry contract and paper-formula references (inputs and settings: test_loss_inputs.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from loss_factory import (B, COUNTS, K, binary_targets, class_targets, effective, logits_for, multi_hot,
                          naive_sigmoid_focal_term, sigmoid, softmax, weighted_mean)
from winnow.losses import EMBEDDING_LOSSES, IGNORE_INDEX, LOSSES, WinnowLoss, create_loss
from winnow.losses.class_weights import class_weights
from winnow.losses.ldam import ldam_margins
from winnow.losses.reduction import class_weighted_mean


# --- contract: every registry entry -------------------------------------------------------------

CASES = {  # name -> (loss_params, create_loss kwargs, logits shape, targets)
    "ce": (None, {"class_weights": "balanced", "label_smoothing": 0.1}, (B, K), class_targets),
    "focal": ({"gamma": 2.0, "alpha": [0.25, 0.5, 0.75, 1.0]}, {"class_weights": "sqrt"}, (B, K), class_targets),
    "class_balanced": ({"base": "focal", "gamma": 1.0, "beta": 0.99}, {}, (B, K), class_targets),
    "ldam": ({"s": 5.0, "drw_epoch": 1}, {}, (B, K), class_targets),
    "bce": ({"pos_weight": 2.0}, {"class_weights": "effective"}, (B, K), multi_hot),
    "asymmetric": (None, {"class_weights_epoch": 1, "class_weights": "balanced"}, (B, K), multi_hot),
    "ghm": ({"bins": 5, "momentum": 0.5}, {"class_weights": "balanced", "label_smoothing": 0.1}, (B, K), class_targets),
    "upu": ({"prior": 0.4}, {}, (B,), binary_targets),
    "nnpu": ({"prior": 0.4, "beta": 0.0}, {}, (B,), binary_targets),
    "joint": ({"terms": [{"loss": "ce"}, {"loss": "ldam", "weight": 0.5, "params": {"s": 2.0}}]}, {},
              (B, K), class_targets),
}


def test_every_registry_entry_has_a_contract_case():
    assert set(CASES) == set(LOSSES) - set(EMBEDDING_LOSSES)  # those on embeddings: test_metric_losses.py


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_contract(name, dtype):
    params, kwargs, shape, make_targets = CASES[name]
    loss = create_loss(name, params=params, class_counts=COUNTS, **kwargs)
    assert isinstance(loss, WinnowLoss)
    for epoch in (0, 1, 5):
        loss.set_epoch(epoch)
        logits = logits_for(shape, dtype)
        targets = make_targets()
        value = loss(logits, targets.to(dtype) if targets.is_floating_point() else targets)
        value.backward()
        assert value.shape == () and value.dtype == dtype and torch.isfinite(value)
        assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_old_simple_call_still_works():
    loss = create_loss("ce", class_counts=[3, 4])
    logits, targets = logits_for((B, 2)), torch.tensor([0, 1, 1, 0, 1, 0, 1])
    assert torch.allclose(loss(logits, targets), F.cross_entropy(logits, targets))


def test_half_precision_logits_are_computed_in_float32():
    loss = create_loss("focal", class_counts=COUNTS)
    value = loss(logits_for((B, K), torch.bfloat16), class_targets())
    assert value.dtype == torch.float32 and torch.isfinite(value)


# --- references: naive per-sample loops written from the papers ---------------------------------


def naive_softmax_focal(logits, targets, gamma, alpha, weights):
    losses, sample_weights = [], []
    for row, y in zip(logits.tolist(), targets.tolist()):
        if y == IGNORE_INDEX:
            continue
        p = softmax(row)[y]
        losses.append(-alpha[y] * (1 - p) ** gamma * math.log(p))
        sample_weights.append(weights[y])
    return weighted_mean(losses, sample_weights)


def test_focal_softmax_matches_paper_formula():
    alpha, gamma = [0.25, 0.5, 0.75, 1.0], 2.0
    loss = create_loss("focal", params={"gamma": gamma, "alpha": alpha}, class_counts=COUNTS,
                       class_weights="balanced")
    logits, targets = logits_for((B, K)), class_targets()
    weights = class_weights("balanced", COUNTS).tolist()
    expected = naive_softmax_focal(logits, targets, gamma, alpha, weights)
    assert loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def test_focal_with_gamma_0_is_cross_entropy():
    focal = create_loss("focal", params={"gamma": 0}, class_counts=COUNTS, class_weights="balanced",
                        label_smoothing=0.1)
    logits, targets = logits_for((B, K)), class_targets()
    weights = class_weights("balanced", COUNTS).double()
    expected = F.cross_entropy(logits, targets, weight=weights, label_smoothing=0.1)
    assert torch.allclose(focal(logits, targets), expected)


def test_focal_sigmoid_class_indices_match_paper_formula():
    loss = create_loss("focal", params={"variant": "sigmoid", "gamma": 2.0, "alpha": 0.25}, class_counts=COUNTS,
                       class_weights="sqrt")
    logits, targets = logits_for((B, K)), class_targets()
    weights = class_weights("sqrt", COUNTS).tolist()
    losses, sample_weights = [], []
    for row, y in zip(logits.tolist(), targets.tolist()):
        if y != IGNORE_INDEX:
            losses.append(sum(naive_sigmoid_focal_term(z, float(k == y), 2.0, 0.25) for k, z in enumerate(row)))
            sample_weights.append(weights[y])
    assert loss(logits, targets).item() == pytest.approx(weighted_mean(losses, sample_weights), rel=1e-6)


def test_focal_sigmoid_multilabel_matches_paper_formula():
    loss = create_loss("focal", params={"variant": "sigmoid", "gamma": 1.5}, class_counts=COUNTS)
    logits, targets = logits_for((B, K)), multi_hot()
    terms = [naive_sigmoid_focal_term(z, t, 1.5, None)
             for row_z, row_t in zip(logits.tolist(), targets.tolist()) for z, t in zip(row_z, row_t)
             if not math.isnan(t)]
    assert loss(logits, targets).item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)


@pytest.mark.parametrize("base", ["ce", "focal"])
def test_class_balanced_matches_paper_formula(base):
    beta, gamma = 0.99, (1.0 if base == "focal" else 0.0)
    params = {"beta": beta, "base": base, **({"gamma": gamma} if base == "focal" else {})}
    loss = create_loss("class_balanced", params=params, class_counts=COUNTS)
    logits, targets = logits_for((B, K)), class_targets()
    expected = naive_softmax_focal(logits, targets, gamma, [1.0] * K, effective(COUNTS, beta))
    assert loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)


def naive_ldam(logits, targets, s, margins, weights):
    losses, sample_weights = [], []
    for row, y in zip(logits.tolist(), targets.tolist()):
        if y == IGNORE_INDEX:
            continue
        shifted = [s * (z - (margins[k] if k == y else 0.0)) for k, z in enumerate(row)]
        losses.append(-math.log(softmax(shifted)[y]))
        sample_weights.append(weights[y])
    return weighted_mean(losses, sample_weights)


def test_ldam_margins_follow_quarter_power_with_max_margin():
    margins = ldam_margins(COUNTS, 0.5).tolist()
    expected = [0.5 * (min(COUNTS) / n) ** 0.25 for n in COUNTS]
    assert margins == pytest.approx(expected, rel=1e-6)


def test_ldam_before_and_after_drw_epoch():
    s, drw_epoch = 10.0, 3
    loss = create_loss("ldam", params={"s": s, "drw_epoch": drw_epoch}, class_counts=COUNTS)
    logits, targets = logits_for((B, K)), class_targets()
    margins = ldam_margins(COUNTS, 0.5).tolist()
    for epoch, weights in ((0, [1.0] * K), (drw_epoch - 1, [1.0] * K), (drw_epoch, effective(COUNTS, 0.9999)),
                           (drw_epoch + 4, effective(COUNTS, 0.9999))):
        loss.set_epoch(epoch)
        expected = naive_ldam(logits, targets, s, margins, weights)
        assert loss(logits, targets).item() == pytest.approx(expected, rel=1e-6), epoch


def naive_bce(z: float, t: float, pos_weight: float) -> float:
    return -(pos_weight * t * math.log(sigmoid(z)) + (1 - t) * math.log(1 - sigmoid(z)))


@pytest.mark.parametrize("shape", [(B,), (B, 1)])
def test_bce_binary_matches_formula(shape):
    loss = create_loss("bce", params={"pos_weight": 3.0}, class_counts=[30, 10], class_weights="balanced")
    logits, targets = logits_for(shape), binary_targets()
    weights = class_weights("balanced", [30, 10]).tolist()
    pairs = [(z, t) for z, t in zip(logits.reshape(-1).tolist(), targets.tolist()) if t != IGNORE_INDEX]
    expected = weighted_mean([naive_bce(z, t, 3.0) for z, t in pairs], [weights[t] for _, t in pairs])
    assert loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    float_targets = torch.where(targets == IGNORE_INDEX, float("nan"), targets.double())
    assert loss(logits, float_targets).item() == pytest.approx(expected, rel=1e-6)


def test_bce_multilabel_matches_formula():
    pos_weight = [1.0, 2.0, 0.5, 4.0]
    loss = create_loss("bce", params={"pos_weight": pos_weight}, class_counts=COUNTS, class_weights=[1, 2, 3, 4])
    logits, targets = logits_for((B, K)), multi_hot()
    losses, weights = [], []
    for row_z, row_t in zip(logits.tolist(), targets.tolist()):
        for k, (z, t) in enumerate(zip(row_z, row_t)):
            if not math.isnan(t):
                losses.append(naive_bce(z, t, pos_weight[k]))
                weights.append(k + 1.0)
    assert loss(logits, targets).item() == pytest.approx(weighted_mean(losses, weights), rel=1e-6)


def naive_asymmetric(z: float, y: float, gamma_neg: float, gamma_pos: float, clip: float) -> float:
    p = sigmoid(z)
    p_m = max(p - clip, 0.0)
    return -(y * (1 - p) ** gamma_pos * math.log(p) + (1 - y) * p_m**gamma_neg * math.log(1 - p_m))


@pytest.mark.parametrize("clip", [0.05, 0.0])
def test_asymmetric_matches_paper_formula(clip):
    params = {"gamma_neg": 4.0, "gamma_pos": 1.0, "clip": clip}
    loss = create_loss("asymmetric", params=params, class_counts=COUNTS)
    logits, targets = logits_for((B, K)), multi_hot()
    terms = [naive_asymmetric(z, t, 4.0, 1.0, clip)
             for row_z, row_t in zip(logits.tolist(), targets.tolist()) for z, t in zip(row_z, row_t)
             if not math.isnan(t)]
    assert loss(logits, targets).item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)


def test_joint_is_the_weighted_sum_of_its_terms():
    terms = [{"loss": "ce", "weight": 1.0}, {"loss": "focal", "weight": 0.5, "params": {"gamma": 1.0},
                                              "label_smoothing": 0.2}]
    joint = create_loss("joint", params={"terms": terms}, class_counts=COUNTS, class_weights="balanced")
    ce = create_loss("ce", class_counts=COUNTS, class_weights="balanced")
    focal = create_loss("focal", params={"gamma": 1.0}, class_counts=COUNTS, class_weights="balanced",
                        label_smoothing=0.2)
    logits, targets = logits_for((B, K)), class_targets()
    assert torch.allclose(joint(logits, targets), ce(logits, targets) + 0.5 * focal(logits, targets))


@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("soft", [False, True])
def test_class_weighted_mean_of_minus_log_softmax_is_torch_cross_entropy(smoothing, soft):
    logits = logits_for((B, K))
    targets = logits_for((B, K), seed=1).detach().softmax(1) if soft else class_targets()
    weight = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    ours = class_weighted_mean(-F.log_softmax(logits, 1), targets, weight=weight, label_smoothing=smoothing)
    expected = F.cross_entropy(logits, targets, weight=weight, label_smoothing=smoothing)
    assert torch.allclose(ours, expected)
