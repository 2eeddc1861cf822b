"""Heads on embeddings (knn, centroid, gmm, logistic, svm) with their reject option, and `winnow head`."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import joblib
import numpy as np
import pytest
from PIL import Image
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.mixture import GaussianMixture

import winnow
from winnow.constraints import InvalidParameterError
from winnow.embeddings.heads import HEADS, make_head
from winnow.ensembles.feature_head import EmbeddingClassifier
from winnow.ensembles.store import EnsembleDefinition, load_combiner, read_ensemble
from winnow.evaluation.scoring import score
from winnow.inference.predictions import Predictions
from winnow.metrics.checks import UNCERTAIN
from winnow.metrics.report import metrics_counting_rejected
from winnow.operating.decisions import PerClassThresholds
from winnow.tasks.spec import TaskSpec

from conftest import fast_config, make_image_folder
from test_eval_cli import cli, read_rows

N_CLASSES, N_FEATURES = 3, 6


def blobs(n_per_class: int, *, seed: int, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs `[N, D]` (class means 6 sigma apart, fixed across seeds) and labels `[N]`."""
    means = 6.0 * np.eye(N_CLASSES, N_FEATURES) + 3.0  # positive means: cosine distances separate them too
    rng = np.random.default_rng(seed)
    targets = np.repeat(np.arange(N_CLASSES), n_per_class)
    return means[targets] + rng.normal(size=(len(targets), N_FEATURES)) + offset, targets


@pytest.fixture(scope="module")
def data():
    """Train, val and test blobs, and a blob 20 sigma away from every class."""
    far = np.random.default_rng(9).normal(size=(30, N_FEATURES)) + 20.0 * np.eye(1, N_FEATURES, N_FEATURES - 1)
    return {"train": blobs(30, seed=0), "val": blobs(60, seed=1), "test": blobs(60, seed=2), "far": far + 3.0}


@pytest.fixture(scope="module", params=[kind for kind in HEADS if kind != "pu_bagging"])  # binary PU: test_pu_bagging.py
def fitted(request, data):
    """Each head, fitted on the train blobs with its reject option fitted on val at TPR 0.9."""
    head = make_head(request.param).fit(*data["train"], n_classes=N_CLASSES)
    return head, copy.deepcopy(head).fit_reject(*data["val"], tpr=0.9)


# --------------------------------------------------------------------------------------------- contract


def test_every_head_classifies_separated_blobs(fitted, data):
    head, _ = fitted
    test, targets = data["test"]
    probabilities = head.predict_proba(test)
    assert probabilities.shape == (len(test), N_CLASSES)
    assert np.allclose(probabilities.sum(axis=1), 1) and probabilities.min() >= 0
    assert (head.predict(test) == probabilities.argmax(axis=1)).all()  # no reject threshold: plain argmax
    assert accuracy_score(targets, head.predict(test)) > 0.95
    assert head.cv_report_["classifier"] == head.kind and head.cv_report_["chosen"]
    assert not head.has_reject and head.n_features_ == N_FEATURES


def test_every_head_rejects_far_points_at_the_asked_rate(fitted, data):
    _, head = fitted
    assert head.reject_report_["tpr"] == 0.9 and head.reject_report_["accepted_rate"] >= 0.9
    test, _ = data["test"]
    accepted = 1 - head.reject(test).mean()
    assert 0.8 <= accepted <= 0.97, f"{head.kind}: {accepted:.2f} of held-out known-class points accepted"
    assert head.reject(data["far"]).all()
    assert (head.predict(data["far"]) == UNCERTAIN).all()
    assert (head.novelty_score(data["far"]).min() > head.novelty_score(test).max())


def test_every_head_survives_a_joblib_round_trip(fitted, data, tmp_path):
    _, head = fitted
    joblib.dump(head, tmp_path / "head.joblib")
    loaded = joblib.load(tmp_path / "head.joblib")
    test, _ = data["test"]
    assert np.array_equal(loaded.predict_proba(test), head.predict_proba(test))
    assert np.array_equal(loaded.predict(data["far"]), head.predict(data["far"]))
    assert loaded.reject_threshold_ == head.reject_threshold_


def test_an_unfitted_head_says_what_to_call(fitted, data):
    head = clone(fitted[0])
    for call in (head.predict_proba, head.predict, head.novelty_score, head.reject):
        with pytest.raises(NotFittedError, match=r"is not fitted yet: call fit\(embeddings|no reject threshold"):
            call(data["test"][0])
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        head.fit_reject(*data["val"])
    with pytest.raises(NotFittedError, match=r"no reject threshold: call fit_reject"):
        fitted[0].reject(data["test"][0])


def test_a_refitted_head_drops_its_old_reject_threshold(data):
    head = make_head("centroid").fit(*data["train"]).fit_reject(*data["val"])
    assert head.has_reject and not head.fit(*data["train"]).has_reject


def test_heads_refuse_bad_input_with_clear_messages(fitted, data):
    head, kind = fitted[0], fitted[0].kind
    train, targets = data["train"]
    with pytest.raises(ValueError, match=rf"embeddings: fitted on {N_FEATURES} features, got 4; .*refit it"):
        head.predict_proba(train[:, :4])
    with pytest.raises(ValueError, match="embeddings: found NaN"):
        head.predict_proba(np.where(np.eye(len(train), N_FEATURES) == 1, np.nan, train))
    with pytest.raises(ValueError, match=r"expected \[samples, features\], got shape \(6,\); .*x\[None, :\]"):
        head.predict_proba(train[0])
    with pytest.raises(ValueError, match=rf"{kind} head: every class needs at least {head.min_per_class} samples"
                                         r".*\[2\] have \[0\]"):
        make_head(kind).fit(train[:60], targets[:60], n_classes=N_CLASSES)
    with pytest.raises(ValueError, match=r"targets: expected class indices in \[0, 3\), got range \[0, 3\]"):
        head.fit_reject(train, targets + (targets == 2))  # labels of a head fitted on other classes
    with pytest.raises(InvalidParameterError, match=r"reject tpr must be a number in \(0, 1\], got 95"):
        head.fit_reject(*data["val"], tpr=95)


def test_head_parameters_and_kinds_are_checked():
    with pytest.raises(InvalidParameterError, match=r"head kind must be one of \['knn', 'centroid', 'gmm', "
                                                    r"'logistic', 'svm', 'pu_bagging'\], got 'tree'"):
        make_head("tree")
    with pytest.raises(InvalidParameterError, match=r"unknown key\(s\) \['neighbours'\].*valid keys: cv, k, "
                                                    r"oversample, seed"):
        make_head("knn", neighbours=3)
    train, targets = blobs(10, seed=0)
    with pytest.raises(InvalidParameterError, match="gmm head: covariance_type must be one of"):
        make_head("gmm", covariance_type="diagonal").fit(train, targets)
    with pytest.raises(InvalidParameterError, match="knn head: cv must be an integer >= 2, got 1"):
        make_head("knn", cv=1).fit(train, targets)
    with pytest.raises(InvalidParameterError, match="n_classes must be an integer >= 2, got 1"):
        make_head("centroid").fit(train[:10], targets[:10])


# --------------------------------------------------------------------------------------------- one-shot


ONE_SHOT_HEADS = ("knn", "centroid")


@pytest.mark.parametrize("kind", ONE_SHOT_HEADS)
def test_knn_and_centroid_fit_one_image_per_class_and_say_nothing_was_cross_validated(kind, data):
    train, targets = blobs(1, seed=3)
    head = make_head(kind).fit(train, targets)
    test, test_targets = data["test"]
    assert accuracy_score(test_targets, head.predict(test)) > 0.95
    assert head.cv_report_["folds"] == 0
    assert head.cv_report_["note"].startswith("no cross-validation: smallest class has 1 image")
    assert not any(key.startswith("cv_") for key in head.cv_report_)  # no cross-validated score to report
    assert head.fit_reject(*data["val"], tpr=0.9).reject(data["far"]).all()  # the reject option is fitted on val


def test_one_shot_knn_takes_the_nearest_image_and_a_given_k_is_kept(data):
    train, targets = blobs(1, seed=3)
    knn = make_head("knn").fit(train, targets)
    assert knn.cv_report_["chosen"] == {"k": 1} and knn.model_.n_neighbors == 1
    given = make_head("knn", k=2).fit(train, targets)
    assert given.cv_report_ == {"classifier": "knn", "folds": None, "chosen": {"k": 2}}
    embeddings, labels = data["train"]
    rows = np.flatnonzero(labels < 2).tolist() + [np.flatnonzero(labels == 2)[0]]  # 30, 30 and 1 image
    assert make_head("knn").fit(embeddings[rows], labels[rows]).cv_report_["folds"] == 0  # one such class suffices


def test_one_shot_centroid_temperature_is_the_median_squared_distance_between_class_means(data):
    train, targets = blobs(1, seed=3)
    head = make_head("centroid").fit(train, targets)
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)  # one image per class: the class means
    pairs = [np.sum((unit[i] - unit[j]) ** 2) for i, j in ((0, 1), (0, 2), (1, 2))]
    temperature = head.cv_report_["chosen"]["temperature"]
    assert temperature == pytest.approx(np.median(pairs))
    test = data["test"][0]
    logits = -np.sum((test[:, None] / np.linalg.norm(test, axis=1)[:, None, None] - unit[None]) ** 2, axis=2)
    expected = np.exp(logits / temperature - logsumexp(logits / temperature, axis=1, keepdims=True))
    assert np.allclose(head.predict_proba(test), expected)
    fixed = make_head("centroid", temperature=0.25).fit(*data["train"])  # a given temperature is not fitted
    assert fixed.cv_report_ == {"classifier": "centroid", "folds": None, "chosen": {"temperature": 0.25}}
    assert fixed.scaling_.temperature_ == 0.25
    with pytest.raises(InvalidParameterError, match="centroid head: temperature must be"):
        make_head("centroid", temperature=0).fit(train, targets)


@pytest.mark.parametrize("kind", ["gmm", "logistic", "svm"])
def test_heads_that_need_more_images_refuse_one_shot_naming_those_that_accept_it(kind):
    train, targets = blobs(1, seed=3)
    needed = HEADS[kind].min_per_class
    with pytest.raises(ValueError, match=rf"{kind} head: every class needs at least {needed} samples in the fit "
                                         r"data; class indices \[0, 1, 2\] have \[1, 1, 1\]; pass --data with more "
                                         r"labelled images, or use the knn or centroid head \(they accept 1 image"):
        make_head(kind).fit(train, targets)
    assert {name for name, head in HEADS.items() if head.min_per_class == 1} == set(ONE_SHOT_HEADS)


# --------------------------------------------------------------------------------------------- references


def test_gmm_probabilities_match_a_naive_loop_over_classes():
    rng = np.random.default_rng(3)
    # class 0 has two modes, class 1 one: BIC should give them 2 and 1 components
    first = np.concatenate([rng.normal(-4, 0.5, (40, 2)), rng.normal(4, 0.5, (40, 2))])
    second = rng.normal((0, 6), 1.0, (30, 2))
    embeddings, targets = np.concatenate([first, second]), np.repeat([0, 1], [80, 30])
    head = make_head("gmm", max_components=3).fit(embeddings, targets)
    assert head.cv_report_["chosen"]["components"] == [2, 1]
    points = rng.normal(0, 4, (25, 2))
    scaled = head.scaler_.transform(points)
    expected = np.empty((25, 2))
    for i, row in enumerate(scaled):
        joint = [head.mixtures_[k].score_samples(row[None])[0] + np.log([80 / 110, 30 / 110][k]) for k in (0, 1)]
        expected[i] = [np.exp(value - logsumexp(joint)) for value in joint]
    assert np.allclose(head.predict_proba(points), expected)
    reference = GaussianMixture(2, covariance_type="diag", reg_covar=1e-3, random_state=0).fit(
        head.scaler_.transform(first))
    assert np.allclose(head.mixtures_[0].score_samples(scaled), reference.score_samples(scaled))
    uniform = make_head("gmm", max_components=3, priors="uniform").fit(embeddings, targets)
    assert np.allclose(uniform.log_priors_, np.log(0.5))


def test_knn_and_centroid_novelty_scores_match_their_definitions(data):
    train, targets = data["train"]
    test = data["test"][0]
    unit = lambda array: array / np.linalg.norm(array, axis=1, keepdims=True)  # noqa: E731
    knn = make_head("knn").fit(train, targets)
    assert np.allclose(knn.novelty_score(test), 1 - (unit(test) @ unit(train).T).max(axis=1))
    centroid = make_head("centroid").fit(train, targets)
    means = np.stack([unit(train)[targets == k].mean(axis=0) for k in range(N_CLASSES)])
    distances = np.linalg.norm(unit(test)[:, None] - means[None], axis=2)
    assert np.allclose(centroid.novelty_score(test), distances.min(axis=1))
    temperature = centroid.cv_report_["chosen"]["temperature"]
    logits = -distances**2 / temperature
    assert np.allclose(centroid.predict_proba(test), np.exp(logits - logsumexp(logits, axis=1, keepdims=True)))


def test_the_ensemble_combiner_is_the_head(data):
    for kind in ("svm", "gmm"):
        combiner = EmbeddingClassifier(classifier=kind).fit(*data["train"], n_classes=N_CLASSES)
        head = make_head(kind).fit(*data["train"])
        assert np.allclose(combiner.predict_proba(data["test"][0]), head.predict_proba(data["test"][0]))
        assert combiner.cv_report_ == head.cv_report_ and not combiner.rejects
        views = np.stack([data["far"], data["far"] + 0.1], axis=1)  # [N, V=2, D]
        assert combiner.fit_reject(*data["val"], tpr=0.9).reject_views(views).all()


def test_metrics_counting_rejected_as_wrong():
    rng = np.random.default_rng(0)
    targets, predicted = rng.integers(0, 3, 60), rng.integers(0, 3, 60)
    counted = metrics_counting_rejected(targets, predicted, ["a", "b", "c"])
    assert counted["accuracy"] == pytest.approx(accuracy_score(targets, predicted))
    assert counted["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(targets, predicted))
    assert counted["macro_f1"] == pytest.approx(f1_score(targets, predicted, average="macro"))
    assert counted["weighted_f1"] == pytest.approx(f1_score(targets, predicted, average="weighted"))
    rejected = np.where(np.arange(60) < 10, UNCERTAIN, targets)  # 10 rejected, the other 50 right
    assert metrics_counting_rejected(targets, rejected, ["a", "b", "c"])["accuracy"] == pytest.approx(50 / 60)


# --------------------------------------------------------------------------------------------- predictions


def three_class_predictions(**settings) -> tuple[Predictions, np.ndarray]:
    task = TaskSpec.from_saved({"name": "label", "column": "label", "kind": "multiclass", "classes": ["a", "b", "c"],
                                "threshold": 0.5})
    probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.4, 0.3, 0.3], [0.1, 0.1, 0.8]])
    return Predictions([f"{i}.png" for i in range(4)], [task], probabilities, **settings), np.array([0, 1, 2, 2])


def test_reject_goes_first_then_the_tuned_rule():
    reject = {"score": "distance", "threshold": 1.0, "tpr": 0.9, "data": "val split of x"}
    predictions, _ = three_class_predictions(rejected=np.array([False, True, False, False]), reject=reject,
                                             decision=PerClassThresholds(dict.fromkeys("abc", 0.5)))
    assert predictions.predicted == ["a", "unknown", "uncertain", "c"]
    assert predictions.predicted_indices().tolist() == [0, UNCERTAIN, UNCERTAIN, 2]
    assert three_class_predictions()[0].predicted == ["a", "b", "a", "c"]


def test_eval_scores_count_the_rejected_images():
    reject = {"score": "distance", "threshold": 1.0, "tpr": 0.9, "data": "val split of x"}
    predictions, targets = three_class_predictions(rejected=np.array([False, False, True, False]), reject=reject)
    report = score(predictions, targets)
    assert report["reject"]["n_rejected"] == 1 and report["reject"]["rate"] == 0.25
    assert report["reject"]["rejected_per_class"] == {"a": 0, "b": 0, "c": 1}
    assert report["accuracy"] == 1.0 and report["reject"]["all_images"]["accuracy"] == 0.75
    assert report["decision_rule"].startswith("'unknown' when the distance exceeds 1") and "then argmax" in \
        report["decision_rule"]
    assert score(*three_class_predictions())["reject"] is None


# --------------------------------------------------------------------------------------------- folders


def test_old_svm_ensembles_and_foreign_combiners_are_refused(tmp_path, data):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "ensemble.json").write_text(json.dumps({"format": "winnow-ensemble/1", "method": "svm", "members": [],
                                                      "tasks": []}))
    with pytest.raises(ValueError, match=r"built by an older winnow .*rebuild it with `winnow ensemble"):
        read_ensemble(folder)
    joblib.dump(EmbeddingClassifier(classifier="centroid").fit(*data["train"]), folder / "combiner.joblib")
    definition = EnsembleDefinition("svm", [], [{"classes": ["a", "b"]}], "combiner.joblib", versions={})
    with pytest.raises(ValueError, match=r"fitted on 3 classes, but .* names 2 .*comes from another folder"):
        load_combiner(folder, definition)


def test_reject_options_are_refused_where_they_cannot_apply(capsys, tmp_path):
    code, _, err = cli(capsys, "ensemble", tmp_path / "a", tmp_path / "b", "--method", "mean", "--reject-tpr", "0.9")
    assert code == 2 and "method mean has no head on embeddings to reject with" in err
    code, _, err = cli(capsys, "head", tmp_path / "a", "--kind", "knn", "--reject-tpr", "1.5")
    assert code == 2 and "reject tpr must be a number in (0, 1], got 1.5" in err
    code, _, err = cli(capsys, "head", tmp_path / "a", "--kind", "knn", "--reject-data", "val")
    assert code == 2 and "given without reject_tpr" in err


def noise_images(folder: Path, count: int) -> Path:
    """Pure-noise images: no class of the run looks like them."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (24, 24), dtype=np.uint8)).save(folder / f"noise_{i}.png")
    return folder


def test_head_with_reject_end_to_end(tmp_path, capsys):
    data = make_image_folder(tmp_path / "shapes", per_class=16)
    run = winnow.train(fast_config(tmp_path, data, name="shapes", epochs=2)).path
    code, out, err = cli(capsys, "head", run, "--kind", "centroid", "--reject-tpr", "0.9")
    assert code == 0, err
    folder = Path(run).parent / "shapes-head-centroid"
    assert f"centroid head on the embeddings of {run}: {folder}" in out
    assert re.search(r"fitted on train split of shapes \(\d+ images\): centroid head, \d-fold cross-validation, "
                     r"temperature=", out), out
    assert re.search(r"reject: 'unknown' when the distance to the nearest class mean .* exceeds .*fitted on val "
                     r"split of shapes to accept 90%", out) and "accepted (lowest class" in out, out

    images = tmp_path / "mixed"
    noise_images(images / "noise", 12)
    for file in sorted((data / "disk").iterdir())[:6]:
        (images / "disk").mkdir(exist_ok=True)
        (images / "disk" / file.name).write_bytes(file.read_bytes())
    code, out, err = cli(capsys, "predict", folder, images, "--out", tmp_path / "preds.csv")
    assert code == 0 and "rejected as 'unknown'" in out and "'unknown' when the" in out, err
    rows = read_rows(tmp_path / "preds.csv")
    noise = [row["predicted"] for row in rows if "noise" in row["path"]]
    assert noise.count("unknown") >= 6, noise
    assert all(abs(sum(float(row[f"prob_{c}"]) for c in ("bar", "disk", "square")) - 1) < 1e-4 for row in rows)

    code, out, err = cli(capsys, "eval", folder)
    assert code == 0 and "rejected as 'unknown':" in out and "counted wrong" in out, err
    metrics = json.loads((folder / "eval" / "test" / "best" / "metrics.json").read_text())
    reject = metrics["reject"]
    assert reject["n_rejected"] + reject["n_accepted"] == metrics["n_samples"] and 0 <= reject["rate"] <= 1
    assert reject["all_images"]["n_samples"] == metrics["n_samples"] and reject["tpr"] == 0.9
