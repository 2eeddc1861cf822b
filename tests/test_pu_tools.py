"""A PU run's tools: audit and query put hidden positives first; the prior sensitivity report.

One tiny PU run (`--unlabeled` extra images, a labelled `--test` split) serves every end-to-end test here.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from winnow.cli.main import main
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
                 "--cache-dir", str(root / "cache"), *flags]) == 0
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
    assert main(["query", str(pu_run["run"]), str(pu_run["pool"]), "--budget", "5", "--out", str(out)]) == 0
    assert "(strategy positive;" in capsys.readouterr().out  # the default of a PU run
    rows = list(csv.DictReader(open(out)))
    assert sorted(Path(row["path"]).name for row in rows) == [f"square_{i:02d}.png" for i in range(5)]
    # the run's own pile is a pool too: its labelled positives are left out, its unlabelled ranked
    assert main(["query", str(pu_run["run"]), str(pu_run["data"]), "--budget", "8", "--out", str(out)]) == 0
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
