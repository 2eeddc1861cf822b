"""`winnow pretrain IMAGES --method autoencoder|simclr|byol`: pretrain an encoder on unlabelled images."""

from __future__ import annotations

import argparse

from winnow.cli.options import add_config_flags, build_config, flag_overrides
from winnow.pretraining.methods import METHODS
from winnow.pretraining.trainer import pretrain
from winnow.runs.layout import RunPaths

DEFAULT_METHOD = "autoencoder"


def add_parser(sub) -> None:
    parser = sub.add_parser("pretrain", help="pretrain an encoder on unlabelled images (labels, if any, ignored)")
    parser.add_argument("data", nargs="*", metavar="IMAGES", help="folder(s) of images (searched recursively) or CSV "
                        "manifest(s) with a path column")
    parser.add_argument("--method", help=f"{', '.join(METHODS)} (default: {DEFAULT_METHOD}; same as "
                        "--pretrain-method)")
    parser.add_argument("--config", help="YAML file with config keys")
    parser.add_argument("--resume", metavar="RUN", help="continue the pretrain run folder RUN where it stopped")
    add_config_flags(parser)


def run(args: argparse.Namespace) -> int:
    if args.resume:
        result = pretrain(None, resume=args.resume, overrides=flag_overrides(args))
    else:
        config = build_config(args, base={"pretrain_method": DEFAULT_METHOD})
        result = pretrain(config.replace(pretrain_method=args.method) if args.method else config)
    best = "n/a" if result.best_metric is None else f"{result.best_metric:.4f}"
    print(f"run: {result.path}  status: {result.status}  method: {result.config.pretrain_method}  best loss {best} "
          f"(epoch {result.best_epoch})  encoder: {RunPaths(result.path).encoder}")
    print(f"next: winnow train DATA --model {result.config.model} --pretrained {result.path}")
    return 0 if result.status == "finished" else 1
