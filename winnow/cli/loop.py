"""`winnow loop DATA UNLABELLED --rounds K`: self-training (train -> pseudo-label -> retrain) on one split."""

from __future__ import annotations

import argparse

from winnow.active.loop_table import RoundResult, round_line
from winnow.active.self_training import LoopSettings, self_train
from winnow.cli.options import PSEUDO_FLAGS, add_config_flags, add_flags, config_values, settings_of
from winnow.runs.layout import LOOP_FILE, LOOP_TABLE_CSV, LOOP_TABLE_MD

EXIT_CODES = {"finished": 0, "interrupted": 130}  # any other status (no pseudo-labels, diverged): 1


def add_parser(sub) -> None:
    parser = sub.add_parser("loop", help="self-training: train, pseudo-label the unlabelled images, retrain, for K "
                                         "rounds on one split (a run folder per round in runs/loop-NAME)")
    parser.add_argument("data", nargs=1, metavar="DATA",
                        help="labelled data: a folder of class folders, a split tree or a CSV manifest")
    parser.add_argument("unlabelled", metavar="UNLABELLED",
                        help="folder or CSV manifest of unlabelled images (images of the split are left out)")
    parser.add_argument("--rounds", type=int, required=True, metavar="K",
                        help="rounds of pseudo-labelling and retraining after round 0 (runs r0 ... rK); run the "
                             "same command again, or with a larger K, to continue a loop")
    parser.add_argument("--config", help="YAML file with config keys every round uses")
    add_flags(parser, *PSEUDO_FLAGS)
    add_config_flags(parser)  # --name names the loop (runs/loop-NAME); the rounds' runs are r0, r1...


def run(args: argparse.Namespace) -> int:
    settings = LoopSettings(config_values(args), args.unlabelled, rounds=args.rounds,
                            **settings_of(args, PSEUDO_FLAGS))
    result = self_train(settings, on_round=_print_round)
    folder = result.folder
    print(f"loop {folder}: {len(result.rounds)} round(s); table {folder / LOOP_TABLE_MD} "
          f"({folder / LOOP_TABLE_CSV}, {folder / LOOP_FILE})")
    if result.message:
        print(f"stopped: {result.message}")
    return EXIT_CODES.get(result.status, 1)


def _print_round(row: RoundResult, kept: bool) -> None:
    print(round_line(row) + (" (done before)" if kept else ""), flush=True)
