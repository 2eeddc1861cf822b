"""`winnow audit DATA [--run RUN] [--out DIR] [--fix]`: what is wrong with a dataset, before training on it."""

from __future__ import annotations

import argparse

from winnow.audit.registry import CHECKS
from winnow.audit.runner import audit
from winnow.cli.options import add_flags


def add_parser(sub) -> None:
    parser = sub.add_parser("audit", help="find unreadable files, duplicates, leaks, label issues, outliers, "
                                          "quality problems and shift in a dataset")
    parser.add_argument("data", nargs="+", help="ImageFolder tree, split tree or CSV manifest(s), as for train")
    parser.add_argument("--run", metavar="RUN", default=None,
                        help="run folder whose model embeds the images (default: simple image features)")
    parser.add_argument("--out", metavar="DIR", default="audit", help="output folder (default: ./audit)")
    parser.add_argument("--fix", action="store_true",
                        help="also write clean_manifest.csv (unreadable files, exact duplicates and leaks removed) "
                             "and review.csv (label candidates and outliers, ranked); DATA is never changed")
    parser.add_argument("--folds", metavar="K", type=int, default=5,
                        help="cross-validation folds of the out-of-sample probabilities (default: 5)")
    parser.add_argument("--checks", nargs="+", metavar="NAME", default=None,
                        help=f"checks to run (default: all): {', '.join(CHECKS)}")
    parser.add_argument("--seed", type=int, default=0, help="split assignment, as train --seed (default: 0)")
    add_flags(parser, "checkpoint", "min_support", "device", "batch_size")
    parser.add_argument("--threads", metavar="N", type=int, default=2,
                        help="threads that decode the images (and cleanvision's processes) (default: 2)")


def run(args: argparse.Namespace) -> int:
    if args.folds < 2:
        raise ValueError(f"--folds: expected at least 2 cross-validation folds, got {args.folds}")
    result = audit(args.data, out=args.out, run=args.run, checks=args.checks, fix=args.fix, folds=args.folds,
                   min_support=args.min_support, seed=args.seed, checkpoint=args.checkpoint, device=args.device,
                   batch_size=args.batch_size, workers=args.threads)
    print("\n".join(result.lines()))
    print(f"wrote {', '.join(str(path) for path in result.written.values())}")
    return 1 if result.errors else 0
