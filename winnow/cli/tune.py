"""`winnow tune RUN --target T [--data VAL]`: fit the operating threshold, save RUN/thresholds.json."""

from __future__ import annotations

import argparse

from winnow.cli.eval import DATA_HELP, add_inference_flags, add_tta_flags, inference_settings
from winnow.evaluation.tuning import tune_run, tune_summary
from winnow.operating.targets import EXAMPLES


def add_parser(sub) -> None:
    parser = sub.add_parser("tune", help="tune the decision threshold to an operating-point target")
    parser.add_argument("run_dir", metavar="RUN", help="run folder from `winnow train`")
    parser.add_argument("--target", required=True, help=f"operating-point target, e.g. {EXAMPLES}")
    parser.add_argument("--data", default=None, help=DATA_HELP + "; default: the run's val split")
    parser.add_argument("--checkpoint", default="best", help="checkpoint name or .pt path (default: best)")
    parser.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap samples of the interval")
    parser.add_argument("--confidence", type=float, default=0.95, help="coverage of the interval")
    parser.add_argument("--min-support", type=int, default=20, help="warn below this many samples")
    add_tta_flags(parser)
    add_inference_flags(parser)


def run(args: argparse.Namespace) -> int:
    result = tune_run(args.run_dir, args.target, data=args.data, checkpoint=args.checkpoint, tta=args.tta,
                      tta_merge=args.tta_merge, n_bootstrap=args.n_bootstrap, confidence=args.confidence,
                      min_support=args.min_support, **inference_settings(args))
    print("\n".join(tune_summary(result)))
    return 0
