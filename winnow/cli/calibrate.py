"""`winnow calibrate RUN [--data VAL] [--method temperature|vector]`: save RUN/calibration.json."""

from __future__ import annotations

import argparse

from winnow.calibration.store import CALIBRATORS
from winnow.cli.options import DATA_HELP, INFERENCE_FLAGS, RUN_HELP, add_flags, settings_of
from winnow.evaluation.calibrating import calibrate_run, calibration_summary


def add_parser(sub) -> None:
    parser = sub.add_parser("calibrate", help="fit temperature or vector scaling on validation logits")
    parser.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    parser.add_argument("--data", default=None, help=DATA_HELP + "; default: the run's val split")
    parser.add_argument("--method", default="temperature", choices=sorted(CALIBRATORS))
    add_flags(parser, "checkpoint", *INFERENCE_FLAGS)


def run(args: argparse.Namespace) -> int:
    result = calibrate_run(args.run_dir, data=args.data, method=args.method, checkpoint=args.checkpoint,
                           **settings_of(args, INFERENCE_FLAGS))
    print("\n".join(calibration_summary(result)))
    return 0
