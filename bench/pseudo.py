"""Pseudo-labelling with known truth: hide most training labels of a labelled set, self-train, score.

Draws one grouped, stratified split of a labelled set (`winnow.data.splits.assign_splits`, as
`bench/generalization.py` does), then hides a share `--hidden` of the train split's labels
(stratified by class, seeded): those images become the unlabelled pool. `winnow loop LABELLED POOL
--rounds K` trains round 0 on the labelled rest, then pseudo-labels the pool and retrains, K times.
Val and test keep every label, so each round is scored on the same test split. Prints, per round, the
pseudo-labels kept, their precision against the hidden truth (all of them, and the weight-1 level),
and test balanced accuracy / accuracy with the gain over round 0. Run:

    python bench/pseudo.py --data ../shared/data/chromosomes-qband --hidden 0.7 --rounds 3 \
        --work /tmp/pseudo -- --epochs 15 --workers 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from harness import drawn_split, run_measured, write_rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a labelled folder or manifest (groups are kept together)")
    parser.add_argument("--work", type=Path, required=True, help="outside the repository")
    parser.add_argument("--hidden", type=float, default=0.7, help="share of the train split's labels hidden")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="of the split, of the hidden share and of training")
    parser.add_argument("train_flags", nargs=argparse.REMAINDER, help="after --: flags for winnow loop / train")
    args = parser.parse_args(argv)
    if not 0 < args.hidden < 1:
        parser.error(f"--hidden: expected a share strictly between 0 and 1, got {args.hidden}")
    args.train_flags = [flag for flag in args.train_flags if flag != "--"]
    return args


def hide_labels(rows: list[dict[str, str]], hidden: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(labelled rows, hidden train rows): `hidden` of each class's train rows, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    hide: set[int] = set()
    for label in sorted({row["label"] for row in rows}):
        train = [i for i, row in enumerate(rows) if row["split"] == "train" and row["label"] == label]
        hide.update(rng.choice(train, int(round(hidden * len(train))), replace=False).tolist())
    return [row for i, row in enumerate(rows) if i not in hide], [rows[i] for i in sorted(hide)]


def prepare(args: argparse.Namespace) -> tuple[Path, Path, dict[str, str]]:
    """labelled.csv, pool.csv (paths only) and the pool's hidden truth by real path."""
    rows = drawn_split(args.data, args.seed, args.work / f"split-s{args.seed}.csv")
    labelled, pool = hide_labels(rows, args.hidden, args.seed)
    fields = [name for name in rows[0] if name in ("path", "label", "split", "group")]
    truth = {os.path.realpath(row["path"]): row["label"] for row in pool}
    return (write_rows(args.work / "labelled.csv", labelled, fields), write_rows(args.work / "pool.csv", pool, ["path"]),
            truth)


def pseudo_precision(path: Path, truth: dict[str, str]) -> dict[str, float | int]:
    """Kept pseudo-labels of one round, and their precision against the hidden truth (all; weight 1 only)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    right = [truth[os.path.realpath(row["path"])] == row["label"] for row in rows]
    strict = [ok for ok, row in zip(right, rows) if float(row.get("weight") or 1) >= 1]
    return {"kept": len(rows), "precision": float(np.mean(right)) if right else float("nan"),
            "kept_w1": len(strict), "precision_w1": float(np.mean(strict)) if strict else float("nan")}


def report(folder: Path, truth: dict[str, str], pool_size: int) -> list[str]:
    """The table of the loop's rounds with the pseudo-labels' true precision."""
    rounds = json.loads((folder / "loop.json").read_text())["rounds"]
    base = rounds[0]["test"]
    lines = ["| round | pseudo-labels kept (of pool) | precision (all) | weight-1 kept / precision | test bal. acc "
             "(gain) | test acc (gain) |", "| --- | --- | --- | --- | --- | --- |"]
    for row in rounds:
        k, test = row["round"], row["test"]
        pseudo = folder / f"pseudo{k}.csv"
        kept = pseudo_precision(pseudo, truth) if k and pseudo.exists() else None
        pseudo_cells = (f"{kept['kept']} ({kept['kept'] / pool_size:.0%}) | {kept['precision']:.3f} | "
                        f"{kept['kept_w1']} / {kept['precision_w1']:.3f}") if kept else "- | - | -"
        gains = [f"{test[m]:.4f} ({test[m] - base[m]:+.4f})" for m in ("balanced_accuracy", "accuracy")]
        lines.append(f"| {k} | {pseudo_cells} | {gains[0]} | {gains[1]} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    labelled, pool, truth = prepare(args)
    counts = Counter(truth.values())
    print(f"{args.data}: {len(truth)} train labels hidden ({args.hidden:.0%}, seed {args.seed}) -> {pool}; "
          f"{len(counts)} classes in the pool")
    name = f"pseudo-s{args.seed}"
    command = [sys.executable, "-m", "winnow.cli.main", "loop", str(labelled), str(pool), "--rounds", str(args.rounds),
               "--seed", str(args.seed), "--out", str(args.work / "runs"), "--name", name, "--no-progress",
               *args.train_flags]
    measured = run_measured(command, log=args.work / f"{name}.log")
    folder = args.work / "runs" / f"loop-{name}"
    if not (folder / "loop.json").exists():
        raise SystemExit(f"winnow loop failed (exit {measured.returncode}); see {args.work / f'{name}.log'}")
    print("\n".join(report(folder, truth, len(truth))))
    print(f"\nwinnow loop: exit {measured.returncode}, {measured.cpu_s:.0f} CPU s, {measured.wall_s:.0f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
