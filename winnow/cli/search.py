"""`winnow search DATA --budget 2h [--objective ...]`: hyperparameter search with Optuna; best config to best.yaml."""

from __future__ import annotations

import argparse

from winnow.cli.options import add_config_flags, config_values
from winnow.pu.auto import resolve_prior_values
from winnow.search.objective import DEFAULT_OBJECTIVE, DEFAULT_PU_OBJECTIVE, EXAMPLES
from winnow.search.study import PRUNERS, SearchSettings, search, search_summary


def add_parser(sub) -> None:
    parser = sub.add_parser("search", help="hyperparameter search (Optuna): recipe, lr, augmentation, size, model")
    parser.add_argument("data", nargs="*", help="ImageFolder tree, split tree or CSV manifest(s)")
    parser.add_argument("--config", help="YAML file with config keys every trial uses")
    parser.add_argument("--objective", default=None,
                        help=f"what to optimise on val: a metric or an operating point, e.g. {EXAMPLES} "
                             f"(default: {DEFAULT_OBJECTIVE}; with --pu {DEFAULT_PU_OBJECTIVE}, and only "
                             "val_pu_auc, val_pu_recall or val_loss)")
    parser.add_argument("--budget", metavar="TIME", help="wall-clock budget of this command, e.g. 2h, 30m, 1800s")
    parser.add_argument("--trials", metavar="N", type=int, help="trials in the study, all processes together")
    parser.add_argument("--jobs", metavar="N", type=int, default=1,
                        help="trials in parallel worker processes on this machine (default: 1)")
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna RDB storage, e.g. postgresql://user:pass@host/db, shared by searches on "
                             "several machines (default: sqlite study.db in the search folder)")
    parser.add_argument("--study-name", help="study in the storage (default: the search folder's name)")
    parser.add_argument("--space", metavar="FILE", help="YAML file replacing dimensions of the search space")
    parser.add_argument("--recipe", help="one recipe for every trial (the recipe is then not searched)")
    parser.add_argument("--pruner", choices=PRUNERS, default="median",
                        help="stop bad trials at epoch boundaries (default: median)")
    add_config_flags(parser)


def run(args: argparse.Namespace) -> int:
    values, estimate = resolve_prior_values(config_values(args))  # --prior auto: once, every trial gets it
    if estimate is not None:
        print(f"prior auto: {estimate.summary()}", flush=True)
    settings = SearchSettings(values, objective=args.objective, trials=args.trials, budget=args.budget,
                              jobs=args.jobs, storage=args.storage, study_name=args.study_name, space=args.space,
                              recipe=args.recipe, pruner=args.pruner)
    result = search(settings)
    print("\n".join(search_summary(result)))
    return 130 if result.interrupted else 0
