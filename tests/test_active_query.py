"""`winnow query` end to end on a tiny run: labelled images left out, N picks with score and reason."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import winnow
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
    data = RunPaths(run).root.parent.parent / "data"
    config = replace(fast_config(tmp_path, data, epochs=1, name="pseudo"), data=[str(data), str(out)])
    retrained = winnow.train(config).path
    splits = read_rows(RunPaths(retrained).splits)
    weighted = [r for r in splits if r["weight"]]
    assert len(weighted) == len(rows) and {r["split"] for r in weighted} == {"train"}
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


def test_pseudo_label_writes_a_weighted_train_manifest(tiny, tmp_path, capsys):
    run, pool = tiny
    out = tmp_path / "pseudo.csv"
    code, printed, err = cli(capsys, "pseudo-label", run, pool, "--levels", "0.6:1.0,0.34:0.5", "--out", out)
    assert code == 0, err
    assert "pseudo-labels of 12 unlabelled images" in printed and "precision 0.6 on val (weight 1)" in printed
    rows = read_rows(out)
    assert out.read_text().splitlines()[0] == "path,label,weight,split,confidence,precision_level"
    assert all(r["split"] == "train" and r["weight"] in ("1", "0.5") for r in rows)
    assert not any("labelled_" in r["path"] for r in rows)
    data = RunPaths(run).root.parent.parent / "data"
    config = replace(fast_config(tmp_path, data, epochs=1, name="pseudo"), data=[str(data), str(out)])
    retrained = winnow.train(config).path
    splits = read_rows(RunPaths(retrained).splits)
    weighted = [r for r in splits if r["weight"]]
    assert len(weighted) == len(rows) and {r["split"] for r in weighted} == {"train"}
