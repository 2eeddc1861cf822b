"""`winnow pu-sensitivity RUN [--priors 0.1,0.2,...]`: what a wrong class prior costs a PU run on its test split."""

from __future__ import annotations

import argparse
from pathlib import Path

from winnow.cli.options import add_flags, settings_of
from winnow.pu.sensitivity import PRIORS, SENSITIVITY_FILE, sensitivity_report
from winnow.runs.atomic import atomic_write_text

FLAGS = ("device", "batch_size", "workers")


def add_parser(sub) -> None:
    parser = sub.add_parser("pu-sensitivity", help="test F1, precision, recall and predicted-positive rate of a PU "
                                                   "run when the threshold comes from each assumed prior")
    parser.add_argument("run_dir", metavar="RUN", help="PU run folder (winnow train --pu) with a labelled test split, "
                                                       "or a head folder on one (winnow head RUN --kind pu_bagging)")
    parser.add_argument("--priors", type=_priors, default=None, metavar="P,P,...",
                        help=f"assumed priors, comma-separated (default: {','.join(map(str, PRIORS))}; the run's "
                             "own prior is always added)")
    parser.add_argument("--split", default="val", choices=["val", "train"],
                        help="split whose unlabelled images set the thresholds (default: val, not trained on)")
    parser.add_argument("--out", default=None, metavar="CSV", help=f"table (default: RUN/{SENSITIVITY_FILE})")
    add_flags(parser, "checkpoint", *FLAGS)


def run(args: argparse.Namespace) -> int:
    report = sensitivity_report(args.run_dir, priors=args.priors, split=args.split, checkpoint=args.checkpoint,
                                **settings_of(args, FLAGS))
    out = Path(args.out or Path(args.run_dir) / SENSITIVITY_FILE)
    atomic_write_text(out, report.csv_text())
    print("\n".join(report.lines()))
    print(f"wrote {out}")
    return 0


def _priors(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers in (0, 1) such as 0.1,0.2,0.3, got "
                                         f"{text!r}") from None
