"""Embedding throughput: `winnow embed` img/s from real files vs the model-only forward pass.

Trains a one-epoch run on a slice of the data (the weights do not change the speed), then times,
in one process and alternately, (a) `embed()` over N images read from disk (header scan, decode,
preprocessing, the pre-logits forward pass, bad-file bookkeeping) and (b) the same model's pre-logits
forward pass over random tensors of the same batch shape already in memory. Prints both and the
ratio; the target is >= 0.9. Run:

    .venv/bin/python bench/embed.py [--data ../shared/data/chromosomes-qband/manifest.csv] [--images 1024]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import winnow
from winnow.data.splits import load_splits
from winnow.embeddings.extract import embed
from winnow.models.embedding import EmbeddingModel
from winnow.runs.layout import RunPaths

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/chromosomes-qband/manifest.csv"
TARGET = 0.9


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--images", type=int, default=1024, help="images embedded per timing")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-epochs", type=int, default=1)
    return parser.parse_args(argv)


def train_run(args: argparse.Namespace, out: Path) -> Path:
    config = winnow.Config(data=[args.data], model=args.model, img_size=args.img_size, epochs=args.train_epochs,
                           batch_size=args.batch_size, workers=args.workers, out=str(out), name="bench-embed",
                           progress=False, val_fraction=0.1, test_fraction=0.1, cache_dir=str(out / "cache"))
    return winnow.train(config).path


def time_embed(run: Path, paths: list[str], args: argparse.Namespace, out: Path) -> float:
    folder = _flat_folder(paths, out)
    start = time.perf_counter()
    result = embed(run, folder, batch_size=args.batch_size, workers=args.workers)
    seconds = time.perf_counter() - start
    if len(result.paths) != len(paths):
        raise SystemExit(f"embed read {len(result.paths)} of {len(paths)} images; the bench needs clean data")
    return len(paths) / seconds


def _flat_folder(paths: list[str], out: Path) -> Path:
    """A folder of links to `paths` (unlabelled images, as `embed` reads any folder of images)."""
    folder = out / "images"
    if not folder.exists():
        folder.mkdir()
        for i, path in enumerate(paths):
            (folder / f"{i:06d}{Path(path).suffix}").symlink_to(path)
    return folder


@torch.no_grad()
def time_model_only(run: Path, count: int, args: argparse.Namespace) -> float:
    predictor = winnow.load(run)
    module = EmbeddingModel(predictor.model).eval()
    batch = torch.randn(args.batch_size, predictor.spec.in_chans, args.img_size, args.img_size)
    start, done = time.perf_counter(), 0
    while done < count:
        module(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.data).exists():
        print(f"skipped: {args.data} is absent (see ../shared/data/README.md)")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        run = train_run(args, out)
        paths = _first_images(run, args.images)
        embed_rates, model_rates = [], []
        for _ in range(args.repeats):
            embed_rates.append(time_embed(run, paths, args, out))
            model_rates.append(time_model_only(run, len(paths), args))
    report(embed_rates, model_rates, args)
    return 0


def _first_images(run: Path, count: int) -> list[str]:
    """`count` images of the run's splits (repeated when it has fewer)."""
    paths = load_splits(RunPaths(run).splits).paths
    return (paths * (count // len(paths) + 1))[:count] if len(paths) < count else paths[:count]


def report(embed_rates: list[float], model_rates: list[float], args: argparse.Namespace) -> None:
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, {args.model} {args.img_size}px batch {args.batch_size}, workers {args.workers}")
    for i, (e, m) in enumerate(zip(embed_rates, model_rates), start=1):
        print(f"run {i}: embed {e:7.1f} img/s   model-only {m:7.1f} img/s   ratio {e / m:.3f}")
    ratios = [e / m for e, m in zip(embed_rates, model_rates)]
    print(f"ratio median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
          f"target >= {TARGET}")


if __name__ == "__main__":
    sys.exit(main())
