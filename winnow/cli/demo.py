"""`winnow demo`: generate the built-in synthetic microscopy set, train on it, report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from winnow.config import Config
from winnow.data.synthetic import make_demo_dataset
from winnow.training.trainer import train

# Measured over seeds 0-2 (test macro-F1 0.978, 1.000, 0.919; about 50 s of training on 2 cores).
DEMO_RECIPE = dict(model="resnet18", img_size=48, epochs=15, batch_size=32, lr=2e-3, workers=0,
                   sampler="sqrt", class_weights="none", rotate=180.0)


def add_parser(sub) -> None:
    parser = sub.add_parser("demo", help="train on a built-in synthetic microscopy dataset")
    parser.add_argument("--out", default="runs", help="where the data and run go (default: runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    manifest = make_demo_dataset(Path(args.out) / "demo-data", seed=args.seed)
    print(f"demo data: {manifest} (chromosome / blood_cell / debris, about 70/20/10, a few wrong labels)")
    config = Config(data=[str(manifest)], out=args.out, name="demo", seed=args.seed,
                    progress=args.progress, **DEMO_RECIPE)
    result = train(config)
    test = result.test_metrics or {}
    print(f"\ndemo finished in {time.perf_counter() - start:.0f}s; run folder: {result.path}")
    print("test: " + "  ".join(f"{k.removeprefix('test_')} {v:.3f}" for k, v in test.items()))
    print(f"predict with: winnow predict {result.path} {Path(args.out) / 'demo-data' / 'images'}")
    return 0
