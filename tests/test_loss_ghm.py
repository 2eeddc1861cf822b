"""GHM-C loss (`loss: ghm`): naive per-sample references, the harmonizing effect, state, bad settings, training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import winnow
from winnow.losses import IGNORE_INDEX, create_loss
from winnow.losses.class_weights import class_weights
from winnow.runs.layout import RunPaths
from winnow.training.checkpoint import load_checkpoint

from conftest import fast_config
from loss_factory import B, COUNTS, K, binary_targets, class_targets, logits_for, multi_hot, sigmoid, softmax


def naive_weights(norms: list[float], given: list[bool], density: list[float], bins: int,
                  momentum: float) -> tuple[list[float], list[float]]:
    """The paper's weights N / (R_b * n) as the authors' code computes them, bin by bin."""
    edges = [i / bins for i in range(bins + 1)]
    edges[-1] += 1e-6
    index = [next(b for b in range(bins) if edges[b] <= g < edges[b + 1]) for g in norms]
    counts = [sum(1 for b, ok in zip(index, given) if ok and b == bin_) for bin_ in range(bins)]
    density = list(density)
    for b, count in enumerate(counts):
        if count:
            density[b] = count if momentum == 0 or density[b] == 0 else momentum * density[b] + (1 - momentum) * count
    filled, total = sum(1 for c in counts if c), sum(counts)
    return [total / (density[b] * filled) if ok else 0.0 for b, ok in zip(index, given)], density


def naive_softmax_ghm(logits, targets, density, *, bins, momentum, weights):
    """Hard targets, no smoothing: g = 1 - p_y, loss sum(c_y * w * -log p_y) / sum(c_y)."""
    rows, ys = logits.tolist(), targets.tolist()
    probs = [softmax(row) for row in rows]
    given = [y != IGNORE_INDEX for y in ys]
    norms = [1 - p[y] if ok else 0.0 for p, y, ok in zip(probs, ys, given)]
    ghm, density = naive_weights(norms, given, density, bins, momentum)
    terms = [(weights[y] * w * -math.log(p[y]), weights[y]) for p, y, w, ok in zip(probs, ys, ghm, given) if ok]
    return sum(t for t, _ in terms) / sum(c for _, c in terms), density


@pytest.mark.parametrize("momentum", [0.0, 0.75])
def test_softmax_matches_naive_loop_over_two_calls(momentum):
    bins = 5
    loss = create_loss("ghm", params={"bins": bins, "momentum": momentum}, class_counts=COUNTS,
                       class_weights="balanced")
    weights = class_weights("balanced", COUNTS).tolist()
    density = [0.0] * bins
    for seed in (0, 1):
        logits, targets = logits_for((B, K), seed=seed), class_targets()
        expected, density = naive_softmax_ghm(logits, targets, density, bins=bins, momentum=momentum, weights=weights)
        assert loss(logits, targets).item() == pytest.approx(expected, rel=1e-9)
    if momentum:
        assert loss.density.tolist() == pytest.approx(density, rel=1e-12)


def test_soft_and_smoothed_targets_use_half_the_l1_gradient_norm():
    bins, smoothing = 20, 0.1
    loss = create_loss("ghm", params={"bins": bins, "momentum": 0}, class_counts=COUNTS, label_smoothing=smoothing)
    logits = logits_for((B, K))
    soft = logits_for((B, K), seed=3).detach().softmax(1)  # e.g. mixup targets
    rows = logits.tolist()
    dists = [[t * (1 - smoothing) + smoothing / K for t in row] for row in soft.tolist()]
    probs = [softmax(row) for row in rows]
    norms = [0.5 * sum(abs(p - t) for p, t in zip(ps, ts)) for ps, ts in zip(probs, dists)]
    ghm, _ = naive_weights(norms, [True] * B, [0.0] * bins, bins, 0.0)
    terms = [w * sum(-t * math.log(p) for p, t in zip(ps, ts)) for ps, ts, w in zip(probs, dists, ghm)]
    assert loss(logits, soft).item() == pytest.approx(sum(terms) / B, rel=1e-9)
    one_hot = F.one_hot(class_targets(ignore=False), K).double()
    plain = create_loss("ghm", params={"momentum": 0}, class_counts=COUNTS)
    assert torch.allclose(plain(logits, one_hot), plain(logits, class_targets(ignore=False)))


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_sigmoid_multilabel_matches_naive_loop_over_two_calls(momentum):
    bins = 6
    loss = create_loss("ghm", params={"bins": bins, "momentum": momentum, "variant": "sigmoid"},
                       class_counts=COUNTS, class_weights=[1, 2, 3, 4])
    density = [0.0] * bins
    for seed in (0, 1):
        logits, targets = logits_for((B, K), seed=seed), multi_hot()
        cells = [(z, t, k) for row_z, row_t in zip(logits.tolist(), targets.tolist())
                 for k, (z, t) in enumerate(zip(row_z, row_t))]
        given = [not math.isnan(t) for _, t, _ in cells]
        norms = [abs(sigmoid(z) - t) if ok else 0.0 for (z, t, _), ok in zip(cells, given)]
        ghm, density = naive_weights(norms, given, density, bins, momentum)
        terms = [((k + 1) * w * -(t * math.log(sigmoid(z)) + (1 - t) * math.log(1 - sigmoid(z))), k + 1.0)
                 for (z, t, k), w, ok in zip(cells, ghm, given) if ok]
        expected = sum(t for t, _ in terms) / sum(c for _, c in terms)
        assert loss(logits, targets).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("shape", [(B,), (B, 1)])
def test_sigmoid_binary_head_ignores_masked_targets(shape):
    loss = create_loss("ghm", params={"variant": "sigmoid", "momentum": 0}, class_counts=[4, 3])
    logits, targets = logits_for(shape), binary_targets()
    kept = targets != IGNORE_INDEX
    assert torch.allclose(loss(logits, targets), loss(logits[kept], targets[kept]))


def test_weights_cut_the_share_of_the_largest_gradients():
    """20 easy samples, 3 medium and 8 "mislabelled" ones: GHM gives the hardest a smaller share than CE."""
    margins = [6.0] * 20 + [0.0] * 3 + [-6.0] * 8  # target logit minus the others
    logits = torch.zeros(len(margins), 2, dtype=torch.float64)
    logits[:, 0] = torch.tensor(margins)
    targets = torch.zeros(len(margins), dtype=torch.long)
    hard = slice(23, None)

    def gradient_share(loss_fn) -> tuple[float, torch.Tensor]:
        leaf = logits.clone().requires_grad_()
        loss_fn(leaf, targets).backward()
        norms = leaf.grad.norm(dim=1)
        return (norms[hard].sum() / norms.sum()).item(), norms

    ce_share, _ = gradient_share(create_loss("ce", class_counts=[5, 5]))
    ghm = create_loss("ghm", params={"momentum": 0}, class_counts=[5, 5])
    ghm_share, norms = gradient_share(ghm)
    assert ghm_share < ce_share - 0.1, (ghm_share, ce_share)
    assert torch.isfinite(norms).all() and norms[hard].max() < norms[20:23].min()  # below the medium ones


def test_extreme_logits_give_finite_gradients():
    loss = create_loss("ghm", class_counts=COUNTS)
    logits = (logits_for((B, K)).detach() * 40).requires_grad_()
    value = loss(logits, class_targets())
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_only_training_steps_move_the_bin_counts_and_they_are_saved():
    loss = create_loss("ghm", params={"momentum": 0.75}, class_counts=COUNTS)
    logits, targets = logits_for((B, K)), class_targets()
    loss(logits, targets)
    after_step = loss.density.clone()
    with torch.no_grad():  # a validation pass
        loss(logits_for((B, K), seed=5), targets)
    loss.eval()
    loss(logits_for((B, K), seed=6), targets)
    assert torch.equal(loss.density, after_step) and after_step.sum() > 0
    copy = create_loss("ghm", params={"momentum": 0.75}, class_counts=COUNTS)
    copy.load_state_dict(loss.state_dict())
    loss.train()
    following = logits_for((B, K), seed=7)
    assert torch.equal(copy(following, targets), loss(following, targets))


@pytest.mark.parametrize("params, match", [
    ({"bins": 0}, r"ghm bins must be a positive integer, got 0"),
    ({"bins": 2.5}, r"ghm bins must be a positive integer, got 2.5"),
    ({"momentum": 1.5}, r"ghm momentum must be a number in \[0, 1\), got 1.5; .*paper uses 0.75"),
    ({"momentum": -0.1}, r"ghm momentum must be a number in \[0, 1\)"),
    ({"variant": "tanh"}, r"ghm variant must be one of \['softmax', 'sigmoid'\]"),
    ({"bin": 10}, r"unknown key\(s\) \['bin'\].*valid keys: bins, momentum, variant"),
])
def test_bad_params_are_refused(params, match):
    with pytest.raises(ValueError, match=match):
        create_loss("ghm", params=params, class_counts=COUNTS)


@pytest.mark.parametrize("variant, logits, targets, match", [
    ("softmax", (B, 1), binary_targets(), r"variant softmax needs logits \[B, K\].*set loss_params: \{variant: sigmoid\}"),
    ("sigmoid", (B, K), class_targets(), r"variant sigmoid needs binary .*set loss_params: \{variant: softmax\}"),
])
def test_wrong_variant_for_the_head_names_the_fix(variant, logits, targets, match):
    loss = create_loss("ghm", params={"variant": variant}, class_counts=COUNTS)
    with pytest.raises(ValueError, match=match):
        loss(logits_for(logits), targets)


def test_training_with_ghm_and_mixup_saves_the_bin_counts(tmp_path, image_folder):
    run = winnow.train(fast_config(tmp_path, image_folder, epochs=1, loss="ghm", mixup=0.4, test_fraction=0.0))
    assert run.status == "finished" and math.isfinite(run.metrics[-1]["train_loss"])
    density = load_checkpoint(RunPaths(run.path).checkpoint("last"))["loss"]["density"]
    assert density.shape == (10,) and density.sum() > 0
