"""Loss inputs: class-weight schemes, masking of ignored targets, and refused settings."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from loss_factory import (B, COUNTS, K, binary_targets, class_targets, effective, logits_for, multi_hot,
                          naive_sigmoid_focal_term)
from winnow.losses import IGNORE_INDEX, create_loss
from winnow.losses.class_weights import class_weights


# --- class-weight schemes ---------------------------------------------------------------------


def test_balanced_equals_sklearn():
    labels = np.repeat(np.arange(K), COUNTS)
    expected = compute_class_weight("balanced", classes=np.arange(K), y=labels)
    assert np.allclose(class_weights("balanced", COUNTS).numpy(), expected)


def test_sqrt_is_inverse_sqrt_frequency_with_mean_1_over_samples():
    weights = class_weights("sqrt", COUNTS).double().numpy()
    counts = np.asarray(COUNTS, dtype=np.float64)
    assert np.allclose(weights * np.sqrt(counts), weights[0] * np.sqrt(counts[0]))
    assert (weights * counts).sum() / counts.sum() == pytest.approx(1.0, rel=1e-6)


def test_effective_matches_cui_formula_and_sums_to_k():
    weights = class_weights("effective", COUNTS, beta=0.99).tolist()
    assert weights == pytest.approx(effective(COUNTS, 0.99), rel=1e-6)
    assert sum(weights) == pytest.approx(K, rel=1e-6)


def test_explicit_and_none_schemes():
    assert class_weights("none", COUNTS) is None
    assert class_weights([1, 2, 3, 4.5], COUNTS).tolist() == [1, 2, 3, 4.5]


def test_class_weights_can_switch_on_at_an_epoch():
    delayed = create_loss("ce", class_counts=COUNTS, class_weights="balanced", class_weights_epoch=2)
    logits, targets = logits_for((B, K)), class_targets()
    weight = class_weights("balanced", COUNTS).double()
    plain = F.cross_entropy(logits, targets)
    weighted = F.cross_entropy(logits, targets, weight=weight)
    for epoch, expected in ((0, plain), (1, plain), (2, weighted), (7, weighted)):
        delayed.set_epoch(epoch)
        assert torch.allclose(delayed(logits, targets), expected), epoch


def test_weight_buffers_follow_module_to():
    loss = create_loss("ldam", params={"drw_epoch": 0}, class_counts=COUNTS).to(torch.float64)
    assert all(buffer.dtype == torch.float64 for buffer in loss.buffers())


# --- masking ----------------------------------------------------------------------------------

MASKED = {  # name -> (loss_params, logits shape, targets with ignored entries)
    "ce": (None, (B, K), class_targets),
    "focal": ({"alpha": [0.25, 0.5, 0.75, 1.0]}, (B, K), class_targets),
    "focal_sigmoid": ({"variant": "sigmoid"}, (B, K), class_targets),
    "ldam": ({"s": 3.0}, (B, K), class_targets),
    "bce": (None, (B,), binary_targets),
    "asymmetric": (None, (B,), binary_targets),
    "ghm": ({"momentum": 0}, (B, K), class_targets),
    "ghm_sigmoid": ({"variant": "sigmoid", "momentum": 0}, (B,), binary_targets),
}


@pytest.mark.parametrize("case", sorted(MASKED))
def test_ignored_samples_are_excluded(case):
    params, shape, make_targets = MASKED[case]
    loss = create_loss(case.split("_")[0], params=params, class_counts=COUNTS if len(shape) == 2 else [4, 3],
                       class_weights="balanced")
    logits, targets = logits_for(shape), make_targets()
    kept = targets != IGNORE_INDEX
    assert torch.allclose(loss(logits, targets), loss(logits[kept], targets[kept]))
    value = loss(logits, torch.full_like(targets, IGNORE_INDEX))
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", ["bce", "asymmetric"])
def test_nan_multilabel_targets_are_excluded(name):
    loss = create_loss(name, class_counts=COUNTS)
    logits, targets = logits_for((B, K)), multi_hot()
    value = loss(logits, targets)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    assert logits.grad[1, 2] == 0 and logits.grad[4, 0] == 0 and logits.grad[0, 0] != 0
    moved = logits.detach().clone()
    moved[1, 2], moved[4, 0] = 50.0, -50.0
    assert torch.allclose(loss(moved, targets), value)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "foccal"}, r"unknown loss 'foccal'; valid losses: ce, focal"),
    ({"name": "focal", "params": {"gama": 2}}, r"unknown key\(s\) \['gama'\].*valid keys: alpha, gamma, variant"),
    ({"name": "ce", "params": {"gamma": 2}}, r"unknown key\(s\) \['gamma'\]"),
    ({"name": "focal", "params": {"gamma": -1}}, r"gamma must be a number >= 0, got -1"),
    ({"name": "focal", "params": {"variant": "tanh"}}, r"variant must be one of \['softmax', 'sigmoid'\]"),
    ({"name": "focal", "params": {"alpha": [0.5, 0.5]}}, r"alpha must be a single number or a list of 4"),
    ({"name": "focal", "params": {"alpha": 2.0, "variant": "sigmoid"}}, r"alpha must be a number in \[0, 1\], got 2.0"),
    ({"name": "ce", "class_weights": [1, 2]}, r"2 weights but there are 4 classes"),
    ({"name": "ce", "class_weights": "inverse"}, r"must be one of \['none', 'balanced', 'sqrt', 'effective'\]"),
    ({"name": "ce", "effective_beta": 1.0}, r"effective_beta must be a number in \[0, 1\), got 1.0"),
    ({"name": "class_balanced", "params": {"beta": -0.1}}, r"class_balanced beta must be a number in \[0, 1\)"),
    ({"name": "class_balanced", "params": {"base": "ldam"}}, r"base must be one of \['ce', 'focal'\]"),
    ({"name": "class_balanced", "params": {"gamma": 2}}, r"unknown key\(s\) \['gamma'\].*base ce"),
    ({"name": "class_balanced", "class_weights": "balanced"}, r"class_weights must be 'none'"),
    ({"name": "ldam", "params": {"drw_epoch": -1}}, r"drw_epoch must be None or an integer >= 0"),
    ({"name": "ldam", "params": {"max_margin": 0}}, r"max_margin must be a number > 0, got 0"),
    ({"name": "joint", "params": {}}, r"needs key\(s\) \['terms'\]"),
    ({"name": "joint", "params": {"terms": []}}, r"terms must be a non-empty list"),
    ({"name": "joint", "params": {"terms": [{"loss": "ce", "weight": -1}]}}, r"terms\[0\].weight must be a number >= 0"),
    ({"name": "joint", "params": {"terms": [{"loss": "nope"}]}}, r"unknown loss 'nope'"),
    ({"name": "joint", "params": {"terms": [{"loss": "ce", "wieght": 1}]}}, r"unknown key\(s\) \['wieght'\]"),
    ({"name": "ce", "label_smoothing": 1.0}, r"label_smoothing must be a number in \[0, 1\), got 1.0"),
    ({"name": "ce", "class_weights_epoch": 1.5}, r"class_weights_epoch must be None or an integer"),
    ({"name": "bce", "params": {"pos_weight": 0}}, r"pos_weight must be > 0"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_loss(**{"class_counts": COUNTS, **kwargs})


@pytest.mark.parametrize("scheme", ["balanced", "sqrt", "effective"])
def test_class_without_samples_is_refused_by_computed_weights(scheme):
    with pytest.raises(ValueError, match=r"class index\(es\) \[1\] have no training samples"):
        create_loss("ce", class_counts=[5, 0, 3], class_weights=scheme)


def test_class_without_samples_is_refused_by_ldam_margins():
    with pytest.raises(ValueError, match=r"ldam margins: class index\(es\) \[2\] have no training samples"):
        create_loss("ldam", class_counts=[5, 3, 0])


@pytest.mark.parametrize("counts, error, match", [
    ([], TypeError, r"class_counts must be a non-empty list"),
    ([3, -1], ValueError, r"class_counts must hold integers >= 0"),
    ([0, 0], ValueError, r"class_counts are all 0"),
])
def test_bad_class_counts_are_refused(counts, error, match):
    with pytest.raises(error, match=match):
        create_loss("ce", class_counts=counts)


def test_params_must_be_a_mapping():
    with pytest.raises(TypeError, match=r"loss_params of loss 'focal' must be a mapping"):
        create_loss("focal", params=[2.0], class_counts=COUNTS)


@pytest.mark.parametrize("name, logits, targets, match", [
    ("ce", (B, K), torch.tensor([0, 1, 2, 3, 4, 0, 1]), r"class indices in \[0, 4\).*got \[4\]"),
    ("ce", (B, K), torch.zeros(B + 1, dtype=torch.long), r"7 rows of logits but 8 targets"),
    ("ce", (B,), torch.zeros(B, dtype=torch.long), r"needs logits \[B, K\] with K >= 2"),
    ("focal", (B, K), torch.zeros(B, K, dtype=torch.long), r"targets must be class indices \[B\]"),
    ("bce", (B, K), torch.zeros(B, dtype=torch.long), r"use a multi-class loss"),
    ("bce", (B,), torch.tensor([0, 1, 2, 0, 1, 0, 1]), r"label targets must be in \[0, 1\]"),
    ("ldam", (B, 3), torch.zeros(B, dtype=torch.long), r"margins \(from class_counts\) has 4 values"),
])
def test_bad_batches_are_refused(name, logits, targets, match):
    loss = create_loss(name, class_counts=COUNTS)
    with pytest.raises(ValueError, match=match):
        loss(logits_for(logits), targets)


def test_bad_epoch_is_refused():
    with pytest.raises(ValueError, match=r"epoch must be an integer >= 0"):
        create_loss("ce", class_counts=COUNTS).set_epoch(-1)


@pytest.mark.parametrize("name, params", [("ce", None), ("focal", {"gamma": 2.0}), ("ldam", {"s": 4.0}),
                                          ("focal", {"variant": "sigmoid"})])
def test_one_hot_probability_targets_match_class_indices(name, params):
    loss = create_loss(name, params=params, class_counts=COUNTS)
    logits, targets = logits_for((B, K)), class_targets(ignore=False)
    one_hot = F.one_hot(targets, K).double()
    if params and params.get("variant") == "sigmoid":  # float [B, K] targets are multi-label: mean over labels
        assert torch.allclose(loss(logits, one_hot) * K, loss(logits, targets))
    else:
        assert torch.allclose(loss(logits, one_hot), loss(logits, targets))


def test_sigmoid_focal_binary_head():
    loss = create_loss("focal", params={"variant": "sigmoid", "gamma": 2.0, "alpha": 0.25}, class_counts=[5, 2])
    logits, targets = logits_for((B, 1)), binary_targets()
    pairs = [(z, float(t)) for z, t in zip(logits.reshape(-1).tolist(), targets.tolist()) if t != IGNORE_INDEX]
    expected = sum(naive_sigmoid_focal_term(z, t, 2.0, 0.25) for z, t in pairs) / len(pairs)
    assert loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)
