"""Oversampling benchmark: heads on embeddings with and without synthetic minority samples, on long-tailed data.

Data: the long-tailed chromosomes-qband manifest of `bench/recipes.py` (split by metaphase spread; train and
val classes subsampled to an imbalance ratio of 50, class sizes falling geometrically in a seeded class
order; test balanced), with at least 2 training images per class (a head needs 2; recipes' floor is 1).
Or `--data MANIFEST` with a split column, used as is.

Two backbones are trained on it: `random` sampling (the plain long tail) and the `sqrt` sampler. Rows:
each backbone's own classifier, then on the `random` backbone's frozen embeddings every head `--kinds`
with each `--methods` (none, smote, adasyn, borderline), fitted on the train split; and the same heads
without oversampling on the `sqrt` backbone. Each cell is a test metric of the folder (`winnow eval`);
"rare recall" is the mean test recall of the classes with at most half the median training count. A
cell that cannot be fitted (e.g. adasyn on separated classes, gmm on classes under 5 images) gives its
error. Run (about 16 min on 2 CPU cores):

    python bench/oversample.py --out bench/results/oversample_chromosomes.md [--epochs 30] [--device cuda]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import sys
import time
from pathlib import Path

from sklearn.metrics import recall_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("WINNOW_SHARED_DATA", ROOT.parent / "shared" / "data"))
KEYS = ("accuracy", "balanced_accuracy", "macro_f1")
SAMPLERS = ("random", "sqrt")
PU_ONLY = ("pu_bagging",)  # heads of binary positive-unlabelled runs, not of a multi-class long tail

import winnow  # noqa: E402
from winnow.embeddings.heads import HEADS  # noqa: E402
from winnow.embeddings.oversample import OVERSAMPLERS  # noqa: E402
from winnow.ensembles.build import build_head  # noqa: E402
from winnow.evaluation.runner import evaluate  # noqa: E402


def _recipes():
    """bench/recipes.py (its long-tailed manifest and rare classes), loaded by path: bench is no package."""
    spec = importlib.util.spec_from_file_location("bench_recipes", ROOT / "bench" / "recipes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def manifest(args, work: Path) -> Path:
    if args.data != "chromosomes":
        return Path(args.data)
    work.mkdir(parents=True, exist_ok=True)
    return _recipes().longtail_manifest(work, seed=0, min_count=2)


def train_backbone(data: Path, sampler: str, work: Path, args) -> Path:
    path = work / f"backbone-{sampler}"
    if (path / "summary.json").is_file():
        return path
    config = winnow.Config(data=[str(data)], model=args.model, img_size=args.img_size, batch_size=args.batch_size,
                           epochs=args.epochs, lr=args.lr, sampler=sampler, seed=0, out=str(work),
                           name=path.name, progress=False, workers=args.workers, device=args.device)
    return Path(winnow.train(config).path)


def split_rows(run: Path) -> tuple[list[str], list[str], dict[str, int]]:
    """Test paths and labels of a run's splits.csv, and its training count per class."""
    rows = list(csv.DictReader(open(run / "splits.csv", newline="")))
    counts: dict[str, int] = {}
    for row in rows:
        if row["split"] == "train":
            counts[row["label"]] = counts.get(row["label"], 0) + 1
    test = [row for row in rows if row["split"] == "test"]
    return [row["path"] for row in test], [row["label"] for row in test], counts


def scores(folder: Path, run: Path, args) -> dict[str, float]:
    metrics = evaluate(folder, None, device=args.device, plots=False).metrics
    paths, truth, counts = split_rows(run)
    predicted = winnow.load(folder, device=args.device).predict(paths).predicted
    rare = _recipes().rare_classes(counts)
    rare_recall = recall_score(truth, predicted, labels=rare, average="macro", zero_division=0)
    return {**{key: float(metrics[key]) for key in KEYS}, "rare_recall": float(rare_recall)}


def head_scores(run: Path, kind: str, method: str, work: Path, args) -> dict[str, float] | str:
    folder = work / f"{run.name}-head-{kind}-{method}"
    if not folder.is_dir():
        try:
            build_head(run, kind=kind, oversample=method, out=folder, device=args.device, workers=args.workers)
        except ValueError as error:  # a cell that cannot be fitted is a result too
            return f"error: {error}"
    return scores(folder, run, args)


def markdown(rows: dict[str, dict[str, float] | str], header: str) -> str:
    columns = (*KEYS, "rare_recall")
    lines = [header, "", "| model | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for name, cell in rows.items():
        values = [cell] + [""] * (len(columns) - 1) if isinstance(cell, str) else [f"{cell[k]:.3f}" for k in columns]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="chromosomes", help="chromosomes (long-tailed qband) or a manifest with "
                                                              "a split column")
    parser.add_argument("--kinds", nargs="+", default=[kind for kind in HEADS if kind not in PU_ONLY],
                        choices=list(HEADS))
    parser.add_argument("--methods", nargs="+", default=list(OVERSAMPLERS), choices=list(OVERSAMPLERS))
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench-oversample"))
    parser.add_argument("--out", default=None, help="Markdown file for the table (default: print only)")
    args = parser.parse_args(argv)
    work, start = Path(args.work), time.perf_counter()
    data = manifest(args, work)
    runs = {sampler: train_backbone(data, sampler, work, args) for sampler in SAMPLERS}
    rows: dict[str, dict[str, float] | str] = {f"{sampler} sampler, its own classifier": scores(run, run, args)
                                               for sampler, run in runs.items()}
    for kind in args.kinds:
        for method in args.methods:
            rows[f"random sampler, {kind} head, oversample {method}"] = head_scores(runs["random"], kind, method,
                                                                                  work, args)
        rows[f"sqrt sampler, {kind} head, oversample none"] = head_scores(runs["sqrt"], kind, "none", work, args)
    counts = sorted(split_rows(runs["random"])[2].values())
    header = (f"Oversampling benchmark on {data}: {args.model}, {args.img_size} px, {args.epochs} epochs; train "
              f"class counts {counts[0]}..{counts[-1]} (ratio {counts[-1] / counts[0]:.0f}); "
              f"{time.perf_counter() - start:.0f} s.")
    table = markdown(rows, header)
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
