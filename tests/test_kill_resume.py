"""kill -9 at exact moments of `train`, `eval --checkpoint all`, `tune`, `calibrate`, `ensemble`; a full disk.

tests/kill_driver.py imports winnow once and forks one child per step of a plan; chosen children
are SIGKILLed half-way through an atomic write, just before its rename, or after a given training
batch (no sleeps, no fault-injection code in the library). The whole plan runs once per module;
each test checks one moment. Every killed folder must hold only complete files (plus temporary
ones under their `.NAME.*.tmp` names); a resumed run must end exactly like an uninterrupted one.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import pytest
import torch
import yaml
from PIL import Image

import winnow.runs.atomic as atomic
from winnow.cli.main import main
from winnow.runs.atomic import FileWriteError, atomic_write_text, is_temp_file
from winnow.runs.files import read_metrics
from winnow.runs.layout import RunPaths, checkpoint_names

from conftest import make_image_folder
from file_proxy import FileProxy

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the kill driver forks and reads /proc/self/fd")

TESTS = Path(__file__).resolve().parent
TIMING_KEYS = {"img_per_s", "time_s"}  # differ between any two runs
TINY = ["--model", "test_resnet", "--img-size", "32", "--epochs", "3", "--batch-size", "8", "--workers", "0",
        "--no-progress", "--lr", "3e-3", "--warmup-epochs", "0", "--val-fraction", "0.25", "--test-fraction", "0.25"]
TRAIN_FLAGS = [*TINY, "--select-metric", "val_loss"]
# 36 images: 18 train images give 2 batches per epoch, so batch 3 is the first of epoch 2.
# Each epoch writes last.pt, best.pt (val_loss improves every epoch here), metrics.jsonl in that order.
MOMENTS = {
    "startup": {"write": "preprocessing.json", "nth": 1},  # before any checkpoint exists
    "mid-epoch": {"batch": 3},
    "writing-last.pt": {"write": "last.pt", "nth": 2},
    # the last epoch's last.pt is saved, its best.pt is not, and no later epoch would rewrite it
    "writing-best.pt": {"write": "best.pt", "nth": 3},
    "writing-metrics.jsonl": {"write": "metrics.jsonl", "nth": 2},  # the row is missing from metrics.jsonl
    "renaming-metrics.jsonl": {"write": "metrics.jsonl", "nth": 2, "when": "before_rename"},
}
COMMANDS = {  # command -> (argv after the run folder, the write killed half-way, the file it replaces)
    "eval": (["--checkpoint", "all", "--device", "cpu"], {"write": "roc_curves.png", "nth": 1},
             "eval/test/best/roc_curves.png"),
    "tune": (["--target", "recall(disk)>=0.8", "--device", "cpu", "--n-bootstrap", "50"],
             {"write": "thresholds.json", "nth": 1}, "thresholds.json"),
    "calibrate": (["--device", "cpu"], {"write": "calibration.json", "nth": 1}, "calibration.json"),
}
ENSEMBLE = ["--method", "svm", "--classifier", "logistic", "--device", "cpu"]


def _plan(root: Path, data: Path) -> list[dict]:
    out, base = root / "runs", root / "runs" / "base"
    train = ["train", data, *TRAIN_FLAGS, "--out", out, "--cache-dir", root / "cache"]
    steps = [{"id": "base", "argv": [*train, "--name", "base"], "watch": base}]
    for moment, kill in MOMENTS.items():
        run = out / moment
        steps += [{"id": moment, "argv": [*train, "--name", moment], "kill": kill},
                  {"id": f"{moment}-snapshot", "snapshot": [run, root / "killed" / moment]},
                  {"id": f"{moment}-resume", "argv": ["train", "--resume", run]}]
    for command, (extra, kill, replaced) in COMMANDS.items():
        argv = [command, base, *extra]
        steps += [{"id": command, "argv": argv, "watch": base},
                  {"id": f"{command}-snapshot", "snapshot": [base / replaced, root / "old" / command]},
                  {"id": f"{command}-killed", "argv": argv, "kill": kill, "watch": base},
                  {"id": f"{command}-killed-snapshot", "snapshot": [base, root / "killed" / command]},
                  {"id": f"{command}-again", "argv": [*argv, *(["--no-plots"] if command == "eval" else [])]}]
    # every checkpoint of a run killed while writing last.pt (its temporary file is still there)
    steps.append({"id": "eval-half-written-checkpoint", "argv": [
        "eval", root / "killed" / "writing-last.pt", "--checkpoint", "all", "--device", "cpu", "--no-plots"]})
    ensemble = ["ensemble", base, *ENSEMBLE, "--out", root / "ensembles" / "svm"]
    steps += [{"id": "ensemble-killed", "argv": ensemble, "kill": {"write": "combiner.joblib", "nth": 1},
               "watch": root / "ensembles"},
              {"id": "ensemble-killed-snapshot", "snapshot": [root / "ensembles", root / "killed" / "ensemble"]},
              {"id": "ensemble", "argv": ensemble, "watch": root / "ensembles"}]
    return steps


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """Runs the whole plan; returns the root folder, the step results and a log reader."""
    root = tmp_path_factory.mktemp("kill")
    data = make_image_folder(root / "data", per_class=12)
    plan = root / "plan.json"
    plan.write_text(json.dumps(_plan(root, data), default=str))  # paths as strings
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(TESTS / "kill_driver.py"), str(plan)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((root / "results.json").read_text())

    def log(step: str) -> str:
        return (root / f"{step}.log").read_text()

    return {"root": root, "results": results, "log": log}


def _killed(killed, step: str) -> None:
    result = killed["results"][step]
    assert result == {"signal": 9}, f"{step} was not killed where planned ({result}):\n{killed['log'](step)[-2000:]}"


def _finished(killed, step: str) -> None:
    assert killed["results"][step] == {"exit": 0}, f"{step} failed:\n{killed['log'](step)[-3000:]}"


# ------------------------------------------------------------------------------------- file checks


def incomplete_files(folder: Path) -> list[str]:
    """Files under `folder` that do not parse or are cut short (temporary files excluded)."""
    problems = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_dir() or any(is_temp_file(part) for part in relative.parts):
            continue
        if path.name == "train.log" or "tensorboard" in relative.parts:
            continue  # append-only logs
        try:
            _check_complete(path)
        except Exception as error:  # noqa: BLE001 - any parse failure is the finding
            problems.append(f"{relative}: {type(error).__name__}: {error}")
    return problems


def _check_complete(path: Path) -> None:
    data = path.read_bytes()
    suffix = path.suffix
    if suffix in (".json", ".jsonl", ".csv", ".yaml", ".html") and not data.endswith(b"\n"):
        raise ValueError("does not end with a newline")
    if suffix == ".json":
        json.loads(data)
    elif suffix == ".jsonl":
        [json.loads(line) for line in data.splitlines()]
    elif suffix == ".csv":
        rows = list(csv.reader(io.StringIO(data.decode())))
        if len({len(row) for row in rows}) > 1:
            raise ValueError("rows of different lengths")
    elif suffix == ".yaml":
        yaml.safe_load(data)
    elif suffix == ".png":
        Image.open(io.BytesIO(data)).verify()
        if not data.endswith(b"IEND\xaeB`\x82"):
            raise ValueError("no IEND chunk at the end")
    elif suffix == ".joblib":
        joblib.load(io.BytesIO(data))
    elif suffix == ".pt":
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def temp_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if is_temp_file(p))


def direct_writes(killed, step: str, *, allowed: tuple[str, ...] = ()) -> list[str]:
    """Files the step opened for writing under its name instead of a temporary one (not atomic)."""
    log = killed["root"] / f"writes-{step}.txt"
    paths = log.read_text().split() if log.exists() else []
    return [p for p in paths if not any(is_temp_file(part) for part in Path(p).parts)
            and not p.startswith(allowed)]


def _rows(path: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in read_metrics(path)]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def _assert_same_weights(path: Path, expected: Path) -> None:
    got, want = _weights(path), _weights(expected)
    assert got.keys() == want.keys()
    different = [key for key in want if not torch.equal(got[key], want[key])]
    assert not different, f"{path} differs from {expected} in {different[:5]}"


# ------------------------------------------------------------------------------------------ train


def test_uninterrupted_run_writes_every_file_atomically(killed):
    _finished(killed, "base")
    base = killed["root"] / "runs" / "base"
    assert [row["epoch"] for row in read_metrics(base / "metrics.jsonl")] == [1, 2, 3]
    assert direct_writes(killed, "base", allowed=("train.log", "tensorboard/")) == []


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_train_killed_then_resumed_equals_uninterrupted(killed, moment):
    _killed(killed, moment)
    root = killed["root"]
    snapshot = root / "killed" / moment
    assert incomplete_files(snapshot) == []
    # a kill during a write leaves its temporary file, never taken for a checkpoint
    assert set(checkpoint_names(snapshot)) <= {"last", "best"}
    _finished(killed, f"{moment}-resume")
    run, base = RunPaths(root / "runs" / moment), RunPaths(root / "runs" / "base")
    assert _rows(run.metrics) == _rows(base.metrics)
    for name in ("last", "best"):
        _assert_same_weights(run.checkpoint(name), base.checkpoint(name))
    summary, expected = (json.loads(p.summary.read_text()) for p in (run, base))
    assert (summary["status"], summary["best_epoch"], summary["test"]) == ("finished", expected["best_epoch"],
                                                                          expected["test"])
    assert temp_files(run.root) == [], "resume removes what killed writes left"
    assert incomplete_files(run.root) == []


def test_kill_between_checkpoint_and_row_loses_no_row(killed):
    """The old order (row written after last.pt, resume trusting metrics.jsonl) lost epoch 2's row."""
    snapshot = RunPaths(killed["root"] / "killed" / "writing-metrics.jsonl")
    assert [row["epoch"] for row in read_metrics(snapshot.metrics)] == [1]
    saved = torch.load(snapshot.checkpoint("last"), map_location="cpu", weights_only=False)
    assert saved["epoch"] == 2 and [row["epoch"] for row in saved["history"]] == [1, 2]


def test_kill_between_last_and_best_checkpoint_is_repaired(killed):
    snapshot = RunPaths(killed["root"] / "killed" / "writing-best.pt")
    saved = {name: torch.load(snapshot.checkpoint(name), map_location="cpu", weights_only=False)
             for name in ("last", "best")}
    assert (saved["last"]["epoch"], saved["last"]["best_epoch"], saved["best"]["epoch"]) == (3, 3, 2)
    assert "copying" in killed["log"]("writing-best.pt-resume")


def test_kill_before_first_checkpoint_restarts_the_run(killed):
    snapshot = RunPaths(killed["root"] / "killed" / "startup")
    assert snapshot.config.is_file() and not snapshot.checkpoint("last").exists()
    assert temp_files(snapshot.root), "the kill landed in the middle of writing preprocessing.json"
    assert "training it from the start" in killed["log"]("startup-resume")


# ------------------------------------------------------------------------- eval, tune, calibrate


@pytest.mark.parametrize("command", list(COMMANDS))
def test_killed_command_leaves_old_or_new_files(killed, command):
    _finished(killed, command)
    _killed(killed, f"{command}-killed")
    root = killed["root"]
    snapshot = root / "killed" / command
    assert incomplete_files(snapshot) == []
    replaced = COMMANDS[command][2]
    assert (snapshot / replaced).read_bytes() == (root / "old" / command).read_bytes(), \
        f"{replaced} must keep its old content when its rewrite is killed"
    assert any(Path(p).name.startswith(f".{Path(replaced).name}.") for p in temp_files(snapshot))
    for step in (command, f"{command}-killed"):
        assert direct_writes(killed, step) == [], f"{step} wrote files in place"
    _finished(killed, f"{command}-again")
    assert incomplete_files(root / "runs" / "base") == []


def test_eval_all_skips_a_half_written_checkpoint(killed):
    _finished(killed, "eval-half-written-checkpoint")
    folder = killed["root"] / "killed" / "writing-last.pt"
    assert any(Path(p).name.startswith(".last.pt.") for p in temp_files(folder / "checkpoints"))
    with open(folder / "eval" / "test" / "checkpoints.csv", newline="") as handle:
        assert [(row["checkpoint"], row["epoch"]) for row in csv.DictReader(handle)] == [("best", "1"), ("last", "1")]


def test_rerun_after_kill_gives_the_same_files(killed):
    root = killed["root"]
    for command in ("tune", "calibrate"):
        replaced = COMMANDS[command][2]
        assert json.loads((root / "runs" / "base" / replaced).read_text()) == \
            json.loads((root / "old" / command).read_text())


def test_killed_ensemble_build_leaves_no_folder(killed):
    _killed(killed, "ensemble-killed")
    root = killed["root"]
    snapshot = root / "killed" / "ensemble"
    assert not (snapshot / "svm").exists(), "a killed build must not leave a half-built ensemble folder"
    assert incomplete_files(snapshot) == []
    assert direct_writes(killed, "ensemble-killed") == [] and direct_writes(killed, "ensemble") == []
    _finished(killed, "ensemble")
    assert incomplete_files(root / "ensembles" / "svm") == []
    assert (root / "ensembles" / "svm" / "combiner.joblib").is_file()


# -------------------------------------------------------------------------------------- disk full


class _DiskFullOs:
    """`os` for winnow.runs.atomic: epoch 2's last.pt write fails with ENOSPC after 1000 bytes."""

    def __init__(self, on_full) -> None:
        self.on_full, self.checkpoint_writes = on_full, 0

    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, *args, **kwargs):
        handle = os.fdopen(fd, *args, **kwargs)
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(".last.pt."):
            self.checkpoint_writes += 1
            if self.checkpoint_writes == 2:
                return _FullFile(handle, self.on_full)
        return handle


class _FullFile(FileProxy):
    """Fails with ENOSPC once 1000 bytes are written (after calling `on_full`)."""

    def __init__(self, handle, on_full) -> None:
        super().__init__(handle)
        self.on_full, self.written = on_full, 0

    def write(self, data) -> int:
        if self.written + len(data) > 1000:
            self.on_full()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.written += len(data)
        return self.handle.write(data)


def test_disk_full_while_saving_stops_with_the_fix_and_keeps_checkpoints(tmp_path, monkeypatch, capsys):
    data = make_image_folder(tmp_path / "data", per_class=8)
    run = RunPaths(tmp_path / "runs" / "full")
    before = {}

    def copy_epoch_1_files() -> None:
        before.update({name: run.checkpoint(name).read_bytes() for name in ("last", "best")})

    monkeypatch.setattr(atomic, "os", _DiskFullOs(copy_epoch_1_files))
    code = main(["train", str(data), *TINY, "--out", str(run.root.parent), "--name", "full",
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    message = capsys.readouterr().err
    assert (f"winnow train: error: could not write {run.checkpoint('last')}: No space left on device; "
            f"free disk space, then resume with `winnow train --resume {run.root}`") in message
    assert "Traceback" not in message
    assert before, "the disk never filled up"
    for name in ("last", "best"):
        assert run.checkpoint(name).read_bytes() == before[name]
        assert torch.load(run.checkpoint(name), map_location="cpu", weights_only=False)["epoch"] == 1
    assert temp_files(run.root) == [], "the failed write's temporary file is removed"
    assert [row["epoch"] for row in read_metrics(run.metrics)] == [1]


def test_other_write_errors_keep_their_traceback(tmp_path, monkeypatch):
    def broken(handle):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with pytest.raises(OSError) as raised:
        atomic.atomic_write(tmp_path / "x.json", broken)
    assert not isinstance(raised.value, FileWriteError) and raised.value.errno == errno.EIO
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(atomic.tempfile, "mkstemp", lambda **kw: (_ for _ in ()).throw(
        OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))))
    with pytest.raises(FileWriteError, match=r"could not write .*y.json: Disk quota exceeded; free disk space"):
        atomic_write_text(tmp_path / "y.json", "{}")
