"""`winnow predict RUN IMAGES...`: batched inference to a CSV."""

from __future__ import annotations

import argparse

from winnow.inference.predictor import load


def add_parser(sub) -> None:
    parser = sub.add_parser("predict", help="predict classes of images with a trained run")
    parser.add_argument("run_dir", metavar="RUN", help="run folder from `winnow train`")
    parser.add_argument("images", nargs="+", help="image files, folders or CSV manifests")
    parser.add_argument("--out", default="preds.csv", help="output CSV (default: preds.csv)")
    parser.add_argument("--checkpoint", default="best", help="best, last or a checkpoint path")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="auto")


def run(args: argparse.Namespace) -> int:
    predictor = load(args.run_dir, checkpoint=args.checkpoint, device=args.device)
    predictions = predictor.predict(args.images, batch_size=args.batch_size, workers=args.workers)
    predictions.to_csv(args.out)
    print(f"wrote {len(predictions.paths)} predictions to {args.out}"
          + (f" ({len(predictions.bad)} unreadable file(s) skipped)" if predictions.bad else ""))
    return 0
