"""Losses on embeddings (metric learning, center loss): registry contract, joint, center-loss
references, sampler and mixing rules, and tiny training runs that save, reload and predict."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.miners import BatchHardMiner

import winnow
from winnow.data.samplers import build_sampler
from winnow.losses import (EMBEDDING_LOSSES, IGNORE_INDEX, LOSSES, CenterLoss, EmbeddingLoss, build_loss,
                           create_loss)
from winnow.losses.context import make_context
from winnow.runs.layout import RunPaths
from winnow.tasks.heads import make_head
from winnow.tasks.spec import TaskSpec
from winnow.training.checkpoint import load_checkpoint
from winnow.training.distributed import DistInfo
from winnow.training import trainer
from winnow.training.mixing import BatchMixer

from conftest import fast_config

COUNTS = [6, 5, 4, 3]
K, D = len(COUNTS), 8
LABELS = [0, 0, 1, 1, 2, 2, 3, 3, 0, 1, 2, IGNORE_INDEX]  # pairs of every class, one ignored row

METRIC_CASES = {  # name -> loss_params (each loss's non-default settings, to check they are taken)
    "arcface": {"margin": 20.0, "scale": 16.0},
    "subcenter_arcface": {"sub_centers": 2, "scale": 16.0},
    "cosface": {"margin": 0.2, "scale": 16.0},
    "triplet": {"margin": 0.2, "miner": "semihard"},
    "multi_similarity": {"miner": "multi_similarity"},
    "supcon": {"temperature": 0.2},
    "contrastive": {"neg_margin": 0.8, "miner": "batch_hard"},
    "center": {"alpha": 0.3},
}


def embedding_batch(seed: int = 0, *, labels: list[int] = LABELS) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(len(labels), D, generator=generator).requires_grad_(), torch.tensor(labels)


def built(name: str, params: dict | None = None):
    return build_loss(name, params, make_context(class_counts=COUNTS, embedding_size=D))


# --- contract: every loss on embeddings ----------------------------------------------------------


def test_every_embedding_loss_has_a_contract_case():
    assert set(METRIC_CASES) == set(EMBEDDING_LOSSES) <= set(LOSSES)
    for name in LOSSES:
        params = METRIC_CASES.get(name) or ({"terms": [{"loss": "ce"}]} if name == "joint" else None)
        params = {"prior": 0.4} if name in ("upu", "nnpu") else params
        assert built(name, params).needs_embeddings == (name in EMBEDDING_LOSSES), name


@pytest.mark.parametrize("name", sorted(METRIC_CASES))
def test_contract(name):
    loss = built(name, METRIC_CASES[name])
    assert isinstance(loss, EmbeddingLoss) and loss.needs_embeddings and not loss.trains_classifier
    for epoch in (0, 1):
        loss.set_epoch(epoch)
        embeddings, labels = embedding_batch(epoch)
        value = loss(None, labels, embeddings=embeddings)
        value.backward()
        assert value.shape == () and value.dtype == torch.float32 and torch.isfinite(value)
        assert torch.isfinite(embeddings.grad).all() and embeddings.grad.abs().sum() > 0
        assert embeddings.grad[-1].abs().sum() == 0, "the ignored row takes no part"


@pytest.mark.parametrize("name", sorted(METRIC_CASES))
def test_half_precision_embeddings_are_computed_in_float32(name):
    loss = built(name, METRIC_CASES[name]).eval()  # eval: center loss keeps its centres between the calls
    embeddings, labels = embedding_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(None, labels, embeddings=embeddings.bfloat16())
    assert value.dtype == torch.float32 and torch.isfinite(value)
    torch.testing.assert_close(value, loss(None, labels, embeddings=embeddings.bfloat16().float()))


@pytest.mark.parametrize("name", sorted(METRIC_CASES))
def test_in_joint_with_ce_is_the_weighted_sum(name):
    joint = create_loss("joint", params={"terms": [{"loss": "ce"}, {"loss": name, "weight": 0.5,
                                                                     "params": METRIC_CASES[name]}]},
                        class_counts=COUNTS, embedding_size=D).eval()
    assert joint.needs_embeddings and joint.trains_classifier
    embeddings, labels = embedding_batch()
    logits = torch.randn(len(labels), K, generator=torch.Generator().manual_seed(1)).requires_grad_()
    value = joint(logits, labels, embeddings=embeddings)
    ce, term = joint.terms
    expected = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX) + 0.5 * term(None, labels,
                                                                                        embeddings=embeddings)
    torch.testing.assert_close(value, expected)
    value.backward()
    assert logits.grad.abs().sum() > 0 and embeddings.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(METRIC_CASES))
def test_alone_it_is_refused_with_the_joint_to_write(name):
    with pytest.raises(ValueError, match=rf"loss '{name}' trains only the embedding.*loss: joint.*"
                                         rf"{{loss: ce}}, {{loss: {name}, weight: 0.1}}"):
        create_loss(name, class_counts=COUNTS, embedding_size=D)


def test_joint_without_a_classification_term_is_refused():
    with pytest.raises(ValueError, match=r"loss 'joint' trains only the embedding.*{loss: triplet, weight"):
        create_loss("joint", params={"terms": [{"loss": "triplet"}, {"loss": "ce", "weight": 0.0}]},
                    class_counts=COUNTS, embedding_size=D)


@pytest.mark.parametrize("name", sorted(METRIC_CASES))
def test_soft_targets_are_refused_naming_mixup(name):
    embeddings, _ = embedding_batch()
    soft = torch.full((len(embeddings), K), 1.0 / K)
    with pytest.raises(ValueError, match=rf"loss '{name}' needs class indices \[B\].*mixup, cutmix.*mixup: 0"):
        built(name, METRIC_CASES[name])(None, soft, embeddings=embeddings)


@pytest.mark.parametrize("loss_name", ["joint", "triplet", "center"])
def test_mixup_is_refused_for_a_run_whose_loss_needs_hard_labels(loss_name):
    task = TaskSpec("", "label", make_head("multiclass", ["a", "b"]), loss_name)
    with pytest.raises(ValueError, match=rf"mixup/cutmix need a loss that accepts soft targets.*'{loss_name}'"):
        BatchMixer([task], mixup=0.4, cutmix=0.0, prob=1.0)


def test_calling_without_embeddings_says_how():
    with pytest.raises(TypeError, match=r"loss 'triplet' works on embeddings: call it as "
                                        r"loss\(logits, targets, embeddings=E\)"):
        built("triplet")(torch.zeros(4, K), torch.tensor([0, 0, 1, 1]))


@pytest.mark.parametrize("name, params, match", [
    ("triplet", {"miner": "hardest"}, r"miner of loss 'triplet' must be one of \['none', 'batch_hard', "
                                      r"'semihard', 'multi_similarity'\], got 'hardest'"),
    ("supcon", {"miner": "all"}, r"miner of loss 'supcon' must be one of \['none', 'batch_hard'"),
    ("arcface", {"margin": 0.5 * 180}, r"arcface margin must be .*, got 90.0; it is in degrees"),
    ("cosface", {"scale": -1}, r"cosface scale must be a number > 0, got -1"),
    ("subcenter_arcface", {"sub_centers": 0}, r"sub_centers must be a positive integer, got 0"),
    ("center", {"alpha": 0}, r"center alpha must be .*, got 0; it is the centres' learning rate"),
    ("triplet", {"gamma": 2}, r"unknown key\(s\) \['gamma'\] in loss_params of loss 'triplet'; "
                              r"valid keys: margin, miner"),
])
def test_bad_settings_are_refused(name, params, match):
    with pytest.raises(ValueError, match=match):
        built(name, params)


@pytest.mark.parametrize("name", ["arcface", "subcenter_arcface", "cosface", "center"])
def test_losses_with_class_weights_need_the_embedding_size(name):
    with pytest.raises(ValueError, match=rf"loss '{name}' learns one weight vector per class.*embedding_size=D"):
        build_loss(name, None, make_context(class_counts=COUNTS))


@pytest.mark.parametrize("name", ["arcface", "center"])
def test_embeddings_of_another_size_are_refused(name):
    embeddings = torch.zeros(4, D + 1)
    with pytest.raises(ValueError, match=rf"loss '{name}': embeddings have {D + 1} dimensions"):
        built(name)(None, torch.tensor([0, 0, 1, 1]), embeddings=embeddings)


def test_proxy_weights_are_parameters_and_saved_state():
    loss = built("arcface")
    assert [name for name, _ in loss.named_parameters()] == ["loss.W"] and list(loss.state_dict()) == ["loss.W"]
    assert list(loss.state_dict()["loss.W"].shape) == [D, K]
    assert not built("triplet").state_dict(), "stateless losses add nothing to checkpoints"


# --- the m_per_class sampler gives pair losses their positives ------------------------------------


def test_m_per_class_gives_every_anchor_of_every_batch_a_positive():
    """Each class in an m_per_class batch has m >= 2 images, so batch-hard mining finds a triplet for
    every anchor; random batches of imbalanced data leave some anchors without a positive."""
    targets = [0] * 30 + [1] * 10 + [2] * 6 + [3] * 4 + [4] * 2 + [5] * 1
    batch, generator = 12, torch.Generator().manual_seed(0)
    embeddings = torch.randn(len(targets), D, generator=generator)

    def anchors_with_triplets(sampler_name: str, params: dict | None = None) -> list[int]:
        sampler = build_sampler(sampler_name, targets, 6, batch_size=batch, seed=0, params=params)
        found = []
        for epoch in range(5):
            sampler.set_epoch(epoch)
            ids = [index for index, _ in sampler]
            for start in range(0, len(ids) - batch + 1, batch):
                rows = torch.tensor(ids[start : start + batch])
                labels = torch.tensor(targets)[rows]
                assert sampler_name != "m_per_class" or min(Counter(labels.tolist()).values()) >= 2
                found.append(len(BatchHardMiner()(embeddings[rows], labels)[0]))
        return found

    assert set(anchors_with_triplets("m_per_class", {"m": 2})) == {batch}
    assert min(anchors_with_triplets("random")) < batch


# --- center loss: references against a naive per-sample loop -------------------------------------


def naive_center_loss(embeddings: list[list[float]], labels: list[int], centers: list[list[float]]) -> float:
    total = 0.0
    for x, y in zip(embeddings, labels):
        total += 0.5 * sum((a - c) ** 2 for a, c in zip(x, centers[y]))
    return total / len(labels)


def naive_center_update(embeddings: list[list[float]], labels: list[int], centers: list[list[float]],
                        alpha: float) -> list[list[float]]:
    """Eq. 4 of Wen et al. 2016, class by class and sample by sample."""
    updated = []
    for j, center in enumerate(centers):
        members = [x for x, y in zip(embeddings, labels) if y == j]
        delta = [sum(c - x[d] for x in members) / (1 + len(members)) for d, c in enumerate(center)]
        updated.append([c - alpha * g for c, g in zip(center, delta)])
    return updated


def test_center_loss_value_gradient_and_update_match_the_paper():
    loss = CenterLoss(K, D, alpha=0.3)
    generator = torch.Generator().manual_seed(3)
    loss.centers.copy_(torch.randn(K, D, generator=generator, dtype=torch.float64).float())
    embeddings, labels = torch.randn(9, D, generator=generator).requires_grad_(), torch.tensor([0, 1, 1, 1, 0, 3, 3,
                                                                                                0, 1])
    before = loss.centers.tolist()
    value = loss(None, labels, embeddings=embeddings)
    value.backward()
    x = embeddings.detach().tolist()
    assert value.item() == pytest.approx(naive_center_loss(x, labels.tolist(), before), rel=1e-5)
    for i, y in enumerate(labels.tolist()):  # d L / d x_i = (x_i - c_{y_i}) / B
        expected = [(a - c) / len(labels) for a, c in zip(x[i], before[y])]
        np.testing.assert_allclose(embeddings.grad[i].tolist(), expected, rtol=1e-5, atol=1e-7)
    after = naive_center_update(x, labels.tolist(), before, alpha=0.3)
    np.testing.assert_allclose(loss.centers.tolist(), after, rtol=1e-5, atol=1e-6)
    assert loss.centers[2].tolist() == before[2], "a class absent from the batch keeps its centre"


def test_center_loss_moves_centres_in_training_mode_only_and_saves_them():
    loss = CenterLoss(K, D)
    embeddings, labels = embedding_batch()
    loss.eval()(None, labels, embeddings=embeddings)
    assert loss.centers.abs().sum() == 0, "validation must not move the centres"
    loss.train()(None, labels, embeddings=embeddings)
    assert loss.centers.abs().sum() > 0 and not loss.centers.requires_grad
    restored = CenterLoss(K, D)
    restored.load_state_dict(loss.state_dict())
    torch.testing.assert_close(restored.centers, loss.centers)


def test_repeated_updates_converge_to_the_class_means():
    loss = CenterLoss(2, 2, alpha=0.5)
    embeddings, labels = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, -2.0]]), torch.tensor([0, 0, 1])
    for _ in range(60):
        loss(None, labels, embeddings=embeddings)
    torch.testing.assert_close(loss.centers, torch.tensor([[2.0, 0.0], [0.0, -2.0]]))


# --- tiny training runs: one per loss family ------------------------------------------------------

RUNS = {  # family -> joint term, extra config
    "parametric": ({"loss": "arcface", "weight": 0.1, "params": {"scale": 16.0}}, {"embedding_dim": 16}),
    "miner": ({"loss": "triplet", "weight": 0.5, "params": {"miner": "batch_hard"}}, {}),
    "center": ({"loss": "center", "weight": 0.01}, {"embedding_dim": 16}),
}


@pytest.mark.parametrize("family", sorted(RUNS))
def test_tiny_run_with_m_per_class_saves_reloads_and_predicts(tmp_path, image_folder, family):
    term, extra = RUNS[family]
    config = fast_config(tmp_path, image_folder, loss="joint", loss_params={"terms": [{"loss": "ce"}, term]},
                         sampler="m_per_class", sampler_params={"m": 3}, batch_size=6, test_fraction=0.0, **extra)
    run = winnow.train(config)
    assert run.status == "finished" and all(np.isfinite(row["train_loss"]) for row in run.metrics)
    assert all(np.isfinite(row["val_loss"]) for row in run.metrics)
    checkpoint = load_checkpoint(RunPaths(run.path).checkpoint("best"))
    state = checkpoint["loss"]
    if family == "parametric":  # arcface's class weights are optimised with the model and saved
        assert list(state) == ["terms.1.loss.W"] and list(state["terms.1.loss.W"].shape) == [16, 3]
        optimizer = checkpoint["optimizer"]
        (weights,) = optimizer["param_groups"][-1]["params"]  # their own group, without weight decay
        assert optimizer["param_groups"][-1]["weight_decay"] == 0.0
        assert list(optimizer["state"][weights]["exp_avg"].shape) == [16, 3]
    elif family == "center":
        assert list(state) == ["terms.1.centers"] and state["terms.1.centers"].abs().sum() > 0
    else:
        assert state == {}
    predictions = winnow.load(run.path).predict(image_folder / "disk")
    assert predictions.probabilities.shape == (12, 3)
    assert np.allclose(predictions.probabilities.sum(1), 1.0, atol=1e-4)


def test_multitask_runs_refuse_losses_on_embeddings(tmp_path, image_folder):
    tasks = [{"name": "shape", "column": "label"},
             {"name": "again", "column": "label", "loss": "joint",
              "loss_params": {"terms": [{"loss": "ce"}, {"loss": "triplet"}]}}]
    with pytest.raises(ValueError, match=r"task 'again': loss 'joint' works on embeddings.*single-task run"):
        winnow.train(fast_config(tmp_path, image_folder, head="multitask", tasks=tasks, epochs=1))


def test_compiled_models_refuse_losses_on_embeddings(tmp_path, image_folder):
    with pytest.raises(ValueError, match=r"loss 'joint' reads the model's embeddings.*set compile: false"):
        winnow.train(fast_config(tmp_path, image_folder, compile=True, loss="joint",
                                 loss_params={"terms": [{"loss": "ce"}, {"loss": "center"}]}))


def test_resume_restores_the_loss_state_exactly(tmp_path, image_folder, monkeypatch):
    """arcface's class weights (and their optimiser state) and center loss's centres come back on resume:
    without them the resumed epochs' losses would differ from an uninterrupted run's."""
    terms = [{"loss": "ce"}, {"loss": "arcface", "weight": 0.1, "params": {"scale": 16.0}},
             {"loss": "center", "weight": 0.1}]
    settings = dict(loss="joint", loss_params={"terms": terms}, sampler="m_per_class", sampler_params={"m": 3},
                    batch_size=6, epochs=2, test_fraction=0.0)
    straight = winnow.train(fast_config(tmp_path, image_folder, name="straight", **settings))
    original = trainer.train_one_epoch

    def killed_at_epoch_2(*args, **kwargs):
        if kwargs["epoch"] == 1:
            raise SystemExit("simulated kill")
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_one_epoch", killed_at_epoch_2)
    with pytest.raises(SystemExit):
        winnow.train(fast_config(tmp_path, image_folder, name="killed", **settings))
    monkeypatch.undo()
    resumed = winnow.train(None, resume=tmp_path / "runs" / "killed")
    for a, b in zip(straight.metrics, resumed.metrics, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)


def test_torchrun_refuses_losses_with_state_and_keeps_stateless_ones(tmp_path):
    config, ranks = fast_config(tmp_path, tmp_path, loss="joint"), DistInfo(rank=0, world_size=2)
    for name in ("arcface", "center"):
        joint = create_loss("joint", params={"terms": [{"loss": "ce"}, {"loss": name}]}, class_counts=COUNTS,
                            embedding_size=D)
        with pytest.raises(ValueError, match=r"loss 'joint' has state of its own \(terms\.1\..*\) that torchrun "
                                             r"processes would not keep in sync"):
            trainer._check_loss_fits_run(config, joint, ranks)
    stateless = create_loss("joint", params={"terms": [{"loss": "ce"}, {"loss": "triplet"}]}, class_counts=COUNTS)
    trainer._check_loss_fits_run(config, stateless, ranks)
    # GHM's bin counts are per-process statistics by design: allowed alone and beside a stateless term,
    # while a centre-loss term beside it is still refused by name
    trainer._check_loss_fits_run(config, create_loss("ghm", class_counts=COUNTS), ranks)
    per_process = create_loss("joint", params={"terms": [{"loss": "ghm"}, {"loss": "triplet"}]}, class_counts=COUNTS)
    trainer._check_loss_fits_run(config, per_process, ranks)
    mixed = create_loss("joint", params={"terms": [{"loss": "ghm"}, {"loss": "center"}]}, class_counts=COUNTS,
                        embedding_size=D)
    with pytest.raises(ValueError, match=r"\(terms\.1\.centers\) that torchrun"):
        trainer._check_loss_fits_run(config, mixed, ranks)
