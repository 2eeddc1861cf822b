"""`winnow tune RUN --target T [--data VAL]`: fit the operating threshold, save RUN/thresholds.json."""

from __future__ import annotations

import argparse

from winnow.cli.options import (DATA_HELP, INFERENCE_FLAGS, INTERVAL_FLAGS, RUN_HELP, TTA_FLAGS, add_flags,
                                settings_of)
from winnow.evaluation.tuning import tune_run, tune_summary
from winnow.operating.targets import EXAMPLES


def add_parser(sub) -> None:
    parser = sub.add_parser("tune", help="tune the decision threshold to an operating-point target")
    parser.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    parser.add_argument("--target", required=True, help=f"operating-point target, e.g. {EXAMPLES}")
    parser.add_argument("--data", default=None, help=DATA_HELP + "; default: the run's val split")
    add_flags(parser, "checkpoint", *INTERVAL_FLAGS, *TTA_FLAGS, *INFERENCE_FLAGS)


def run(args: argparse.Namespace) -> int:
    result = tune_run(args.run_dir, args.target, data=args.data, checkpoint=args.checkpoint,
                      **settings_of(args, TTA_FLAGS), **settings_of(args, INTERVAL_FLAGS),
                      **settings_of(args, INFERENCE_FLAGS))
    print("\n".join(tune_summary(result)))
    return 0
