"""`winnow calibrate RUN [--data VAL] [--method temperature|vector]`: save RUN/calibration.json."""

from __future__ import annotations

import argparse

from winnow.cli.eval import DATA_HELP, add_inference_flags, inference_settings
from winnow.evaluation.calibrating import calibrate_run, calibration_summary
from winnow.operating.store import CALIBRATORS


def add_parser(sub) -> None:
    parser = sub.add_parser("calibrate", help="fit temperature or vector scaling on validation logits")
    parser.add_argument("run_dir", metavar="RUN", help="run folder from `winnow train`")
    parser.add_argument("--data", default=None, help=DATA_HELP + "; default: the run's val split")
    parser.add_argument("--method", default="temperature", choices=sorted(CALIBRATORS))
    parser.add_argument("--checkpoint", default="best", help="checkpoint name or .pt path (default: best)")
    add_inference_flags(parser)


def run(args: argparse.Namespace) -> int:
    result = calibrate_run(args.run_dir, data=args.data, method=args.method, checkpoint=args.checkpoint,
                           **inference_settings(args))
    print("\n".join(calibration_summary(result)))
    return 0
