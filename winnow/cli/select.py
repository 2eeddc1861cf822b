"""`winnow select RUN --target T [--data VAL]`: copy the checkpoint that meets the target best to selected.pt."""

from __future__ import annotations

import argparse

from winnow.cli.eval import DATA_HELP, add_inference_flags, inference_settings
from winnow.evaluation.selection import select_checkpoint, selection_summary
from winnow.operating.targets import EXAMPLES


def add_parser(sub) -> None:
    parser = sub.add_parser("select", help="choose the checkpoint that meets an operating-point target best")
    parser.add_argument("run_dir", metavar="RUN", help="run folder from `winnow train`")
    parser.add_argument("--target", required=True, help=f"operating-point target, e.g. {EXAMPLES}")
    parser.add_argument("--data", default=None, help=DATA_HELP + "; default: the run's val split")
    parser.add_argument("--n-bootstrap", type=int, default=1000, help="bootstrap samples of the interval")
    add_inference_flags(parser)


def run(args: argparse.Namespace) -> int:
    record = select_checkpoint(args.run_dir, args.target, data=args.data, n_bootstrap=args.n_bootstrap,
                               **inference_settings(args))
    print("\n".join(selection_summary(record, args.run_dir)))
    return 0
