"""`winnow search` and `train --recipe auto`: objectives, space, budget, trainer callbacks, tiny searches."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import warnings
from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import yaml

import winnow
from winnow.cli.main import main
from winnow.config import from_dict, load_yaml
from winnow.operating.targets import parse_target
from winnow.recipes import candidate_recipes, load_recipe
from winnow.runs.files import read_json
from winnow.runs.layout import RunPaths
from winnow.search import study as study_module
from winnow.search.budget import Budget, estimate_trial_seconds, parse_duration
from winnow.search.objective import operating_value, parse_objective
from winnow.search.pilot import plan_pilot
from winnow.search.space import SearchSpace, default_point, sizes_around, space_from_dict, trial_values
from winnow.search.storage import open_storage, sqlite_url
from winnow.search.study import SearchSettings, gate, search
from winnow.search.trial import EpochReporter
from winnow.training.callbacks import StopTraining

from conftest import fast_config

TINY_SPACE = {"model": ["test_resnet"], "recipe": ["default", "baseline"], "img_size": None}


def tiny_values(tmp_path, data, **overrides) -> dict:
    """User config values of a search that trains in seconds (test_resnet, 32 px, 2 epochs)."""
    values = dict(data=[str(data)], out=str(tmp_path / "runs"), img_size=32, epochs=2, batch_size=8, workers=0,
                  progress=False, warmup_epochs=0, val_fraction=0.25, test_fraction=0.25,
                  cache_dir=str(tmp_path / "cache"), name="tiny")
    values.update(overrides)
    return values


# ------------------------------------------------------------------------------------------ objective


@pytest.mark.parametrize("text, metric, direction", [
    ("val_macro_f1", "val_macro_f1", "maximize"), ("balanced_accuracy", "val_balanced_accuracy", "maximize"),
    ("val_loss", "val_loss", "minimize"), ("accuracy", "val_accuracy", "maximize")])
def test_metric_objectives_name_an_epoch_row_key(text, metric, direction):
    objective = parse_objective(text)
    assert (objective.metric, objective.target, objective.direction) == (metric, None, direction)


@pytest.mark.parametrize("text, target, direction", [
    ("recall(good)@precision(good)>=0.9", "precision(good)>=0.9 maximize recall(good)", "maximize"),
    ("precision(bad)@recall(bad)>=0.95", "recall(bad)>=0.95 maximize precision(bad)", "maximize"),
    ("fpr(bad)@recall(bad)>=0.95", "recall(bad)>=0.95 minimize fpr(bad)", "minimize"),
    ("recall@precision>=0.9", "precision>=0.9 maximize recall", "maximize")])
def test_operating_point_objectives_become_tune_targets(text, target, direction):
    objective = parse_objective(text)
    assert (objective.metric, objective.target, objective.direction) == (None, target, direction)


@pytest.mark.parametrize("text, message", [
    ("f1", "unknown metric; expected one of macro_f1"),
    ("val macro_f1", "could not read it"),
    ("recall(good)@precision(good)>=90", r"must be in \[0, 1\], got 90 \(write 0.9, not 90\)"),
    ("foo(good)@precision(good)>=0.9", "unknown metric 'foo' before '@'"),
    ("recall(good)@precision(good)<=0.9", "precision takes '>='"),
    ("recall(good)@", "expected METRIC\\(CLASS\\)@CONSTRAINT"),
    ("val macro", "could not read it"),
    ("", "expected a metric or an operating point")])
def test_bad_objectives_say_what_is_valid(text, message):
    with pytest.raises(ValueError, match=message):
        parse_objective(text)


def test_operating_objective_checks_classes_and_head():
    objective = parse_objective("recall(good)@precision(good)>=0.9")
    objective.check_classes(["bad", "good"], head="multiclass")
    with pytest.raises(ValueError, match="unknown class 'good'"):
        objective.check_classes(["a", "b", "c"], head="multiclass")
    with pytest.raises(ValueError, match="needs a multiclass or binary head"):
        objective.check_classes(["bad", "good"], head="multilabel")
    parse_objective("val_f1_good").check_classes(["bad", "good"], head="multilabel")
    with pytest.raises(ValueError, match="a multiclass head's epoch rows have no 'val_micro_f1'; they have val_loss"):
        parse_objective("val_micro_f1").check_classes(["bad", "good"], head="multiclass")


def test_operating_value_matches_a_naive_threshold_loop():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1, 1], size=200)
    targets = np.where(rng.random(200) < 0.6, probs.argmax(1), rng.integers(0, 3, 200))
    classes = ["a", "b", "c"]
    target = parse_target("precision(b)>=0.6 maximize recall(b)", classes)
    best = 0.0
    for u in np.unique(probs[:, 1]):  # predict b when its score >= u, else the best other class
        others = probs.copy()
        others[:, 1] = -1
        predicted = np.where(probs[:, 1] >= u, 1, others.argmax(1))
        hits = ((predicted == 1) & (targets == 1)).sum()
        if hits / max((predicted == 1).sum(), 1) >= 0.6:
            best = max(best, hits / (targets == 1).sum())
    assert operating_value(target, probs, targets, classes) == pytest.approx(best)
    assert operating_value(parse_target("precision(b)>=1.0", classes), probs, targets, classes) in (0.0, best)


# --------------------------------------------------------------------------------------- budget, space


@pytest.mark.parametrize("text, seconds", [("2h", 7200), ("30m", 1800), ("1800s", 1800), ("1h30m", 5400),
                                           ("90", 90), (0.5, 0.5), ("0.5s", 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["2 hours", "-5m", "0s", "", "h"])
def test_bad_durations_show_the_forms(text):
    with pytest.raises(ValueError, match="budget: expected a duration"):
        parse_duration(text)


def test_budget_fits_a_trial_only_when_its_estimate_is_left():
    now = [0.0]
    budget = Budget(100, clock=lambda: now[0])
    assert budget.fits(None) and budget.fits(100) and not budget.fits(101)
    now[0] = 60
    assert budget.fits(40) and not budget.fits(41) and not budget.exhausted()
    now[0] = 100
    assert budget.exhausted() and not budget.fits(None)
    assert estimate_trial_seconds([10, 30, 20], [1.0], epochs=5) == 20
    assert estimate_trial_seconds([], [2.0, 4.0, 3.0], epochs=10, startup=[5.0]) == 35
    assert estimate_trial_seconds([], [], epochs=10) is None


def _frozen(number, state, seconds=None, **attrs):
    start = datetime(2030, 1, 1)
    return SimpleNamespace(number=number, state=state, user_attrs=attrs, system_attrs={}, datetime_start=start,
                           datetime_complete=start + timedelta(seconds=seconds) if seconds else None)


def test_gate_starts_no_trial_that_the_budget_cannot_fit():
    finished = _frozen(0, optuna.trial.TrialState.COMPLETE, 50, status="finished", epochs_done=2, train_s=40.0,
                       startup_s=10.0)
    fake = SimpleNamespace(get_trials=lambda deepcopy=False: [finished])
    plan = SimpleNamespace(trials=None, epochs=2)
    now = [0.0]
    budget = Budget(120, clock=lambda: now[0])
    assert gate(fake, plan, budget) is None
    now[0] = 80  # 40 s left, a trial takes 50
    assert "40 s of the budget left, and a trial takes about 50 s" in gate(fake, plan, budget)
    assert "has its 1 trial" in gate(fake, SimpleNamespace(trials=1, epochs=2), Budget(None))


def test_space_file_replaces_and_drops_dimensions():
    base = SearchSpace(recipe=("default",), lr=(3e-4, 1e-2), aug_strength=(0.0, 2.0), img_size=(64,),
                       model=("resnet18",))
    space = space_from_dict({"lr": [1e-3, 1e-2], "img_size": None, "model": ["resnet18", "resnet34"]}, base=base)
    assert space.lr == (1e-3, 1e-2) and space.img_size is None and space.model == ("resnet18", "resnet34")
    assert space.without(["lr", "rotate", "scale_jitter", "brightness", "contrast"]).searched() == ["recipe", "model"]
    assert space.without(["rotate"]).aug_strength == (0.0, 2.0)  # one augmentation key left searched keeps it
    for bad, message in [({"lrate": [1, 2]}, r"unknown dimension\(s\) \['lrate'\]"),
                         ({"lr": [0.1, 0.01]}, r"lr must be \[low, high\]"), ({"lr": [0, 0.1]}, "0 < low"),
                         ({"model": []}, "non-empty list of strs"), ({"recipe": ["fast"]}, r"unknown recipe\(s\)")]:
        with pytest.raises(ValueError, match=message):
            space_from_dict(bad, base=base)


def test_trial_values_stack_recipe_user_and_sampled_values():
    params = {"recipe": "finegrained", "lr": 0.005, "aug_strength": 2.0, "model": "resnet34", "img_size": 48}
    values = trial_values(params, {"epochs": 3, "rotate": 5.0})
    finegrained = load_recipe("finegrained")
    assert values["label_smoothing"] == finegrained["label_smoothing"]  # from the recipe
    assert values["epochs"] == 3 and values["rotate"] == 5.0  # the user's fixed keys win over the recipe and s
    assert values["lr"] == 0.005 and values["img_size"] == 48
    assert values["model"] == "gem:resnet34"  # the recipe's family on the sampled backbone
    assert values["scale_jitter"] == pytest.approx(0.2) and values["brightness"] == pytest.approx(0.2)
    assert trial_values({"aug_strength": 20.0}, {})["rotate"] == 180  # capped
    assert trial_values({"aug_strength": 0.0}, {})["contrast"] == 0
    from_dict(values)
    with pytest.raises(ValueError, match="does not fit a binary head"):
        trial_values({"recipe": "longtail"}, {}, head="binary")


def test_default_point_and_sizes():
    assert sizes_around(70, include=64) == (48, 64, 96) and sizes_around(400, include=64) == (64, 288, 384)
    assert sizes_around(None, include=64) == (64,)
    space = SearchSpace(recipe=("default", "baseline"), lr=(3e-4, 1e-2), aug_strength=(0.0, 2.0), img_size=(48, 96))
    assert default_point(space, {}) == {"recipe": "default", "lr": 2e-3, "aug_strength": 1.0}
    assert list(candidate_recipes("multiclass")) == ["default", "baseline", "longtail", "finegrained"]
    assert list(candidate_recipes("binary")) == ["default"]


# -------------------------------------------------------------------------------------- trainer hooks


def test_a_callback_stops_training_at_an_epoch_boundary(tmp_path, manifest):
    seen = []

    def stop_after_first(event):
        seen.append(event)
        raise StopTraining("pruned", "enough")

    run = winnow.train(fast_config(tmp_path, manifest, epochs=3), callbacks=[stop_after_first])
    assert run.status == "pruned" and [r["epoch"] for r in run.metrics] == [1]
    summary = read_json(RunPaths(run.path).summary, what="summary")
    assert summary["status"] == "pruned" and summary["epochs_done"] == 1 and summary["test"] is None
    (event,) = seen
    assert event.epoch == 1 and event.epochs == 3 and event.head == "multiclass"
    assert event.val_probabilities.shape == (len(event.val_targets), 3)
    assert RunPaths(run.path).checkpoint("last").is_file()  # resumable
    with pytest.raises(ValueError, match="StopTraining status"):
        StopTraining("finished")


class FakeTrial:
    """An Optuna trial stand-in whose pruner prunes from epoch `prune_at` on."""

    def __init__(self, prune_at: int) -> None:
        self.number, self.prune_at, self.reported = 7, prune_at, []

    def report(self, value, step):
        self.reported.append((step, value))

    def should_prune(self):
        return len(self.reported) >= self.prune_at


def test_pruned_trial_stops_and_its_run_says_pruned(tmp_path, manifest):
    trial = FakeTrial(prune_at=2)
    reporter = EpochReporter(trial, parse_objective("val_accuracy"), Budget(None))
    run = winnow.train(fast_config(tmp_path, manifest, epochs=4), callbacks=[reporter])
    assert run.status == "pruned" and len(run.metrics) == 2
    assert [step for step, _ in trial.reported] == [1, 2]
    assert trial.reported[-1][1] == max(r["val_accuracy"] for r in run.metrics)  # best so far is reported
    assert read_json(RunPaths(run.path).summary, what="summary")["status"] == "pruned"


def test_spent_budget_stops_the_running_trial(tmp_path, manifest):
    reporter = EpochReporter(FakeTrial(prune_at=99), parse_objective("recall(disk)@precision(disk)>=0.5"),
                             Budget(1e-9))
    run = winnow.train(fast_config(tmp_path, manifest, epochs=3), callbacks=[reporter])
    assert run.status == "stopped" and len(run.metrics) == 1
    assert 0.0 <= reporter.best <= 1.0


# ------------------------------------------------------------------------------------------- searches


def _trials_csv(folder):
    with open(folder / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_cli_search_writes_trials_and_a_best_recipe(tmp_path, manifest, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE))
    argv = ["search", str(manifest), "--trials", "3", "--space", str(space), "--out", str(tmp_path / "runs"),
            "--name", "tiny", "--img-size", "32", "--epochs", "2", "--batch-size", "8", "--workers", "0",
            "--no-progress", "--warmup-epochs", "0", "--val-fraction", "0.25", "--test-fraction", "0.25"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "runs" / "search-tiny"
    rows = _trials_csv(folder)
    assert [r["number"] for r in rows] == ["0", "1", "2"] and "best: trial" in out and "number  state" in out
    assert rows[0]["recipe"] == "default" and float(rows[0]["lr"]) == 2e-3  # the default config goes first
    for row in rows:
        assert RunPaths(row["run"]).summary.is_file() and row["state"] in ("COMPLETE", "PRUNED")
    recipe = load_yaml(folder / "best.yaml")  # what `winnow train --config best.yaml` reads
    config = from_dict(recipe)
    assert config.model == "test_resnet" and "data" not in recipe and "out" not in recipe
    completed = [float(r["value"]) for r in rows if r["state"] == "COMPLETE"]
    header = re.search(r"trial (\d+), val_macro_f1 = ([0-9.]+) on val", (folder / "best.yaml").read_text())
    assert float(header[2]) == pytest.approx(max(completed), abs=1e-4)
    assert float(rows[int(header[1])]["value"]) == pytest.approx(max(completed))
    # best.yaml on the search's split trains the best trial again, to the same value
    again = winnow.train(from_dict({**recipe, "data": [str(folder / "splits.csv")], "out": str(tmp_path / "again"),
                                    "workers": 0, "progress": False}))
    assert again.best_metric == pytest.approx(float(header[2]), abs=1e-4)
    # every trial trained on the one saved split
    split = (folder / "splits.csv").read_text()
    for row in rows:
        assert (RunPaths(row["run"]).splits).read_text() == split
    assert main(["runs", str(folder)]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("trial  objective  name") and "trial-0002" in listing


def test_search_continues_a_study_and_requeues_a_killed_trial(tmp_path, manifest):
    values = tiny_values(tmp_path, manifest, epochs=1)
    first = search(SearchSettings(values, trials=2, space=TINY_SPACE, pruner="none"))
    assert [r["number"] for r in first.rows] == [0, 1]
    # a trial left RUNNING by a process that no longer exists (killed)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage = open_storage(sqlite_url(first.folder / "study.db"))
    study = optuna.load_study(study_name="search-tiny", storage=storage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # heartbeats are meant for Study.optimize, not a bare ask
        orphan = study.ask({"recipe": optuna.distributions.CategoricalDistribution(["default", "baseline"])})
    orphan.set_user_attr("worker", f"{study_module.socket.gethostname()}:{dead.pid}")
    again = search(SearchSettings(values, trials=4, space=TINY_SPACE, pruner="none"))
    states = {r["number"]: r["state"] for r in again.rows}
    assert states[2] == "FAIL" and sorted(states) == [0, 1, 2, 3, 4]  # 2 failed and queued again as 3
    assert again.rows[2]["status"] == "stopped unfinished, re-run as trial 3"
    reloaded = optuna.load_study(study_name="search-tiny", storage=storage)
    assert reloaded.trials[3].user_attrs["retry_of"] == 2
    assert reloaded.trials[3].params["recipe"] == reloaded.trials[2].params["recipe"]
    assert sum(s in ("COMPLETE", "PRUNED") for s in states.values()) == 4
    with pytest.raises(ValueError, match="holds a search with other settings \\(objective differ"):
        search(SearchSettings(values, trials=5, space=TINY_SPACE, objective="val_loss"))
    # another machine's folder, the same storage and study: its settings are checked against the study's
    url = sqlite_url(first.folder / "study.db")
    with pytest.raises(ValueError, match="searches something else \\(space differ"):
        search(SearchSettings(values, trials=5, space={**TINY_SPACE, "lr": [1e-3, 1e-2]}, storage=url,
                              study_name="search-tiny", folder=tmp_path / "elsewhere"))


def test_a_tiny_budget_starts_only_what_fits(tmp_path, manifest, monkeypatch):
    ticks = iter(range(1000))  # a clock that moves one second each time the budget is looked at
    monkeypatch.setattr(study_module, "Budget", lambda seconds: Budget(2.5, clock=lambda: float(next(ticks))))
    result = search(SearchSettings(tiny_values(tmp_path, manifest, epochs=5), trials=5, budget="1h",
                                   space=TINY_SPACE))
    # started at 1 s (no estimate yet), went on after epoch 1 (2 s), stopped after epoch 2 (3 s > 2.5 s)
    (row,) = result.rows
    assert row["state"] == "PRUNED" and row["status"] == "stopped" and row["epochs"] == 2
    assert result.best is None and result.stopped_because == ["the budget is spent"]


def test_search_refuses_bad_settings(tmp_path, manifest):
    values = tiny_values(tmp_path, manifest)
    with pytest.raises(ValueError, match="give a budget"):
        search(SearchSettings(values))
    with pytest.raises(ValueError, match="unknown class 'good'"):
        search(SearchSettings(values, trials=1, objective="recall(good)@precision(good)>=0.9"))
    with pytest.raises(ValueError, match="nothing left to search"):
        search(SearchSettings(values, trials=1, space={"recipe": None, "lr": None, "aug_strength": None,
                                                       "model": None}))


CLAIM_QUEUED = """
import sys, warnings
import optuna
from winnow.search.storage import open_storage
warnings.simplefilter("ignore")
study = optuna.load_study(study_name="race", storage=open_storage(sys.argv[1]))
print(*[study.ask().user_attrs.get("queued") for _ in range(8)])
"""


def test_parallel_processes_never_claim_one_queued_trial_twice(tmp_path):
    # plain SQLite lets two processes read one WAITING trial and both run it (34 of 40 distinct, measured)
    url = sqlite_url(tmp_path / "race.db")
    study = optuna.create_study(study_name="race", storage=open_storage(url))
    for i in range(24):
        study.enqueue_trial({}, user_attrs={"queued": i})
    workers = [subprocess.Popen([sys.executable, "-c", CLAIM_QUEUED, url], stdout=subprocess.PIPE, text=True)
               for _ in range(3)]
    claimed = [int(n) for worker in workers for n in worker.communicate(timeout=120)[0].split()]
    assert sorted(claimed) == list(range(24))


@pytest.mark.slow
def test_parallel_workers_share_the_study(tmp_path, manifest):
    result = search(SearchSettings(tiny_values(tmp_path, manifest, epochs=1), trials=2, jobs=2, space=TINY_SPACE))
    assert sorted(r["number"] for r in result.rows) == [0, 1]
    assert len({json.dumps(r["run"]) for r in result.rows}) == 2 and result.best is not None


# ------------------------------------------------------------------------------------- --recipe auto


def test_pilot_plan_stays_within_a_quarter_of_the_epochs():
    plan = plan_pilot(4, 30)
    assert plan.sizes == (4, 2) and plan.epochs == (1, 2) and plan.cost == 6 <= plan.cap == 7
    assert plan_pilot(4, 100).epochs == (4, 8) and plan_pilot(4, 100).cost == 24
    assert plan_pilot(4, 23) is None and plan_pilot(1, 100) is None
    for n in range(2, 7):
        for epochs in range(1, 80):
            plan = plan_pilot(n, epochs)
            assert plan is None or plan.cost <= epochs // 4


def test_recipe_auto_pilots_then_trains_the_winner(tmp_path, manifest, capsys, monkeypatch):
    # two of the candidates keep it short: a one-rung pilot of 1 epoch each, within 25% of 8 epochs
    two = {name: values for name, values in candidate_recipes("multiclass").items() if name in ("baseline", "longtail")}
    monkeypatch.setattr("winnow.search.pilot.candidate_recipes", lambda head: two)
    argv = ["train", str(manifest), "--recipe", "auto", "--out", str(tmp_path / "runs"), "--name", "auto",
            "--model", "test_resnet", "--img-size", "32", "--epochs", "8", "--batch-size", "8", "--workers", "0",
            "--no-progress", "--warmup-epochs", "0", "--val-fraction", "0.25", "--test-fraction", "0.25",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "auto"
    with open(run / "pilot.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["recipe"] for r in rows] == ["baseline", "longtail"]
    assert [int(r["epochs"]) for r in rows] == [1, 1] and sum(int(r["epochs"]) for r in rows) <= 8 // 4
    (winner,) = [r for r in rows if r["result"] == "winner"]
    values = [float(r["value"]) for r in rows]
    assert float(winner["value"]) == max(values)
    assert f"recipe auto: chose {winner['recipe']}" in out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["epochs"] == 8 and saved["model"] == "test_resnet"
    assert saved["loss"] == load_recipe(winner["recipe"])["loss"] and saved["sampler"] == "random"
    assert (tmp_path / "runs" / "auto-pilot" / winner["recipe"] / "summary.json").is_file()
