"""`winnow label to_label.csv`: label images in the browser, keys 1-9, `s` skip, `u` undo.

Every answer goes to `<labels>.journal` (appended, fsynced) and `labels.csv` (rewritten atomically)
before the page shows the next image; restarting resumes at the first image without an answer.
"""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

import numpy as np
import uvicorn

from winnow.active.labeling import LabelSettings, NearestLabelled, classes_of, create_app, disagreements, read_queue

TOKEN_ENV = "WINNOW_LABEL_TOKEN"


def add_parser(sub) -> None:
    parser = sub.add_parser("label", help="label images in a local web page (to_label.csv or review.csv)")
    parser.add_argument("csv", metavar="CSV", help="to_label.csv from `winnow query` or review.csv from "
                                                   "`winnow audit --fix`")
    parser.add_argument("--classes", metavar="A,B,C", help="classes on keys 1-9 in order (default: the model's "
                                                          "guesses and review.csv's given labels, sorted)")
    parser.add_argument("--labels", metavar="CSV", help="labels file (default: labels.csv beside CSV)")
    parser.add_argument("--labeller", default=getpass.getuser(), help="your name in the labels file (default: "
                                                                     "your login; ?labeller= in the URL overrides)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default: 8765)")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                        help=f"require this token on every request (open the page with ?token=...; default: "
                             f"${TOKEN_ENV}, which keeps it out of the process list)")
    parser.add_argument("--neighbours", action="append", default=[], metavar="FILE",
                        help="`winnow embed` file(s) of the labelled images and of these ones: the nearest "
                             "labelled images are shown beside each (repeat for several files)")
    parser.add_argument("--report", action="store_true", help="print the images labellers disagree on, then exit")


def run(args: argparse.Namespace) -> int:
    items = read_queue(args.csv)
    labels = Path(args.labels) if args.labels else Path(args.csv).with_name("labels.csv")
    settings = LabelSettings(items, classes_of(items, args.classes, args.csv), labels, args.labeller, args.token,
                             nearest_labelled(args.neighbours))
    if args.report:
        return print_disagreements(settings)
    done = state_line(settings)
    query = f"?token={args.token}" if args.token else ""
    print(f"labelling {len(items)} images into {labels} ({done}); open http://{args.host}:{args.port}/{query}")
    # uvicorn directly, not winnow.serve's serve_forever: importing winnow.serve loads torch (seconds at start)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def nearest_labelled(files: list[str]) -> NearestLabelled | None:
    if not files:
        return None
    # imported here: winnow.embeddings loads torch (seconds at start), needed only with --neighbours
    from winnow.embeddings.extract import EmbeddingSet
    sets = [EmbeddingSet.load(file) for file in files]
    if len({one.dim for one in sets}) > 1:
        raise ValueError(f"--neighbours: expected files of one model (one dimension), got dimensions "
                         f"{', '.join(f'{file}: {one.dim}' for file, one in zip(files, sets))}")
    return NearestLabelled(np.concatenate([one.embeddings for one in sets]), [p for one in sets for p in one.paths],
                           [label for one in sets for label in one.labels])


def state_line(settings: LabelSettings) -> str:
    answered = sum(1 for path, labeller in settings.journal.standing() if labeller == settings.labeller)
    return f"{answered} already answered by {settings.labeller}"


def print_disagreements(settings: LabelSettings) -> int:
    found = disagreements(settings.journal.standing())
    for path, votes in found.items():
        print(f"{path}\t" + "\t".join(f"{who}={label}" for who, label in sorted(votes.items())))
    print(f"{len(found)} image(s) with disagreeing labels in {settings.labels}")
    return 0
