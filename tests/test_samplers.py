"""Sampler strategies (winnow.data.samplers): the epoch contract, behaviour, switching, input checks."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from winnow.data.samplers import (SAMPLERS, EpochSampler, build_sampler, class_imbalance, describe_mix,
                                  expected_class_mix, resolve_sampler)

TARGETS = [0] * 40 + [1] * 12 + [2] * 5 + [3] * 3  # 60 images, 4 imbalanced classes
BATCH = 8
NAMES = sorted(SAMPLERS)


def make(name: str, *, targets: list[int] = TARGETS, num_classes: int = 4, batch_size: int = BATCH,
         seed: int = 3, epoch: int = 0, skip: int = 0, **kwargs) -> EpochSampler:
    sampler = build_sampler(name, targets, num_classes, batch_size=batch_size, seed=seed, **kwargs)
    sampler.set_epoch(epoch, skip=skip)
    return sampler


def indices(pairs: list[tuple[int, int]]) -> list[int]:
    return [index for index, _ in pairs]


def seeds(pairs: list[tuple[int, int]]) -> set[int]:
    return {seed for _, seed in pairs}


def epochs_of(sampler: EpochSampler, epochs: int) -> list[int]:
    """Indices drawn over the first `epochs` epochs."""
    drawn = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        drawn += indices(list(sampler))
    return drawn


def empirical_mix(name: str, *, epochs: int, targets: list[int] = TARGETS, num_classes: int = 4,
                  **kwargs) -> np.ndarray:
    """Share of each class over the draws of `epochs` epochs."""
    labels = [targets[i] for i in epochs_of(make(name, targets=targets, num_classes=num_classes, **kwargs), epochs)]
    return np.bincount(labels, minlength=num_classes) / len(labels)


def batches_of(pairs: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    ids = indices(pairs)
    return [ids[start : start + batch_size] for start in range(0, len(ids), batch_size)]


# --------------------------------------------------------------------- contract (every registry entry)


def test_registry_names_match_strategies():
    for name, strategy in SAMPLERS.items():
        assert strategy.name == name
        assert make(name).strategy_for(0).describe().startswith(name)


@pytest.mark.parametrize("name", NAMES)
def test_contract_length_and_index_range(name):
    sampler = make(name, epoch=2)
    pairs = list(sampler)
    expected = len(TARGETS) // BATCH * BATCH if name == "m_per_class" else len(TARGETS)
    assert len(pairs) == len(sampler) == expected
    assert all(0 <= i < len(TARGETS) for i in indices(pairs))
    assert len(seeds(pairs)) == len(pairs), "one distinct augmentation seed per position"


@pytest.mark.parametrize("name", NAMES)
def test_contract_reproducible_per_seed_and_epoch(name):
    first = list(make(name, epoch=2))
    assert first == list(make(name, epoch=2))
    later = list(make(name, epoch=3))
    assert indices(later) != indices(first), "epochs draw differently"
    assert seeds(later).isdisjoint(seeds(first)), "epochs draw fresh augmentation seeds"
    assert indices(list(make(name, epoch=2, seed=4))) != indices(first), "run seeds draw differently"


@pytest.mark.parametrize("name", NAMES)
def test_contract_skip_keeps_later_positions(name):
    full = list(make(name, epoch=1))
    resumed = make(name, epoch=1, skip=2 * BATCH)
    assert len(resumed) == len(full) - 2 * BATCH
    assert list(resumed) == full[2 * BATCH :], "same indices and seeds after a mid-epoch resume"


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("name", NAMES)
def test_contract_ranks_split_one_epoch(name, world_size):
    ranks = [make(name, epoch=1, rank=r, world_size=world_size) for r in range(world_size)]
    parts = [list(sampler) for sampler in ranks]
    assert len({len(part) for part in parts}) == 1 and [len(s) for s in ranks] == [len(p) for p in parts]
    assert len(set.union(*map(seeds, parts))) == sum(map(len, parts)), "no seed shared across ranks"
    sequence = ranks[0].epoch_sequence()
    assert all(torch.equal(sequence, sampler.epoch_sequence()) for sampler in ranks), "ranks agree on the epoch"
    block = ranks[0].strategy_for(1).block
    blocks = [torch.tensor(indices(part)).view(-1, block) for part in parts]
    rebuilt = torch.stack(blocks, dim=1).flatten()  # rank r holds blocks r, r + world_size, ...
    assert torch.equal(rebuilt[: len(sequence)], sequence), "each position on exactly one rank"
    padding = rebuilt[len(sequence) :]
    assert torch.equal(padding, sequence[: len(padding)]), "padding wraps to the epoch's start"


# --------------------------------------------------------------------- behaviour


def test_random_is_the_same_permutation_as_before():
    pairs = list(make("random", epoch=5, seed=7))
    assert sorted(indices(pairs)) == list(range(len(TARGETS)))
    legacy = torch.randperm(len(TARGETS), generator=torch.Generator().manual_seed(7 * 1_000_003 + 5))
    assert indices(pairs) == legacy.tolist(), "runs resumed from before the registry replay identically"


def test_random_ranks_get_disjoint_images():
    parts = [set(indices(list(make("random", rank=r, world_size=2)))) for r in range(2)]
    assert not parts[0] & parts[1] and parts[0] | parts[1] == set(range(len(TARGETS)))


def test_balanced_draws_classes_uniformly():
    targets = [0] * 90 + [1] * 9 + [2] * 1
    mix = empirical_mix("balanced", epochs=40, targets=targets, num_classes=3)
    np.testing.assert_allclose(mix, [1 / 3] * 3, atol=0.03)


def test_sqrt_draws_classes_by_square_root_of_size():
    targets = [0] * 400 + [1] * 100 + [2] * 25  # square roots 20 : 10 : 5
    mix = empirical_mix("sqrt", epochs=20, targets=targets, num_classes=3)
    np.testing.assert_allclose(mix, [4 / 7, 2 / 7, 1 / 7], atol=0.02)


def test_repeat_factor_repeats_rare_images_r_times():
    targets = [0] * 90 + [1] * 10  # t=0.5: common class r = 1, rare class r = sqrt(0.5 / 0.1)
    sampler = make("repeat_factor", targets=targets, num_classes=2, params={"t": 0.5})
    counts = np.bincount(epochs_of(sampler, 300), minlength=len(targets))
    rare, common = counts[90:].mean(), counts[:90].mean()
    np.testing.assert_allclose(rare / common, np.sqrt(5), rtol=0.05)
    per_epoch = len(targets) / (90 + 10 * np.sqrt(5))  # an epoch keeps num_samples of the repeated list
    np.testing.assert_allclose([common / 300, rare / 300], [per_epoch, np.sqrt(5) * per_epoch], rtol=0.05)


def test_repeat_factor_without_rare_classes_is_a_permutation():
    pairs = list(make("repeat_factor", params={"t": 0.01}))  # every class is above the threshold: r = 1
    assert sorted(indices(pairs)) == list(range(len(TARGETS)))


@pytest.mark.parametrize("world_size", [1, 2])
def test_m_per_class_batches_hold_m_images_of_each_class(world_size):
    targets = [0] * 20 + [1] * 9 + [2] * 6 + [3] * 4 + [4] * 2  # class 4 has fewer than m images
    batch_size, m = 12, 3
    for epoch in range(20):
        for rank in range(world_size):
            pairs = list(make("m_per_class", targets=targets, num_classes=5, batch_size=batch_size, epoch=epoch,
                              params={"m": m}, rank=rank, world_size=world_size))
            assert len(pairs) % batch_size == 0
            for batch in batches_of(pairs, batch_size):
                assert sorted(Counter(targets[i] for i in batch).values()) == [m] * (batch_size // m)
                groups = [batch[start : start + m] for start in range(0, batch_size, m)]
                assert all(len(set(group)) == m for group in groups if targets[group[0]] != 4), \
                    "classes with at least m images give m distinct images"


@pytest.mark.parametrize(("size", "world_size"), [(60, 1), (61, 2), (100, 3), (100, 4)])
def test_m_per_class_keeps_the_batch_count_of_random(size, world_size):
    targets = [i % 4 for i in range(size)]
    random_batches = len(make("random", targets=targets, world_size=world_size)) // BATCH
    m_per_class = make("m_per_class", targets=targets, world_size=world_size)
    assert len(m_per_class) == random_batches * BATCH, "same optimiser steps per epoch (drop_last)"


def test_expected_mix_closed_forms():
    targets = TARGETS  # class 4 has no images
    counts = np.array([40, 12, 5, 3, 0])

    def mix(name: str, **params) -> np.ndarray:
        return expected_class_mix(name, targets, 5, batch_size=BATCH, params=params)

    np.testing.assert_allclose(mix("random"), counts / 60)
    np.testing.assert_allclose(mix("balanced"), [0.25] * 4 + [0])
    np.testing.assert_allclose(mix("m_per_class"), [0.25] * 4 + [0])
    np.testing.assert_allclose(mix("sqrt"), np.sqrt(counts) / np.sqrt(counts).sum())
    factors = np.maximum(1, np.sqrt(0.2 / np.maximum(counts, 1) * 60))
    np.testing.assert_allclose(mix("repeat_factor", t=0.2), counts * factors / (counts * factors).sum())


@pytest.mark.parametrize("name", NAMES)
def test_expected_mix_matches_empirical_mix(name):
    sampler = make(name)
    np.testing.assert_allclose(empirical_mix(name, epochs=150), sampler.expected_class_mix(0), atol=0.02)


# --------------------------------------------------------------------- deferred switching


def test_switch_epoch_runs_random_before_the_named_sampler():
    for epoch in range(5):
        switched = list(make("balanced", epoch=epoch, switch_epoch=3))
        expected = "random" if epoch + 1 < 3 else "balanced"
        assert switched == list(make(expected, epoch=epoch)), f"epoch {epoch + 1} should be {expected}"
    sampler = make("balanced", switch_epoch=3)
    np.testing.assert_allclose(sampler.expected_class_mix(1), np.array([40, 12, 5, 3]) / 60)
    np.testing.assert_allclose(sampler.expected_class_mix(2), [0.25] * 4)
    assert list(make("sqrt", epoch=2, switch_epoch=1)) == list(make("sqrt", epoch=2))


def test_switch_to_m_per_class_keeps_batches_per_epoch():
    sampler = make("m_per_class", targets=[i % 4 for i in range(100)], switch_epoch=2, world_size=3)
    before = len(sampler) // BATCH
    sampler.set_epoch(1)
    assert len(sampler) == before * BATCH and len(sampler) == len(list(sampler))


def test_describe_mix_names_the_epochs_sampler():
    sampler = make("m_per_class", switch_epoch=2, params={"m": 2})
    assert describe_mix(sampler, 0) == "epoch 1: sampler random, expected class mix 0 66.7%, 1 20.0%, 2 8.3%, 3 5.0%"
    assert describe_mix(sampler, 1, classes=["a", "b", "c", "d"]) == (
        "epoch 2: sampler m_per_class(m=2), expected class mix a 25.0%, b 25.0%, c 25.0%, d 25.0%")


# --------------------------------------------------------------------- bad input

BAD_BUILDS = [
    ({"name": "nope"}, r"unknown sampler 'nope'; valid samplers: auto, balanced, m_per_class, random, repeat_factor, sqrt"),
    ({"name": "m_per_class", "params": {"k": 1}},
     r"unknown key\(s\) \['k'\] in sampler_params; valid keys: m; sampler 'm_per_class' takes m \(default 4\)"),
    ({"name": "random", "params": {"m": 2}}, r"sampler 'random' takes no sampler_params"),
    ({"name": "m_per_class", "params": [("m", 2)]}, r"sampler_params must be a mapping"),
    ({"name": "m_per_class", "params": {"m": 0}},
     r"m \(images per class in a batch\) must be a positive integer, got 0"),
    ({"name": "m_per_class", "params": {"m": 2.5}}, r"must be a positive integer, got 2.5"),
    ({"name": "m_per_class", "params": {"m": True}}, r"must be a positive integer, got True"),
    ({"name": "m_per_class", "params": {"m": 3}},
     r"m=3 must divide batch_size=8 .*valid m for batch_size=8 and 4 classes with images: 2, 4, 8"),
    ({"name": "m_per_class", "params": {"m": 1}}, r"needs batch_size / m = 8 classes per batch, but only 4 classes"),
    ({"name": "repeat_factor", "params": {"t": 0}},
     r"t \(repeat_factor frequency threshold\) must be a number > 0, got 0"),
    ({"name": "repeat_factor", "params": {"t": -0.5}}, r"must be a number > 0, got -0.5"),
    ({"name": "repeat_factor", "params": {"t": "0.1"}}, r"must be a number > 0, got '0.1'"),
    ({"name": "balanced", "switch_epoch": 0}, r"switch_epoch \(sampler_epoch\) must be a positive integer, got 0"),
    ({"name": "random", "batch_size": 0}, r"batch_size must be a positive integer, got 0"),
    ({"name": "random", "targets": [0, 1, 5], "num_classes": 3},
     r"targets must lie in \[0, num_classes=3\), got 5 for image 2"),
    ({"name": "random", "targets": []}, r"targets must be a non-empty list"),
    ({"name": "random", "rank": 2, "world_size": 2}, r"rank must be in \[0, world_size=2\), got 2"),
    ({"name": "random", "world_size": 0}, r"world_size must be a positive integer, got 0"),
]


@pytest.mark.parametrize(("kwargs", "match"), BAD_BUILDS)
def test_bad_sampler_input_says_how_to_fix(kwargs, match):
    values = {"name": "random", "targets": TARGETS, "num_classes": 4, "batch_size": BATCH, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_sampler(values.pop("name"), values.pop("targets"), values.pop("num_classes"), **values)


@pytest.mark.parametrize("skip", [-1, 61, 2.0])
def test_bad_skip(skip):
    with pytest.raises(ValueError, match=r"skip must be an integer in \[0, 60\] .*got"):
        make("random", skip=skip)


def test_describe_mix_checks_class_names():
    with pytest.raises(ValueError, match="classes must name all 4 classes, got 2 names"):
        describe_mix(make("balanced"), 0, classes=["a", "b"])


def test_class_imbalance_matches_a_naive_total_variation_distance():
    targets = [0] * 207 + [1] * 88 + [2] * 33 + [3] * 20 + [4] * 3 + [5] * 0
    shares = [targets.count(k) / len(targets) for k in range(6)]
    naive = sum(abs(share - 1 / 6) for share in shares) / 2
    assert class_imbalance(targets, 6) == pytest.approx(naive)
    assert class_imbalance([0, 1, 2] * 5, 3) == 0.0


def test_auto_sampler_follows_the_measured_imbalance():
    balanced, skewed = [0, 1, 2, 3] * 10, [0] * 30 + [1] * 5 + [2] * 3 + [3] * 2
    assert resolve_sampler("auto", balanced, 4) == "random"
    assert resolve_sampler("auto", skewed, 4) == "sqrt"
    assert resolve_sampler("balanced", balanced, 4) == "balanced"  # a named sampler stays as given
    assert build_sampler("auto", skewed, 4, batch_size=8, seed=0).strategy_for(0).name == "sqrt"


def test_unknown_sampler_lists_auto_among_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown sampler 'sqr'; valid samplers: auto, balanced"):
        build_sampler("sqr", [0, 1], 2, batch_size=2, seed=0)
