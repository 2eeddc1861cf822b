"""`winnow report RUN [DATA]`: one self-contained HTML page with everything about a run's evaluation."""

from __future__ import annotations

import argparse

from winnow.cli.eval import DATA_HELP, add_inference_flags, add_tta_flags, inference_settings
from winnow.reporting.report import GALLERY_SIZE, write_report


def add_parser(sub) -> None:
    parser = sub.add_parser("report", help="write RUN/report.html: metrics, figures, operating point, gallery")
    parser.add_argument("run_dir", metavar="RUN", help="run folder from `winnow train`")
    parser.add_argument("data", metavar="DATA", nargs="?", default=None, help=DATA_HELP + "; default: test split")
    parser.add_argument("--checkpoint", default="best", help="checkpoint reported in detail: best, last, "
                        "another checkpoint name or a .pt path")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="HTML file to write (default: RUN/report.html, or RUN/report-<data>.html with DATA)")
    parser.add_argument("--checkpoints", default="all", choices=("all", "none"),
                        help="per-checkpoint table: evaluate every checkpoint (all) or skip it (none)")
    parser.add_argument("--gallery", type=int, default=GALLERY_SIZE, metavar="N",
                        help=f"images per gallery list (default {GALLERY_SIZE}; 0: no gallery)")
    add_tta_flags(parser)
    add_inference_flags(parser)


def run(args: argparse.Namespace) -> int:
    path = write_report(args.run_dir, args.data, checkpoint=args.checkpoint, out=args.out,
                        checkpoints=args.checkpoints == "all", gallery=args.gallery, tta=args.tta,
                        tta_merge=args.tta_merge, **inference_settings(args))
    print(f"wrote {path}")
    return 0
