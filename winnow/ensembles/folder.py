"""Writing an ensemble (or head) folder: built whole under a staging name, then renamed into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from winnow.data.sources import Samples
from winnow.data.validation import record_skipped
from winnow.data.splits import save_splits
from winnow.ensembles.methods import Combiner
from winnow.ensembles.store import EnsembleDefinition, save_ensemble
from winnow.runs.layout import RunPaths


def write_folder(folder: Path, definition: EnsembleDefinition, combiner: Combiner, *, splits: Path | Samples | None,
                 bad: Sequence[tuple[str, str]] = ()) -> None:
    """Write the whole folder under a temporary name, then rename it: never a half-built ensemble.

    `splits`: a run's splits.csv to copy, split rows to write as splits.csv, or None (no splits.csv).
    `bad` (the fit images that could not be read) goes to the folder's bad_files.csv.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(folder)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.{os.getpid()}.", suffix=".tmp"))
    try:
        save_ensemble(staging, definition, combiner)
        record_skipped(list(bad), RunPaths(staging).bad_files)
        if isinstance(splits, Samples):
            save_splits(splits, RunPaths(staging).splits)
        elif splits is not None and splits.is_file():
            shutil.copy2(splits, staging / splits.name)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_abandoned_staging(folder: Path) -> None:
    """Delete the staging folders of `folder` left by builds that were killed (their process is gone).

    A staging name carries its builder's pid, so a build running beside this one keeps its own.
    """
    for staging in folder.parent.glob(f".{folder.name}.*.tmp"):
        pid = staging.name[len(folder.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
