"""Active-learning simulation: every query strategy against random, on frozen embeddings or by fine-tuning.

The labels of the pool (the train split) are hidden; each seed starts from a small stratified seed set,
then runs rounds of query (winnow.active strategies) -> label (from the hidden truth) -> refit a
logistic-regression head on the labelled embeddings, recording test accuracy and balanced accuracy
against the number of labels. BALD's samples are a bootstrap ensemble of 5 heads. Prints, per
strategy, the area under the learning curve (mean accuracy over rounds) and the labels it needs to
reach random's final accuracy, mean +- std over seeds. Embeddings come from `winnow embed RUN all
--out FILE.npz` (train split = pool, test split = test), or `--synthetic` blobs for a smoke run:

    .venv/bin/python bench/active.py --embeddings runs/qband/embeddings/all.npz --rounds 8 --budget 20
    .venv/bin/python bench/active.py --synthetic --rounds 4 --budget 10

`--finetune DATA` runs the full fine-tuning variant instead, on fewer rounds: per seed, one grouped,
stratified split of DATA (`winnow.data.splits.assign_splits`); the train split is the pool (labels
hidden), val and test keep their labels. Each round trains a real `winnow train` run on the labelled
train images (+ val + test), scores its best checkpoint on test, and `winnow query`s the pool with that
run (`--random-arm 0`); the picks get their true labels. Flags after `--` go to `winnow train`
(`--epochs`, `--workers`, `--device` also to `winnow query`). Run folders and CSVs go under `--work`,
subprocess logs under `--work/logs`; the CPU seconds of all trainings are printed at the end:

    python bench/active.py --finetune ../shared/data/chromosomes-qband/manifest.csv --work /tmp/al \
        --rounds 3 --budget 48 --seed-per-class 2 --seeds 1 --strategies random,margin,badge \
        -- --epochs 10 --workers 2
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.preprocessing import StandardScaler

from winnow.active.pool import Pool
from winnow.active.registry import STRATEGIES, make_strategy
from winnow.config import Config
from winnow.data.loader_workers import parse_workers
from winnow.embeddings.extract import EmbeddingSet

from harness import drawn_split, run_measured, winnow_test_metrics, winnow_train_command, write_rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--embeddings", help="a .npz/.parquet from `winnow embed RUN all` (labels and splits)")
    source.add_argument("--synthetic", action="store_true", help="Gaussian blobs, 6 imbalanced classes")
    source.add_argument("--finetune", metavar="DATA",
                        help="labelled folder or manifest: retrain `winnow train` each round instead of a head")
    parser.add_argument("--strategies", default=None,
                        help="comma-separated; default: every strategy that applies to the data's classes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-per-class", type=int, default=2, help="stratified start: labels per class")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--budget", type=int, default=20, help="labels per round")
    parser.add_argument("--work", type=Path, help="--finetune only (required): run folders, CSVs and logs")
    parser.add_argument("train_flags", nargs=argparse.REMAINDER,
                        help="--finetune only, after --: flags for `winnow train`")
    args = parser.parse_args(argv)
    args.train_flags = [flag for flag in args.train_flags if flag != "--"]
    if args.finetune and args.work is None:
        parser.error("--finetune needs --work DIR (outside the repository) for its runs and logs")
    if not args.finetune and (args.work or args.train_flags):
        parser.error(f"--work and flags after -- apply to --finetune only; got --work {args.work}, "
                     f"flags {args.train_flags}")
    return args


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


SHARED_FLAGS = ("--epochs", "--workers", "--device")


def split_rows(args, seed: int) -> list[dict[str, str]]:
    """One grouped, stratified split of --finetune DATA drawn with `seed`: path,label,split,group rows."""
    return drawn_split(args.finetune, seed, args.work / f"split-s{seed}.csv")


def split_flags(flags: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(--epochs/--workers/--device, the other flags) of the flags after --; winnow's defaults where absent.

    `winnow_train_command` appends its own --epochs/--workers/--device, which would override the user's.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--epochs", type=int, default=Config.epochs)
    parser.add_argument("--workers", type=parse_workers, default=Config.workers)
    parser.add_argument("--device", default=Config.device)
    return parser.parse_known_args(flags)


def train_round(manifest: Path, name: str, args, seed: int) -> tuple[Path, float]:
    """`winnow train MANIFEST` as run folder `work/runs/name`: the folder and the training's CPU seconds."""
    out, (shared, extra) = args.work / "runs", split_flags(args.train_flags)
    shutil.rmtree(out / name, ignore_errors=True)  # winnow would write `name-2`; a rerun starts the round again
    command = winnow_train_command(str(manifest), extra, seed=seed, epochs=shared.epochs, out=out, name=name,
                                   workers=shared.workers, device=shared.device)
    log = args.work / "logs" / f"{name}.log"
    measured = run_measured(command, log=log)
    if measured.returncode or not (out / name / "summary.json").exists():
        raise SystemExit(f"winnow train {manifest} failed (exit {measured.returncode}); see {log}")
    return out / name, measured.cpu_s


def query_round(run: Path, pool: Path, out: Path, strategy: str, args, seed: int) -> list[str]:
    """`winnow query RUN POOL` without a random arm: the real paths of its `--budget` picks."""
    shared, _ = split_flags(args.train_flags)
    out.unlink(missing_ok=True)  # a failed query must not leave the last round's picks behind
    command = [sys.executable, "-m", "winnow.cli.main", "query", str(run), str(pool), "--budget", str(args.budget),
               "--strategy", strategy, "--random-arm", "0", "--seed", str(seed), "--out", str(out),
               "--workers", str(shared.workers), "--device", shared.device]
    log = args.work / "logs" / f"{run.name}-query.log"
    measured = run_measured(command, log=log)
    if measured.returncode or not out.exists():
        raise SystemExit(f"winnow query {run} failed (exit {measured.returncode}); see {log}")
    with open(out, newline="") as handle:
        return [os.path.realpath(row["path"]) for row in csv.DictReader(handle)]


def write_round(folder: Path, round_: int, rows: list[dict], labelled: set[int]) -> tuple[Path, Path]:
    """labelled-rK.csv (labelled train rows + all val and test rows) and pool-rK.csv (hidden train paths)."""
    train = [row for row in rows if row["split"] == "train"]
    fields = [name for name in rows[0] if name in ("path", "label", "split", "group")]
    known = [train[i] for i in sorted(labelled)] + [row for row in rows if row["split"] != "train"]
    hidden = [row for i, row in enumerate(train) if i not in labelled]
    return (write_rows(folder / f"labelled-r{round_}.csv", known, fields),
            write_rows(folder / f"pool-r{round_}.csv", hidden, ["path"]))


def finetune(name: str, rows: list[dict], args, seed: int, cpu: list[float]) -> list[tuple[int, float, float]]:
    """(labels, accuracy, balanced accuracy) of a `winnow train` run after the start and after each round."""
    train = [row for row in rows if row["split"] == "train"]
    index = {os.path.realpath(row["path"]): i for i, row in enumerate(train)}
    rng = np.random.default_rng(seed)  # the same start for every strategy of a seed
    labelled = set(stratified_start(np.array([row["label"] for row in train]), args.seed_per_class, rng))
    folder = args.work / f"{name}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    curve = []
    for round_ in range(args.rounds + 1):
        manifest, pool = write_round(folder, round_, rows, labelled)
        run, cpu_s = train_round(manifest, f"{name}-s{seed}-r{round_}", args, seed)
        cpu.append(cpu_s)
        test = winnow_test_metrics(run)
        curve.append((len(labelled), test["accuracy"], test["balanced_accuracy"]))
        if round_ == args.rounds:
            break
        picks = query_round(run, pool, folder / f"to_label-r{round_}.csv", name, args, seed * 1000 + round_)
        labelled |= {index[path] for path in picks}
    return curve


def strategy_names(args, labels: np.ndarray) -> list[str]:
    """--strategies (default: every strategy for the classes), random first: it is the baseline."""
    binary = len(np.unique(labels)) == 2
    names = args.strategies.split(",") if args.strategies else [
        name for name, strategy in STRATEGIES.items() if binary or not strategy.binary_only]
    return ["random", *[n for n in names if n != "random"]]


def frozen_curves(args) -> dict[str, list]:
    """Per strategy, one simulated curve per seed on frozen embeddings."""
    data = load_data(args)
    print(f"pool {len(data[1])}, test {len(data[3])}, classes {len(np.unique(data[1]))}; start "
          f"{args.seed_per_class}/class, {args.rounds} rounds x {args.budget}, {args.seeds} seeds")
    curves = {}
    for name in strategy_names(args, data[1]):
        start = time.perf_counter()
        curves[name] = [simulate(name, data, args, seed) for seed in range(args.seeds)]
        print(f"  {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return curves


def finetune_curves(args) -> tuple[dict[str, list], list[float]]:
    """Per strategy, one fine-tuned curve per seed; and the CPU seconds of every training."""
    splits = {seed: split_rows(args, seed) for seed in range(args.seeds)}
    counts = {part: sum(row["split"] == part for row in splits[0]) for part in ("train", "val", "test")}
    labels = np.array([row["label"] for row in splits[0]])
    print(f"{args.finetune}: pool {counts['train']}, val {counts['val']}, test {counts['test']} (split of seed 0), "
          f"classes {len(np.unique(labels))}; start {args.seed_per_class}/class, {args.rounds} rounds x "
          f"{args.budget}, {args.seeds} seeds; winnow train {' '.join(args.train_flags)}")
    curves, cpu = {}, []
    for name in strategy_names(args, labels):
        start = time.perf_counter()
        curves[name] = [finetune(name, splits[seed], args, seed, cpu) for seed in range(args.seeds)]
        print(f"  {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return curves, cpu


def print_table(curves: dict[str, list], rounds: int) -> None:
    random_final = [c[-1][1] for c in curves["random"]]
    print("| strategy | AULC acc | AULC bal. acc | final acc | labels to random's final acc | beats random (rounds) |")
    print("|---|---|---|---|---|---|")
    for name, runs in curves.items():
        aulc = [np.mean([acc for _, acc, _ in c]) for c in runs]
        aulc_bal = [np.mean([bal for _, _, bal in c]) for c in runs]
        final = [c[-1][1] for c in runs]
        reach = [labels_to_reach(c, target) for c, target in zip(runs, random_final)]
        wins = sum(np.mean([c[r][1] for c in runs]) > np.mean([c[r][1] for c in curves["random"]])
                   for r in range(1, rounds + 1))
        reached = f"{fmt(reach, digits=0)} ({sum(not np.isnan(r) for r in reach)}/{len(reach)} seeds)"
        print(f"| {name} | {fmt(aulc)} | {fmt(aulc_bal)} | {fmt(final)} | {reached} | "
              f"{wins}/{rounds} |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    curves, cpu = finetune_curves(args) if args.finetune else (frozen_curves(args), None)
    print_table(curves, args.rounds)
    if cpu is not None:
        print(f"\n{len(cpu)} winnow trainings: {sum(cpu):.0f} CPU s in all")
    return 0


def fmt(values: list[float], digits: int = 3) -> str:
    values = [v for v in values if not np.isnan(v)]
    if not values:
        return "never"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
