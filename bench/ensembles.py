"""Ensemble benchmark: N seeds of one recipe on one split, then every `winnow ensemble` method, on test.

All members share the split (`--split-seed 0`), so the ensemble's test images are unseen by every
member. Rows: each member, their mean ± std, and the ensembles (mean, vote, stack fitted on val,
svm and logistic on the frozen embeddings of all members, fitted on train). Run:

    python bench/ensembles.py --data chromosomes --seeds 0 1 2 --img-size 48 --epochs 12 \
        --out bench/results/ensembles_chromosomes.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("WINNOW_SHARED_DATA", ROOT.parent / "shared" / "data"))
DATASETS = {"chromosomes": SHARED / "chromosomes-qband" / "manifest.csv", "bccd": SHARED / "bccd-wbc"}
KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss")
ENSEMBLES = {"mean": ("mean", "svm"), "vote": ("vote", "svm"), "stack (val)": ("stack", "svm"),
             "svm on embeddings (train)": ("svm", "svm"), "logistic on embeddings (train)": ("svm", "logistic")}

import winnow  # noqa: E402
from winnow.ensembles.build import build_ensemble  # noqa: E402
from winnow.evaluation.runner import evaluate  # noqa: E402


def train_members(args, work: Path) -> list[Path]:
    runs = []
    for seed in args.seeds:
        path = work / f"seed{seed}"
        if not (path / "summary.json").is_file():
            config = winnow.Config(data=[str(DATASETS[args.data])], img_size=args.img_size, epochs=args.epochs,
                                   seed=seed, split_seed=0, out=str(work), name=f"seed{seed}", progress=False,
                                   workers=args.workers, device=args.device)
            path = winnow.train(config).path
        runs.append(path)
    return runs


def test_scores(folder: Path, device: str) -> dict[str, float]:
    metrics = evaluate(folder, None, device=device, plots=False).metrics
    return {key: metrics[key] for key in KEYS}


def table(rows: dict[str, dict[str, float]], members: list[dict[str, float]]) -> list[str]:
    lines = ["| model | " + " | ".join(KEYS) + " |", "| --- |" + " --- |" * len(KEYS)]
    for name, scores in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{scores[key]:.3f}" for key in KEYS) + " |")
    spread = {key: np.array([m[key] for m in members]) for key in KEYS}
    lines.insert(2 + len(members), "| members: mean ± std | "
                 + " | ".join(f"{v.mean():.3f} ± {v.std():.3f}" for v in spread.values()) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="chromosomes", choices=sorted(DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--img-size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench-ensembles"))
    parser.add_argument("--out", default=None, help="Markdown file for the table (default: print only)")
    args = parser.parse_args(argv)
    work = Path(args.work) / args.data
    start = time.perf_counter()
    runs = train_members(args, work)
    members = [test_scores(run, args.device) for run in runs]
    rows = {f"member seed {seed}": scores for seed, scores in zip(args.seeds, members)}
    for name, (method, classifier) in ENSEMBLES.items():
        folder = work / f"ensemble-{method}-{classifier}"
        if not folder.is_dir():
            build_ensemble(runs, method=method, classifier=classifier, out=folder, device=args.device)
        rows[f"ensemble: {name}"] = test_scores(folder, args.device)
    header = (f"# Ensembles on {args.data}: resnet18, {args.img_size} px, {args.epochs} epochs, seeds {args.seeds}, "
              f"one split (split_seed 0); test split of the members\n\n"
              f"{platform.processor() or platform.machine()}, torch {torch.__version__}, scikit-learn "
              f"{sklearn.__version__}, device {args.device}; wall time {time.perf_counter() - start:.0f} s (incl. "
              "training when not cached)\n")
    text = "\n".join([header, *table(rows, members)]) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
