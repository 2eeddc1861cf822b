"""Query strategies (`winnow.active`): contract over every strategy, behaviour on planted synthetic pools."""

from __future__ import annotations

import numpy as np
import pytest

from winnow.active.base import Selection
from winnow.active.batch import diverse_take
from winnow.active.pool import Pool
from winnow.active.registry import STRATEGIES, make_strategy
from winnow.active.uncertainty import mutual_information


def synthetic_pool(n: int = 60, k: int = 3, d: int = 8, seed: int = 0, labelled: int = 10) -> Pool:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (k, d))
    classes = rng.integers(0, k, n)
    embeddings = centres[classes] + rng.normal(0, 1, (n, d))
    logits = rng.normal(0, 2, (n, k))
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    samples = rng.dirichlet(np.ones(k), (5, n)) * 0.5 + probabilities * 0.5
    return Pool([f"img{i:03d}.png" for i in range(n)], probabilities, embeddings, samples,
                labelled_embeddings=centres[rng.integers(0, k, labelled)] + rng.normal(0, 1, (labelled, d)),
                classes=["a", "b", "c"][:k])


BINARY_ONLY = tuple(name for name, strategy in STRATEGIES.items() if strategy.binary_only)


def pool_for(name: str, **settings) -> Pool:
    return synthetic_pool(k=2 if name in BINARY_ONLY else 3, **settings)


def test_binary_only_strategies_are_flagged():
    assert BINARY_ONLY == ("positive",)  # bench/active.py leaves them out on multi-class data


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_returns_distinct_items_deterministically(name):
    pool = pool_for(name)
    first = make_strategy(name).fit(pool).select(12, seed=3)
    again = make_strategy(name).fit(pool).select(12, seed=3)
    assert isinstance(first, Selection) and len(first.indices) == 12 == len(set(first.indices.tolist()))
    assert first.paths == again.paths and first.reasons == again.reasons
    assert len(first.scores) == 12 and all(first.reasons)
    assert first.paths == [pool.paths[i] for i in first.indices]


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_handles_a_budget_larger_than_the_pool(name):
    pool = pool_for(name, n=7)
    selection = make_strategy(name).fit(pool).select(20, seed=0)
    assert sorted(selection.indices.tolist()) == list(range(7))


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_rejects_bad_budgets_and_unfitted_use(name):
    with pytest.raises(RuntimeError, match="not fitted"):
        make_strategy(name).select(3)
    with pytest.raises(ValueError, match="budget"):
        make_strategy(name).fit(pool_for(name)).select(0)


def test_positive_ranks_by_the_positive_class_and_keeps_near_duplicates():
    pool = synthetic_pool(n=30, k=2)
    pool.embeddings[:] = 1.0  # every pair a near-duplicate: other strategies would hold all but one back
    selection = make_strategy("positive").fit(pool).select(6)
    assert selection.indices.tolist() == np.argsort(-pool.probabilities[:, 1])[:6].tolist()
    assert not any("near-duplicate" in reason for reason in selection.reasons)
    assert selection.reasons[0] == f"P(b) {pool.probabilities[selection.indices[0], 1]:.3f}"
    with pytest.raises(ValueError, match="strategy 'positive' ranks by the positive class of a binary run"):
        make_strategy("positive").fit(synthetic_pool(k=3))


def test_random_depends_on_the_seed():
    pool = synthetic_pool()
    assert make_strategy("random").fit(pool).select(10, seed=1).paths != \
        make_strategy("random").fit(pool).select(10, seed=2).paths


def test_unknown_strategy_lists_the_names():
    with pytest.raises(ValueError, match="unknown 'smart'.*margin.*badge"):
        make_strategy("smart")


def test_missing_inputs_say_what_is_needed():
    pool = synthetic_pool()
    bare = Pool(pool.paths, pool.probabilities)
    with pytest.raises(ValueError, match="coreset.*embeddings"):
        make_strategy("coreset").fit(bare)
    with pytest.raises(ValueError, match="bald.*samples.*ensemble"):
        make_strategy("bald").fit(bare)
    with pytest.raises(ValueError, match="probabilities: expected shape"):
        Pool(pool.paths[:3], pool.probabilities)


def test_margin_picks_the_planted_ambiguous_items():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet([20, 1, 1], 50)  # confident
    ambiguous = [4, 17, 33]
    probabilities[ambiguous] = [[0.49, 0.48, 0.03], [0.40, 0.41, 0.19], [0.33, 0.02, 0.65 - 0.30]]
    probabilities[ambiguous] /= probabilities[ambiguous].sum(1, keepdims=True)
    selection = make_strategy("margin").fit(Pool([str(i) for i in range(50)], probabilities)).select(3)
    assert sorted(selection.indices.tolist()) == ambiguous


def test_coreset_covers_a_planted_far_cluster():
    rng = np.random.default_rng(1)
    near = rng.normal(0, 1, (80, 4))
    far = rng.normal(0, 0.3, (5, 4)) + 30.0
    embeddings = np.vstack([near, far])
    probabilities = np.full((85, 2), 0.5)
    pool = Pool([str(i) for i in range(85)], probabilities, embeddings, labelled_embeddings=rng.normal(0, 1, (20, 4)))
    picked = make_strategy("coreset").fit(pool).select(2).indices
    assert picked[0] >= 80  # the far cluster is the first thing a k-center cover reaches


def test_bald_scores_disagreement_not_uncertainty():
    agree = np.tile([[0.5, 0.5]], (4, 1, 1))  # uncertain but every pass agrees
    disagree = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]], [[0.0, 1.0]]])
    scores = mutual_information(np.concatenate([agree, disagree], axis=1))
    assert scores[0] == pytest.approx(0.0, abs=1e-9) and scores[1] == pytest.approx(np.log(2), rel=1e-6)


def test_batches_hold_no_near_duplicates():
    rng = np.random.default_rng(2)
    base = rng.normal(0, 1, (10, 6))
    embeddings = np.vstack([base, base[:3] + 1e-4])  # 10..12 duplicate 0..2
    order = np.array([0, 10, 1, 11, 2, 12, 3, 4, 5])
    picked, held = diverse_take(order, 5, embeddings, max_cosine=0.99)
    assert picked.tolist() == [0, 1, 2, 3, 4] and not held.any()
    picked, held = diverse_take(order[:6], 5, embeddings, max_cosine=0.99)  # too few distinct: filled in
    assert picked.tolist() == [0, 1, 2, 10, 11] and held.tolist() == [False] * 3 + [True] * 2


def test_balanced_gives_the_rare_predicted_class_its_share():
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet([8, 1, 1], 100)
    probabilities[:4] = rng.dirichlet([1, 1, 8], 4)  # class 2 predicted for 4 items only
    pool = Pool([str(i) for i in range(100)], probabilities, classes=["common", "mid", "rare"])
    selection = make_strategy("balanced").fit(pool).select(9)
    predicted = probabilities[selection.indices].argmax(1)
    assert np.sum(predicted == 2) == 4 and "rare" in selection.reasons[0]  # all of them, from 4% of the pool


def test_badge_seeds_among_the_largest_gradient_norms_only():
    pool = synthetic_pool(n=60)
    strategy = make_strategy("badge", max_candidates=15).fit(pool)
    picked = strategy.select(5, seed=0).indices
    assert strategy.gradients_.shape == (15, 3 * 8)
    assert set(picked.tolist()) <= set(np.argsort(-strategy.scores_)[:15].tolist())
