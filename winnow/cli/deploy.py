"""`winnow deploy RUN --broker redis://...`: publish a run as the live version; workers swap to it.

The run folder must be readable at the same path by every worker. `--list` shows the versions and what
each worker runs; `--rollback` makes the previous version live again.
"""

from __future__ import annotations

import argparse
import time

from winnow.cli.options import add_flags
from winnow.serve.registry import ModelRegistry, connect


def add_parser(sub) -> None:
    parser = sub.add_parser("deploy", help="publish a run to the workers of a deployment (model registry in Redis)")
    parser.add_argument("run_dir", metavar="RUN", nargs="?", help="run folder every worker can read")
    parser.add_argument("--broker", required=True, metavar="URL", help="Redis URL, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--name", default="default", help="deployment name (default: default)")
    add_flags(parser, "checkpoint")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="list the versions and the workers")
    action.add_argument("--rollback", action="store_true", help="make the previous version live again")


def run(args: argparse.Namespace) -> int:
    if not (args.list or args.rollback) and args.run_dir is None:
        raise ValueError("pass a RUN folder to publish, or --list, or --rollback")
    registry = ModelRegistry(connect(args.broker), args.name)
    if args.rollback:
        entry = registry.rollback()
        print(f"{args.name}: rolled back to version {entry.version} ({entry.run})")
    elif args.run_dir is not None and not args.list:
        entry = registry.publish(args.run_dir, checkpoint=args.checkpoint)
        print(f"{args.name}: version {entry.version} ({entry.run}) is live")
    for entry in reversed(registry.history()) if args.list else []:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.published))
        print(f"{entry.version}  {stamp}  {entry.run}  {entry.checkpoint}")
    for worker, version in sorted(registry.workers().items()) if args.list else []:
        print(f"worker {worker}: {version or 'no model yet'}")
    return 0
