"""`winnow eval RUN [DATA]`: metrics, plots and predictions of a run on labelled data.

Also holds the flags shared by predict, tune, calibrate and select (inference, TTA, operating files).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from winnow.evaluation.checkpoints import evaluate_checkpoints, sweep_summary
from winnow.evaluation.runner import evaluate, evaluation_summary
from winnow.inference.tta import MERGES

DATA_HELP = ("labelled data: a folder of class folders, a split tree, a CSV manifest, or train/val/test "
             "(that split of the run)")


def add_inference_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1...")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)


def add_tta_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tta", default=None, help="test-time augmentation: flips, d4 or N random views")
    parser.add_argument("--tta-merge", default="mean", choices=MERGES, help="merge views by mean or geometric mean")


def add_operating_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--thresholds", default=None, metavar="PATH",
                        help="thresholds file to apply (default: RUN/thresholds.json when present)")
    parser.add_argument("--no-thresholds", action="store_true", help="ignore RUN/thresholds.json")
    parser.add_argument("--no-calibration", action="store_true", help="ignore RUN/calibration.json")


def operating_settings(args: argparse.Namespace) -> dict[str, Any]:
    """`calibration=` and `thresholds=` arguments of `winnow.load` from the flags."""
    thresholds = args.thresholds if args.thresholds else not args.no_thresholds
    return {"calibration": not args.no_calibration, "thresholds": thresholds}


def inference_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"device": args.device, "batch_size": args.batch_size, "workers": args.workers}


def add_parser(sub) -> None:
    parser = sub.add_parser("eval", help="evaluate a run on labelled data: metrics, plots, predictions")
    parser.add_argument("run_dir", metavar="RUN", help="run folder from `winnow train`")
    parser.add_argument("data", metavar="DATA", nargs="?", default=None, help=DATA_HELP + "; default: test split")
    parser.add_argument("--checkpoint", default="best",
                        help="best, last, another checkpoint name, a .pt path, or all (every checkpoint)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    add_tta_flags(parser)
    add_operating_flags(parser)
    add_inference_flags(parser)


def run(args: argparse.Namespace) -> int:
    tta = {"tta": args.tta, "tta_merge": args.tta_merge}
    if args.checkpoint == "all":
        if args.thresholds or args.no_thresholds or args.no_calibration:
            raise ValueError("--checkpoint all uses the run's own thresholds.json and calibration.json; "
                             "drop --thresholds/--no-thresholds/--no-calibration")
        sweep = evaluate_checkpoints(args.run_dir, args.data, plots=not args.no_plots, **tta,
                                     **inference_settings(args))
        _print(sweep.rows, sweep_summary(sweep.rows) + [f"wrote {sweep.directory}"], as_json=args.json)
        return 0
    evaluation = evaluate(args.run_dir, args.data, checkpoint=args.checkpoint, plots=not args.no_plots, **tta,
                          **operating_settings(args), **inference_settings(args))
    lines = evaluation_summary(evaluation.metrics) + [f"wrote {evaluation.directory}"]
    _print(evaluation.metrics, lines, as_json=args.json)
    return 0


def _print(value: Any, lines: list[str], *, as_json: bool) -> None:
    print(json.dumps(value, indent=2) if as_json else "\n".join(lines))
