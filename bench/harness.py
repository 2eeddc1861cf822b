"""Helpers shared by the bench scripts: data paths, the `winnow train` command, measured runs.

Bench scripts run as `python bench/<script>.py`, so this folder is on `sys.path` and they
import this module as `harness`.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WINNOW_SHARED_DATA", ROOT.parent / "shared" / "data"))
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


@dataclass(frozen=True)
class Measured:
    """What a finished subprocess cost: CPU seconds (user + sys, its reaped children included)."""

    returncode: int
    cpu_s: float
    wall_s: float


def winnow_train_command(data: str, extra: list[str], *, seed: int, epochs: int, out: Path, name: str,
                         workers: int | str, device: str) -> list[str]:
    """The `winnow train` command line of one bench run (progress off, run folder `out/name`)."""
    return [sys.executable, "-m", "winnow.cli.main", "train", data, *extra,
            "--seed", str(seed), "--epochs", str(epochs), "--out", str(out), "--name", name,
            "--workers", str(workers), "--device", device, "--no-progress"]


def bench_env() -> dict[str, str]:
    """The environment of bench subprocesses: this checkout's winnow first on the path."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run_measured(command: list[str], *, log: Path, cwd: Path | None = None) -> Measured:
    """Run `command` with stdout+stderr to `log`; return its exit code, CPU and wall seconds.

    CPU time comes from `wait4`, which on Linux adds the usage of the child's own reaped
    children (data-loader workers), so it is the whole cost of the run on a shared machine.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=bench_env(), cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait for it again
    return Measured(process.returncode, usage.ru_utime + usage.ru_stime, time.perf_counter() - start)


def winnow_test_metrics(run_dir: Path) -> dict[str, float]:
    """Best-checkpoint test accuracy, balanced accuracy and macro-F1 from a run's summary.json."""
    test = json.loads((run_dir / "summary.json").read_text())["test"]
    return {key: test[f"test_{key}"] for key in METRICS}


def mean_std(values: list[float], *, digits: int = 3) -> str:
    """`mean ± std` (population std, as numpy gives it) of `values`."""
    array = np.asarray(values, dtype=float)
    return f"{array.mean():.{digits}f} ± {array.std():.{digits}f}"


def drawn_split(data: str, seed: int, out: Path) -> list[dict[str, str]]:
    """One grouped, stratified split of `data` (winnow's `assign_splits`), saved to `out`: its rows."""
    from winnow.data.splits import assign_splits, save_splits

    out.parent.mkdir(parents=True, exist_ok=True)
    save_splits(assign_splits([data], seed=seed), out)
    with open(out, newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict], fields: list[str]) -> Path:
    """`rows` as a CSV with the columns `fields` (others ignored)."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
