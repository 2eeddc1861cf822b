"""A PU run's tools: audit and query put hidden positives first; the prior sensitivity report; select and tune
on its PU split; pseudo-label refused.

One tiny PU run (`--unlabeled` extra images, a labelled `--test` split) serves every end-to-end test here.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from winnow.cli.main import main
from winnow.evaluation.pu_split import pu_score, pu_target
from winnow.metrics.pu import pu_auc
from winnow.pu.sensitivity import prior_sensitivity, threshold_for_prior

from conftest import draw
from test_pu_train import FAST, pu_manifest

HIDDEN = [f"{i:03d}.png" for i in range(16, 24)]  # pu_manifest(labelled=16, hidden=8): squares among the disks


def shapes(root: Path, counts: dict[str, int], *, seed: int) -> Path:
    """`counts[kind]` images of each shape in `root` (a flat folder), named `<kind>_<i>.png`."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for kind, n in counts.items():
        for i in range(n):
            Image.fromarray(draw(kind, rng)).save(root / f"{kind}_{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def pu_run(tmp_path_factory) -> dict[str, Path]:
    """16 labelled squares, 8 squares hidden among 24 disks, 16 extra unlabelled images (4 squares), prior 0.25."""
    root = tmp_path_factory.mktemp("pu_tools")
    data = pu_manifest(root / "data", labelled=16, hidden=8, negatives=24, unlabelled_name="bad")
    extra = shapes(root / "extra", {"square": 4, "disk": 12}, seed=1)
    test = root / "test"
    shapes(test / "good", {"square": 8}, seed=2), shapes(test / "bad", {"disk": 8}, seed=3)
    pool = shapes(root / "pool", {"square": 5, "disk": 10}, seed=4)
    flags = [*FAST[:FAST.index("--epochs")], "--epochs", "3", *FAST[FAST.index("--epochs") + 2:]]
    assert main(["train", str(data), "--head", "binary", "--pu", "--positive-class", "good", "--prior", "0.25",
                 "--unlabeled", str(extra), "--test", str(test), "--name", "pu", "--out", str(root / "runs"),
                 "--cache-dir", str(root / "cache"), "--tta", "none", *flags]) == 0  # select = the trainer's val
    return {"root": root, "run": root / "runs" / "pu", "data": data, "extra": extra, "pool": pool}


def test_the_extra_images_are_unlabelled_train_and_val_images(pu_run):
    rows = list(csv.DictReader(open(pu_run["run"] / "splits.csv")))
    extra = [row for row in rows if Path(row["path"]).parent == pu_run["extra"]]
    assert len(extra) == 16 and {row["label"] for row in extra} == {"bad"}
    assert {row["split"] for row in extra} == {"train", "val"}  # PU validation sees them too; test is --test only


def test_audit_of_a_pu_run_lists_the_hidden_positives_first(pu_run, tmp_path, capsys):
    out = tmp_path / "audit"
    assert main(["audit", str(pu_run["data"]), "--run", str(pu_run["run"]), "--out", str(out), "--fix",
                 "--checks", "labels", "--threads", "1"]) == 0
    assert "8 unlabelled image(s) most likely positive among 32 (prior 0.25" in capsys.readouterr().out
    review = list(csv.DictReader(open(out / "review.csv")))
    assert len(review) == 8  # ceil(0.25 * 32): as many as the prior expects
    assert sorted(Path(row["path"]).name for row in review) == HIDDEN
    assert {(row["label"], row["suggested_label"]) for row in review} == {("bad", "good")}  # positives never listed
    assert [float(row["suggested_probability"]) for row in review] == \
           sorted((float(row["suggested_probability"]) for row in review), reverse=True)
    assert "Positive-unlabelled run" in (out / "audit.html").read_text()


def test_query_of_a_pu_run_ranks_likely_positives_first(pu_run, tmp_path, capsys):
    out = tmp_path / "to_label.csv"
    assert main(["query", str(pu_run["run"]), str(pu_run["pool"]), "--budget", "5", "--random-arm", "0",
                 "--out", str(out)]) == 0
    assert "(strategy positive;" in capsys.readouterr().out  # the default of a PU run
    rows = list(csv.DictReader(open(out)))
    assert sorted(Path(row["path"]).name for row in rows) == [f"square_{i:02d}.png" for i in range(5)]
    # the run's own pile is a pool too: its labelled positives are left out, its unlabelled ranked
    assert main(["query", str(pu_run["run"]), str(pu_run["data"]), "--budget", "8", "--random-arm", "0",
                 "--out", str(out)]) == 0
    assert "16 pool images already labelled were left out" in capsys.readouterr().out
    assert sorted(Path(row["path"]).name for row in csv.DictReader(open(out))) == HIDDEN


def test_pu_sensitivity_of_a_run_and_of_a_bagging_head(pu_run, tmp_path, capsys):
    out = tmp_path / "sensitivity.csv"
    assert main(["pu-sensitivity", str(pu_run["run"]), "--priors", "0.1,0.5,0.8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "<- run prior" in printed and "best test F1" in printed and "test: 16 image(s), 8 good" in printed
    rows = list(csv.DictReader(open(out)))
    assert [float(row["prior"]) for row in rows] == [0.1, 0.25, 0.5, 0.8]
    assert [row["run_prior"] for row in rows] == ["0", "1", "0", "0"]
    rates = [float(row["positive_rate"]) for row in rows]
    assert rates == sorted(rates) and all(0 <= float(row["f1"]) <= 1 for row in rows)
    head = tmp_path / "bag"
    assert main(["head", str(pu_run["run"]), "--kind", "pu_bagging", "--out", str(head)]) == 0
    assert main(["pu-sensitivity", str(head), "--priors", "0.25"]) == 0
    assert len(list(csv.DictReader(open(head / "pu_sensitivity.csv")))) == 1


def test_the_true_prior_gives_the_best_f1_on_synthetic_scores():
    """Scores of positives ~ N(1.5, 1), negatives ~ N(-1.5, 1); 30% of the unlabelled are positive."""
    rng = np.random.default_rng(0)
    hidden, test_positive = rng.random(2000) < 0.3, rng.random(1000) < 0.4
    unlabelled = rng.normal(np.where(hidden, 1.5, -1.5), 1.0)
    test = rng.normal(np.where(test_positive, 1.5, -1.5), 1.0)
    rows = prior_sensitivity(unlabelled, test, test_positive, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    f1 = {row.prior: row.f1 for row in rows}
    assert f1[0.3] >= max(f1.values()) - 0.01
    assert f1[0.1] < f1[0.3] - 0.2 and f1[0.6] < f1[0.3] - 0.1  # a wrong prior costs
    rates = [row.positive_rate for row in rows]
    assert rates == sorted(rates) and abs(rates[2] - 0.4) < 0.05  # the true prior predicts about the true share
    assert rows[0].recall < rows[-1].recall and rows[0].precision > rows[-1].precision


def test_threshold_for_prior_takes_the_top_share():
    scores = np.array([0.9, 0.1, 0.8, 0.3, 0.7, 0.5, 0.2, 0.6, 0.4, 0.05])
    assert threshold_for_prior(scores, 0.3) == 0.7  # the 3 highest of 10
    assert threshold_for_prior(scores, 0.01) == 0.9  # at least one
    assert (scores >= threshold_for_prior(scores, 0.5)).sum() == 5


@pytest.mark.parametrize("priors, positive, match", [
    ([0.3, 1.2], [True, False], r"each prior of priors must be .* got 1.2"),
    ([], [True, False], "at least one"),
    ([0.3], [True, True], "needs positives and negatives"),
])
def test_bad_sensitivity_input(priors, positive, match):
    with pytest.raises(ValueError, match=match):
        prior_sensitivity(np.array([0.2, 0.8, 0.5]), np.array([0.9, 0.1]), np.array(positive), priors)


# ------------------------------------------------------------------ select, tune and pseudo-label on a PU run


def _copy_run(pu_run, tmp_path) -> Path:
    """A copy of the shared run (select and tune write into it), its splits.csv paths unchanged."""
    run = tmp_path / "pu"
    shutil.copytree(pu_run["run"], run)
    return run


def _val_counts(run: Path) -> tuple[int, int]:
    rows = [row for row in csv.DictReader(open(run / "splits.csv")) if row["split"] == "val"]
    return sum(row["label"] == "good" for row in rows), sum(row["label"] == "bad" for row in rows)


def test_select_on_a_pu_split_picks_by_pu_auc_or_by_a_recall_target(pu_run, tmp_path, capsys):
    run = _copy_run(pu_run, tmp_path)
    assert main(["select", str(run)]) == 0
    out = capsys.readouterr().out
    assert "positive-unlabelled split (no true negatives)" in out and "best pu_auc" in out
    record = json.loads((run / "checkpoints" / "selected.json").read_text())
    assert record["pu"] and record["metric"] == "pu_auc" and record["prior"] == 0.25
    by_name = {row["checkpoint"]: row for row in record["candidates"]}
    assert set(by_name) == {"best", "last"}
    assert record["objective"]["value"] == max(row["pu_auc"] for row in by_name.values())
    assert (run / "checkpoints" / "selected.pt").read_bytes() == \
           (run / "checkpoints" / f"{record['selected']}.pt").read_bytes()
    # the training loop measured best.pt's val_pu_auc on the same split, with the same model
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trained = next(row["val_pu_auc"] for row in epochs if row["epoch"] == by_name["best"]["epoch"])
    assert by_name["best"]["pu_auc"] == pytest.approx(trained, abs=0.02)
    n_pos, n_unl = _val_counts(run)
    assert record["achieved"]["unlabelled_flagged"] == pytest.approx(round(0.25 * n_unl) / n_unl)  # the prior's threshold

    assert main(["select", str(run), "--metric", "val_pu_recall"]) == 0
    record = json.loads((run / "checkpoints" / "selected.json").read_text())
    assert record["metric"] == "pu_recall" and record["objective"]["value"] == max(
        row["pu_recall"] for row in record["candidates"])

    assert main(["select", str(run), "--target", "recall(good)>=0.5"]) == 0
    assert "flags the fewest unlabelled images" in capsys.readouterr().out
    record = json.loads((run / "checkpoints" / "selected.json").read_text())
    achieved = record["achieved"]
    assert record["pu"] and record["parsed_target"] == "recall(good)>=0.5 minimize fpr(good)"
    assert set(achieved) == {"recall(good)", "unlabelled_flagged", "estimated_precision(good)"}
    assert achieved["recall(good)"] >= 0.5 and achieved["recall(good)"] * n_pos == pytest.approx(
        round(achieved["recall(good)"] * n_pos))
    assert achieved["estimated_precision(good)"] == pytest.approx(
        min(1.0, 0.25 * achieved["recall(good)"] / achieved["unlabelled_flagged"]))
    feasible = [row for row in record["candidates"] if row["feasible"]]
    assert achieved["unlabelled_flagged"] == min(row["achieved"]["unlabelled_flagged"] for row in feasible)


def test_targets_that_need_negatives_are_refused_on_a_pu_split(pu_run, tmp_path, capsys):
    run = _copy_run(pu_run, tmp_path)
    for target in ("precision(good)>=0.9", "fpr(good)<=0.1", "recall(bad)>=0.5", "recall(good)>=0.5 maximize recall(bad)"):
        assert main(["select", str(run), "--target", target]) == 2
        err = capsys.readouterr().err
        assert "positive-unlabelled split" in err and "need true negatives" in err, err
        assert "recall(good)>=0.9" in err and "--data LABELLED" in err and "--metric pu_recall" in err
    assert main(["tune", str(run), "--target", "precision(good)>=0.9"]) == 2
    assert "winnow pu-sensitivity RUN" in capsys.readouterr().err
    assert main(["select", str(run), "--target", "recall(good)>=0.5", "--metric", "pu_auc"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["select", str(run), "--metric", "f1"]) == 2
    assert "expected one of pu_auc, pu_recall" in capsys.readouterr().err
    assert not (run / "eval").exists() and not (run / "thresholds.json").exists(), "refused before any inference"
    # the run's test split was given with --test: true negatives, so operating-point targets work there
    assert main(["select", str(run), "--data", "test"]) == 2
    assert "test split of pu has true negatives, so give --target" in capsys.readouterr().err
    assert main(["select", str(run), "--data", "test", "--target", "precision(good)>=0.5"]) == 0
    record = json.loads((run / "checkpoints" / "selected.json").read_text())
    assert "pu" not in record and record["achieved"]["precision(good)"] >= 0.5


def test_tune_on_a_pu_split_keeps_the_recall_of_the_labelled_positives(pu_run, tmp_path, capsys):
    run = _copy_run(pu_run, tmp_path)
    assert main(["tune", str(run), "--target", "recall(good)>=0.5"]) == 0
    assert "warning: positive-unlabelled split: recall(good) is that of the labelled positives" in capsys.readouterr().out
    saved = json.loads((run / "thresholds.json").read_text())
    assert saved["parsed_target"] == "recall(good)>=0.5 minimize fpr(good)" and saved["achieved"]["recall(good)"] >= 0.5


def test_pseudo_label_refuses_a_pu_run(pu_run, tmp_path, capsys):
    out = tmp_path / "pseudo.csv"
    assert main(["pseudo-label", str(pu_run["run"]), str(pu_run["pool"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot pseudo-label" in err and f"winnow query {pu_run['run']} POOL" in err and "review.csv" in err
    assert not out.exists()


def test_pu_target_rewrites_recall_targets_and_refuses_the_rest():
    classes = ["bad", "good"]
    for text in ("recall(good)>=0.8", "recall>=0.8", "tpr(good)>=0.8 maximize precision(good)",
                 "recall(good)>=0.8 minimize fpr(good)"):
        assert pu_target(text, classes, source="val", action="select") == "recall(good)>=0.8 minimize fpr(good)"
    for text in ("precision(good)>=0.9", "fpr<=0.1", "recall(bad)>=0.9", "precision(bad)>=0.9"):
        with pytest.raises(ValueError, match="positive-unlabelled split"):
            pu_target(text, classes, source="val", action="tune")


def test_pu_score_flags_the_prior_share_of_the_unlabelled():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1, 0.05, 0.01])
    targets = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0])  # 3 labelled positives, 9 unlabelled
    score = pu_score("best", 3, np.stack([1 - scores, scores], axis=1), targets, prior=1 / 3)
    assert score.threshold == 0.5 and score.flagged == pytest.approx(3 / 9)  # the top 3 of the 9 unlabelled
    assert score.recall == pytest.approx(2 / 3)  # 0.9 and 0.7 are at or above 0.5, 0.4 is not
    assert score.pu_auc == pytest.approx(pu_auc(scores, targets, 1 / 3))


def test_calibrate_refuses_a_pu_split_and_fits_on_labelled_test_data(pu_run, tmp_path, capsys):
    run = _copy_run(pu_run, tmp_path)
    assert main(["calibrate", str(run)]) == 2
    assert "positive-unlabelled split" in capsys.readouterr().err and not (run / "calibration.json").exists()
    assert main(["calibrate", str(run), "--data", "test"]) == 0  # given with --test: labelled, true negatives
    assert json.loads((run / "calibration.json").read_text())["n_samples"] == 16  # the 16 test images
