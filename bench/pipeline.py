"""Input-pipeline benchmark: training img/s from real files (cache on / off) vs model-only img/s.

Model-only replays real batches of the cached loader that already sit on the device, in the same
precision (`--amp`, resolved as `winnow train` resolves it), so the ratio says how much the data
pipeline slows training. `--repeats` measures each setting that many times, interleaved, and the
target must hold in every repeat. The 1-minute load average is printed: other jobs on the machine
slow the pipeline (which needs spare cores) more than the model. Run:

    .venv/bin/python bench/pipeline.py [--data ../shared/data/chromosomes-qband/manifest.csv] [--workers 2]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from winnow.config import Config
from winnow.data.loader_workers import parse_workers
from winnow.data.prepare import build_spec, make_dataset, resolve_samples, train_loader, validate_samples
from winnow.losses import create_loss
from winnow.models.registry import create_model
from winnow.training.device import make_accelerator
from winnow.training.distributed import DistInfo
from winnow.training.engine import StepOptions, train_one_epoch
from winnow.training.optim import create_optimizer
from winnow.training.progress import Progress
from winnow.tasks.spec import build_tasks

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/chromosomes-qband/manifest.csv"
STORED_BATCHES = 8  # real batches that model-only replays


class Limited:
    """The first `steps` batches of an iterable, re-iterable."""

    def __init__(self, batches, steps: int) -> None:
        self.batches, self.steps = batches, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        return itertools.islice(self.batches, self.steps)


def epochs_of(loader):
    """Batches of epoch after epoch (unlike itertools.cycle, which replays stored batches)."""
    for epoch in itertools.count(1):
        loader.sampler.set_epoch(epoch)
        yield from loader


class StoredBatches:
    """Endless replays of the first `count` batches of `loader`, already on the device: model-only's input.

    Real (augmented) images, not random tensors: the model-only step is then the same arithmetic on the same
    kind of data as the pipeline's (resnet18's forward pass runs about 6% faster on real images, whose
    padding is zeros, than on random tensors, which flattered the ratios before).
    """

    def __init__(self, loader, count: int, device: torch.device) -> None:
        self.batches = [tuple(x.to(device) if torch.is_tensor(x) else x for x in batch)
                        for batch in itertools.islice(epochs_of(loader), count)]

    def __iter__(self):
        return itertools.cycle(self.batches)


def measure(model, loader, config: Config, accel, *, steps: int, warmup: int) -> float:
    """img/s of the training step over `steps` batches after `warmup` batches."""
    loss_fn = create_loss("ce", class_counts=[1] * model.num_classes)
    optimizer = create_optimizer(model, config)
    options = StepOptions()
    quiet = Progress(0, description="", enabled=False)
    train_one_epoch(model, Limited(loader, warmup), loss_fn, optimizer, None, accel, options, epoch=0, progress=quiet)
    if accel.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_one_epoch(model, Limited(loader, steps), loss_fn, optimizer, None, accel, options, epoch=0, progress=quiet)
    if accel.is_cuda:
        torch.cuda.synchronize()
    return steps * config.batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=parse_workers, default=Config.workers, help="as `winnow train` (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto", help="auto, bf16, fp16 or off, as `winnow train --amp`")
    args = parser.parse_args(argv)
    if not Path(args.data).exists():
        print(f"skipped: {args.data} is absent (real data lives in ../shared/data)")
        return 0
    cache_dir = Path(tempfile.mkdtemp(prefix="winnow-bench-"))
    config = Config(data=[args.data], model=args.model, img_size=args.img_size, batch_size=args.batch_size,
                    workers=args.workers, device=args.device, amp=args.amp, cache_dir=str(cache_dir), progress=False,
                    verify="header")
    accel = make_accelerator(config.device, config.amp, config.channels_last, DistInfo())
    samples, _, gray = validate_samples(resolve_samples(config), config)
    spec = build_spec(samples, config, grayscale_share=gray)
    train = samples.where_split("train")
    tasks = build_tasks(config, train.column)
    print(f"{len(train)} training images, {len(spec.classes)} classes, {args.img_size}px, in_chans={spec.in_chans}, "
          f"model {args.model}, batch {args.batch_size}, workers {args.workers}, device {accel.device}, "
          f"precision {accel.amp_dtype or torch.float32}, channels_last {accel.channels_last}, "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")

    def fresh_model():
        torch.manual_seed(0)
        model = create_model(args.model, num_classes=len(spec.classes), in_chans=spec.in_chans).to(accel.device)
        return model.to(memory_format=torch.channels_last) if accel.channels_last else model

    loaders = {}
    for label, cache in (("cache off", False), ("cache on", True)):
        dataset = make_dataset(train, spec, config.replace(cache=cache), tasks, train=True, cache_dir=cache_dir)
        loaders[label] = train_loader(dataset, config.replace(cache=cache), tasks, pin_memory=accel.is_cuda)
        if cache:  # fill the cache first: steady-state epochs read only the cache
            for i in range(len(dataset)):
                dataset.load_uint8(i)
    stored = StoredBatches(loaders["cache on"], STORED_BATCHES, accel.device)
    met = []
    for repeat in range(1, args.repeats + 1):
        results = {label: measure(fresh_model(), epochs_of(loader), config, accel, steps=args.steps, warmup=3)
                   for label, loader in loaders.items()}
        results["model only"] = measure(fresh_model(), stored, config, accel, steps=args.steps, warmup=3)
        print(f"run {repeat}/{args.repeats} (load average {os.getloadavg()[0]:.1f}):")
        for label, value in results.items():
            print(f"{label:>12}: {value:8.1f} img/s   ratio to model-only {value / results['model only']:.3f}")
        met.append(results["cache on"] >= 0.95 * results["model only"])
    shutil.rmtree(cache_dir, ignore_errors=True)
    print(f"target cache-on >= 0.95 x model-only: met in {sum(met)} of {len(met)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
