"""`winnow ensemble RUN1 RUN2 ... --method mean|vote|stack|svm`: an ensemble folder that eval, tune, predict accept.

Method svm fits a head on the runs' concatenated embeddings (`--classifier`: any kind of `winnow head`).
"""

from __future__ import annotations

import argparse

from winnow.cli.options import DATA_HELP, HEAD_FLAGS, INFERENCE_FLAGS, add_flags, settings_of
from winnow.ensembles.build import build_ensemble, build_summary
from winnow.ensembles.feature_head import CLASSIFIERS
from winnow.ensembles.methods import METHODS


def add_parser(sub) -> None:
    parser = sub.add_parser("ensemble", help="combine trained runs into an ensemble folder")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run folders from `winnow train`")
    parser.add_argument("--method", default="mean", choices=sorted(METHODS),
                        help="mean of probabilities, majority vote, stacking (logistic regression on validation "
                             "probabilities) or svm (a classifier on the runs' frozen embeddings)")
    parser.add_argument("--out", default=None, help="new ensemble folder (default: ensemble-<method> beside RUN1)")
    add_flags(parser, "checkpoint", help_suffix={"checkpoint": "; the same for every member"})
    parser.add_argument("--data", default=None,
                        help=DATA_HELP + "; fit data of stack (default: val split of RUN1) and svm (default: "
                             "train split of RUN1)")
    parser.add_argument("--classifier", default="svm", choices=CLASSIFIERS,
                        help="head of --method svm on the concatenated embeddings (default: svm; see `winnow head`)")
    add_flags(parser, *HEAD_FLAGS, help_suffix=dict.fromkeys(("reject_tpr", "oversample"), "; --method svm only"))
    add_flags(parser, *INFERENCE_FLAGS)


def run(args: argparse.Namespace) -> int:
    build = build_ensemble(args.runs, method=args.method, out=args.out, checkpoint=args.checkpoint, data=args.data,
                           classifier=args.classifier, **settings_of(args, HEAD_FLAGS),
                           **settings_of(args, INFERENCE_FLAGS))
    print("\n".join(build_summary(build)))
    return 0
