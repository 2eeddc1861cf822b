"""The ensemble folder: `ensemble.json` (members, method, fit context), `combiner.joblib`, `splits.csv`.

The members are referred to by their path relative to the ensemble folder (so that a tree of runs can
be moved as a whole) and by their absolute path (tried second). Each member's checkpoint and
calibration fingerprints are recorded, so that loading warns when a member changed since.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import sklearn

from winnow.ensembles.methods import make_combiner
from winnow.runs.atomic import atomic_write
from winnow.runs.files import read_json, write_json
from winnow.runs.layout import RunPaths

FORMAT = "winnow-ensemble/2"  # 2: method svm saves a head of winnow.embeddings.heads
OLD_FORMAT = "winnow-ensemble/1"  # still read, except its svm combiners (a pipeline this version cannot use)


@dataclass
class MemberRef:
    """One member run of an ensemble.

    Attributes:
        run: Path relative to the ensemble folder.
        run_absolute: Absolute path when the ensemble was built.
        checkpoint: Checkpoint name or `.pt` path.
        checkpoint_fingerprint, calibration_fingerprint: Of the files used at build time.
    """

    run: str
    run_absolute: str
    checkpoint: str
    checkpoint_fingerprint: str | None = None
    calibration_fingerprint: str | None = None

    def locate(self, folder: Path) -> Path:
        """The member's run folder: relative to `folder` first, then the absolute path.

        Raises:
            ValueError: Neither exists.
        """
        for candidate in (folder / self.run, Path(self.run_absolute)):
            if candidate.is_dir():
                return candidate
        raise ValueError(f"member run {self.run_absolute} of the ensemble {folder} is missing (also looked for "
                         f"{folder / self.run}); put it back or rebuild the ensemble with `winnow ensemble`")


@dataclass
class EnsembleDefinition:
    """Content of ensemble.json.

    Attributes:
        method: mean, vote, stack or svm (a head on embeddings: `fit["report"]["classifier"]` names its kind).
        members: The member runs.
        tasks: The (single) task, as saved in a run's preprocessing.json.
        combiner_file: File of the fitted combiner (stack, svm) or None.
        fit: What the combiner was fitted on, and its cross-validation report; `fit["reject"]`: where and how
            the head's reject threshold was fitted (method svm with a reject option).
        versions: winnow / scikit-learn versions and git commit at build time.
    """

    method: str
    members: list[MemberRef]
    tasks: list[dict[str, Any]]
    combiner_file: str | None = None
    fit: dict[str, Any] | None = None
    versions: dict[str, Any] = field(default_factory=dict)


def member_ref(folder: Path, run: Path, checkpoint: str, *, checkpoint_fingerprint: str | None,
               calibration_fingerprint: str | None) -> MemberRef:
    """A reference to `run` from an ensemble built in `folder`."""
    return MemberRef(os.path.relpath(run.resolve(), folder.resolve()), str(run.resolve()), checkpoint,
                     checkpoint_fingerprint, calibration_fingerprint)


def save_ensemble(folder: Path, definition: EnsembleDefinition, combiner: Any | None) -> None:
    """Write ensemble.json (and combiner.joblib when `definition.combiner_file` is set), atomically."""
    if definition.combiner_file:
        atomic_write(folder / definition.combiner_file, lambda handle: joblib.dump(combiner, handle))
    write_json(RunPaths(folder).ensemble, {"format": FORMAT, **asdict(definition)})


def read_ensemble(folder: str | Path) -> EnsembleDefinition:
    """Read ensemble.json.

    Raises:
        ValueError: Missing file, unknown format or missing keys.
    """
    path = RunPaths(folder).ensemble
    data = read_json(path, what="ensemble")
    check_format(path, data)
    missing = [key for key in ("method", "members", "tasks") if key not in data]
    if missing:
        raise ValueError(f"{path} lacks {missing}; rebuild it with `winnow ensemble`")
    members = [MemberRef(**member) for member in data["members"]]
    return EnsembleDefinition(data["method"], members, data["tasks"], data.get("combiner_file"), data.get("fit"),
                              data.get("versions", {}))


def check_format(path: Path, data: dict[str, Any]) -> None:
    """Accept the current format, and the old one for methods whose combiner did not change.

    Raises:
        ValueError: Another format, or an svm ensemble of the old format.
    """
    if data.get("format") == OLD_FORMAT and data.get("method") == "svm":
        raise ValueError(f"{path}: this svm ensemble was built by an older winnow (format {OLD_FORMAT!r}), whose "
                         "combiner.joblib this version cannot use; rebuild it with `winnow ensemble RUN... --method "
                         "svm` (or `winnow head RUN --kind svm`)")
    if data.get("format") not in (FORMAT, OLD_FORMAT):
        raise ValueError(f"{path}: expected format {FORMAT!r}, got {data.get('format')!r}; "
                         "rebuild it with `winnow ensemble`")


def load_combiner(folder: Path, definition: EnsembleDefinition) -> Any:
    """The fitted combiner: unpickled from combiner.joblib, or a fresh mean / vote combiner.

    Raises:
        ValueError: combiner.joblib is missing, saved by another scikit-learn, or fitted on other classes.
    """
    if not definition.combiner_file:
        return make_combiner(definition.method)
    path = Path(folder) / definition.combiner_file
    if not path.is_file():
        raise ValueError(f"{path} is missing; rebuild the ensemble with `winnow ensemble`")
    saved = definition.versions.get("sklearn")
    if saved and saved != sklearn.__version__:
        raise ValueError(f"{path} was saved with scikit-learn {saved}, this is {sklearn.__version__}; "
                         "rebuild the ensemble with `winnow ensemble` (pickled estimators are not portable)")
    combiner = joblib.load(path)
    _check_classes(combiner, path, folder, definition.tasks[0]["classes"])
    return combiner


def _check_classes(combiner: Any, path: Path, folder: Path, classes: list[str]) -> None:
    """A combiner.joblib copied from another folder may have been fitted on other classes."""
    if getattr(combiner, "n_classes_", len(classes)) != len(classes):
        raise ValueError(f"{path} was fitted on {combiner.n_classes_} classes, but {RunPaths(folder).ensemble} names "
                         f"{len(classes)} ({classes}); it comes from another folder: rebuild the ensemble with "
                         "`winnow ensemble` (or `winnow head`)")
