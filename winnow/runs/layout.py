"""Every file name of a run or ensemble folder, and the questions asked about a folder, in one place.

A run folder (`winnow train`) and an ensemble folder (`winnow ensemble`) share this layout; an
ensemble has `ensemble.json` (and `combiner.joblib`) where a run has `config.yaml` and checkpoints.
Post-training files (`calibration.json`, `thresholds.json`), evaluations under `eval/` and reports
live in either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE = "config.yaml"
CLASSES_FILE = "classes.json"
PREPROCESSING_FILE = "preprocessing.json"
SPLITS_FILE = "splits.csv"
METRICS_FILE = "metrics.jsonl"  # one row per epoch
SUMMARY_FILE = "summary.json"
TRAIN_LOG_FILE = "train.log"
PROFILE_FILE = "profile.json"  # `train --profile`: seconds per phase of the run
BAD_FILES_FILE = "bad_files.csv"  # images skipped: at training (--skip-bad), or in an eval / ensemble folder
BAD_FILES_SUFFIX = ".bad_files.csv"  # beside a job's output file: preds.csv -> preds.bad_files.csv
TENSORBOARD_DIR = "tensorboard"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_SUFFIX = ".pt"
SELECTED_CHECKPOINT = "selected"  # `winnow select` copies its choice there, with selected.json beside it
CALIBRATION_FILE = "calibration.json"
THRESHOLDS_FILE = "thresholds.json"
ENSEMBLE_FILE = "ensemble.json"
COMBINER_FILE = "combiner.joblib"
EVAL_DIR = "eval"
EVAL_METRICS_FILE = "metrics.json"  # inside one evaluation folder
EVAL_PREDICTIONS_FILE = "predictions.csv"
CHECKPOINT_TABLE_FILE = "checkpoints.csv"  # `eval --checkpoint all`, per data set
CHECKPOINT_PLOT_FILE = "metrics_over_epochs.png"
CONFUSION_FIGURE = "confusion_matrix.png"  # figures of one evaluation folder
PR_FIGURE = "pr_curves.png"
ROC_FIGURE = "roc_curves.png"
RELIABILITY_FIGURE = "reliability.png"
EMBEDDING_MAP_FILE = "embedding_map.npz"  # `eval --embeddings`: 2-D map points, labels, mistakes
EMBEDDING_MAP_FIGURE = "embedding_map.png"
REPORT_FILE = "report.html"
ENCODER_FILE = "encoder.pt"  # `winnow pretrain`: the encoder's weights, a plain state dict for --pretrained
PILOT_FILE = "pilot.csv"  # `train --recipe auto`: the pilot's table, in the final run folder
# A search folder (`winnow search`): one run folder per trial beside these
SEARCH_FILE = "search.json"  # the search's settings, checked when it is continued
STUDY_DB = "study.db"  # the default Optuna storage (SQLite)
TRIALS_FILE = "trials.csv"
BEST_RECIPE_FILE = "best.yaml"
SEARCH_PREFIX = "search-"  # runs/search-NAME
TRIAL_PREFIX = "trial-"  # runs/search-NAME/trial-0003
# A self-training loop folder (`winnow loop`): one run folder per round (r0, r1...) beside these
LOOP_FILE = "loop.json"  # the loop's settings and its finished rounds, checked when it is continued
LOOP_TABLE_CSV = "loop.csv"
LOOP_TABLE_MD = "loop.md"
LOOP_PREFIX = "loop-"  # runs/loop-NAME
ROUND_PREFIX = "r"  # runs/loop-NAME/r2: the run of round 2
PSEUDO_PREFIX = "pseudo"  # runs/loop-NAME/pseudo2.csv (+ .json): the pseudo-labels round 2 trains on


@dataclass(frozen=True)
class RunPaths:
    """Paths inside a run or ensemble folder `runs/<name>/`."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def classes(self) -> Path:
        return self.root / CLASSES_FILE

    @property
    def preprocessing(self) -> Path:
        return self.root / PREPROCESSING_FILE

    @property
    def splits(self) -> Path:
        return self.root / SPLITS_FILE

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_FILE

    @property
    def train_log(self) -> Path:
        return self.root / TRAIN_LOG_FILE

    @property
    def selection(self) -> Path:
        return self.checkpoints / f"{SELECTED_CHECKPOINT}.json"

    @property
    def bad_files(self) -> Path:
        return self.root / BAD_FILES_FILE

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD_DIR

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS_DIR

    @property
    def calibration(self) -> Path:
        return self.root / CALIBRATION_FILE

    @property
    def thresholds(self) -> Path:
        return self.root / THRESHOLDS_FILE

    @property
    def ensemble(self) -> Path:
        return self.root / ENSEMBLE_FILE

    @property
    def combiner(self) -> Path:
        return self.root / COMBINER_FILE

    @property
    def encoder(self) -> Path:
        return self.root / ENCODER_FILE

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints / f"{name}{CHECKPOINT_SUFFIX}"

    def eval_data(self, data_name: str) -> Path:
        """`eval/<data>/`: every evaluation of one data set (and its per-checkpoint table)."""
        return self.root / EVAL_DIR / data_name

    def evaluation(self, data_name: str, checkpoint: str | Path, *, tta_label: str = "") -> Path:
        """`eval/<data>/<checkpoint>[-tta-<label>]/`: one checkpoint evaluated on one data set."""
        return self.eval_data(data_name) / (checkpoint_label(checkpoint) + (f"-tta-{tta_label}" if tta_label else ""))

    def report(self, data_name: str | None = None) -> Path:
        """`report.html` for the run's test split (no `data_name`), `report-<data>.html` otherwise."""
        return self.root / (REPORT_FILE if data_name is None else f"report-{data_name}.html")


def bad_files_beside(output: str | Path) -> Path:
    """Where a job writing the file `output` lists the images it skipped: `<stem>.bad_files.csv` beside it.

    e.g. `preds.csv` -> `preds.bad_files.csv`, `RUN/thresholds.json` -> `RUN/thresholds.bad_files.csv`
    (never the run's own bad_files.csv, which lists the files skipped at training).
    """
    output = Path(output)
    return output.with_name(output.stem + BAD_FILES_SUFFIX)


def is_ensemble(folder: str | Path) -> bool:
    """Whether `folder` is an ensemble folder (has ensemble.json) rather than a run folder."""
    return RunPaths(folder).ensemble.is_file()


def is_pretrain_run(folder: str | Path) -> bool:
    """Whether `folder` is a `winnow pretrain` run folder (has encoder.pt)."""
    return Path(folder).is_dir() and RunPaths(folder).encoder.is_file()


def checkpoint_names(run_dir: str | Path) -> list[str]:
    """Names of the checkpoints in RUN/checkpoints (best, last, epochNNNN, selected...)."""
    folder = RunPaths(run_dir).checkpoints
    return sorted(p.stem for p in folder.glob(f"*{CHECKPOINT_SUFFIX}")) if folder.is_dir() else []


def checkpoint_label(checkpoint: str | Path) -> str:
    """Folder name of a checkpoint: its name (best, last...) or a path's stem."""
    text = str(checkpoint)
    return Path(text).stem if text.endswith(CHECKPOINT_SUFFIX) or "/" in text else text


def dataset_name(source: str | Path) -> str:
    """A short name for a data source: the file stem, or the folder for a plain `manifest.csv`."""
    source = Path(source)
    return source.parent.name if source.stem == "manifest" else source.stem


def unique_run_dir(out: str | Path, name: str) -> Path:
    """`out/name`, or `out/name-2`, `-3`... when taken."""
    base = Path(out) / name
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate
