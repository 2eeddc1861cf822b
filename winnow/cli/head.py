"""`winnow head RUN --kind knn|centroid|gmm|logistic|svm|pu_bagging`: a head on a run's frozen embeddings, as a folder.

The folder is a one-member ensemble (method svm with that head), so eval, tune, calibrate, predict and
report accept it. Its classes are those of `--data`: a manifest of classes the run never saw (k images
each) gives a head on those, with no retraining. `--oversample` adds synthetic samples of the rarer
classes inside each cross-validation fold's fit and the final fit. `--reject-tpr` adds the reject option:
images far from every class are predicted "unknown" (threshold fitted on the run's val split, or
`--reject-data`). `pu_bagging` on a PU run (`winnow train --pu`) also writes
oob_scores.csv: an out-of-bag score for every unlabelled image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from winnow.cli.options import DATA_HELP, HEAD_FLAGS, INFERENCE_FLAGS, add_flags, settings_of
from winnow.embeddings.heads import HEADS
from winnow.ensembles.build import OOB_FILE, build_head, build_summary


def add_parser(sub) -> None:
    parser = sub.add_parser("head", help="fit a head (knn, centroid, gmm, logistic, svm) on a run's frozen "
                                         "embeddings, optionally with a reject option")
    parser.add_argument("run_dir", metavar="RUN", help="run folder from `winnow train`")
    parser.add_argument("--kind", required=True, choices=list(HEADS),
                        help="knn (cosine, distance-weighted), centroid (nearest class mean), gmm (a Gaussian mixture "
                             "per class), logistic, svm, or pu_bagging (positive-unlabelled bagging of trees on a "
                             "binary PU run, with out-of-bag scores of the unlabelled in oob_scores.csv)")
    parser.add_argument("--data", default=None,
                        help=DATA_HELP + "; fit data (default: train split of RUN), its classes the head's: they may "
                             "be classes RUN never saw (few-shot, k images each: k >= 1 for knn and centroid, "
                             "2 for logistic and svm, 5 for gmm)")
    add_flags(parser, *HEAD_FLAGS)
    parser.add_argument("--out", default=None, help="new head folder (default: RUN-head-KIND beside RUN)")
    add_flags(parser, "checkpoint")
    add_flags(parser, *INFERENCE_FLAGS)


def run(args: argparse.Namespace) -> int:
    build = build_head(args.run_dir, kind=args.kind, out=args.out, checkpoint=args.checkpoint, data=args.data,
                       **settings_of(args, HEAD_FLAGS), **settings_of(args, INFERENCE_FLAGS))
    title = f"{args.kind} head on the embeddings of {Path(args.run_dir)}: {build.folder}"
    print("\n".join(build_summary(build, title=title)))
    if (build.folder / OOB_FILE).is_file():
        print(f"  out-of-bag scores of the unlabelled images (most likely positive first): {build.folder / OOB_FILE}")
    return 0
