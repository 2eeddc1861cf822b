"""`winnow train DATA ...`: train a classifier, or continue one with --resume."""

from __future__ import annotations

import argparse
from pathlib import Path

from winnow.cli.options import add_config_flags, build_config, config_values, flag_overrides
from winnow.config import from_dict
from winnow.pu import PriorEstimate
from winnow.pu.auto import resolve_prior, resolve_prior_values
from winnow.recipes import AUTO, RECIPES, load_recipe
from winnow.runs.layout import PILOT_FILE
from winnow.search.pilot import train_auto
from winnow.training.trainer import train


def add_parser(sub) -> None:
    parser = sub.add_parser("train", help="train a classifier on a folder or CSV manifest")
    parser.add_argument("data", nargs="*", help="ImageFolder tree, split tree or CSV manifest(s)")
    parser.add_argument("--config", help="YAML file with config keys")
    parser.add_argument("--recipe", help=f"named recipe ({', '.join(RECIPES)}), recipe YAML, or {AUTO}: a short "
                        "pilot of the candidate recipes (at most 25%% of the run's epochs) picks one; "
                        "--config and flags override it")
    parser.add_argument("--resume", metavar="RUN", help="continue the run folder RUN where it stopped")
    add_config_flags(parser)


def run(args: argparse.Namespace) -> int:
    if args.pu and args.select_metric is None:
        args.select_metric = "val_pu_auc"  # a PU val split has no negatives for macro-F1 (winnow.metrics.pu)
    if args.resume:
        result = train(None, resume=args.resume, overrides=flag_overrides(args))
    elif args.recipe == AUTO:
        user, estimate = resolve_prior_values(config_values(args))  # once: every candidate trains with it
        _print_prior(estimate)
        auto = train_auto(lambda recipe: from_dict({**recipe, **user}, source=args.config or "command line"))
        result = auto.run
        if result.rank == 0 and auto.winner:
            print(f"recipe auto: chose {auto.winner} after a pilot of {auto.pilot_epochs} epoch(s); "
                  f"table in {Path(result.path) / PILOT_FILE}")
    else:
        config, estimate = resolve_prior(build_config(args, base=load_recipe(args.recipe) if args.recipe else None))
        _print_prior(estimate)
        result = train(config)
    if result.rank != 0:  # under torchrun every process gets the result; rank 0 reports it
        return 0 if result.status == "finished" else 1
    print(f"run: {result.path}  status: {result.status}  best {result.config.select_metric} "
          f"{_fmt(result.best_metric)} (epoch {result.best_epoch})")
    if result.test_metrics:
        print("test: " + "  ".join(f"{k} {v:.4f}" for k, v in result.test_metrics.items()))
    if result.swa:
        verdict = {True: "better than best.pt", False: "not better than best.pt", None: "not compared"}
        print(f"swa: {result.path}/checkpoints/swa.pt, average of {result.swa['n_averaged']} epochs, "
              f"{result.config.select_metric} {_fmt(result.swa['metrics'].get(result.config.select_metric))} "
              f"({verdict[result.swa['better_than_best']]}; evaluate it with --checkpoint swa)")
    return 0 if result.status == "finished" else 1


def _print_prior(estimate: PriorEstimate | None) -> None:
    if estimate is not None:
        print(f"prior auto: {estimate.summary()}", flush=True)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
