"""One trial of a search: a point of the space becomes a config, a normal run folder, and a value.

`EpochReporter` is the trainer callback: after each epoch it reports the best objective so far to the
Optuna trial (its step is the epoch) and stops the run at that epoch boundary, with status "pruned"
when the pruner says so, or "stopped" when the search's budget has run out.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from winnow.config import Config, from_dict
from winnow.runs.layout import TRIAL_PREFIX
from winnow.search.budget import Budget
from winnow.search.objective import Objective
from winnow.search.results import recipe_values
from winnow.search.space import SearchSpace, trial_values
from winnow.training.callbacks import EpochEnd, StopTraining
from winnow.training.trainer import train

log = logging.getLogger("winnow")
STOPPED = ("pruned", "stopped")  # run statuses of a trial cut short at an epoch boundary


@dataclass(frozen=True)
class TrialPlan:
    """What every trial of one search shares (picklable: parallel workers get a copy).

    Attributes:
        folder: The search folder; each trial's run folder goes in it.
        split_file: The search's splits.csv, every trial's data.
        user_values: The user's config values (--config and flags).
        objective: The parsed objective.
        space: The searched dimensions.
        head: The head kind of the data.
        recipe: The recipe when it is not searched.
        default_aug_strength: Where winnow's default augmentation lies on the `aug_strength` axis for this
            data (1: the standard preset, on imbalanced data; 0: flips only).
    """

    folder: Path
    split_file: Path
    user_values: dict[str, Any]
    objective: Objective
    space: SearchSpace
    head: str
    recipe: str | None = None
    default_aug_strength: float = 1.0

    def config(self, params: dict[str, Any], number: int) -> Config:
        """The config of trial `number` at the point `params`."""
        values = trial_values(params, self.user_values, recipe=self.recipe, head=self.head)
        values.update(data=[str(self.split_file)], val=[], test=[], unlabeled=[], out=str(self.folder),
                      name=f"{TRIAL_PREFIX}{number:04d}")  # the split holds a PU search's unlabeled images
        values.setdefault("cache_dir", str(self.folder / ".cache"))  # trials share decoded images
        if "select_metric" not in self.user_values and self.objective.select_metric:
            values["select_metric"] = self.objective.select_metric  # best.pt is then the best epoch for it
        return from_dict(values, source=f"trial {number}")


@dataclass
class EpochReporter:
    """Trainer callback of one trial (see the module docstring)."""

    trial: Any
    objective: Objective
    budget: Budget
    best: float | None = None
    best_epoch: int | None = None
    values: list[float] = field(default_factory=list)

    def __call__(self, event: EpochEnd) -> None:
        value = self.objective.value(event)
        self.values.append(value)
        if self.best is None or self.objective.better(value, self.best):
            self.best, self.best_epoch = value, event.epoch
        self.trial.report(self.best, step=event.epoch)
        if event.epoch >= event.epochs:
            return
        if self.trial.should_prune():
            raise StopTraining("pruned", f"the pruner stopped trial {self.trial.number} at epoch {event.epoch} "
                                         f"(best {self.objective.text} so far {self.best:.4f})")
        if self.budget.exhausted():
            raise StopTraining("stopped", f"the search's budget ran out during trial {self.trial.number}")


class TrialObjective:
    """The function Optuna optimises: trains one trial and returns its value.

    A finished run's value is the best objective over its epochs; a run cut short raises
    `optuna.TrialPruned` (its reported best stands); bad settings fail the trial with the message kept
    in its `error` attribute.
    """

    def __init__(self, plan: TrialPlan, budget: Budget) -> None:
        self.plan = plan
        self.budget = budget
        self.failed: str | None = None  # the error of the last trial, None when it did not fail

    def __call__(self, trial: Any) -> float:
        self.failed = None
        started = time.monotonic()
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        try:
            config = self.plan.config(self.plan.space.suggest(trial), trial.number)
            trial.set_user_attr("config", recipe_values(config.to_dict(), Config().to_dict()))
            reporter = EpochReporter(trial, self.plan.objective, self.budget)
            run = train(config, callbacks=[reporter])
        except (ValueError, RuntimeError) as error:  # bad settings, or e.g. out of GPU memory: the next trial may work
            self.failed = str(error)
            trial.set_user_attr("error", str(error)[:500])
            raise
        _record(trial, run, reporter, seconds=time.monotonic() - started)
        return self._value(trial, run, reporter)

    def _value(self, trial: Any, run, reporter: EpochReporter) -> float:
        if run.status == "interrupted":  # Ctrl-C: fail this trial (re-queued on resume) and stop the search
            trial.set_user_attr("interrupted", True)
            raise KeyboardInterrupt
        if reporter.best is None:
            self.failed = f"trial {trial.number} ended ({run.status}) before its first epoch's objective"
            trial.set_user_attr("error", self.failed)
            raise ValueError(self.failed)
        log.info("trial %d: %s %s = %.4f (best, epoch %s) after %d epoch(s); run folder %s", trial.number,
                 run.status, self.plan.objective.text, reporter.best, reporter.best_epoch, len(run.metrics), run.path)
        if run.status in STOPPED:
            raise optuna.TrialPruned(f"{run.status} after epoch {len(run.metrics)}")
        return reporter.best  # finished, or diverged: the value it reached before the loss blew up


def _record(trial: Any, run, reporter: EpochReporter, *, seconds: float) -> None:
    """Run facts kept with the trial: the budget estimates and trials.csv read them."""
    train_s = sum(row.get("time_s", 0.0) for row in run.metrics)
    for key, value in {"run": str(Path(run.path).resolve()), "status": run.status, "epochs_done": len(run.metrics),
                       "train_s": round(train_s, 2), "startup_s": round(max(0.0, seconds - train_s), 2),
                       "best_value": reporter.best, "best_epoch": reporter.best_epoch}.items():
        trial.set_user_attr(key, value)
