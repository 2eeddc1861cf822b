"""`winnow runs [DIR]`: a table of every run (in a search folder, with each trial's number and value)."""

from __future__ import annotations

import argparse

from winnow.runs.listing import format_table, run_rows


def add_parser(sub) -> None:
    parser = sub.add_parser("runs", help="list training runs")
    parser.add_argument("folder", nargs="?", metavar="DIR",
                        help="folder holding run folders, e.g. runs or runs/search-NAME (default: runs)")
    parser.add_argument("--dir", default="runs", help="the same as DIR (default: runs)")


def run(args: argparse.Namespace) -> int:
    print(format_table(run_rows(args.folder or args.dir)))
    return 0
