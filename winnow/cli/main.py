"""The `winnow` command: thin wrappers that parse options and call the library."""

from __future__ import annotations

import argparse
import logging
import sys

from winnow.cli import (audit, calibrate, demo, deploy, embed, ensemble, export, head, label, loop, predict,
                        pretrain, pseudo_label, pu_sensitivity, query, runs, search, select, serve, train, tune,
                        worker)
from winnow.cli import eval as evaluate
from winnow.cli import report
from winnow.runs.atomic import FileWriteError

COMMANDS = {"train": train, "predict": predict, "runs": runs, "demo": demo, "eval": evaluate, "tune": tune,
            "calibrate": calibrate, "select": select, "ensemble": ensemble, "head": head, "report": report,
            "embed": embed, "search": search, "export": export, "serve": serve, "pretrain": pretrain,
            "audit": audit, "query": query, "pseudo-label": pseudo_label, "loop": loop, "label": label,
            "worker": worker, "deploy": deploy, "pu-sensitivity": pu_sensitivity}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="winnow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args) or 0
    # bad input, or a file that could not be written (disk full...): the message says what to do.
    # A TypeError or another OSError is a programming or system error and shows its traceback.
    except (ValueError, FileWriteError) as error:
        print(f"winnow {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
