"""`winnow train --recipe auto`: a successive-halving pilot of the candidate recipes, then the full run of the winner.

Candidates: "default" (Config's defaults) and every recipe of `winnow.recipes.FROM_SCRATCH` that fits the
head (`candidate_recipes`); the user's --config and flags apply to each. The pilot trains every candidate
for r epochs, keeps the better half by the select metric (val_macro_f1 by default), continues those
(resumed, not restarted) to 2r epochs, and so on until one is left. Each pilot run's schedule spans the
epochs its last rung would reach, so a resumed candidate goes on exactly as if it had not stopped.

Cost cap: the pilot trains at most `PILOT_FRACTION` (25%) of the full run's epochs, counted as epochs of
the whole training set summed over the candidates: r is the largest whole number with cost(r) <= 0.25 x
epochs, where for 4 candidates cost(r) = 4r + 2r = 6r (so 30 epochs give r = 1, a 6-epoch pilot, and the
whole command trains 36 epochs). When even r = 1 does not fit, there is no pilot and the default recipe
trains. The pilot runs are normal run folders in `out/NAME-pilot/`; the table is saved as `pilot.csv`
in the final run folder.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winnow.config import Config
from winnow.recipes import DEFAULT, candidate_recipes
from winnow.runs.atomic import atomic_write_text
from winnow.runs.layout import PILOT_FILE, unique_run_dir
from winnow.training.callbacks import EpochEnd, StopTraining
from winnow.training.run_folder import default_name
from winnow.training.trainer import Run, train

log = logging.getLogger("winnow")
PILOT_FRACTION = 0.25
PILOT_COLUMNS = ("recipe", "epochs", "metric", "value", "result", "run")


@dataclass(frozen=True)
class PilotPlan:
    """Rungs of the pilot: `sizes[i]` candidates are trained up to `epochs[i]` epochs.

    Attributes:
        sizes: Candidates per rung, e.g. (4, 2).
        epochs: Epochs each rung's candidates reach, e.g. (1, 2).
        cost: Epochs the whole pilot trains, summed over candidates.
        cap: The most it may train (PILOT_FRACTION of the full run's epochs, rounded down).
    """

    sizes: tuple[int, ...]
    epochs: tuple[int, ...]
    cost: int
    cap: int


def plan_pilot(n_candidates: int, full_epochs: int, *, fraction: float = PILOT_FRACTION) -> PilotPlan | None:
    """The largest halving pilot whose cost stays within `fraction` of `full_epochs`; None when none fits."""
    cap = math.floor(fraction * full_epochs)
    sizes = rung_sizes(n_candidates)
    r = cap // pilot_unit(sizes) if sizes else 0
    if r < 1:
        return None
    return PilotPlan(sizes, tuple(r * 2**i for i in range(len(sizes))), r * pilot_unit(sizes), cap)


def rung_sizes(n_candidates: int) -> tuple[int, ...]:
    """Candidates per rung, halving (rounded up) until one is left: 4 -> (4, 2), 3 -> (3, 2), 1 -> ()."""
    sizes, left = [], n_candidates
    while left > 1:
        sizes.append(left)
        left = math.ceil(left / 2)
    return tuple(sizes)


def pilot_unit(sizes: tuple[int, ...]) -> int:
    """Epochs a pilot with r = 1 trains: rung 0 trains r epochs per candidate, rung i > 0 continues its
    candidates from r 2^(i-1) to r 2^i epochs."""
    return sizes[0] + sum(size * 2 ** (i - 1) for i, size in enumerate(sizes) if i > 0) if sizes else 0


@dataclass
class StopAt:
    """Trainer callback: stop a pilot run (status "pruned") once it reaches `epoch`, unless that is its last."""

    epoch: int

    def __call__(self, event: EpochEnd) -> None:
        if self.epoch <= event.epoch < event.epochs:
            raise StopTraining("pruned", f"pilot rung ends at epoch {self.epoch}")


@dataclass
class Candidate:
    """One recipe: its full-run config, its pilot config and run, and how the pilot ended for it."""

    name: str
    config: Config
    pilot: Config | None = None
    run: Run | None = None
    error: str | None = None
    result: str = ""

    @property
    def epochs(self) -> int:
        return len(self.run.metrics) if self.run else 0


@dataclass
class AutoResult:
    """The full run of the winner, and the pilot that chose it."""

    run: Run
    winner: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    plan: PilotPlan | None = None
    pilot_epochs: int = 0


def train_auto(make_config: Callable[[dict[str, Any]], Config], *, fraction: float = PILOT_FRACTION) -> AutoResult:
    """Pilot the candidate recipes, then train the winner in full.

    Args:
        make_config: Config from a recipe's values (the user's settings applied over them).
        fraction: Most of the full run's epochs the pilot may train.
    """
    reference = make_config({})
    candidates = [Candidate(name, make_config(values)) for name, values in candidate_recipes(reference.head).items()]
    plan = plan_pilot(len(candidates), min(c.config.epochs for c in candidates), fraction=fraction)
    if plan is None:
        winner = next(c for c in candidates if c.name == DEFAULT)
        log.info("recipe auto: %s; training the default recipe", f"only the default recipe fits a {reference.head} head"
                 if len(candidates) == 1 else f"a pilot of {len(candidates)} candidates does not fit in "
                 f"{fraction:.0%} of {reference.epochs} epochs (it needs --epochs "
                 f"{math.ceil(pilot_unit(rung_sizes(len(candidates))) / fraction)} or more)")
        winner.result = "winner (no pilot)"
    else:
        winner = _pilot(candidates, plan, reference)
        stopped = next((c.run for c in candidates if c.run is not None and c.run.status == "interrupted"), None)
        if stopped is not None:  # Ctrl-C during the pilot: no full run
            return AutoResult(stopped, "", [_row(c, reference.select_metric) for c in candidates], plan)
    log.info("recipe auto: chose %r", winner.name)
    run = train(winner.config)
    rows = [_row(c, reference.select_metric) for c in candidates]
    if run.rank == 0:
        write_pilot(Path(run.path) / PILOT_FILE, rows)
    return AutoResult(run, winner.name, rows, plan, sum(c.epochs for c in candidates))


def _pilot(candidates: list[Candidate], plan: PilotPlan, reference: Config) -> Candidate:
    folder = unique_run_dir(reference.out, f"{reference.name or default_name(reference)}-pilot")
    log.info("recipe auto: pilot of %s in %s: rungs of %s candidate(s) reaching %s epoch(s), %d epochs in all "
             "(cap %d)", [c.name for c in candidates], folder, list(plan.sizes), list(plan.epochs), plan.cost, plan.cap)
    for c in candidates:
        c.pilot = c.config.replace(epochs=plan.epochs[-1], out=str(folder), name=c.name,
                                   cache_dir=c.config.cache_dir or str(folder / ".cache"))
    alive = list(candidates)
    lower = reference.select_metric == "val_loss"
    for rung, target in enumerate(plan.epochs):
        for candidate in alive:
            if not _advance(candidate, target):
                return candidate  # interrupted
        ranked = sorted(alive, key=lambda c: _score(c, lower=lower))
        keep = math.ceil(len(alive) / 2)
        for candidate in ranked[keep:]:
            candidate.result = candidate.result or f"dropped at epoch {target} (rung {rung + 1})"
        alive = ranked[:keep]
    alive[0].result = "winner"
    return alive[0]


def _advance(candidate: Candidate, target: int) -> bool:
    """Train `candidate` to `target` epochs (resuming its pilot run after the first rung); False on Ctrl-C."""
    if candidate.error:
        return True
    try:
        if candidate.run is None:
            candidate.run = train(candidate.pilot, callbacks=[StopAt(target)])
        else:
            candidate.run = train(None, resume=candidate.run.path, callbacks=[StopAt(target)])
    except ValueError as error:  # a recipe these data or settings refuse: the others go on
        candidate.error = str(error)
        candidate.result = f"failed: {error}"[:300]
        log.warning("recipe auto: candidate %r failed: %s", candidate.name, error)
        return True
    return candidate.run.status != "interrupted"


def _score(candidate: Candidate, *, lower: bool) -> float:
    """Sort key, best first: failed or metric-less candidates last."""
    best = candidate.run.best_metric if candidate.run is not None and not candidate.error else None
    if best is None or math.isnan(best):
        return math.inf
    return best if lower else -best


def _row(candidate: Candidate, metric: str) -> dict[str, Any]:
    best = candidate.run.best_metric if candidate.run is not None else None
    return {"recipe": candidate.name, "epochs": candidate.epochs, "metric": metric,
            "value": "" if best is None else round(best, 6), "result": candidate.result or "not piloted",
            "run": str(candidate.run.path) if candidate.run is not None else ""}


def write_pilot(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write the pilot table `pilot.csv` atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PILOT_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
