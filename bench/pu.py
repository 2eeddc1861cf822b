"""PU learning on features with known truth: PN vs uPU vs nnPU (true / estimated prior) vs bagging PU.

Builds "class X vs rest" PU problems from a fully labelled image folder: a share `--hidden` of the
positives goes into the unlabelled set with all negatives; a fully labelled test split (30%) scores
every method (`--split recorded`: the embedding file's own test split instead, the same for every seed;
use it for grouped data such as chromosomes-qband, whose random splits would put crops of one spread
on both sides). Features are 16 x 16 grayscale thumbnails (`winnow.pu.features`; fast, weak) or a
`winnow embed` file (`--embeddings`, a run's embeddings: the realistic case). The PU losses train a
small MLP on the features with winnow's `nnpu` / `upu` (full batch, Adam); PN is the same MLP with
BCE, unlabelled as negatives (what the lab did). Prints F1 of the positive class, ROC AUC and the
estimated vs true prior, mean +- std over seeds. Run:

    .venv/bin/python bench/pu.py --data ../shared/data/bccd-wbc --positive Eosinophil [--hidden 0.25 0.5]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from winnow.data.sources import read_source
from winnow.embeddings.extract import EmbeddingSet
from winnow.embeddings.heads import make_head
from winnow.losses import create_loss
from winnow.pu import estimate_prior
from winnow.pu.features import thumbnails


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="ImageFolder tree or manifest (named in the output)")
    parser.add_argument("--positive", required=True, help="the class X of 'X vs rest'")
    parser.add_argument("--embeddings", help="a `winnow embed` file of the same images instead of thumbnails")
    parser.add_argument("--hidden", type=float, nargs="+", default=[0.25, 0.5])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--split", choices=["random", "recorded"], default="random",
                        help="test split: a stratified random 30%% per seed, or the --embeddings file's 'test' rows")
    return parser.parse_args(argv)


def mlp_scores(x_train, targets, x_test, *, loss: str, prior: float | None, seed: int, steps: int,
               surrogate: str = "sigmoid") -> np.ndarray:
    """Train a 1-hidden-layer MLP with a winnow loss on full batches; P(positive) of the test features."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(x_train.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    params = {"prior": prior, "surrogate": surrogate} if prior is not None else None
    loss_fn = create_loss(loss, params=params, class_counts=[int((targets == 0).sum()), int(targets.sum())])
    x, y = torch.tensor(x_train, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model(x)[:, 0], y).backward()
        optimizer.step()
    with torch.no_grad():
        return torch.sigmoid(model(torch.tensor(x_test, dtype=torch.float32))[:, 0]).numpy()


def split_rows(features, truth, test_rows, seed: int) -> tuple[np.ndarray, ...]:
    """x_train, x_test, y_train, y_test: the rows flagged in `test_rows` `[N]` as test, or (None) a random 30%."""
    if test_rows is None:
        return train_test_split(features, truth, test_size=0.3, stratify=truth, random_state=seed)
    return features[~test_rows], features[test_rows], truth[~test_rows], truth[test_rows]


def one_problem(features, truth, hidden: float, seed: int, steps: int,
                test_rows: np.ndarray | None = None) -> dict[str, tuple[float, float]]:
    """Scores (F1, AUC) per method, and the true / estimated prior, for one PU split."""
    x_tr, x_te, y_tr, y_te = split_rows(features, truth, test_rows, seed)
    scaler = StandardScaler().fit(x_tr)
    x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
    rng = np.random.default_rng(seed)
    positives = np.flatnonzero(y_tr == 1)
    hide = rng.choice(positives, int(round(hidden * len(positives))), replace=False)
    labelled = y_tr.copy()
    labelled[hide] = 0
    true_prior = float(y_tr[labelled == 0].mean())
    estimate = estimate_prior(x_tr, labelled, bootstrap=0).prior
    results = {"prior": (true_prior, estimate)}
    runs = {"PN (unlabelled = negative)": ("bce", None, ""), "uPU, true prior": ("upu", true_prior, "sigmoid"),
            "nnPU, true prior": ("nnpu", true_prior, "sigmoid"), "nnPU, estimated prior": ("nnpu", estimate, "sigmoid"),
            "nnPU logistic, true prior": ("nnpu", true_prior, "logistic"),
            "nnPU logistic, estimated": ("nnpu", estimate, "logistic")}
    for name, (loss, prior, surrogate) in runs.items():
        scores = mlp_scores(x_tr, labelled, x_te, loss=loss, prior=prior, seed=seed, steps=steps, surrogate=surrogate)
        results[name] = (f1_score(y_te, scores >= 0.5), roc_auc_score(y_te, scores))
    bagging = make_head("pu_bagging", n_estimators=50, seed=seed).fit(x_tr, labelled, n_classes=2)
    scores = bagging.predict_proba(x_te)[:, 1]
    results["bagging PU (trees)"] = (f1_score(y_te, scores >= 0.5), roc_auc_score(y_te, scores))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    test_rows = None
    if args.embeddings:  # its own rows and labels: the file may skip unreadable images
        loaded = EmbeddingSet.load(args.embeddings)
        features, labels = loaded.embeddings, loaded.labels
        if args.split == "recorded":
            test_rows = np.asarray(loaded.splits) == "test"
            if not test_rows.any():
                raise SystemExit(f"--split recorded: {args.embeddings} has no 'test' rows; embed a run's splits "
                                 "(`winnow embed RUN all`) or use --split random")
    elif args.split == "recorded":
        raise SystemExit("--split recorded needs --embeddings (thumbnails have no recorded split)")
    else:
        samples = read_source(args.data)
        features, labels = thumbnails(samples.paths), samples.labels
    truth = np.array([label == args.positive for label in labels]).astype(int)
    split = "random 30% test per seed" if test_rows is None else f"recorded test split ({test_rows.sum()} images)"
    print(f"{args.data}: {len(truth)} images, {truth.sum()} {args.positive}, features {features.shape[1]}-d; {split}")
    for hidden in args.hidden:
        rows = [one_problem(features, truth, hidden, seed, args.steps, test_rows) for seed in range(args.seeds)]
        priors = np.array([row["prior"] for row in rows])
        print(f"\nhidden {hidden:.0%} of positives; prior among unlabelled: true {priors[:, 0].mean():.3f}, "
              f"estimated {priors[:, 1].mean():.3f} (mean of {args.seeds} seeds)")
        print(f"{'method':30s} {'F1 (positive)':>16s} {'ROC AUC':>16s}")
        for name in [key for key in rows[0] if key != "prior"]:
            f1s, aucs = [row[name][0] for row in rows], [row[name][1] for row in rows]
            print(f"{name:30s} {_mean_std(f1s):>16s} {_mean_std(aucs):>16s}")
    return 0


def _mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values) if len(values) > 1 else 0:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
