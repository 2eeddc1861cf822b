"""Does winnow's default generalize? winnow's default vs a plain script vs timm's train.py.

Five real sets (from ../shared/data, plus Fashion-MNIST from the Debian package
`dataset-fashion-mnist`); one split per (set, seed) drawn once with winnow's own split code
(`winnow.data.splits.assign_splits`: stratified, by group where the set has groups; hep2-cells
keeps its own train/val/test column) and written as a manifest that every method reads, so data,
split, model (resnet18 from scratch), image size (64), batch (64) and epochs are the same.

Methods:
- winnow: `winnow train MANIFEST` with its defaults (only seed, epochs and workers given).
- plain: `bench/plain.py` (AdamW + one-cycle, whole-batch flips, label smoothing 0.1).
- plain-eqcpu: `bench/plain.py` given the CPU seconds of the same seed's winnow run: its epochs
  are the base epochs scaled by winnow's / plain's measured CPU seconds.
- timm: timm's `train.py` (not in the pip package: see README) with its defaults, on ImageFolder
  symlink trees of the same split; its best checkpoint is scored here on the test split.
- winnow-NAME: `winnow train` with extra flags, declared with `--variant NAME="--flag value ..."`:
  how a candidate change of the default is measured on every set before it becomes the default.

Each cell (set, method, epochs, seed) writes `WORK/results/<cell>.json` and is skipped when that
file exists, so the grid can be stopped and resumed. CPU seconds are user + sys of the run and its
data-loader workers. Run:

    python bench/generalization.py --work /work/bench-work --epochs 15 --seeds 0 1 2 \
        --methods winnow plain plain-eqcpu [--timm-train /path/to/pytorch-image-models/train.py]
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import json
import os
import platform
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from harness import METRICS, ROOT, SHARED, mean_std, run_measured, winnow_test_metrics, winnow_train_command
from winnow.config import Config
from winnow.data.loader_workers import parse_workers

FMNIST = Path("/usr/share/datasets/fashion-mnist")
FMNIST_CLASSES = ("T-shirt-top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                  "Ankle-boot")
FMNIST_SUBSET = 6000
COMMON = ["--model", "resnet18", "--img-size", "64", "--batch-size", "64"]
METHODS = ("winnow", "plain", "plain-eqcpu", "timm")
DATASETS = ("bccd-wbc", "mitocheck-nuclei", "fashion-mnist-6000", "hep2-cells", "chromosomes-qband")


def fmnist_subset(work: Path, *, size: int = FMNIST_SUBSET, seed: int = 0) -> Path | None:
    """A seeded, stratified `size`-image subset of Fashion-MNIST's training file as PNGs + manifest."""
    manifest = work / f"fashion-mnist-{size}" / "manifest.csv"
    if manifest.exists():
        return manifest
    if not (FMNIST / "train-images-idx3-ubyte.gz").exists():
        return None
    images = np.frombuffer(gzip.open(FMNIST / "train-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    labels = np.frombuffer(gzip.open(FMNIST / "train-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    images = images.reshape(len(labels), 28, 28)
    rng = np.random.default_rng(seed)
    per_class = size // len(FMNIST_CLASSES)
    picked = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                             for c in range(len(FMNIST_CLASSES))])
    rows = []
    for index in sorted(picked):
        name = FMNIST_CLASSES[labels[index]]
        path = manifest.parent / "images" / name / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[index]).save(path)
        rows.append((str(path), name))
    write_csv(manifest, ["path", "label"], rows)
    return manifest


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    """Write a small CSV, replacing the file only once it is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    partial.replace(path)


def source_of(dataset: str, work: Path) -> Path | None:
    """Where a set's images are listed (manifest or ImageFolder), or None when it is absent."""
    if dataset == "fashion-mnist-6000":
        return fmnist_subset(work)
    path = SHARED / dataset
    manifest = path / "manifest.csv"
    return manifest if manifest.exists() else (path if path.is_dir() else None)


def split_manifest(dataset: str, seed: int, work: Path) -> Path | None:
    """The (set, seed) split, drawn once with winnow's split code: `path,label,split,group`."""
    from winnow.data.splits import assign_splits, save_splits

    out = work / "splits" / f"{dataset}-s{seed}.csv"
    if not out.exists():
        source = source_of(dataset, work)
        if source is None:
            return None
        out.parent.mkdir(parents=True, exist_ok=True)
        save_splits(assign_splits([str(source)], seed=seed), out)
    return out


def read_rows(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="") as handle:
        return list(csv.DictReader(handle))


def run_winnow(manifest: Path, cell: str, *, seed: int, epochs: int, work: Path, args,
               extra: tuple[str, ...] = ()) -> dict:
    """`winnow train` with its defaults (plus a variant's `extra` flags); test metrics of its best checkpoint."""
    out = work / "runs"
    shutil.rmtree(out / cell, ignore_errors=True)  # a cell stopped half-way starts again
    command = winnow_train_command(str(manifest), [*COMMON, *extra], seed=seed, epochs=epochs, out=out, name=cell,
                                   workers=args.workers, device="cpu")
    measured = check(run_measured(command, log=work / "logs" / f"{cell}.log"), cell, work)
    return {**winnow_test_metrics(out / cell), "cpu_s": measured.cpu_s, "wall_s": measured.wall_s}


def run_plain(manifest: Path, cell: str, *, seed: int, epochs: int, work: Path, args) -> dict:
    """`bench/plain.py` on the same manifest."""
    result_file = work / "runs" / f"{cell}.plain.json"
    result_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(ROOT / "bench" / "plain.py"), str(manifest), "--epochs", str(epochs),
               "--seed", str(seed), "--json", str(result_file)]
    measured = check(run_measured(command, log=work / "logs" / f"{cell}.log"), cell, work)
    plain = json.loads(result_file.read_text())
    return {**{k: plain[k] for k in METRICS}, "cpu_s": measured.cpu_s, "wall_s": measured.wall_s,
            "best_epoch": plain["best_epoch"]}


def run_timm(manifest: Path, cell: str, *, seed: int, epochs: int, work: Path, args) -> dict:
    """timm's train.py with its defaults on symlink trees of the split; its best checkpoint scored on test."""
    if args.timm_train is None or not Path(args.timm_train).is_file():
        raise FileNotFoundError(f"--timm-train {args.timm_train}: timm's train.py not found (see README)")
    root, class_map = image_folders(manifest, work / "timm-data" / manifest.stem)
    out = work / "runs" / "timm"
    shutil.rmtree(out / cell, ignore_errors=True)
    classes = class_map.read_text().split()
    command = [sys.executable, str(args.timm_train), str(root), "--model", "resnet18", "--num-classes",
               str(len(classes)), "--img-size", "64", "-b", "64", "--epochs", str(epochs), "--seed", str(seed),
               "--device", "cpu", "-j", str(args.timm_workers), "--class-map", str(class_map), "--output", str(out),
               "--experiment", cell]
    measured = check(run_measured(command, log=work / "logs" / f"{cell}.log"), cell, work)
    metrics = score_timm(out / cell / "model_best.pth.tar", root / "test", class_map)
    return {**metrics, "cpu_s": measured.cpu_s, "wall_s": measured.wall_s}


def image_folders(manifest: Path, root: Path) -> tuple[Path, Path]:
    """`root/{train,validation,test}/<class>/` symlink trees of a split manifest, and a class map file."""
    rows = read_rows(manifest)
    class_map = root / "classes.txt"
    if not class_map.exists():
        names = {"train": "train", "val": "validation", "test": "test"}
        for i, row in enumerate(rows):
            link = root / names[row["split"]] / row["label"] / f"{i:06d}{Path(row['path']).suffix}"
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(row["path"])
        # one class order for every split, even where a split lacks a rare class
        class_map.write_text("\n".join(sorted({r["label"] for r in rows if r["split"] == "train"})) + "\n")
    return root, class_map


def score_timm(checkpoint: Path, test_dir: Path, class_map: Path) -> dict[str, float]:
    """Test metrics of a timm train.py checkpoint, with timm's own eval transform."""
    import timm
    from timm.data import create_dataset, create_transform, resolve_data_config
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    classes = class_map.read_text().split()
    model = timm.create_model("resnet18", num_classes=len(classes))
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"])
    model.eval()
    transform = create_transform(**resolve_data_config({"input_size": (3, 64, 64)}, model=model))
    dataset = create_dataset("", root=str(test_dir), class_map=str(class_map), transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=256)
    truth, predicted = [], []
    with torch.no_grad():
        for images, labels in loader:
            truth.append(labels)
            predicted.append(model(images).argmax(1))
    truth, predicted = torch.cat(truth).numpy(), torch.cat(predicted).numpy()
    return {"accuracy": float(accuracy_score(truth, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
            "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0))}


def check(measured, cell: str, work: Path):
    """Raise with the log's tail when a run failed."""
    if measured.returncode != 0:
        tail = (work / "logs" / f"{cell}.log").read_text()[-3000:]
        raise RuntimeError(f"{cell} failed (exit {measured.returncode}):\n{tail}")
    return measured


RUNNERS: dict[str, Callable[..., dict]] = {"winnow": run_winnow, "plain": run_plain, "timm": run_timm}


def cell_name(dataset: str, method: str, epochs: int, seed: int) -> str:
    return f"{dataset}-{method}-e{epochs}-s{seed}"


def equal_cpu_epochs(dataset: str, epochs: int, seed: int, results: Path) -> int | None:
    """Epochs that give plain.py the CPU seconds of winnow's run (None until both base runs exist)."""
    files = [results / f"{cell_name(dataset, m, epochs, seed)}.json" for m in ("winnow", "plain")]
    if not all(f.exists() for f in files):
        return None
    winnow, plain = (json.loads(f.read_text()) for f in files)
    return max(1, round(epochs * winnow["cpu_s"] / plain["cpu_s"]))


def run_cell(dataset: str, method: str, seed: int, args) -> None:
    """Run one cell unless its result exists; print one line either way."""
    work = Path(args.work)
    results = work / "results"
    cell = cell_name(dataset, method, args.epochs, seed)
    if (results / f"{cell}.json").exists():
        return
    manifest = split_manifest(dataset, seed, work)
    if manifest is None:
        print(f"skipped {dataset}: its data is absent", flush=True)
        return
    epochs, runner = args.epochs, RUNNERS.get(method)
    if method in args.variant_flags:
        runner = functools.partial(run_winnow, extra=args.variant_flags[method])
    if method == "plain-eqcpu":
        epochs, runner = equal_cpu_epochs(dataset, args.epochs, seed, results), run_plain
        if epochs is None:
            print(f"skipped {cell}: needs the winnow and plain cells of the same seed first", flush=True)
            return
    start, load_before = time.time(), os.getloadavg()[0]
    result = runner(manifest, cell, seed=seed, epochs=epochs, work=work, args=args)
    # the 1-minute load average around the run: other jobs on the machine inflate CPU seconds too
    result.update(dataset=dataset, method=method, base_epochs=args.epochs, epochs=epochs, seed=seed,
                  load=[round(load_before, 1), round(os.getloadavg()[0], 1)],
                  **({"flags": list(args.variant_flags[method])} if method in args.variant_flags else {}))
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{cell}.json").write_text(json.dumps(result, indent=2))
    print(f"done {cell}: balanced acc. {result['balanced_accuracy']:.3f}, cpu {result['cpu_s']:.0f} s, "
          f"wall {time.time() - start:.0f} s", flush=True)


def collect(results: Path) -> dict[tuple[str, str, int], list[dict]]:
    """(set, method, base epochs) -> the seeds' results, each with `img_per_s` (training images x epochs / wall s)."""
    cells: dict[tuple[str, str, int], list[dict]] = {}
    for file in sorted(results.glob("*.json")):
        result = json.loads(file.read_text())
        split = results.parent / "splits" / f"{result['dataset']}-s{result['seed']}.csv"
        if split.exists():
            n_train = sum(row["split"] == "train" for row in read_rows(split))
            result["img_per_s"] = n_train * result["epochs"] / result["wall_s"]
        cells.setdefault((result["dataset"], result["method"], result["base_epochs"]), []).append(result)
    return cells


def method_label(method: str, epochs: int, runs: list[dict]) -> str:
    if method == "plain-eqcpu":
        return f"plain, winnow's CPU time ({'/'.join(str(r['epochs']) for r in runs)} ep.)"
    flags = runs[0].get("flags")
    return f"{method} (`{' '.join(flags)}`), {epochs} ep." if flags else f"{method}, {epochs} ep."


def method_order(method: str) -> int:
    """Table order: the fixed methods first, then the variants."""
    return METHODS.index(method) if method in METHODS else len(METHODS)


def markdown(cells: dict[tuple[str, str, int], list[dict]], header: str) -> str:
    """The results table (mean ± std over seeds) and the mean balanced accuracy per method."""
    lines = [header, "", "| data | method | seeds | accuracy | balanced acc. | macro-F1 | CPU s | wall s | img/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    order = {name: i for i, name in enumerate(DATASETS)}
    for (dataset, method, epochs), runs in sorted(cells.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][2],
                                                                                method_order(kv[0][1]))):
        metrics = " | ".join(mean_std([r[k] for r in runs]) for k in METRICS)
        seeds = ",".join(str(r["seed"]) for r in sorted(runs, key=lambda r: r["seed"]))
        cpu, wall, rate = (np.mean([r.get(k, np.nan) for r in runs]) for k in ("cpu_s", "wall_s", "img_per_s"))
        lines.append(f"| {dataset} | {method_label(method, epochs, runs)} | {seeds} | {metrics} | {cpu:.0f} | {wall:.0f} "
                     f"| {rate:.0f} |")
    return "\n".join(lines + ["", *summary_lines(cells)]) + "\n"


def summary_lines(cells: dict[tuple[str, str, int], list[dict]]) -> list[str]:
    """Mean balanced accuracy of each method over the sets where every listed method has results."""
    methods = sorted({(m, e) for _, m, e in cells}, key=lambda me: (me[1], method_order(me[0])))
    lines = ["| method | sets | mean balanced acc. over those sets | winnow minus it |", "| --- | --- | --- | --- |"]
    for method, epochs in methods:
        sets = [d for d in DATASETS if (d, method, epochs) in cells and (d, "winnow", epochs) in cells]
        if not sets:
            continue
        mean = lambda m: np.mean([np.mean([r["balanced_accuracy"] for r in cells[(d, m, epochs)]]) for d in sets])
        lines.append(f"| {method}, {epochs} ep. base | {len(sets)} | {mean(method):.3f} | "
                     f"{mean('winnow') - mean(method):+.3f} |")
    return lines


def header(args) -> str:
    import timm

    return (f"Generalization benchmark: resnet18 from scratch, 64 px, batch 64, CPU only "
            f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads), "
            f"torch {torch.__version__}, timm {timm.__version__}; mean ± std over the seeds listed; "
            f"CPU s = user + sys of the run and its data-loader workers; img/s = training images x epochs / wall s "
            f"(the whole command: start-up, evaluation and test included).")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/winnow-bench-generalization", help="outside the repository")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "generalization.md"))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--methods", nargs="+", default=["winnow", "plain", "plain-eqcpu"],
                        help=f"of {', '.join(METHODS)} and winnow-NAME for each --variant NAME")
    parser.add_argument("--variant", action="append", default=[], metavar='NAME="FLAGS"',
                        help="a candidate change of winnow's default, run as method winnow-NAME, e.g. "
                             'light="--rotate 0 --scale-jitter 0"')
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--workers", type=parse_workers, default=Config.workers,
                        help="winnow's --workers (default: %(default)s, winnow's default)")
    parser.add_argument("--timm-workers", type=int, default=2, help="timm's -j (default: 2, one per core here)")
    parser.add_argument("--timm-train", help="timm's train.py (from a pytorch-image-models checkout)")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the table from the results")
    return parser.parse_args(argv)


def variant_flags(specs: list[str], methods: list[str]) -> dict[str, tuple[str, ...]]:
    """`NAME=FLAGS` specs -> {"winnow-NAME": flags}; every method must be known."""
    variants = {}
    for spec in specs:
        name, sep, flags = spec.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f'--variant {spec!r}: expected NAME="--flag value ...", e.g. light="--rotate 0"')
        variants[f"winnow-{name.strip()}"] = tuple(shlex.split(flags))
    unknown = [m for m in methods if m not in METHODS and m not in variants]
    if unknown:
        raise SystemExit(f"--methods {unknown}: unknown; valid: {', '.join([*METHODS, *variants])}")
    return variants


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.variant_flags = variant_flags(args.variant, args.methods)
    if not SHARED.exists():
        print(f"skipped: {SHARED} is absent (real data lives in ../shared/data)")
        return 0
    results = Path(args.work) / "results"
    if not args.table_only:
        # seed-major, methods interleaved per set, so machine load hits every method alike
        for seed in args.seeds:
            for dataset in args.datasets:
                for method in args.methods:
                    run_cell(dataset, method, seed, args)
    cells = collect(results) if results.exists() else {}
    table = markdown(cells, header(args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table)
    Path(args.out).with_suffix(".json").write_text(json.dumps([r for runs in cells.values() for r in runs], indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
