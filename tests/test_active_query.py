"""`winnow query` end to end on a tiny run: labelled images left out, N picks with score and reason."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import winnow
from winnow.active.scoring import labelled_paths, stochastic_samples
from winnow.cli.main import main
from winnow.ensembles.build import build_ensemble
from winnow.runs.layout import RunPaths

from conftest import fast_config, make_image_folder
from test_eval_cli import cli, read_rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """A 1-epoch 3-class run and a pool folder: 12 new images plus 6 of the run's own."""
    root = tmp_path_factory.mktemp("active")
    data = make_image_folder(root / "data", per_class=8, seed=0)
    run = winnow.train(fast_config(root, data, epochs=1, name="tiny")).path
    pool = make_image_folder(root / "pool", per_class=4, seed=1)
    for source in sorted((data / "disk").glob("*.png"))[:6]:
        (pool / "disk" / f"labelled_{source.name}").symlink_to(source)  # the same file, reached another way
    return run, pool


@pytest.mark.parametrize("strategy", ["margin", "coreset"])
def test_query_writes_the_budget_without_labelled_images(tiny, tmp_path, capsys, strategy):
    run, pool = tiny
    out = tmp_path / "to_label.csv"
    code, printed, err = cli(capsys, "query", run, pool, "--budget", 5, "--strategy", strategy, "--out", out)
    assert code == 0, err
    assert "wrote 5 of 12 unlabelled images" in printed and "6 pool images already labelled" in printed
    rows = read_rows(out)
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5] and len({r["path"] for r in rows}) == 5
    assert not any("labelled_" in r["path"] for r in rows)
    assert all(r["reason"] and r["predicted"] in ("bar", "disk", "square") for r in rows)
    assert {str(Path(p).resolve()) for p in (r["path"] for r in rows)} <= {str(p.resolve()) for p in pool.rglob("*.png")}


def test_query_errors_say_how_to_fix(tiny, tmp_path, capsys):
    run, pool = tiny
    code, _, err = cli(capsys, "query", run, pool, "--budget", 3, "--strategy", "bald", "--out", tmp_path / "x.csv")
    assert code == 2 and "bald" in err and "ensemble" in err  # test_resnet has no dropout
    labelled_only = RunPaths(run).root.parent.parent / "data"
    code, _, err = cli(capsys, "query", run, labelled_only, "--budget", 3, "--out", tmp_path / "y.csv")
    assert code == 2 and "already in the run's splits.csv" in err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()


@pytest.fixture(scope="module")
def pseudo(tiny, tmp_path_factory) -> tuple[Path, Path]:
    """Pseudo-labels of 6 other unlabelled images, and a second run trained on the data plus them (seed 1, dropout)."""
    run, _ = tiny
    root = tmp_path_factory.mktemp("pseudo")
    extra = make_image_folder(root / "extra", per_class=2, seed=2)
    out = root / "pseudo.csv"
    code = main(["pseudo-label", str(run), str(extra), "--levels", "0.6:1.0,0.34:0.5", "--out", str(out)])
    assert code == 0
    data = RunPaths(run).root.parent.parent / "data"
    config = replace(fast_config(root, data, epochs=1, seed=1, drop_rate=0.5, name="pseudo"), data=[str(data), str(out)])
    return out, winnow.train(config).path


def test_pseudo_label_writes_a_weighted_train_manifest_that_train_accepts(pseudo):
    out, retrained = pseudo
    rows = read_rows(out)
    assert out.read_text().splitlines()[0] == "path,label,weight,split,confidence,precision_level"
    assert all(r["split"] == "train" and r["weight"] in ("1", "0.5") for r in rows)
    assert all(Path(r["path"]).parent.parent.name == "extra" for r in rows)
    weighted = [r for r in read_rows(RunPaths(retrained).splits) if r["weight"]]
    assert len(weighted) == len(rows) and {r["split"] for r in weighted} == {"train"}
    labelled = labelled_paths(winnow.load(retrained))
    assert len(labelled) == 24 and not any("/extra/" in p for p in labelled)  # pseudo-labels are predicted again


def test_pseudo_label_reports_thresholds_per_level(tiny, tmp_path, capsys):
    run, pool = tiny
    code, printed, err = cli(capsys, "pseudo-label", run, pool, "--levels", "0.9:1.0,0.34:0.5", "--out",
                             tmp_path / "p.csv")
    assert code == 0, err
    assert "pseudo-labels of 12 unlabelled images" in printed and "precision 0.9 on val (weight 1)" in printed
    assert "precision 0.34 on val (weight 0.5)" in printed


@pytest.mark.parametrize("method, strategy", [("mean", "bald"), ("svm", "coreset")])
def test_query_works_on_an_ensemble_and_a_head_on_embeddings(tiny, pseudo, tmp_path, capsys, method, strategy):
    run, pool = tiny
    folder = build_ensemble([run, pseudo[1]], method=method, out=tmp_path / f"ens-{method}").folder
    out = tmp_path / "to_label.csv"
    code, printed, err = cli(capsys, "query", folder, pool, "--budget", 4, "--strategy", strategy, "--out", out)
    assert code == 0, err
    rows = read_rows(out)
    assert len({r["path"] for r in rows}) == 4 and not any("labelled_" in r["path"] for r in rows)
    assert "6 pool images already labelled" in printed


def test_bald_on_a_single_run_uses_mc_dropout_passes(tiny, pseudo, tmp_path, capsys):
    _, pool = tiny
    model = winnow.load(pseudo[1])
    paths = sorted(str(p) for p in (pool / "bar").glob("bar_*.png"))
    samples = stochastic_samples(model, paths, passes=3)
    assert samples.shape == (3, len(paths), 3) and not np.allclose(samples[0], samples[1])
    np.testing.assert_allclose(model.predict(paths).probabilities, model.predict(paths).probabilities)  # eval again
    code, _, err = cli(capsys, "query", pseudo[1], pool, "--budget", 3, "--strategy", "bald", "--out", tmp_path / "b.csv")
    assert code == 0, err
    assert "the passes disagree" in read_rows(tmp_path / "b.csv")[0]["reason"]


def test_query_takes_a_manifest_of_paths_without_labels(tiny, tmp_path, capsys):
    run, pool = tiny
    manifest = tmp_path / "pool.csv"
    files = sorted(pool.rglob("*.png"))
    manifest.write_text("path\n" + "".join(f"{p.relative_to(pool)}\n" for p in files))  # relative to the manifest
    (tmp_path / "bar").symlink_to(pool / "bar"), (tmp_path / "disk").symlink_to(pool / "disk")
    (tmp_path / "square").symlink_to(pool / "square")
    code, printed, err = cli(capsys, "query", run, manifest, "--budget", 4, "--out", tmp_path / "to_label.csv")
    assert code == 0, err
    assert "wrote 4 of 12 unlabelled images" in printed and "6 pool images already labelled" in printed


def test_a_pool_manifest_without_a_path_column_or_with_an_empty_path_is_refused(tiny, tmp_path, capsys):
    run, _ = tiny
    for text, match in [("file\na.png\n", "missing column 'path'"), ("path\na.png\n\"\"\n", "line 3: empty path")]:
        manifest = tmp_path / "pool.csv"
        manifest.write_text(text)
        code, _, err = cli(capsys, "query", run, manifest, "--budget", 1, "--out", tmp_path / "x.csv")
        assert code == 2 and match in err


# --------------------------------------------------------------------------------------------- random arm


def test_query_holds_a_random_arm_apart_from_the_strategy_picks(tiny, tmp_path, capsys):
    run, pool = tiny
    code, printed, err = cli(capsys, "query", run, pool, "--budget", 5, "--seed", 3, "--out", tmp_path / "a.csv")
    assert code == 0, err
    assert "wrote 5 of 12 unlabelled images" in printed and "4 by strategy margin, 1 by the random arm" in printed
    rows = read_rows(tmp_path / "a.csv")
    assert list(rows[0]) == ["rank", "path", "score", "reason", "predicted", "confidence", "arm"]
    assert [r["arm"] for r in rows] == ["strategy"] * 4 + ["random"]
    assert len({r["path"] for r in rows}) == 5 and rows[4]["reason"].startswith("random arm")
    cli(capsys, "query", run, pool, "--budget", 5, "--seed", 3, "--out", tmp_path / "b.csv")
    assert read_rows(tmp_path / "b.csv") == rows  # the seed fixes the draw
    code, printed, _ = cli(capsys, "query", run, pool, "--budget", 5, "--random-arm", 0, "--out", tmp_path / "c.csv")
    assert code == 0 and "(strategy margin;" in printed
    assert [r["arm"] for r in read_rows(tmp_path / "c.csv")] == ["strategy"] * 5


@pytest.fixture(scope="module")
def previous(tiny, tmp_path_factory) -> Path:
    """A previous round's to_label.csv by hand: 10 images of the run's splits.csv and 2 unlabelled pool images.

    strategy arm: 4 labelled, 3 mispredicted; random arm: 6 labelled, 1 mispredicted (two reached through
    the pool's symlinks), plus 2 not labelled yet.
    """
    run, pool = tiny
    labels = {os.path.realpath(r["path"]): r["label"] for r in read_rows(RunPaths(run).splits)}
    linked = sorted((pool / "disk").glob("labelled_*.png"))[:2]
    others = [p for p in sorted(labels) if p not in {os.path.realpath(x) for x in linked}][:8]
    wrong = {"bar": "disk", "disk": "square", "square": "bar"}
    picks = [(p, "strategy", i < 3) for i, p in enumerate(others[:4])] + [
        (p, "random", i == 0) for i, p in enumerate([*others[4:], *map(str, linked)])]
    rows = [(p, arm, wrong[labels[os.path.realpath(p)]] if bad else labels[os.path.realpath(p)])
            for p, arm, bad in picks]
    rows += [(str(p), "random", "bar") for p in sorted((pool / "bar").glob("bar_*.png"))[:2]]
    out = tmp_path_factory.mktemp("previous") / "old_to_label.csv"
    out.write_text("rank,path,score,reason,predicted,confidence,arm\n"
                   + "".join(f"{i},{p},0,x,{pred},0.5,{arm}\n" for i, (p, arm, pred) in enumerate(rows, 1)))
    return out


def test_query_reports_whether_the_strategy_beat_the_random_arm(tiny, previous, tmp_path, capsys):
    run, pool = tiny
    argv = ("query", run, pool, "--budget", 3, "--previous", previous, "--out", tmp_path / "to_label.csv")
    code, printed, err = cli(capsys, *argv)
    assert code == 0, err
    assert "strategy arm 3 of 4 labelled picks mispredicted (error rate 0.750)" in printed
    assert "random arm 1 of 6 labelled picks mispredicted (error rate 0.167)" in printed
    assert "strategy beats random" in printed
    assert "accuracy on the pool (random arm): 0.833 (95% Wilson interval 0.436-0.970, n=6)" in printed
    rounds = read_rows(tmp_path / "query_rounds.csv")
    assert len(rounds) == 1 and rounds[0]["verdict"] == "beats random" and rounds[0]["random_accuracy"] == "0.8333"
    few = tmp_path / "few.csv"
    few.write_text("\n".join(line for line in previous.read_text().splitlines() if ",random" not in line
                             or "labelled_" in line) + "\n")  # 2 labelled random picks left
    code, printed, err = cli(capsys, "query", run, pool, "--budget", 3, "--previous", few, "--out",
                             tmp_path / "to_label.csv")
    assert code == 0, err
    assert "random arm 0 of 2 labelled picks mispredicted" in printed and "too few random picks to tell" in printed
    cli(capsys, *argv)  # the same round again replaces its row
    assert [r["verdict"] for r in read_rows(tmp_path / "query_rounds.csv")] == ["too few random picks to tell",
                                                                               "beats random"]


def test_query_refuses_a_bad_previous_round_or_random_arm(tiny, previous, tmp_path, capsys):
    run, pool = tiny
    no_arm = tmp_path / "no_arm.csv"
    no_arm.write_text("rank,path,predicted\n1,a.png,bar\n")
    unlabelled_only = tmp_path / "unlabelled.csv"
    unlabelled_only.write_text("path,arm,predicted\n" + "".join(f"{p},random,bar\n" for p in pool.glob("bar/bar_*")))
    cases = [(("--previous", no_arm), r"no_arm.csv: expected columns path, arm, predicted.*\(missing arm\)"),
             (("--previous", unlabelled_only), r"got none labelled; label them and retrain on them first"),
             (("--previous", tmp_path / "nope.csv"), r"nope.csv: expected the to_label.csv.*got no such file"),
             (("--random-arm", 1), r"--random-arm\): expected a fraction of the budget in \[0, 1\), got 1.0")]
    for extra, match in cases:
        code, _, err = cli(capsys, "query", run, pool, "--budget", 3, *extra, "--out", tmp_path / "x.csv")
        assert code == 2 and re.search(match, err), err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "query_rounds.csv").exists()
