"""`winnow query RUN POOL --budget N --strategy NAME`: the unlabelled images worth labelling next.

`--random-arm` holds a share of the picks uniformly at random; `--previous` compares the previous
round's arms on the picks now labelled, printed and added to `query_rounds.csv` beside `--out`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from winnow.active.arm_report import ROUNDS_FILE, write_round
from winnow.active.arms import RANDOM_ARM, STRATEGY_ARM
from winnow.active.query import QueryResult, query, write_selection
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
    parser.add_argument("--random-arm", type=float, default=0.2, metavar="FRACTION",
                        help="share of the budget picked uniformly at random from the images the strategy did "
                             "not pick, to compare the strategy against (default: 0.2; 0: none)")
    parser.add_argument("--previous", default=None, metavar="CSV",
                        help="the previous round's to_label.csv: compare its arms on the images now labelled in "
                             "RUN's splits.csv; a row is added to query_rounds.csv beside --out")
    add_flags(parser, "checkpoint", *FLAGS)


def run(args: argparse.Namespace) -> int:
    result = query(args.run_dir, args.pool, args.budget, args.strategy, random_arm=args.random_arm,
                   previous=args.previous, seed=args.seed, max_cosine=args.max_cosine, checkpoint=args.checkpoint,
                   **settings_of(args, FLAGS))
    out = write_selection(result, args.out)
    print(f"wrote {len(result.selection.paths)} of {len(result.pool)} unlabelled images to {out} "
          f"({_arms(result)}; {result.excluded} pool images already labelled were left out)")
    if result.report is not None:
        print("\n".join(result.report.lines()))
        print(f"added the round to {write_round(result.report, Path(args.out).parent / ROUNDS_FILE)}")
    return 0


def _arms(result: QueryResult) -> str:
    counts = result.arm_counts()
    if RANDOM_ARM not in counts:
        return f"strategy {result.strategy}"
    return f"{counts.get(STRATEGY_ARM, 0)} by strategy {result.strategy}, {counts[RANDOM_ARM]} by the random arm"
