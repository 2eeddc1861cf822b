"""`winnow loop`: rounds of train -> pseudo-label -> retrain on one split, killed with -9 and continued.

One 2-round loop (test_resnet, 32 px, 2 epochs) runs in tests/kill_driver.py: SIGKILLed while round 2
writes its second last.pt, then the same command again, which must keep rounds 0 and 1 and continue r2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from winnow.active.loop_table import METRICS
from winnow.cli.main import main
from winnow.data.splits import load_splits
from winnow.runs.layout import RunPaths

from conftest import make_image_folder
from test_eval_cli import cli, read_rows
from test_kill_resume import direct_writes, incomplete_files

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the kill driver forks and reads /proc/self/fd")

TESTS = Path(__file__).resolve().parent
TINY = ["--model", "test_resnet", "--img-size", "32", "--epochs", "2", "--batch-size", "8", "--workers", "0",
        "--no-progress", "--lr", "3e-3", "--warmup-epochs", "0", "--val-fraction", "0.25", "--test-fraction", "0.25"]
LEVELS = ["--levels", "0.6:1.0,0.34:0.5", "--min-keep", "2"]  # 2 epochs on 12 images: a weak model


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """The loop folder, its argv, and the logs of the killed and the continued command."""
    root = tmp_path_factory.mktemp("loop")
    data = make_image_folder(root / "data", per_class=8)
    pool = make_image_folder(root / "pool", per_class=4, seed=1)
    for source in sorted((data / "disk").glob("*.png")):
        (pool / "disk" / f"labelled_{source.name}").symlink_to(source)  # split images, reached another way
    folder = root / "runs" / "loop-shapes"
    argv = ["loop", data, pool, "--rounds", "2", *TINY, *LEVELS, "--out", root / "runs", "--name", "shapes",
            "--cache-dir", root / "cache"]
    # last.pt is written once per epoch: r0 2, r1 2, then r2's second epoch is the 6th
    plan = [{"id": "killed", "argv": argv, "kill": {"write": "last.pt", "nth": 6}},
            {"id": "snapshot", "snapshot": [folder, root / "killed"]},
            {"id": "continued", "argv": argv, "watch": folder}]
    (root / "plan.json").write_text(json.dumps(plan, default=str))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(TESTS / "kill_driver.py"), str(root / "plan.json")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((root / "results.json").read_text())
    logs = {step: (root / f"{step}.log").read_text() for step in ("killed", "continued")}
    return {"root": root, "folder": folder, "argv": argv, "pool": pool, "results": results, "logs": logs}


def test_killed_loop_continues_at_the_round_it_stopped(loop):
    assert loop["results"]["killed"] == {"signal": 9}, loop["logs"]["killed"][-2000:]
    killed = loop["root"] / "killed"
    assert [row["round"] for row in json.loads((killed / "loop.json").read_text())["rounds"]] == [0, 1]
    assert incomplete_files(killed) == []
    assert "round 0 (r0): labelled bar 4, disk 4, square 4; no pseudo-labels" in loop["logs"]["killed"]
    assert "round 1 (r1)" in loop["logs"]["killed"] and "round 2 (r2)" not in loop["logs"]["killed"]

    assert loop["results"]["continued"] == {"exit": 0}, loop["logs"]["continued"][-3000:]
    log = loop["logs"]["continued"]
    assert "round 0 (r0)" in log and log.count("(done before)") == 2 and "resuming" in log and "after epoch 1" in log
    folder = loop["folder"]
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["r0", "r1", "r2"]
    rewritten = direct_writes(loop, "continued", allowed=("r2/train.log", "r2/tensorboard/"))
    assert rewritten == [], "writes must be atomic"
    written = (loop["root"] / "writes-continued.txt").read_text().split()
    assert not [p for p in written if p.startswith(("r0/", "r1/", "pseudo"))], "finished rounds are kept"
    assert incomplete_files(folder) == []


def test_every_round_trains_on_r0s_split_and_pseudo_labels_only_the_pool(loop):
    folder = loop["folder"]
    r0 = load_splits(RunPaths(folder / "r0").splits)
    split_images = {os.path.realpath(p) for p in r0.paths}
    held_out = sorted((p, s) for p, s in zip(r0.paths, r0.splits) if s != "train")
    for k in (1, 2):
        splits = load_splits(RunPaths(folder / f"r{k}").splits)
        assert sorted((p, s) for p, s in zip(splits.paths, splits.splits) if s != "train") == held_out
        pseudo = read_rows(folder / f"pseudo{k}.csv")
        assert pseudo and {r["split"] for r in pseudo} == {"train"}
        assert not {os.path.realpath(r["path"]) for r in pseudo} & split_images, "a split image was pseudo-labelled"
        assert all(Path(r["path"]).parent.parent == loop["pool"] for r in pseudo)
        weighted = [p for p, extra in zip(splits.paths, splits.extras) if extra.get("weight")]
        assert sorted(weighted) == sorted(r["path"] for r in pseudo)


def test_the_table_reports_counts_precision_and_metrics_per_round(loop):
    folder = loop["folder"]
    rounds = json.loads((folder / "loop.json").read_text())["rounds"]
    assert [row["round"] for row in rounds] == [0, 1, 2]
    r0 = load_splits(RunPaths(folder / "r0").splits)
    labelled = {c: sum(1 for label, s in zip(r0.labels, r0.splits) if s == "train" and label == c)
                for c in ("bar", "disk", "square")}
    for row in rounds:
        assert row["labelled"] == labelled
        summary = json.loads(RunPaths(folder / row["run"]).summary.read_text())
        assert row["test"] == {m: summary["test"][f"test_{m}"] for m in METRICS}
        assert row["best_epoch"] == summary["best_epoch"] and all(0 <= v <= 1 for v in row["val"].values())
    assert sum(rounds[0]["pseudo"].values()) == 0
    for row in rounds[1:]:
        record = json.loads((folder / f"pseudo{row['round']}.json").read_text())
        pseudo = read_rows(folder / f"pseudo{row['round']}.csv")
        assert row["pseudo"] == {c: sum(r["label"] == c for r in pseudo) for c in labelled} == record["counts"]
        assert record["pool"] == 12, "the 8 split images reached through links are not in the pool"
        assert row["pseudo_val_precision"] == {c: record["val_precision"][c] if n else None
                                               for c, n in row["pseudo"].items()}
        assert all(p >= 0.34 for p in row["pseudo_val_precision"].values() if p is not None)  # the loosest level
    table = (folder / "loop.md").read_text().splitlines()
    assert table[0].startswith("| round | run | labelled | pseudo-labelled | their val precision | val bal. acc")
    assert [line.split(" | ")[1] for line in table[2:]] == ["r0", "r1", "r2"]
    assert [r["run"] for r in read_rows(folder / "loop.csv")] == ["r0", "r1", "r2"]


def test_bad_loop_input_says_how_to_fix(loop, tmp_path, capsys):
    data, pool = loop["argv"][1], loop["argv"][2]
    base = [*TINY, "--out", tmp_path]
    cases = [(["--rounds", "0"], "rounds: expected at least 1"),
             (["--rounds", "1", "--head", "multilabel"], "one known class per image"),
             (["--rounds", "1", "--mixup", "0.2"], "set mixup: 0 and cutmix: 0")]
    for extra, message in cases:
        code, _, err = cli(capsys, "loop", data, pool, *extra, *base)
        assert code == 2 and message in err, err
    code, _, err = cli(capsys, "loop", data, tmp_path / "missing", "--rounds", "1", *base)
    assert code == 2 and "missing do not exist" in err
    assert list(tmp_path.iterdir()) == [], "nothing is written for bad input"
    changed = [str(a) for a in loop["argv"]]
    changed[changed.index("0.6:1.0,0.34:0.5")] = "0.9:1.0"
    assert main(changed) == 2
    assert "holds a loop with other settings (levels differ" in capsys.readouterr().err
