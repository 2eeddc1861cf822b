"""`winnow ensemble` (mean, vote, stack, svm) and the ensemble folder in predict / eval / tune / calibrate."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import winnow
from winnow.ensembles.averaging import MajorityVote, MeanCombiner
from winnow.ensembles.build import stacking_warnings
from winnow.ensembles.feature_head import EmbeddingClassifier
from winnow.ensembles.methods import METHODS, make_combiner
from winnow.ensembles.predictor import EnsemblePredictor
from winnow.ensembles.stacking import StackedLogistic
from winnow.inference.tta import TTA

from conftest import fast_config
from test_eval_cli import cli, read_rows, shape_folder

TARGET = "precision(good)>=0.9"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two binary runs (seeds 0 and 1) on one split, a run with another split, a multiclass run, held-out data."""
    root = tmp_path_factory.mktemp("ensembles")
    data = shape_folder(root / "train", 20, seed=0)
    common = dict(head="binary", positive_class="good", epochs=3, split_seed=0)
    trained = {name: winnow.train(fast_config(root, data, name=name, **settings)).path for name, settings in {
        "a": dict(common, seed=0), "b": dict(common, seed=1), "other_split": dict(common, seed=2, split_seed=7),
        "multiclass": dict(epochs=1)}.items()}
    return {**trained, "held": shape_folder(root / "held", 15, seed=1), "root": root}


def build(capsys, runs, tmp_path, *members, method="mean", extra=()):
    out = tmp_path / f"ens-{method}"
    code, stdout, stderr = cli(capsys, "ensemble", *[runs[m] for m in members], "--method", method, "--out", out,
                               *extra)
    assert code == 0, stderr
    return out, stdout


def member_probabilities(runs, names, images) -> np.ndarray:
    # one view each: an ensemble scores its members without test-time views (the members' runs default to flips)
    return np.stack([winnow.load(runs[name]).predict(images, tta="none").probabilities for name in names])


# --------------------------------------------------------------------------------------------- combiners


def test_every_method_is_a_combiner_with_the_scikit_learn_interface():
    for name in METHODS:
        combiner = make_combiner(name)
        assert combiner.input_kind in ("probabilities", "embeddings")
        assert combiner.fit_split in (None, "train", "val")
        assert callable(combiner.fit) and callable(combiner.predict_proba)
    with pytest.raises(ValueError, match=r"method: expected one of \['mean', 'stack', 'svm', 'vote'\], got 'max'"):
        make_combiner("max")


def test_mean_and_vote_match_naive_loops():
    rng = np.random.default_rng(0)
    members = rng.dirichlet(np.ones(4), size=(5, 50))  # [M, N, K]
    mean = MeanCombiner().fit(members).predict_proba(members)
    votes = MajorityVote().fit(members).predict_proba(members)
    for i in range(50):
        assert np.allclose(mean[i], sum(members[m, i] for m in range(5)) / 5)
        counts = np.zeros(4)
        for m in range(5):
            counts[int(np.argmax(members[m, i]))] += 1
        leaders = [k for k in range(4) if counts[k] == counts.max()]
        assert int(np.argmax(votes[i])) == max(leaders, key=lambda k: mean[i, k])
    assert np.allclose(votes.sum(axis=1), 1)


def test_vote_ties_go_to_the_higher_mean_probability():
    members = np.array([[[0.9, 0.1]], [[0.45, 0.55]]])  # one vote each; class 0 has the higher mean
    assert MajorityVote().predict_proba(members).argmax(axis=1).tolist() == [0]


def test_stacking_learns_to_trust_the_informative_member():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 3, 300)
    informative = np.where(np.eye(3)[targets] == 1, 0.8, 0.1)
    noise = rng.dirichlet(np.ones(3), size=300)
    members = np.stack([noise, informative, rng.dirichlet(np.ones(3), size=300)])
    stack = StackedLogistic().fit(members, targets)
    report = stack.cv_report_
    assert report["folds"] == 5 and report["n_samples"] == 300
    assert report["stack_out_of_fold"]["accuracy"] > report["mean_of_members"]["accuracy"]
    assert report["stack_out_of_fold"]["accuracy"] > 0.95
    assert np.allclose(stack.predict_proba(members).sum(axis=1), 1)


def test_feature_head_separates_embeddings():
    rng = np.random.default_rng(2)
    targets = np.repeat([0, 1, 2], 30)
    embeddings = rng.normal(size=(90, 8)) + 3 * np.eye(3, 8)[targets]
    for classifier in ("svm", "logistic"):
        head = EmbeddingClassifier(classifier=classifier).fit(embeddings, targets)
        assert (head.predict_proba(embeddings).argmax(axis=1) == targets).mean() > 0.9
        assert head.cv_report_["classifier"] == classifier and head.cv_report_["folds"] == 5


def test_combiners_refuse_bad_input():
    with pytest.raises(NotFittedError):
        StackedLogistic().predict_proba(np.full((2, 3, 2), 0.5))
    with pytest.raises(ValueError, match=r"expected \[members, samples, classes\], got shape \(3, 2\)"):
        MeanCombiner().predict_proba(np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="fitted with 2 members, got 3"):
        MeanCombiner().fit(np.full((2, 4, 2), 0.5)).predict_proba(np.full((3, 4, 2), 0.5))
    with pytest.raises(ValueError, match=r"stack: every class needs at least 3 samples.*class indices \[2\]"):
        StackedLogistic().fit(np.full((2, 8, 3), 1 / 3), np.array([0, 0, 0, 1, 1, 1, 2, 2]))
    with pytest.raises(ValueError, match="embeddings: fitted on 8 features, got 4"):
        rng = np.random.default_rng(0)
        EmbeddingClassifier(classifier="logistic").fit(rng.normal(size=(20, 8)), np.repeat([0, 1], 10)) \
            .predict_proba(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"classifier must be one of \['knn', 'centroid', 'gmm', 'logistic', 'svm', 'pu_bagging'\]"):
        EmbeddingClassifier(classifier="tree").fit(np.zeros((4, 2)), np.array([0, 0, 1, 1]))


# --------------------------------------------------------------------------------------------- end to end


def test_mean_ensemble_predicts_the_mean_of_its_members_and_evaluates(runs, tmp_path, capsys):
    folder, out = build(capsys, runs, tmp_path, "a", "b")
    assert "ensemble (mean) of 2 run(s)" in out and "next: winnow eval" in out
    assert "warning" not in out  # same split: no overlap
    assert not list(tmp_path.glob(".*.tmp"))  # built under a temporary name, then renamed
    predictions = winnow.load(folder).predict(runs["held"])
    assert np.allclose(predictions.probabilities, member_probabilities(runs, "ab", runs["held"]).mean(axis=0),
                       atol=1e-9)
    code, stdout, stderr = cli(capsys, "eval", folder, runs["held"], "--json")
    assert code == 0, stderr
    metrics = json.loads(stdout)
    assert metrics["n_samples"] == 30 and metrics["checkpoint"]["epoch"] is None
    assert (folder / "eval" / "held" / "best" / "pr_curves.png").is_file()
    code, stdout, _ = cli(capsys, "eval", folder)  # the test split, from the first member's splits.csv
    assert code == 0 and "epoch None" not in stdout and "checkpoint best on test split" in stdout
    code, stdout, _ = cli(capsys, "runs", folder.parent)
    assert code == 0 and any(line.split()[:2] == [folder.name, "ensemble:mean"] and "2 members" in line
                             for line in stdout.splitlines())


def test_vote_ensemble_predicts_the_majority(runs, tmp_path, capsys):
    folder, _ = build(capsys, runs, tmp_path, "a", "b", "other_split", method="vote")
    members = member_probabilities(runs, ["a", "b", "other_split"], runs["held"])
    expected = MajorityVote().predict_proba(members).argmax(axis=1)
    predictions = winnow.load(folder).predict(runs["held"])
    assert predictions.predicted == [["bad", "good"][k] for k in expected]


def test_stack_ensemble_reports_cross_validation_and_applies_the_fitted_stacker(runs, tmp_path, capsys):
    folder, out = build(capsys, runs, tmp_path, "a", "b", method="stack", extra=("--data", runs["held"]))
    assert "out-of-fold" in out and "mean of members" in out
    saved = json.loads((folder / "ensemble.json").read_text())
    assert saved["fit"]["n_samples"] == 30 and saved["combiner_file"] == "combiner.joblib"
    ensemble = winnow.load(folder)
    assert isinstance(ensemble, EnsemblePredictor) and ensemble.method == "stack"
    members = member_probabilities(runs, "ab", runs["held"])
    assert np.allclose(ensemble.predict(runs["held"]).probabilities, ensemble.combiner.predict_proba(members),
                       atol=1e-6)
    code, out, _ = cli(capsys, "tune", folder, "--target", TARGET, "--data", runs["held"])
    assert code == 0 and "stack combiner of this ensemble was fitted on these same images" in out
    assert "fitted on these same images" not in cli(capsys, "tune", folder, "--target", TARGET)[1]  # val split


@pytest.mark.parametrize("classifier", ["svm", "logistic"])
def test_svm_ensemble_classifies_frozen_embeddings(runs, tmp_path, capsys, classifier):
    folder, out = build(capsys, runs, tmp_path, "a", method="svm", extra=("--classifier", classifier))
    assert "train split of a" in out
    ensemble = winnow.load(folder)
    member = ensemble.members[0]
    paths = [str(p) for p in sorted(Path(runs["held"]).rglob("*.png"))]
    embeddings = member.view_embeddings(paths, TTA()).values[:, 0]
    assert embeddings.shape == (30, member.model.num_features)
    predictions = ensemble.predict(paths)
    assert np.allclose(predictions.probabilities, ensemble.combiner.predict_proba(embeddings), atol=1e-6)
    truth = [Path(p).parent.name for p in paths]
    assert np.mean([p == t for p, t in zip(predictions.predicted, truth)]) >= 0.8


def test_ensemble_is_tuned_calibrated_and_predicted_like_a_run(runs, tmp_path, capsys):
    folder, _ = build(capsys, runs, tmp_path, "a", "b")
    code, out, err = cli(capsys, "calibrate", folder, "--data", runs["held"])
    assert code == 0 and "NLL" in out, err
    code, out, err = cli(capsys, "tune", folder, "--target", TARGET, "--data", runs["held"])
    assert code == 0 and "threshold" in out, err
    threshold = json.loads((folder / "thresholds.json").read_text())["threshold"]
    preds = tmp_path / "preds.csv"
    code, out, err = cli(capsys, "predict", folder, runs["held"], "--out", preds, "--tta", "flips")
    assert code == 0 and f"prob_good >= {threshold:.6g}" in out and "calibrated" in out, err
    for row in read_rows(preds):
        if abs(float(row["prob_good"]) - threshold) > 1e-6:
            assert (row["predicted"] == "good") == (float(row["prob_good"]) >= threshold)
    code, out, err = cli(capsys, "eval", folder, runs["held"], "--tta", "flips")
    assert code == 0 and "operating point" in out and "calibration: temperature" in out, err
    assert winnow.load(folder).predict(runs["held"], tta="flips").view_logits.shape == (30, 4, 2)


# --------------------------------------------------------------------------------------------- bad input


def test_members_split_differently_are_reported(runs, tmp_path, capsys):
    _, out = build(capsys, runs, tmp_path, "a", "other_split")
    assert "are in the training split of member" in out and "optimistic" in out


@pytest.mark.parametrize("members, extra, message", [
    (("a",), (), "method mean needs at least 2 runs, got 1"),
    (("a", "a"), (), "a run is given twice"),
    (("a", "multiclass"), (), "has a multiclass head on .* same head"),
    (("a", "b"), ("--data", "val"), "method mean fits nothing; drop --data"),
])
def test_bad_ensembles_are_refused(runs, capsys, tmp_path, members, extra, message):
    code, _, err = cli(capsys, "ensemble", *[runs[m] for m in members], "--out", tmp_path / "e", *extra)
    assert code == 2 and re.search(message, err), err
    assert not (tmp_path / "e").exists()


def test_ensemble_folder_misuse_is_explained(runs, tmp_path, capsys):
    folder, _ = build(capsys, runs, tmp_path, "a", "b")
    code, _, err = cli(capsys, "ensemble", runs["a"], runs["b"], "--out", folder)
    assert code == 2 and "already exists" in err
    code, _, err = cli(capsys, "ensemble", folder, runs["a"], "--out", tmp_path / "nested")
    assert code == 2 and "is an ensemble; members must be runs" in err
    code, _, err = cli(capsys, "eval", folder, "--checkpoint", "all")
    assert code == 2 and "has no checkpoints of its own" in err
    code, _, err = cli(capsys, "eval", folder, "--checkpoint", "last")
    assert code == 2 and "members' checkpoints were fixed" in err
    code, _, err = cli(capsys, "select", folder, "--target", TARGET)
    assert code == 2 and "no checkpoints to select from" in err
    moved = shutil.move(str(runs["b"]), str(tmp_path / "b-moved"))
    try:
        code, _, err = cli(capsys, "eval", folder, runs["held"])
    finally:
        shutil.move(moved, str(runs["b"]))
    assert code == 2 and "is missing" in err and "rebuild the ensemble" in err


def test_stacking_below_the_mean_out_of_fold_is_flagged():
    report = {"stack_out_of_fold": {"balanced_accuracy": 0.56}, "mean_of_members": {"balanced_accuracy": 0.60}}
    assert "prefer --method mean" in stacking_warnings({"report": report})[0]
    report["stack_out_of_fold"]["balanced_accuracy"] = 0.61
    assert stacking_warnings({"report": report}) == []
    assert stacking_warnings({"report": {"classifier": "svm"}}) == []


def test_staging_folders_of_killed_builds_are_removed_and_live_ones_kept(tmp_path):
    from winnow.ensembles.folder import remove_abandoned_staging

    killed = tmp_path / ".ens.999999999.abc.tmp"  # no process has such a pid (Linux caps pids at 2**22)
    running = tmp_path / f".ens.{os.getpid()}.def.tmp"
    other = tmp_path / ".ensemble2.999999999.x.tmp"  # another folder's: not ours to judge
    for folder in (killed, running, other):
        folder.mkdir()
    remove_abandoned_staging(tmp_path / "ens")
    assert not killed.exists() and running.exists() and other.exists()
