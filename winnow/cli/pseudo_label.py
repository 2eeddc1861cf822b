"""`winnow pseudo-label RUN UNLABELLED`: confident predictions as a weighted training manifest."""

from __future__ import annotations

import argparse

import numpy as np

from winnow.active.pseudo_label import pseudo_label, write_pseudo_labels
from winnow.cli.options import PSEUDO_FLAGS, RUN_HELP, add_flags, settings_of

FLAGS = ("device", "batch_size", "workers")


def add_parser(sub) -> None:
    parser = sub.add_parser("pseudo-label", help="keep confident predictions on unlabelled images as weighted "
                                                 "pseudo-labels (thresholds per class tuned on val)")
    parser.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    parser.add_argument("unlabelled", metavar="UNLABELLED", help="folder or CSV manifest of unlabelled images")
    parser.add_argument("--out", default="pseudo.csv", metavar="CSV",
                        help="manifest to write: path,label,weight,split (train)... (default: pseudo.csv); "
                             "train on it with `winnow train DATA pseudo.csv`")
    add_flags(parser, *PSEUDO_FLAGS, "checkpoint", *FLAGS)


def run(args: argparse.Namespace) -> int:
    result = pseudo_label(args.run_dir, args.unlabelled, levels=args.levels, max_tilt=args.max_tilt,
                          min_keep=args.min_keep, checkpoint=args.checkpoint, **settings_of(args, FLAGS))
    out = write_pseudo_labels(result, args.out)
    labels, labeller = result.labels, result.labeller
    counts = np.bincount(labels.indices[labels.kept], minlength=len(labeller.classes_))
    per_class = ", ".join(f"{name} {count}" for name, count in zip(labeller.classes_, counts))
    print(f"wrote {len(labels.kept)} pseudo-labels of {len(result.paths)} unlabelled images to {out} ({per_class})")
    for (precision, weight), row in zip(labeller.levels, labeller.thresholds_):
        shown = ", ".join(f"{n} {t:.3f}" if np.isfinite(t) else f"{n} -" for n, t in zip(labeller.classes_, row))
        print(f"precision {precision:g} on val (weight {weight:g}): thresholds {shown}")
    for warning in labeller.warnings_:
        print(f"warning: {warning}")
    return 0
