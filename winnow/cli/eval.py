"""`winnow eval RUN [DATA]`: metrics, plots and predictions of a run on labelled data."""

from __future__ import annotations

import argparse
import json
from typing import Any

from winnow.cli.options import (DATA_HELP, INFERENCE_FLAGS, OPERATING_FLAGS, RUN_HELP, TTA_FLAGS, add_flags,
                                operating_settings, settings_of)
from winnow.evaluation.checkpoints import evaluate_checkpoints, sweep_summary
from winnow.evaluation.runner import evaluate, evaluation_summary


def add_parser(sub) -> None:
    parser = sub.add_parser("eval", help="evaluate a run on labelled data: metrics, plots, predictions")
    parser.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    parser.add_argument("data", metavar="DATA", nargs="?", default=None, help=DATA_HELP + "; default: test split")
    add_flags(parser, "checkpoint", help_suffix={"checkpoint": "; all: every checkpoint"})
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    add_flags(parser, "embeddings", *TTA_FLAGS, *OPERATING_FLAGS, *INFERENCE_FLAGS)


def run(args: argparse.Namespace) -> int:
    tta, inference = settings_of(args, TTA_FLAGS), settings_of(args, INFERENCE_FLAGS)
    if args.checkpoint == "all":
        if args.thresholds or args.no_thresholds or args.no_calibration:
            raise ValueError("--checkpoint all uses the run's own thresholds.json and calibration.json; "
                             "drop --thresholds/--no-thresholds/--no-calibration")
        if args.embeddings:
            raise ValueError("--embeddings scores one checkpoint; drop --checkpoint all or name one checkpoint")
        sweep = evaluate_checkpoints(args.run_dir, args.data, plots=not args.no_plots, **tta, **inference)
        _print(sweep.rows, sweep_summary(sweep.rows) + [f"wrote {sweep.directory}"], as_json=args.json)
        return 0
    evaluation = evaluate(args.run_dir, args.data, checkpoint=args.checkpoint, plots=not args.no_plots,
                          embeddings=args.embeddings, **tta,
                          **operating_settings(args), **inference)
    lines = evaluation_summary(evaluation.metrics) + [f"wrote {evaluation.directory}"]
    _print(evaluation.metrics, lines, as_json=args.json)
    return 0


def _print(value: Any, lines: list[str], *, as_json: bool) -> None:
    print(json.dumps(value, indent=2) if as_json else "\n".join(lines))
