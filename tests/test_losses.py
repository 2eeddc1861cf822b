"""Losses: registry contract, paper-formula references, class-weight schemes, masking, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from winnow.losses import IGNORE_INDEX, LOSSES, WinnowLoss, create_loss
from winnow.losses.class_weights import class_weights
from winnow.losses.ldam import ldam_margins
from winnow.losses.reduction import class_weighted_mean

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


# --- contract: every registry entry -------------------------------------------------------------

CASES = {  # name -> (loss_params, create_loss kwargs, logits shape, targets)
    "ce": (None, {"class_weights": "balanced", "label_smoothing": 0.1}, (B, K), class_targets),
    "focal": ({"gamma": 2.0, "alpha": [0.25, 0.5, 0.75, 1.0]}, {"class_weights": "sqrt"}, (B, K), class_targets),
    "class_balanced": ({"base": "focal", "gamma": 1.0, "beta": 0.99}, {}, (B, K), class_targets),
    "ldam": ({"s": 5.0, "drw_epoch": 1}, {}, (B, K), class_targets),
    "bce": ({"pos_weight": 2.0}, {"class_weights": "effective"}, (B, K), multi_hot),
    "asymmetric": (None, {"class_weights_epoch": 1, "class_weights": "balanced"}, (B, K), multi_hot),
    "joint": ({"terms": [{"loss": "ce"}, {"loss": "ldam", "weight": 0.5, "params": {"s": 2.0}}]}, {},
              (B, K), class_targets),
}


def test_every_registry_entry_has_a_contract_case():
    assert set(CASES) == set(LOSSES)


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


def naive_sigmoid_focal_term(z: float, t: float, gamma: float, alpha: float | None) -> float:
    p = sigmoid(z)
    p_t = p if t == 1 else 1 - p
    alpha_t = 1.0 if alpha is None else (alpha if t == 1 else 1 - alpha)
    return -alpha_t * (1 - p_t) ** gamma * math.log(p_t)


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
    ({"name": "focal", "params": {"gamma": -1}}, r"gamma must be >= 0"),
    ({"name": "focal", "params": {"variant": "tanh"}}, r"variant must be one of \['softmax', 'sigmoid'\]"),
    ({"name": "focal", "params": {"alpha": [0.5, 0.5]}}, r"alpha must be a single number or a list of 4"),
    ({"name": "focal", "params": {"alpha": 2.0, "variant": "sigmoid"}}, r"alpha values must be in \[0.0, 1.0\]"),
    ({"name": "ce", "class_weights": [1, 2]}, r"2 weights but there are 4 classes"),
    ({"name": "ce", "class_weights": "inverse"}, r"must be one of \['none', 'balanced', 'sqrt', 'effective'\]"),
    ({"name": "ce", "effective_beta": 1.0}, r"effective_beta must be in \[0, 1\)"),
    ({"name": "class_balanced", "params": {"beta": -0.1}}, r"class_balanced beta must be in \[0, 1\)"),
    ({"name": "class_balanced", "params": {"base": "ldam"}}, r"base must be one of \['ce', 'focal'\]"),
    ({"name": "class_balanced", "params": {"gamma": 2}}, r"unknown key\(s\) \['gamma'\].*base ce"),
    ({"name": "class_balanced", "class_weights": "balanced"}, r"class_weights must be 'none'"),
    ({"name": "ldam", "params": {"drw_epoch": -1}}, r"drw_epoch must be None or an integer >= 0"),
    ({"name": "ldam", "params": {"max_margin": 0}}, r"max_margin must be > 0"),
    ({"name": "joint", "params": {}}, r"needs key\(s\) \['terms'\]"),
    ({"name": "joint", "params": {"terms": []}}, r"terms must be a non-empty list"),
    ({"name": "joint", "params": {"terms": [{"loss": "ce", "weight": -1}]}}, r"terms\[0\].weight must be >= 0"),
    ({"name": "joint", "params": {"terms": [{"loss": "nope"}]}}, r"unknown loss 'nope'"),
    ({"name": "joint", "params": {"terms": [{"loss": "ce", "wieght": 1}]}}, r"unknown key\(s\) \['wieght'\]"),
    ({"name": "ce", "label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
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
