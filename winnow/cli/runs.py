"""`winnow runs`: a table of every run."""

from __future__ import annotations

import argparse

from winnow.runs.listing import format_table, run_rows


def add_parser(sub) -> None:
    parser = sub.add_parser("runs", help="list training runs")
    parser.add_argument("--dir", default="runs", help="folder holding run folders (default: runs)")


def run(args: argparse.Namespace) -> int:
    print(format_table(run_rows(args.dir)))
    return 0
