"""`winnow report RUN [DATA]`: one self-contained HTML page with everything about a run's evaluation."""

from __future__ import annotations

import argparse

from winnow.cli.options import DATA_HELP, INFERENCE_FLAGS, RUN_HELP, TTA_FLAGS, add_flags, settings_of
from winnow.reporting.report import GALLERY_SIZE, write_report


def add_parser(sub) -> None:
    parser = sub.add_parser("report", help="write RUN/report.html: metrics, figures, operating point, gallery")
    parser.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    parser.add_argument("data", metavar="DATA", nargs="?", default=None, help=DATA_HELP + "; default: test split")
    add_flags(parser, "checkpoint", help_suffix={"checkpoint": "; the checkpoint reported in detail"})
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="HTML file to write (default: RUN/report.html, or RUN/report-<data>.html with DATA)")
    parser.add_argument("--checkpoints", default="all", choices=("all", "none"),
                        help="per-checkpoint table: evaluate every checkpoint (all) or skip it (none)")
    parser.add_argument("--gallery", type=int, default=GALLERY_SIZE, metavar="N",
                        help=f"images per gallery list (default {GALLERY_SIZE}; 0: no gallery)")
    add_flags(parser, "embeddings", *TTA_FLAGS, *INFERENCE_FLAGS)


def run(args: argparse.Namespace) -> int:
    path = write_report(args.run_dir, args.data, checkpoint=args.checkpoint, out=args.out,
                        checkpoints=args.checkpoints == "all", gallery=args.gallery, embeddings=args.embeddings,
                        **settings_of(args, TTA_FLAGS),
                        **settings_of(args, INFERENCE_FLAGS))
    print(f"wrote {path}")
    return 0
