"""Run `winnow` commands in forked children and SIGKILL some of them at an exact moment.

Used by tests/test_kill_resume.py: `python kill_driver.py PLAN.json`. The driver imports winnow
once, then forks one child per step of the plan, so a step costs no start-up time and every
step runs the same single-threaded arithmetic (bit-identical results across steps). A step is
`{"id", "argv", "kill"?, "watch"?}`:

- `kill: {"write": NAME, "nth": N, "when": "mid" | "before_rename"}`: at the Nth atomic write of
  a file named NAME (any file when NAME is null), write half of its first chunk to the temporary
  file and SIGKILL ("mid"), or SIGKILL once the temporary file is complete, before it is renamed.
- `kill: {"batch": N}`: SIGKILL when the Nth training batch (counted over epochs) is done.
- `watch: FOLDER`: record every file opened for writing under FOLDER to `writes-<id>.txt`.
- `{"id", "snapshot": [SRC, DST]}` copies a file or folder in the driver itself (to compare later).

Results (`{"id": {"exit": code} | {"signal": 9}}`) go to `results.json` beside the plan; each
step's stdout and stderr to `<id>.log`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path

import torch

# One thread: fork-safe (no OpenMP pool in the parent) and the same arithmetic in every child.
torch.set_num_threads(1)
torch.set_num_interop_threads(1)

import winnow.cli.main as cli  # noqa: E402  (imported once here, inherited by every child)
import winnow.runs.atomic as atomic  # noqa: E402
import winnow.training.trainer  # noqa: E402,F401  (heavy modules loaded before forking)
from winnow.training.progress import Progress  # noqa: E402

from file_proxy import FileProxy  # noqa: E402  (tests/ is this script's folder)


def kill_now() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def target_name(temp_path: str) -> str:
    """`last.pt` for `.../.last.pt.k3j2_x.tmp` (atomic_write's temporary names)."""
    name = Path(temp_path).name
    return name[1:-len(atomic.TEMP_SUFFIX)].rsplit(".", 1)[0]


class HalfWrittenFile(FileProxy):
    """A temporary file whose first write stops halfway: the process is killed there."""

    def write(self, data) -> int:
        self.handle.write(bytes(data)[: max(1, len(data) // 2)])
        self.handle.flush()
        os.fsync(self.handle.fileno())
        kill_now()
        return 0


class KillingOs:
    """Stands in for `os` inside winnow.runs.atomic: kills at the chosen atomic write."""

    def __init__(self, name: str | None, nth: int, when: str) -> None:
        self.name, self.nth, self.when, self.count = name, nth, when, 0

    def __getattr__(self, attribute):
        return getattr(os, attribute)

    def _hit(self, name: str) -> bool:
        if self.name is not None and name != self.name:
            return False
        self.count += 1
        return self.count == self.nth

    def fdopen(self, fd, *args, **kwargs):
        handle = os.fdopen(fd, *args, **kwargs)
        if self.when == "mid" and self._hit(target_name(os.readlink(f"/proc/self/fd/{fd}"))):
            return HalfWrittenFile(handle)
        return handle

    def replace(self, source, destination):
        if self.when == "before_rename" and self._hit(Path(destination).name):
            kill_now()
        return os.replace(source, destination)


def kill_at_batch(nth: int) -> None:
    original, calls = Progress.update, {"n": 0}

    def update(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == nth:
            kill_now()

    Progress.update = update


def watch_writes(folder: str, log_path: Path) -> None:
    """Record every path under `folder` opened for writing (append-only log, survives SIGKILL)."""
    root = os.path.realpath(folder) + os.sep
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def hook(event: str, args: tuple) -> None:
        if event != "open" or not isinstance(args[0], (str, os.PathLike)):
            return
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if mode else bool(flags & write_flags)
        full = os.path.abspath(os.fspath(path))
        if writing and full.startswith(root):
            os.write(log_fd, (full[len(root):] + "\n").encode())

    sys.addaudithook(hook)


def child(step: dict, folder: Path) -> int:
    log = os.open(folder / f"{step['id']}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    kill = step.get("kill") or {}
    if "batch" in kill:
        kill_at_batch(kill["batch"])
    elif kill:
        atomic.os = KillingOs(kill.get("write"), kill.get("nth", 1), kill.get("when", "mid"))
    if step.get("watch"):
        watch_writes(step["watch"], folder / f"writes-{step['id']}.txt")
    try:
        return cli.main([str(arg) for arg in step["argv"]])
    except BaseException:  # the report must reach the test, whatever the child raised
        traceback.print_exc()
        return 70
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def run_plan(plan_path: Path) -> None:
    folder = plan_path.parent
    results = {}
    for step in json.loads(plan_path.read_text()):
        if "snapshot" in step:
            source, destination = map(Path, step["snapshot"])
            destination.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, destination)
            else:
                shutil.copy2(source, destination)
            continue
        pid = os.fork()
        if pid == 0:
            os._exit(child(step, folder))
        _, status = os.waitpid(pid, 0)
        results[step["id"]] = ({"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status)
                               else {"exit": os.WEXITSTATUS(status)})
    (folder / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    run_plan(Path(sys.argv[1]))
