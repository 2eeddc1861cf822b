"""`winnow search`: hyperparameter search with Optuna over the space of `winnow.search.space`.

The search folder (`runs/search-NAME/`) holds `search.json` (its settings), `splits.csv` (the one
group-aware split every trial trains on, so trials compare), `study.db` (the default SQLite storage),
one normal run folder per trial (`trial-0000/`...), `trials.csv` and `best.yaml`.

- TPE sampler (seeded per worker), pruning at epoch boundaries (median rule by default).
- The first trial of a new study is winnow's default config, so the best is never worse than it on val.
- `jobs` worker processes share the storage; with an RDB URL (`storage`, e.g. postgresql://...) processes
  on other machines running the same search (same `study_name`) share it too.
- Budget: no trial starts when the time left cannot fit one (estimated from the trials so far), and a
  running trial stops at an epoch boundary when the time is up.
- Resume: running the same search again continues the study; trials left running by a killed process
  are failed and queued again (at once when the process was on this machine, otherwise once its
  heartbeat is stale).
- Positive-unlabelled data (`pu: true` among the user's values): every trial is a PU run on the one
  split (its `unlabeled` images are in splits.csv), and the objective is a PU measure (default
  `val_pu_auc`; one needing true negatives is refused). `prior: auto` is estimated once, before the
  search, by the command (`winnow.pu.auto.resolve_prior_values`): every trial gets the same number.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from winnow.config import Config, from_dict
from winnow.data.augment_policy import preset_name
from winnow.data.prepare import resolve_samples, sampling_targets
from winnow.data.sources import Samples
from winnow.data.splits import load_splits, save_splits
from winnow.runs.files import read_json, write_json
from winnow.runs.layout import (BEST_RECIPE_FILE, SEARCH_FILE, SEARCH_PREFIX, SPLITS_FILE, STUDY_DB, TRIALS_FILE,
                                dataset_name)
from winnow.search.budget import Budget, estimate_trial_seconds, parse_duration
from winnow.search.objective import Objective, default_objective, parse_objective
from winnow.search.results import columns, format_rows, trial_rows, write_best, write_trials
from winnow.search.space import (SearchSpace, default_point, default_space, load_space, median_image_size,
                                 space_from_dict)
from winnow.search.storage import open_storage, sqlite_url
from winnow.search.trial import TrialObjective, TrialPlan
from winnow.tasks.spec import build_tasks

log = logging.getLogger("winnow")
PRUNERS = ("median", "halving", "none")
TPE_STARTUP_TRIALS = 5  # random points before TPE models the results
MAX_FAILURES_IN_A_ROW = 3
CHECKED_SETTINGS = ("objective", "space", "recipe", "config")  # must match to continue a search
STUDY_ATTR = "winnow_search"  # the study's user attribute recording what it searches
MACHINE_KEYS = ("workers", "device", "progress", "progress_every", "cache_dir")  # may change when continuing


@dataclass
class SearchSettings:
    """A search as asked for.

    Attributes:
        user_values: Config values from the user (--config file and flags; `data` included). `name`
            names the search (default: the data set), `out` holds its folder.
        objective: Metric or operating point (`winnow.search.objective`); None: val_macro_f1, or val_pu_auc
            for positive-unlabelled data.
        trials: Trials in the study (all processes together); None: until the budget is spent.
        budget: Wall clock for this command: seconds, or "2h", "30m", "1800s"; None: until `trials` are done.
        jobs: Worker processes on this machine.
        storage: Optuna RDB URL; None: SQLite `study.db` in the search folder.
        study_name: Name of the study in the storage; None: the search folder's name.
        space: Dimensions replacing the default ones (`space_from_dict`), or a YAML file of them; None keeps
            the defaults.
        recipe: A recipe every trial uses (the recipe is then not searched).
        pruner: "median", "halving", "none", or an `optuna.pruners.BasePruner`.
        seed: Seed of the sampler; None: the config's `seed`.
        folder: The search folder; None: `out/search-NAME`.
    """

    user_values: dict[str, Any]
    objective: str | None = None
    trials: int | None = None
    budget: float | str | None = None
    jobs: int = 1
    storage: str | None = None
    study_name: str | None = None
    space: dict[str, Any] | str | Path | None = None
    recipe: str | None = None
    pruner: Any = "median"
    seed: int | None = None
    folder: str | Path | None = None


@dataclass(frozen=True)
class WorkerPlan:
    """What each worker process needs (picklable)."""

    trial: TrialPlan
    storage: str
    study_name: str
    trials: int | None
    deadline: float | None  # time.time() at which the budget ends
    epochs: int
    pruner: Any
    seed: int


@dataclass
class SearchResult:
    """A search's outcome: its folder, every trial's row, and the best trial's row and recipe file."""

    folder: Path
    study_name: str
    param_names: list[str]
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None = None
    best_yaml: Path | None = None
    stopped_because: list[str] = field(default_factory=list)
    interrupted: bool = False

    def table(self) -> str:
        return format_rows(self.rows, [c for c in columns(self.param_names) if c != "run"])


def search(settings: SearchSettings) -> SearchResult:
    """Run (or continue) a search; see the module docstring.

    Raises:
        ValueError: Bad settings (objective, space, trials/budget), bad data, or a folder holding another search.
    """
    _check_settings(settings)
    budget = parse_duration(settings.budget) if settings.budget is not None else None
    deadline = time.time() + budget if budget is not None else None  # the budget counts from the start
    plan = prepare(settings, search_objective(settings), deadline=deadline)
    _open_study(plan, open_storage(plan.storage), worker=None)
    try:
        reasons = _run_workers(plan, settings.jobs)
    except KeyboardInterrupt:  # the trial was failed and is queued again when the search is continued
        return finish(plan, stopped_because=["interrupted (run the same command again to continue)"],
                      interrupted=True)
    return finish(plan, stopped_because=reasons)


def _check_settings(settings: SearchSettings) -> None:
    if settings.trials is None and settings.budget is None:
        raise ValueError("search: give a budget (--budget 2h) or a number of trials (--trials 20), or both")
    if settings.trials is not None and (not isinstance(settings.trials, int) or settings.trials < 1):
        raise ValueError(f"search: trials must be a whole number >= 1, got {settings.trials!r}")
    if not isinstance(settings.jobs, int) or settings.jobs < 1:
        raise ValueError(f"search: jobs must be a whole number >= 1, got {settings.jobs!r}")
    if isinstance(settings.pruner, str) and settings.pruner not in PRUNERS:
        raise ValueError(f"search: unknown pruner {settings.pruner!r}; valid pruners: {', '.join(PRUNERS)}")
    if settings.recipe is not None and settings.space and "recipe" in settings.space:
        raise ValueError("search: the recipe is given (--recipe) and searched (`recipe` in the space); drop one")
    if settings.user_values.get("pu") and settings.user_values.get("prior") == "auto":
        raise ValueError("search: prior 'auto' is estimated once before the search, by `winnow search` "
                         "(winnow.pu.auto.resolve_prior_values); pass a number in (0, 1) to search()")


def search_objective(settings: SearchSettings) -> Objective:
    """The parsed objective (default: `default_objective`), checked against positive-unlabelled data."""
    pu = bool(settings.user_values.get("pu"))
    objective = parse_objective(settings.objective or default_objective(pu=pu))
    if pu:
        objective.check_pu()
    return objective


# ------------------------------------------------------------------------------------------ preparing


def prepare(settings: SearchSettings, objective: Objective, *, deadline: float | None = None) -> WorkerPlan:
    """Folder, split, space and settings file of the search (new, or checked against the saved one).

    Args:
        settings: The search asked for.
        objective: Its parsed objective.
        deadline: `time.time()` at which the budget ends (None: no budget).
    """
    selects = {"select_metric": objective.select_metric} if objective.select_metric else {}
    config = from_dict({**selects, **settings.user_values}, source="search config")  # as the trials have it
    folder = Path(settings.folder) if settings.folder else Path(config.out) / f"{SEARCH_PREFIX}{search_name(config)}"
    folder.mkdir(parents=True, exist_ok=True)
    split_file, samples = _split(config, folder)
    train_rows = samples.where_split("train")
    tasks = build_tasks(config.replace(data=[str(split_file)], val=[], test=[]), train_rows.column)
    head = tasks[0].head.kind if len(tasks) == 1 else "multitask"
    objective.check_classes(tasks[0].head.classes, head=head, pu=config.pu)
    space = _space(settings, config, head, train_rows.paths)
    default_strength = _default_aug_strength(config, tasks, train_rows)
    trial_plan = TrialPlan(folder, split_file, dict(settings.user_values), objective, space, head, settings.recipe,
                           default_strength)
    _check_saved(folder, _saved_settings(settings, objective, space))
    return WorkerPlan(trial_plan, settings.storage or sqlite_url(folder / STUDY_DB),
                      settings.study_name or folder.name, settings.trials, deadline,
                      trial_plan.config(default_point(space, settings.user_values, aug_strength=default_strength),
                                        0).epochs, settings.pruner,
                      config.seed if settings.seed is None else settings.seed)


def _default_aug_strength(config: Config, tasks: list, train: Samples) -> float:
    """Where `augment` (auto: from the training imbalance) puts the default on the aug_strength axis."""
    preset = preset_name(config.augment, sampling_targets(tasks, train), len(tasks[0].head.classes))
    return 1.0 if preset == "standard" else 0.0


def _saved_settings(settings: SearchSettings, objective: Objective, space: SearchSpace) -> dict[str, Any]:
    """What search.json keeps and a continuation must match."""
    kept = {key: value for key, value in settings.user_values.items() if key not in MACHINE_KEYS}
    return {"objective": objective.text, "space": space.to_dict(), "recipe": settings.recipe,
            "config": json.loads(json.dumps(kept, default=str))}


def search_name(config: Config) -> str:
    """`name`, or the first data set's name."""
    return config.name or (dataset_name(config.data[0]) if config.data else "data")


def _split(config: Config, folder: Path):
    """The search's split: made once (group-aware, seeded) and saved, then read back on every continuation."""
    path = folder / SPLITS_FILE
    if path.is_file():
        return path, load_splits(path)
    samples = resolve_samples(config)
    counts = {split: len(samples.where_split(split)) for split in ("train", "val", "test")}
    if not counts["val"]:
        raise ValueError("search: the split has no val images, and trials are compared on val; "
                         "set --val-fraction above 0 or give --val")
    save_splits(samples, path)
    log.info("search split: %s images %s, saved to %s (every trial trains on it)", len(samples), counts, path)
    return path, samples


def _space(settings: SearchSettings, config: Config, head: str, train_paths: Sequence[str]) -> SearchSpace:
    fixed = [*settings.user_values, *(["recipe"] if settings.recipe else [])]
    base = default_space(head=head, median_size=median_image_size(train_paths), img_size=config.img_size)
    space = base
    if isinstance(settings.space, (str, Path)):
        space = space_from_dict(load_space(settings.space), base=base, source=f"search space file {settings.space}")
    elif settings.space:
        space = space_from_dict(settings.space, base=base)
    space = space.without(fixed)
    if not space.searched():
        raise ValueError("search: nothing left to search: every dimension is fixed by your flags or dropped by the "
                         "space; leave out one of --lr, --img-size, --model, --recipe, or widen the space")
    return space


def _check_saved(folder: Path, current: dict[str, Any]) -> None:
    """Write search.json for a new search; for an existing one, refuse different settings."""
    path = folder / SEARCH_FILE
    if not path.is_file():
        write_json(path, current)
        return
    saved = read_json(path, what="search settings")
    changed = [key for key in CHECKED_SETTINGS if saved.get(key) != current[key]]
    if changed:
        raise ValueError(f"{folder} holds a search with other settings ({', '.join(changed)} differ: saved "
                         f"{ {k: saved.get(k) for k in changed} }); give the same settings to continue it, or "
                         "another --name to start a new search")


# -------------------------------------------------------------------------------------------- study


def _pruner(pruner: Any) -> optuna.pruners.BasePruner:
    if not isinstance(pruner, str):
        return pruner
    return {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2),
            "halving": optuna.pruners.SuccessiveHalvingPruner, "none": optuna.pruners.NopPruner}[pruner]()


def _open_study(plan: WorkerPlan, storage: optuna.storages.BaseStorage, *, worker: int | None) -> optuna.Study:
    """Create or load the study (`worker` None: the command's own first look, which checks and seeds it).

    A new study records what it searches (objective, space, recipe) so that a command on another machine
    sharing the storage cannot add trials of another search, and gets the default config as its first trial.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # winnow logs each trial itself
    n_before = len(optuna.load_study(study_name=plan.study_name, storage=storage).trials) \
        if plan.study_name in optuna.get_all_study_names(storage) else 0
    sampler = optuna.samplers.TPESampler(seed=plan.seed + 1000 * (worker or 0) + n_before,
                                         n_startup_trials=TPE_STARTUP_TRIALS)
    study = optuna.create_study(storage=storage, study_name=plan.study_name, direction=plan.trial.objective.direction,
                                sampler=sampler, pruner=_pruner(plan.pruner), load_if_exists=True)
    if worker is None:
        _check_study(study, plan)
        point = default_point(plan.trial.space, plan.trial.user_values, aug_strength=plan.trial.default_aug_strength)
        if point:  # once (also when several machines start together): no trial with these values yet
            study.enqueue_trial(point, user_attrs={"default": True}, skip_if_exists=True)
    return study


def _check_study(study: optuna.Study, plan: WorkerPlan) -> None:
    """Refuse a study in the storage that searches something else."""
    wanted = {"objective": plan.trial.objective.text, "space": plan.trial.space.to_dict(), "recipe": plan.trial.recipe}
    saved = study.user_attrs.get(STUDY_ATTR)
    if saved is None:
        study.set_user_attr(STUDY_ATTR, wanted)
        saved = wanted
    changed = [key for key in wanted if saved.get(key) != wanted[key]]
    if changed or study.direction.name.lower() != plan.trial.objective.direction:
        raise ValueError(f"study {plan.study_name!r} in {plan.storage} searches something else ({', '.join(changed)} "
                         f"differ: it has { {k: saved.get(k) for k in changed or wanted} }); give the same settings "
                         "or another --study-name")


def requeue_orphans(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[int]:
    """Fail and queue again the trials this machine's dead processes left running, and Ctrl-C'd ones.

    Returns:
        The numbers of the trials queued again.
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    queued, retried = [], _retried(study)
    for trial in study.get_trials(deepcopy=False):
        if not _orphaned(trial, retried=retried):
            continue
        if trial.state == TrialState.RUNNING:
            try:
                storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number),
                                               TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another process got there first
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        queued.append(trial.number)
    if queued:
        log.info("queued again trial(s) %s, left unfinished by a stopped search", queued)
    return queued


def _orphaned(trial, *, retried: set[int]) -> bool:
    if trial.number in retried:
        return False
    if trial.state == TrialState.FAIL:
        return bool(trial.user_attrs.get("interrupted"))
    return trial.state == TrialState.RUNNING and _dead_here(trial.user_attrs.get("worker", ""))


def _dead_here(worker: str) -> bool:
    """Whether `host:pid` names a process of this machine that no longer runs."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _retried(study: optuna.Study) -> set[int]:
    """Numbers of the trials that another trial re-runs (ours, or the heartbeat callback's)."""
    found = set()
    for trial in study.get_trials(deepcopy=False):
        for number in (trial.user_attrs.get("retry_of"), trial.system_attrs.get("failed_trial")):
            if number is not None:
                found.add(int(number))
    return found


# ------------------------------------------------------------------------------------------ workers


def _run_workers(plan: WorkerPlan, jobs: int) -> list[str]:
    if jobs == 1:
        return [run_worker(plan, 0)]
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch threads or DB handles
    queue = context.Queue()
    processes = [context.Process(target=_worker_process, args=(plan, worker, jobs, queue),
                                 name=f"winnow-search-{worker}") for worker in range(jobs)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [p.name for p in processes if p.exitcode != 0]
    if failed:
        raise ValueError(f"search: worker process(es) {failed} failed; see their messages above")
    return [queue.get(timeout=10) for _ in processes]  # each worker put why it stopped before exiting


def _worker_process(plan: WorkerPlan, worker: int, jobs: int, queue) -> None:
    """Entry point of a spawned worker: its share of the cores, its own log prefix, then the trial loop."""
    import torch

    logging.basicConfig(level=logging.INFO, format=f"[worker {worker}] %(message)s")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))
    queue.put(run_worker(plan, worker))


def run_worker(plan: WorkerPlan, worker: int) -> str:
    """Start trials until the study has its trials, the budget cannot fit one, or trials keep failing.

    Returns:
        Why it stopped.

    Raises:
        ValueError: MAX_FAILURES_IN_A_ROW trials failed in a row (their last error is given).
    """
    storage = open_storage(plan.storage)
    study = _open_study(plan, storage, worker=worker)
    requeue_orphans(study, storage)
    budget = Budget(plan.deadline - time.time() if plan.deadline is not None else None)
    objective = TrialObjective(plan.trial, budget)
    failures = 0
    while True:
        reason = gate(study, plan, budget)
        if reason:
            log.info("search: no new trial: %s", reason)
            return reason
        study.optimize(objective, n_trials=1, catch=(ValueError, RuntimeError), gc_after_trial=True)
        write_table(plan, study)
        failures = failures + 1 if objective.failed else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            raise ValueError(f"search: {failures} trials in a row failed; the last one: {objective.failed}")


def gate(study: optuna.Study, plan: WorkerPlan, budget: Budget) -> str | None:
    """Why no further trial should start (None: start one)."""
    trials = study.get_trials(deepcopy=False)
    retried = _retried(study)
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
               or t.state == TrialState.FAIL and t.number not in retried]
    if plan.trials is not None and len(counted) >= plan.trials:
        return f"the study has its {plan.trials} trial(s)"
    estimate = _estimate(trials, plan.epochs)
    if not budget.fits(estimate):
        left = max(0.0, budget.remaining())
        return ("the budget is spent" if left <= 0 else
                f"{left:.0f} s of the budget left, and a trial takes about {estimate:.0f} s")
    return None


def _estimate(trials: Sequence[Any], epochs: int) -> float | None:
    finished = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials
                if t.state == TrialState.COMPLETE and t.user_attrs.get("status") == "finished"]
    ran = [t for t in trials if t.user_attrs.get("epochs_done")]
    per_epoch = [t.user_attrs["train_s"] / t.user_attrs["epochs_done"] for t in ran]
    return estimate_trial_seconds(finished, per_epoch, epochs=epochs, startup=[t.user_attrs["startup_s"] for t in ran])


# ------------------------------------------------------------------------------------------ results


def write_table(plan: WorkerPlan, study: optuna.Study) -> list[dict[str, Any]]:
    """Write trials.csv from the storage (every process's trials); returns its rows."""
    names = plan.trial.space.searched()
    trials = study.get_trials(deepcopy=False)
    rows = trial_rows(trials, param_names=names)
    reruns = {}
    for trial in trials:
        original = trial.user_attrs.get("retry_of", trial.system_attrs.get("failed_trial"))
        if original is not None:
            reruns[int(original)] = trial.number
    for row in rows:
        if row["number"] in reruns and row["state"] == "FAIL":
            row["status"] = f"stopped unfinished, re-run as trial {reruns[row['number']]}"
    write_trials(plan.trial.folder, rows, param_names=names)
    return rows


def finish(plan: WorkerPlan, *, stopped_because: Sequence[str] = (), interrupted: bool = False) -> SearchResult:
    """trials.csv, best.yaml from the best finished trial, and the result."""
    study = optuna.load_study(study_name=plan.study_name, storage=open_storage(plan.storage))
    rows = write_table(plan, study)
    result = SearchResult(plan.trial.folder, plan.study_name, plan.trial.space.searched(), rows,
                          stopped_because=list(stopped_because), interrupted=interrupted)
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "config" in t.user_attrs]
    if complete:
        best = (max if plan.trial.objective.maximize else min)(complete, key=lambda t: t.value)
        result.best = next(row for row in rows if row["number"] == best.number)
        result.best_yaml = write_best(plan.trial.folder, best.user_attrs["config"], header=_best_header(plan, best))
    return result


def _best_header(plan: WorkerPlan, best) -> list[str]:
    recipe = plan.trial.folder / BEST_RECIPE_FILE
    return [f"best of search {plan.trial.folder} (study {plan.study_name!r}): trial {best.number}, "
            f"{plan.trial.objective.text} = {best.value:.4f} on val (epoch {best.user_attrs.get('best_epoch')})",
            f"run folder: {best.user_attrs.get('run', '?')}",
            f"train it on the search's split: winnow train {plan.trial.split_file} --config {recipe}",
            f"or on other data: winnow train DATA --config {recipe}"]


def search_summary(result: SearchResult) -> list[str]:
    """What `winnow search` prints: the trial table, why it stopped, the best trial and its recipe file."""
    lines = [f"search {result.folder} (study {result.study_name!r}): {len(result.rows)} trial(s)", result.table()]
    lines += [f"stopped: {reason}" for reason in dict.fromkeys(result.stopped_because)]
    if result.best is None:
        lines.append("no trial finished yet, so there is no best config; continue with the same command")
        return lines
    best = result.best
    lines.append(f"best: trial {best['number']}, value {best['value']:.4f} (epoch {best['best_epoch']}), "
                 f"run folder {best['run']}")
    lines.append(f"best config: {result.best_yaml} (winnow train DATA --config {result.best_yaml})")
    lines.append(f"trials: {result.folder / TRIALS_FILE}; list the runs with `winnow runs {result.folder}`")
    return lines
