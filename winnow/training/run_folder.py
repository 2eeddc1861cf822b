"""Opening a run folder for `train`: a new one (rank 0 picks it, the other ranks are told) or one to resume.

Resuming trusts `checkpoints/last.pt` alone: it carries the epoch history, so a kill between saving
the checkpoint and the files derived from it (metrics.jsonl, best.pt, epochNNNN.pt) loses nothing;
`restore` writes them again. Temporary files a killed write left behind are removed.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from winnow.config import Config, read_saved, save_yaml
from winnow.runs.atomic import atomic_write, remove_stale_temp_files
from winnow.runs.files import read_metrics, write_metrics
from winnow.runs.layout import (BAD_FILES_FILE, CHECKPOINT_SUFFIX, CLASSES_FILE, CONFIG_FILE, METRICS_FILE,
                                PREPROCESSING_FILE, SPLITS_FILE, SUMMARY_FILE, RunPaths, dataset_name, unique_run_dir)
from winnow.runs.provenance import provenance
from winnow.training.checkpoint import load_checkpoint
from winnow.training.distributed import DistInfo, broadcast_object
from winnow.training.state import TrainState

log = logging.getLogger("winnow")
RESUME_OVERRIDES = ("epochs", "workers", "device", "progress", "progress_every", "save_every", "cache", "cache_dir")
# Files `train` alone writes in a run folder (and in checkpoints/): on resume, temporary files a
# killed write left for them are deleted.
OWN_FILES = (CONFIG_FILE, CLASSES_FILE, PREPROCESSING_FILE, SPLITS_FILE, BAD_FILES_FILE, METRICS_FILE, SUMMARY_FILE)
OWN_CHECKPOINTS = tuple(f"{name}{CHECKPOINT_SUFFIX}" for name in ("last", "best", "swa", "epoch*"))


def open_run(config: Config, resume: str | Path | None, overrides: dict,
              dist_info: DistInfo) -> tuple[Config, RunPaths, bool]:
    """The run folder and its config, and whether it has a last.pt to continue from.

    Rank 0 picks a new folder and tells the other ranks; resuming, every rank reads the folder
    (it must be on a file system they all see).
    """
    if resume is None:
        root = unique_run_dir(config.out, config.name or default_name(config)) if dist_info.is_main else None
        paths = RunPaths(broadcast_object(root, dist_info))
        if dist_info.is_main:
            paths.checkpoints.mkdir(parents=True, exist_ok=True)
            save_yaml(config, paths.config, extra=provenance())
        setup_logging(paths, dist_info)
        return config, paths, False
    paths = RunPaths(Path(resume))
    from_checkpoint = paths.checkpoint("last").is_file()
    if not from_checkpoint and not paths.config.is_file():
        raise ValueError(f"cannot resume {resume}: {paths.checkpoint('last')} is missing and so is "
                         f"{paths.config}; is this a winnow run folder? Start a new run with `winnow train DATA`")
    not_allowed = sorted(set(overrides) - set(RESUME_OVERRIDES))
    if not_allowed:
        raise ValueError(f"--resume keeps the run's settings; cannot change {not_allowed}. "
                         f"Only {list(RESUME_OVERRIDES)} may change on resume; start a new run otherwise")
    config = read_saved(paths.config).replace(**overrides)
    if dist_info.is_main:
        for folder, names in ((paths.root, OWN_FILES), (paths.checkpoints, OWN_CHECKPOINTS)):
            remove_stale_temp_files(folder, names)
        save_yaml(config, paths.config, extra=provenance())
    setup_logging(paths, dist_info)
    if not from_checkpoint:
        log.info("%s stopped before its first epoch ended (no %s): training it from the start with its "
                 "saved settings", paths.root, paths.checkpoint("last").name)
    return config, paths, from_checkpoint


def restore(state: TrainState, paths: RunPaths, dist_info: DistInfo, *, save_every: int | None) -> None:
    """Load last.pt; rank 0 then brings the files derived from it up to date."""
    checkpoint = load_checkpoint(paths.checkpoint("last"))
    state.load_state_dict(checkpoint)
    if "history" not in checkpoint:  # written before checkpoints carried the history
        state.history = read_metrics(paths.metrics)
    # a Ctrl-C between recording an epoch's row and counting the epoch leaves one row too many
    state.history = [row for row in state.history if row["epoch"] <= state.epoch]
    if dist_info.is_main:
        _reconcile(state, checkpoint, paths, save_every=save_every)
    log.info("resuming %s after epoch %d", paths.root, state.epoch)


def _reconcile(state: TrainState, checkpoint: dict, paths: RunPaths, *, save_every: int | None) -> None:
    """Redo what a kill after saving last.pt may have cut short: metrics.jsonl, best.pt, epochNNNN.pt.

    Idempotent: on a folder that was not cut short it rewrites metrics.jsonl with the same rows.
    """
    write_metrics(paths.metrics, state.history)
    if checkpoint.get("step_in_epoch", 0):
        return  # saved by Ctrl-C mid-epoch: the previous epoch's own saves had completed before it
    # At the end of an epoch last.pt holds exactly what that epoch's best/epochNNNN copies hold.
    wanted = []
    if state.best_epoch == state.epoch and _saved_epoch(paths.checkpoint("best")) != state.epoch:
        wanted.append("best")
    if save_every and state.epoch % save_every == 0 and not paths.checkpoint(f"epoch{state.epoch:04d}").is_file():
        wanted.append(f"epoch{state.epoch:04d}")
    for name in wanted:
        log.info("copying %s to %s (the run stopped before writing it)", paths.checkpoint("last"),
                 paths.checkpoint(name))
        _copy_file(paths.checkpoint("last"), paths.checkpoint(name))


def _saved_epoch(path: Path) -> int | None:
    """The epoch a checkpoint was saved at (None when absent)."""
    return load_checkpoint(path)["epoch"] if path.is_file() else None


def _copy_file(source: Path, destination: Path) -> None:
    with open(source, "rb") as handle:
        atomic_write(destination, lambda out: shutil.copyfileobj(handle, out))


def default_name(config: Config) -> str:
    """`<data>-<model>`, e.g. `chromosomes-qband-resnet18`."""
    data_name = dataset_name(config.data[0]) if config.data else "data"
    return f"{data_name}-{config.model.replace(':', '-').replace('/', '-')}"


def setup_logging(paths: RunPaths, dist_info: DistInfo) -> None:
    """Rank 0 logs to train.log (and the console); the other ranks log errors only."""
    for handler in [h for h in log.handlers if getattr(h, "winnow_run_log", False)]:
        log.removeHandler(handler)
        handler.close()
    if not dist_info.is_main:
        # their lines would repeat rank 0's; errors still show which rank failed
        log.setLevel(logging.ERROR)
        return
    paths.root.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(paths.train_log)
    handler.winnow_run_log = True
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
