"""Embedding throughput: `winnow embed` img/s from real files vs the model-only forward pass.

Trains a one-epoch run on a slice of the data (the weights do not change the speed; training fills the
run's decoded-image caches), then times, in one process and alternately:

- embed, cold: `embed()` over a folder of N new image files (copies of the data's: listing, decoding with
  the header checks, preprocessing, the pre-logits forward pass, bad-file bookkeeping);
- embed, warm: the same call as `winnow embed` makes it on a folder of links to the images that training
  cached, read from the run's caches instead of decoded (the same bytes);
- model-only: loading the model and its pre-logits forward pass over the same N images, already
  preprocessed and normalised in memory (real images, not random tensors: the forward pass of
  resnet18 runs about 6% faster on them).

Prints the speeds, the ratios (target >= 0.9) and each side's process CPU time per image, which a
neighbouring job on the same cores disturbs less than the wall clock. Run:

    .venv/bin/python bench/embed.py [--data ../shared/data/chromosomes-qband/manifest.csv] [--images 1024]
        [--threads 1] [--run RUN]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import winnow
from winnow.data.dataset import ImageDataset
from winnow.data.splits import load_splits
from winnow.data.transforms import eval_transform
from winnow.embeddings.extract import embed
from winnow.models.embedding import EmbeddingModel
from winnow.runs.layout import RunPaths

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/chromosomes-qband/manifest.csv"
TARGET = 0.9
SIDES = ("cold", "warm", "model")


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
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--run", default=None, help="time this run folder instead of training one (its training "
                        "caches give the warm figure)")
    return parser.parse_args(argv)


def train_run(args: argparse.Namespace, out: Path) -> Path:
    config = winnow.Config(data=[args.data], model=args.model, img_size=args.img_size, epochs=args.train_epochs,
                           batch_size=args.batch_size, workers=args.workers, out=str(out), name="bench-embed",
                           progress=False, val_fraction=0.1, test_fraction=0.1, cache_dir=str(out / "cache"))
    return winnow.train(config).path


def timed(job: Callable[[], object]) -> tuple[float, float]:
    """Wall and process CPU seconds of `job()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    job()
    return time.perf_counter() - wall, time.process_time() - cpu


def embed_job(run: Path, folder: Path, count: int, args: argparse.Namespace, *, warm: bool) -> Callable[[], None]:
    def job() -> None:
        result = embed(run, folder, batch_size=args.batch_size, workers=args.workers, decoded_cache=warm)
        if len(result.paths) != count:
            raise SystemExit(f"embed read {len(result.paths)} of {count} images; the bench needs clean data")
    return job


def _flat_folder(paths: list[str], out: Path, *, copies: bool) -> Path:
    """A folder of unlabelled images (as `embed` reads any folder of images): copies of `paths`, or links.

    The cold side reads copies: a user's folder of new images holds files, and resolving a link per file
    would add a cost that only the bench's set-up made. The warm side reads links, which resolve to the
    files that training cached (its cost includes that resolution).
    """
    folder = out / ("copies" if copies else "links")
    folder.mkdir()
    for i, path in enumerate(paths):
        target = folder / f"{i:06d}{Path(path).suffix}"
        if copies:
            shutil.copyfile(path, target)
        else:
            target.symlink_to(path)
    return folder


def model_job(run: Path, batches: list[torch.Tensor]) -> Callable[[], None]:
    @torch.no_grad()
    def job() -> None:
        module = EmbeddingModel(winnow.load(run).model).eval()
        for batch in batches:
            module(batch)
    return job


def preprocessed_batches(run: Path, paths: list[str], batch_size: int) -> list[torch.Tensor]:
    """The images of `paths` as the model sees them `[B, C, S, S]` (decoded and normalised, not timed)."""
    spec = winnow.load(run).spec
    dataset = ImageDataset(paths, [-1] * len(paths), spec.preprocess(), eval_transform(spec.mean, spec.std))
    images = torch.stack([dataset[i][0] for i in range(len(paths))])
    return list(images.split(batch_size))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.data).exists():
        print(f"skipped: {args.data} is absent (see ../shared/data/README.md)")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        run = Path(args.run) if args.run else train_run(args, out)
        paths = _first_images(run, args.images)
        jobs = {"cold": embed_job(run, _flat_folder(paths, out, copies=True), len(paths), args, warm=False),
                "warm": embed_job(run, _flat_folder(paths, out, copies=False), len(paths), args, warm=True),
                "model": model_job(run, preprocessed_batches(run, paths, args.batch_size))}
        times = {side: [] for side in SIDES}
        for _ in range(args.repeats):
            for side in SIDES:
                times[side].append(timed(jobs[side]))
    report(times, len(paths), args)
    return 0


def _first_images(run: Path, count: int) -> list[str]:
    """`count` images of the run's splits (repeated when it has fewer)."""
    paths = load_splits(RunPaths(run).splits).paths
    return (paths * (count // len(paths) + 1))[:count] if len(paths) < count else paths[:count]


def report(times: dict[str, list[tuple[float, float]]], count: int, args: argparse.Namespace) -> None:
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, {args.model} {args.img_size}px batch {args.batch_size}, workers {args.workers}, {count} images")
    for i in range(len(times["model"])):
        (model_wall, model_cpu), line = times["model"][i], f"run {i + 1}:"
        for side in ("cold", "warm"):
            wall, cpu = times[side][i]
            line += f"  embed {side} {count / wall:6.1f} img/s ({1e3 * cpu / count:.2f} ms cpu/img)"
        print(f"{line}  model-only {count / model_wall:6.1f} img/s ({1e3 * model_cpu / count:.2f} ms cpu/img)")
    for side in ("cold", "warm"):
        ratios = [m[0] / e[0] for e, m in zip(times[side], times["model"])]
        cpu = [m[1] / e[1] for e, m in zip(times[side], times["model"])]
        print(f"{side}: ratio median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}); "
              f"cpu-time ratio median {statistics.median(cpu):.3f}; target >= {TARGET}")


if __name__ == "__main__":
    sys.exit(main())
