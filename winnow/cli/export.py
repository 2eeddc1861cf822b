"""`winnow export RUN --format onnx|torchscript`: the run's network for serving, with its sidecar JSON."""

from __future__ import annotations

import argparse

from winnow.cli.options import add_flags
from winnow.export.exporter import DEFAULT_OPSET, FORMATS, export_run
from winnow.export.sidecar import sidecar_path


def add_parser(sub) -> None:
    parser = sub.add_parser("export", help="export a run's network as ONNX or TorchScript, with a sidecar JSON")
    parser.add_argument("run_dir", metavar="RUN", help="run folder from `winnow train`")
    parser.add_argument("--format", default="onnx", help=f"{' or '.join(FORMATS)} (default: onnx)")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="model file (default: RUN/exports/<checkpoint>.onnx or .torchscript); the sidecar "
                             "is <FILE>.json")
    parser.add_argument("--opset", metavar="N", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset (default: {DEFAULT_OPSET})")
    add_flags(parser, "checkpoint")


def run(args: argparse.Namespace) -> int:
    out = export_run(args.run_dir, format=args.format, out=args.out, checkpoint=args.checkpoint, opset=args.opset)
    print(f"wrote {out} and {sidecar_path(out)}")
    return 0
