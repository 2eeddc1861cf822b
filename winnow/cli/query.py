"""`winnow query RUN POOL --budget N --strategy NAME`: the unlabelled images worth labelling next."""

from __future__ import annotations

import argparse

from winnow.active.query import query, write_selection
from winnow.active.registry import STRATEGIES
from winnow.cli.options import RUN_HELP, add_flags, settings_of

FLAGS = ("device", "batch_size", "workers")


def add_parser(sub) -> None:
    parser = sub.add_parser("query", help="pick the unlabelled images worth labelling next (active learning)")
    parser.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    parser.add_argument("pool", metavar="POOL", help="folder or CSV manifest of unlabelled images; images already "
                                                     "in the run's splits.csv are left out")
    parser.add_argument("--budget", type=int, required=True, metavar="N", help="images to pick")
    parser.add_argument("--strategy", default=None, choices=list(STRATEGIES),
                        help="query strategy (default: positive, most likely positive first, for a PU run; "
                             "margin otherwise)")
    parser.add_argument("--out", default="to_label.csv", metavar="CSV", help="output CSV (default: to_label.csv)")
    parser.add_argument("--seed", type=int, default=0, help="seed of ties, random picks and k-means (default: 0)")
    parser.add_argument("--max-cosine", type=float, default=0.99, metavar="COS",
                        help="two picks whose embedding cosine exceeds this are near-duplicates; one is "
                             "held back (default: 0.99)")
    add_flags(parser, "checkpoint", *FLAGS)


def run(args: argparse.Namespace) -> int:
    result = query(args.run_dir, args.pool, args.budget, args.strategy, seed=args.seed, max_cosine=args.max_cosine,
                   checkpoint=args.checkpoint, **settings_of(args, FLAGS))
    out = write_selection(result, args.out)
    print(f"wrote {len(result.selection.paths)} of {len(result.pool)} unlabelled images to {out} "
          f"(strategy {result.strategy}; {result.excluded} pool images already labelled were left out)")
    return 0
