"""`winnow embed RUN [DATA] --out FILE`: pooled pre-logits embeddings with path, label, split (.npz or .parquet)."""

from __future__ import annotations

import argparse

from winnow.cli.options import INFERENCE_FLAGS, TTA_FLAGS, add_flags, settings_of
from winnow.data.validation import record_skipped
from winnow.embeddings.extract import default_out, embed
from winnow.runs.layout import bad_files_beside

DATA_HELP = ("images to embed: all (default: every image of the run's splits.csv), train/val/test, a folder of "
             "class folders, a split tree, a CSV manifest, or a folder of images without labels")


def add_parser(sub) -> None:
    parser = sub.add_parser("embed", help="write the pre-logits embeddings of images (npz or parquet)")
    parser.add_argument("run_dir", metavar="RUN", help="run folder from `winnow train` (of an ensemble: a member run)")
    parser.add_argument("data", metavar="DATA", nargs="?", default=None, help=DATA_HELP)
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="output .npz or .parquet (default: RUN/embeddings/<data>.npz)")
    add_flags(parser, "checkpoint", *TTA_FLAGS, *INFERENCE_FLAGS)


def run(args: argparse.Namespace) -> int:
    embeddings = embed(args.run_dir, args.data, checkpoint=args.checkpoint, **settings_of(args, TTA_FLAGS),
                       **settings_of(args, INFERENCE_FLAGS))
    out = embeddings.save(args.out or default_out(args.run_dir, args.data))
    skipped = record_skipped(embeddings.bad, bad_files_beside(out))
    print("\n".join([f"wrote {len(embeddings.paths)} embeddings of dimension {embeddings.dim} to {out}", *skipped]))
    return 0
