"""Active-learning simulation on frozen embeddings: every query strategy against random, 3 seeds.

The labels of the pool (the train split) are hidden; each seed starts from a small stratified seed set,
then runs rounds of query (winnow.active strategies) -> label (from the hidden truth) -> refit a
logistic-regression head on the labelled embeddings, recording test accuracy and balanced accuracy
against the number of labels. BALD's samples are a bootstrap ensemble of 5 heads. Prints, per
strategy, the area under the learning curve (mean accuracy over rounds) and the labels it needs to
reach random's final accuracy, mean +- std over seeds. Embeddings come from `winnow embed RUN all
--out FILE.npz` (train split = pool, test split = test), or `--synthetic` blobs for a smoke run:

    .venv/bin/python bench/active.py --embeddings runs/qband/embeddings/all.npz --rounds 8 --budget 20
    .venv/bin/python bench/active.py --synthetic --rounds 4 --budget 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.preprocessing import StandardScaler

from winnow.active.pool import Pool
from winnow.active.registry import STRATEGIES, make_strategy
from winnow.embeddings.extract import EmbeddingSet


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--embeddings", help="a .npz/.parquet from `winnow embed RUN all` (labels and splits)")
    source.add_argument("--synthetic", action="store_true", help="Gaussian blobs, 6 imbalanced classes")
    parser.add_argument("--strategies", default=None,
                        help="comma-separated; default: every strategy that applies to the data's classes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-per-class", type=int, default=2, help="stratified start: labels per class")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--budget", type=int, default=20, help="labels per round")
    return parser.parse_args(argv)


def load_data(args) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pool embeddings and labels, test embeddings and labels (standardised on the pool)."""
    if args.synthetic:
        sizes = [400, 250, 150, 80, 40, 20]
        x, y = make_blobs(n_samples=[2 * s for s in sizes], n_features=16, cluster_std=7.0, random_state=0)
        test = np.random.default_rng(0).random(len(y)) < 0.5
        pool_x, pool_y, test_x, test_y = x[~test], y[~test], x[test], y[test]
    else:
        data = EmbeddingSet.load(args.embeddings)
        splits, labels = np.asarray(data.splits), np.asarray(data.labels)
        pool_x, pool_y = data.embeddings[splits == "train"], labels[splits == "train"]
        test_x, test_y = data.embeddings[splits == "test"], labels[splits == "test"]
    scaler = StandardScaler().fit(pool_x)
    return scaler.transform(pool_x), pool_y, scaler.transform(test_x), test_y


def stratified_start(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> list[int]:
    return [int(i) for c in np.unique(labels)
            for i in rng.permutation(np.flatnonzero(labels == c))[:per_class]]


def fit_head(x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    return LogisticRegression(max_iter=300, C=1.0).fit(x, y)


def full_probabilities(head: LogisticRegression, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """`[N, K]` over every class (a head fitted before a class was labelled gives it 0)."""
    out = np.zeros((len(x), len(classes)))
    out[:, np.searchsorted(classes, head.classes_)] = head.predict_proba(x)
    return out


def make_pool(x, y, labelled, classes, rng, with_samples: bool) -> tuple[Pool, np.ndarray]:
    """The strategy's view of the unlabelled rows, and their indices into the pool."""
    rest = np.setdiff1d(np.arange(len(x)), labelled)
    head = fit_head(x[labelled], y[labelled])
    samples = None
    if with_samples:
        boots = [rng.choice(labelled, len(labelled)) for _ in range(5)]
        samples = np.stack([full_probabilities(fit_head(x[b], y[b]), x[rest], classes)
                            for b in boots if len(np.unique(y[b])) > 1])
    pool = Pool([str(i) for i in rest], full_probabilities(head, x[rest], classes), x[rest], samples,
                labelled_embeddings=x[labelled])
    return pool, rest


def simulate(name, data, args, seed) -> list[tuple[int, float, float]]:
    """(labels, accuracy, balanced accuracy) after the start and after each round."""
    x, y, test_x, test_y = data
    classes = np.unique(y)
    rng = np.random.default_rng(seed)
    labelled = stratified_start(y, args.seed_per_class, rng)
    curve = []
    for round_ in range(args.rounds + 1):
        head = fit_head(x[labelled], y[labelled])
        predicted = head.predict(test_x)
        curve.append((len(labelled), accuracy_score(test_y, predicted), balanced_accuracy_score(test_y, predicted)))
        if round_ == args.rounds:
            break
        pool, rest = make_pool(x, y, np.asarray(labelled), classes, rng, with_samples=name == "bald")
        picked = make_strategy(name).fit(pool).select(args.budget, seed=seed * 1000 + round_).indices
        labelled += [int(rest[i]) for i in picked]
    return curve


def labels_to_reach(curve, target: float) -> float:
    return next((n for n, acc, _ in curve if acc >= target), float("nan"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load_data(args)
    binary = len(np.unique(data[1])) == 2
    names = args.strategies.split(",") if args.strategies else [
        name for name, strategy in STRATEGIES.items() if binary or not strategy.binary_only]
    print(f"pool {len(data[1])}, test {len(data[3])}, classes {len(np.unique(data[1]))}; start "
          f"{args.seed_per_class}/class, {args.rounds} rounds x {args.budget}, {args.seeds} seeds")
    curves = {}
    for name in ["random", *[n for n in names if n != "random"]]:
        start = time.perf_counter()
        curves[name] = [simulate(name, data, args, seed) for seed in range(args.seeds)]
        print(f"  {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    random_final = [c[-1][1] for c in curves["random"]]
    print("| strategy | AULC acc | AULC bal. acc | final acc | labels to random's final acc | beats random (rounds) |")
    print("|---|---|---|---|---|---|")
    for name, runs in curves.items():
        aulc = [np.mean([acc for _, acc, _ in c]) for c in runs]
        aulc_bal = [np.mean([bal for _, _, bal in c]) for c in runs]
        final = [c[-1][1] for c in runs]
        reach = [labels_to_reach(c, target) for c, target in zip(runs, random_final)]
        wins = sum(np.mean([c[r][1] for c in runs]) > np.mean([c[r][1] for c in curves["random"]])
                   for r in range(1, args.rounds + 1))
        reached = f"{fmt(reach, digits=0)} ({sum(not np.isnan(r) for r in reach)}/{len(reach)} seeds)"
        print(f"| {name} | {fmt(aulc)} | {fmt(aulc_bal)} | {fmt(final)} | {reached} | "
              f"{wins}/{args.rounds} |")
    return 0


def fmt(values: list[float], digits: int = 3) -> str:
    values = [v for v in values if not np.isnan(v)]
    if not values:
        return "never"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
