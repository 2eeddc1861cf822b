"""`winnow audit` benchmark: recall and precision on problems injected into a copy of a real dataset.

Copies the dataset into a scratch folder (never the repo, never the original), gives it the splits
`train` would (written into the copy's manifest), then injects:
  - near duplicates across splits: train images resized (x0.9), shifted 2 px and re-encoded as JPEG,
    added to val/test (they should come out as leaks);
  - flipped labels: 3% of the original rows get another class (label-issue candidates);
  - foreign images from another dataset (bccd-wbc cells) with random labels (outliers);
and audits it; then makes every val image 20% brighter and runs the shift check again. Prints recall
and precision per issue type, the train-vs-val shift AUC before and after the brightening, the wall
time and peak memory of the audit, and the time of the neighbour search on N synthetic embeddings
(scikit-learn brute search in chunks, no N x N matrix) to extrapolate to 100k images. Run:

    .venv/bin/python bench/audit.py [--data ../shared/data/chromosomes-qband/manifest.csv] [--run RUN]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import resource
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from winnow.audit.neighbours import nearest
from winnow.audit.runner import audit
from winnow.data.splits import assign_splits

SHARED = Path(__file__).resolve().parents[2] / "shared/data"
DEFAULT_DATA = SHARED / "chromosomes-qband/manifest.csv"
DEFAULT_FOREIGN = SHARED / "bccd-wbc"


def copy_with_splits(manifest: Path, work: Path, seed: int) -> list[dict[str, str]]:
    """The dataset copied under `work/data`, rows with the split `train` would give them."""
    samples = assign_splits([str(manifest)], seed=seed)
    rows = []
    for path, label, split, group, _ in samples.rows():
        target = work / "data" / "images" / Path(path).parent.name / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        rows.append({"path": str(target), "label": label, "split": split, "group": group or ""})
    return rows


def near_copy(path: str, target: Path) -> None:
    with Image.open(path) as image:
        gray = image.convert("L")
    small = gray.resize((max(8, round(gray.width * 0.9)), max(8, round(gray.height * 0.9))), Image.Resampling.BILINEAR)
    shifted = Image.fromarray(np.roll(np.asarray(small), (2, -2), axis=(0, 1)))
    shifted.save(target, format="JPEG", quality=85)


def inject(rows: list[dict[str, str]], work: Path, foreign: Path, rng: np.random.Generator, *,
           n_near: int, flip_share: float, n_foreign: int) -> dict[str, set[str]]:
    """Plant the problems (in place in `rows` and on disk); returns the planted paths per issue type."""
    classes = sorted({row["label"] for row in rows})
    flipped = set()
    for row in rng.choice(rows, round(flip_share * len(rows)), replace=False):
        row["label"] = str(rng.choice([name for name in classes if name != row["label"]]))
        flipped.add(row["path"])
    sources = [row for row in rows if row["split"] == "train" and row["path"] not in flipped]
    near = set()
    for i, row in enumerate(rng.choice(sources, n_near, replace=False)):
        target = work / "data" / "near" / f"near_{i:03d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        near_copy(row["path"], target)
        rows.append({"path": str(target), "label": row["label"], "split": ("val", "test")[i % 2],
                     "group": f"near-{i}"})
        near.add(str(target))
    outsiders = sorted(p for p in foreign.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    planted_foreign = set()
    for i, source in enumerate(rng.choice(outsiders, n_foreign, replace=False)):
        target = work / "data" / "foreign" / f"foreign_{i:03d}{source.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        rows.append({"path": str(target), "label": str(rng.choice(classes)), "split": "train", "group": f"f-{i}"})
        planted_foreign.add(str(target))
    return {"near": near, "label": flipped, "outlier": planted_foreign}


def write_manifest(rows: list[dict[str, str]], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split", "group"])
        writer.writeheader()
        writer.writerows(rows)


def scores(found: set[str], planted: set[str]) -> str:
    hits = len(found & planted)
    precision = hits / len(found) if found else float("nan")
    return f"recall {hits}/{len(planted)} = {hits / len(planted):.2f}, precision {hits}/{len(found)} = {precision:.2f}"


def found_paths(result, planted: dict[str, set[str]]) -> dict[str, set[str]]:
    checks = {check.name: check for check in result.checks}
    samples = result.context.samples
    near = {samples.paths[b] if samples.paths[b] in planted["near"] else samples.paths[a]
            for a, b, _ in checks["duplicates"].pairs_ if samples.splits[a] != samples.splits[b]}
    return {"near": near, "label": {issue.path for issue in checks["labels"].issues_},
            "outlier": {issue.path for issue in checks["outliers"].issues_}}


def brighten(rows: list[dict[str, str]], factor: float) -> None:
    for row in rows:
        if row["split"] == "val":
            with Image.open(row["path"]) as image:
                array = np.asarray(image.convert("L"), np.float32)
            Image.fromarray((array * factor).clip(0, 255).astype(np.uint8)).save(
                row["path"], format="JPEG" if row["path"].endswith(".jpg") else None, quality=95)


def val_shift(result) -> str:
    pairs = next(check for check in result.checks if check.name == "shift").summary_["pairs"]
    return "; ".join(f"{p['space']}: AUC {p['auc']:.3f} [{p['low']:.3f}, {p['high']:.3f}] ({p['difference']})"
                     for p in pairs if (p["a"], p["b"]) == ("train", "val"))


def neighbour_timing(n: int, dim: int, k: int, rng: np.random.Generator) -> float:
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    start = time.perf_counter()
    nearest(vectors, k)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--foreign", type=Path, default=DEFAULT_FOREIGN)
    parser.add_argument("--run", default=None, help="run folder whose embeddings the audit uses (default: none)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/winnow-audit-bench"))
    parser.add_argument("--near", type=int, default=20)
    parser.add_argument("--flip", type=float, default=0.03)
    parser.add_argument("--n-foreign", type=int, default=20)
    parser.add_argument("--synthetic", type=int, default=100_000, help="embeddings in the neighbour timing")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)
    rng = np.random.default_rng(args.seed)
    rows = copy_with_splits(args.data, args.work, args.seed)
    n_original = len(rows)
    planted = inject(rows, args.work, args.foreign, rng, n_near=args.near, flip_share=args.flip,
                     n_foreign=args.n_foreign)
    manifest = args.work / "data" / "manifest.csv"
    write_manifest(rows, manifest)
    print(f"{platform.node()}: {os.cpu_count()} cores; {args.data}: {n_original} images + {args.near} near copies "
          f"+ {args.n_foreign} foreign; {len(planted['label'])} flipped labels; run: {args.run or 'none'}")
    start = time.perf_counter()
    result = audit([str(manifest)], out=args.work / "audit", run=args.run, workers=args.workers, seed=args.seed)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("\n".join(result.lines()))
    print(f"audit wall time {wall:.1f} s for {len(rows)} images ({wall / len(rows) * 1e5 / 60:.1f} min per 100k "
          f"at this rate, neighbour search aside); peak RSS {peak:.0f} MiB")
    found = found_paths(result, planted)
    for kind in ("near", "label", "outlier"):
        print(f"{kind}: {scores(found[kind], planted[kind])}")
    print(f"shift train vs val before: {val_shift(result)}")
    brighten(rows, 1.2)
    after = audit([str(manifest)], out=args.work / "audit-bright", run=args.run, workers=args.workers,
                  seed=args.seed, checks=["shift"])
    print(f"shift train vs val after val x1.2: {val_shift(after)}")
    seconds = neighbour_timing(args.synthetic, args.dim, 5, rng)
    print(f"neighbour search: {args.synthetic} x {args.dim} float32 embeddings, k=5: {seconds:.1f} s")


if __name__ == "__main__":
    main()
