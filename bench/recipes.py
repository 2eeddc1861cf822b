"""Recipe benchmark: a grid of recipes x datasets x seeds on real data, written as a Markdown table.

Datasets (from ../shared/data):
- chromosomes: chromosomes-qband, 24 classes, split by metaphase spread (group).
- longtail: the same split with training and validation classes subsampled to an imbalance
  ratio of 50 (class sizes fall geometrically in a seeded class order); test kept balanced
  (at most TEST_PER_CLASS images per class).
- bccd: bccd-wbc, 5 white-blood-cell classes, 351 images (Basophil: 3).

Each cell is the mean ± std over seeds of the best-checkpoint test metrics; "rare recall" is the
mean test recall of the rare classes: those with at most half the median training count
(chromosomes: Y; bccd-wbc: Basophil), or the single rarest class. Run:

    python bench/recipes.py --out bench/results/recipes.md [--parallel 4] [--epochs 30]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import recall_score

from harness import ROOT, SHARED, bench_env, winnow_test_metrics, winnow_train_command

IMBALANCE = 50
TEST_PER_CLASS = 20
COMMON = ["--img-size", "64", "--batch-size", "64", "--model", "resnet18", "--lr", "0.002"]
GRID = {
    "ce (baseline)": ["--recipe", "baseline"],
    "ce + balanced weights": ["--recipe", "baseline", "--class-weights", "balanced"],
    "ce + balanced sampler": ["--recipe", "baseline", "--sampler", "balanced"],
    "ce + sqrt sampler": ["--recipe", "baseline", "--sampler", "sqrt"],
    "class-balanced focal": ["--recipe", "baseline", "--loss", "class_balanced",
                             "--loss-params", "{base: focal, gamma: 1.0, beta: 0.999}"],
    "ldam + drw (longtail)": ["--recipe", "longtail"],
    "gem + smoothing (finegrained)": ["--recipe", "finegrained"],
}


def longtail_manifest(work: Path, *, seed: int = 0, min_count: int = 1) -> Path:
    """Write the long-tailed chromosome manifest (train/val subsampled to at least `min_count` images per class,
    test balanced)."""
    from winnow.data.splits import assign_splits

    samples = assign_splits([str(SHARED / "chromosomes-qband" / "manifest.csv")], seed=seed)
    rng = np.random.default_rng(seed)
    classes = sorted(set(samples.labels), key=int)
    order = rng.permutation(len(classes))
    keep_share = {c: IMBALANCE ** (-rank / (len(classes) - 1)) for c, rank in zip(classes, order)}
    rows = []
    for split in ("train", "val", "test"):
        for label in classes:
            picked = [i for i, (l, s) in enumerate(zip(samples.labels, samples.splits)) if l == label and s == split]
            picked = list(rng.permutation(picked))
            count = TEST_PER_CLASS if split == "test" else max(min_count, round(len(picked) * keep_share[label]))
            rows += [(samples.paths[i], label, split, samples.groups[i]) for i in picked[:count]]
    path = work / "longtail.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split", "group"])
        writer.writerows(rows)
    return path


def datasets(work: Path) -> dict[str, str]:
    return {"chromosomes": str(SHARED / "chromosomes-qband" / "manifest.csv"),
            "longtail": str(longtail_manifest(work)),
            "bccd": str(SHARED / "bccd-wbc")}


def train_one(data: str, recipe_args: list[str], *, seed: int, out: Path, name: str, args) -> Path:
    command = winnow_train_command(data, [*recipe_args, *COMMON], seed=seed, epochs=args.epochs, out=out, name=name,
                                   workers=args.workers, device=args.device)
    result = subprocess.run(command, capture_output=True, text=True, env=bench_env())
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-3000:]}")
    return out / name


def rare_classes(counts: dict[str, int]) -> list[str]:
    """Classes with at most half the median training count (else the single rarest class)."""
    limit = np.median(list(counts.values())) / 2
    rare = [c for c, n in counts.items() if n <= limit]
    return rare or [min(counts, key=counts.get)]


def run_metrics(run_dir: Path) -> dict[str, float]:
    """Test metrics of the best checkpoint plus rare-class recall (recomputed from predictions)."""
    import winnow

    summary = json.loads((run_dir / "summary.json").read_text())
    rows = list(csv.DictReader(open(run_dir / "splits.csv")))
    test = [r for r in rows if r["split"] == "test"]
    counts = {}
    for r in rows:
        if r["split"] == "train":
            counts[r["label"]] = counts.get(r["label"], 0) + 1
    rare = rare_classes(counts)
    predictions = winnow.load(run_dir).predict([r["path"] for r in test])
    truth = [r["label"] for r in test]
    rare_recall = recall_score(truth, predictions.predicted, labels=rare, average="macro", zero_division=0)
    return {**winnow_test_metrics(run_dir), "rare_recall": float(rare_recall), "time_s": summary["elapsed_s"]}


def markdown(results: dict, seeds: list[int], header: str) -> str:
    keys = ("accuracy", "balanced_accuracy", "macro_f1", "rare_recall", "time_s")
    lines = [header, "", "| data | recipe | accuracy | balanced acc. | macro-F1 | rare recall | time (s) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for (data, recipe), runs in results.items():
        cells = []
        for key in keys:
            values = np.array([r[key] for r in runs])
            cells.append(f"{values.mean():.3f} ± {values.std():.3f}" if key != "time_s" else f"{values.mean():.0f}")
        lines.append(f"| {data} | {recipe} | " + " | ".join(cells) + " |")
    lines.append(f"\n{len(seeds)} seeds ({', '.join(map(str, seeds))}); mean ± std of the best checkpoint's test metrics.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "recipes.md"))
    parser.add_argument("--work", default="/tmp/winnow-bench-recipes")
    parser.add_argument("--data", nargs="+", default=["chromosomes", "longtail", "bccd"])
    parser.add_argument("--recipes", nargs="+", default=list(GRID))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if not SHARED.exists():
        print(f"skipped: {SHARED} is absent (real data lives in ../shared/data)")
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sources = datasets(work)
    jobs = [(d, r, s) for d in args.data for r in args.recipes for s in args.seeds]
    start = time.time()

    def job(item):
        data, recipe, seed = item
        slug = "".join(ch if ch.isalnum() else "-" for ch in recipe).strip("-")
        name = f"{data}-{slug}-s{seed}"
        run_dir = train_one(sources[data], GRID[recipe], seed=seed, out=work / "runs", name=name, args=args)
        print(f"done {data} / {recipe} / seed {seed}", flush=True)
        return item, run_metrics(run_dir)

    results: dict = {}
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        for (data, recipe, seed), metrics in pool.map(job, jobs):
            results.setdefault((data, recipe), []).append(metrics)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else "CPU"
    header = (f"Recipe benchmark: {args.epochs} epochs, resnet18, 64 px, batch 64, AdamW lr 0.002, {device}, "
              f"torch {torch.__version__}, {len(jobs)} runs in {time.time() - start:.0f} s ({args.parallel} at a time).")
    table = markdown(results, args.seeds, header)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
