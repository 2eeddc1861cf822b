"""`winnow predict RUN IMAGES...`: batched inference to a CSV (with the run's calibration and thresholds)."""

from __future__ import annotations

import argparse

from winnow.cli.eval import add_operating_flags, add_tta_flags, operating_settings
from winnow.inference.postprocess import describe_decision
from winnow.inference.loading import load


def add_parser(sub) -> None:
    parser = sub.add_parser("predict", help="predict classes of images with a trained run")
    parser.add_argument("run_dir", metavar="RUN", help="run folder from `winnow train`")
    parser.add_argument("images", nargs="+", help="image files, folders or CSV manifests")
    parser.add_argument("--out", default="preds.csv", help="output CSV (default: preds.csv)")
    parser.add_argument("--checkpoint", default="best", help="best, last, another checkpoint name or a .pt path")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="auto")
    add_tta_flags(parser)
    add_operating_flags(parser)


def run(args: argparse.Namespace) -> int:
    predictor = load(args.run_dir, checkpoint=args.checkpoint, device=args.device, **operating_settings(args))
    predictions = predictor.predict(args.images, batch_size=args.batch_size, workers=args.workers,
                                    tta=args.tta, tta_merge=args.tta_merge)
    predictions.to_csv(args.out)
    print(f"wrote {len(predictions.paths)} predictions to {args.out}"
          + (f" ({len(predictions.bad)} unreadable file(s) skipped)" if predictions.bad else ""))
    if len(predictor.tasks) == 1:
        calibrated = f"; probabilities calibrated by {predictor.calibration_file}" if predictor.calibration else ""
        tta = f"; TTA {predictions.tta.label}" if predictions.tta.label else ""
        print(f"decision: {describe_decision(predictor.head, predictor.decision)}{calibrated}{tta}")
    return 0
