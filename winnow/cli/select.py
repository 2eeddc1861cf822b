"""`winnow select RUN --target T [--data VAL]`: copy the checkpoint that meets the target best to selected.pt.

On a PU run's own split: `winnow select RUN [--metric pu_auc|pu_recall]` or `--target "recall(P)>=x"`.
"""

from __future__ import annotations

import argparse

from winnow.cli.options import DATA_HELP, INFERENCE_FLAGS, INTERVAL_FLAGS, RUN_HELP, add_flags, settings_of
from winnow.evaluation.pu_split import PU_METRICS
from winnow.evaluation.selection import select_checkpoint, selection_summary
from winnow.operating.targets import EXAMPLES


def add_parser(sub) -> None:
    parser = sub.add_parser("select", help="choose the checkpoint that meets an operating-point target best")
    parser.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    parser.add_argument("--target", help=f"operating-point target, e.g. {EXAMPLES}; on a positive-unlabelled "
                        "run's own split only recall(POSITIVE)>=x (the fewest unlabelled images flagged at it)")
    parser.add_argument("--metric", help=f"positive-unlabelled run's own split only, instead of --target: pick the "
                        f"checkpoint with the best {' or '.join(PU_METRICS)} (default {PU_METRICS[0]})")
    parser.add_argument("--data", default=None, help=DATA_HELP + "; default: the run's val split")
    add_flags(parser, *INTERVAL_FLAGS, *INFERENCE_FLAGS)


def run(args: argparse.Namespace) -> int:
    record = select_checkpoint(args.run_dir, args.target, data=args.data, metric=args.metric,
                               **settings_of(args, INTERVAL_FLAGS), **settings_of(args, INFERENCE_FLAGS))
    print("\n".join(selection_summary(record, args.run_dir)))
    return 0
