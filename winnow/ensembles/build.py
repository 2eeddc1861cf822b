"""`winnow ensemble RUN1 RUN2 ... --method M`: check the members, fit the combiner, write the folder.

`mean` and `vote` learn nothing. `stack` fits on validation images (default: the first member's val
split), `svm` on training images (default: its train split), both without TTA. The folder gets the
first member's splits.csv, so that `winnow eval ENSEMBLE` defaults to the same test split; images
that some member trained on are reported, since they make the ensemble look better than it is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sklearn

from winnow.data.labelled import EvalData, encode_labels, resolve_eval_data
from winnow.data.splits import load_splits
from winnow.data.validation import record_skipped, skipped_lines
from winnow.ensembles.inputs import member_inputs, single_view
from winnow.ensembles.methods import MIN_MEMBERS, Combiner, make_combiner
from winnow.ensembles.store import EnsembleDefinition, member_ref, save_ensemble
from winnow.inference.postprocess import require_softmax_head
from winnow.inference.predictor import Predictor, image_set_hash
from winnow.inference.tta import TTA
from winnow.runs.files import fingerprint
from winnow.runs.layout import COMBINER_FILE, RunPaths, is_ensemble, unique_run_dir
from winnow.runs.provenance import provenance


@dataclass
class EnsembleBuild:
    """A written ensemble folder.

    Attributes:
        folder: The ensemble folder.
        definition: Content of its ensemble.json.
        members: The loaded member runs.
        warnings: Overlaps between the fit / evaluation images and the members' training images.
        bad: `(path, reason)` of the fit images that could not be read (listed in the folder's bad_files.csv).
    """

    folder: Path
    definition: EnsembleDefinition
    members: list[Predictor]
    warnings: list[str]
    bad: list[tuple[str, str]] = field(default_factory=list)


def build_ensemble(runs: Sequence[str | Path], *, method: str, out: str | Path | None = None,
                   checkpoint: str = "best", data: str | Path | None = None, classifier: str = "svm",
                   device: str = "auto", batch_size: int = 64, workers: int = 0,
                   strict: bool = False) -> EnsembleBuild:
    """Build an ensemble folder of `runs` (see the module docstring).

    Args:
        runs: Run folders from `winnow train`.
        method: mean, vote, stack or svm.
        out: The new folder (default: `ensemble-<method>` beside the first run).
        checkpoint: Checkpoint name of every member.
        data: Fit data of stack / svm (a data argument as `winnow eval`).
        classifier: svm or logistic (method svm).
        device, batch_size, workers: Inference settings.
        strict: An unreadable fit image is an error (default: skipped, listed in the folder's bad_files.csv).

    Raises:
        ValueError: Too few or incompatible members, `data` for a method that fits nothing, an existing
            `out`, fit data lacking a class, or no readable fit image (`strict`: an unreadable one).
    """
    combiner = make_combiner(method, classifier=classifier)
    members = load_members(runs, method=method, checkpoint=checkpoint, device=device)
    if data is not None and combiner.fit_split is None:
        raise ValueError(f"data: method {method} fits nothing; drop --data (it is for stack and svm)")
    folder = _new_folder(out, Path(runs[0]), method)
    fit, bad, warnings, trained = None, [], [], training_images(members)
    if combiner.fit_split is not None:
        fit_data = resolve_eval_data(members[0].run_dir, data, split=combiner.fit_split)
        fit, bad = fit_combiner(combiner, members, fit_data, batch_size=batch_size, workers=workers, strict=strict)
        warnings += fit_overlap_warnings(trained, fit_data, method) + stacking_warnings(fit)
    warnings += split_overlap_warnings(members[0], trained)
    definition = EnsembleDefinition(
        method, [member_ref(folder, m.run_dir, checkpoint, checkpoint_fingerprint=fingerprint(m.checkpoint_path),
                            calibration_fingerprint=fingerprint(m.calibration_file)) for m in members],
        [task.to_dict() for task in members[0].tasks], COMBINER_FILE if fit else None, fit,
        {**provenance(), "sklearn": sklearn.__version__})
    write_folder(folder, definition, combiner, splits=RunPaths(members[0].run_dir).splits, bad=bad)
    return EnsembleBuild(folder, definition, members, warnings, bad)


def load_members(runs: Sequence[str | Path], *, method: str, checkpoint: str, device: str) -> list[Predictor]:
    """Load the member runs and check they can be combined.

    Raises:
        ValueError: Too few runs, a run given twice, an ensemble as member, a multitask run, or runs
            whose heads or classes differ.
    """
    if len(runs) < MIN_MEMBERS[method]:
        raise ValueError(f"runs: method {method} needs at least {MIN_MEMBERS[method]} runs, got {len(runs)}")
    resolved = [Path(run).resolve() for run in runs]
    if len(set(resolved)) < len(resolved):
        raise ValueError(f"runs: a run is given twice in {[str(run) for run in runs]}; list each run once")
    for run in runs:
        if is_ensemble(run):
            raise ValueError(f"runs: {run} is an ensemble; members must be runs from `winnow train` "
                             "(list its members instead)")
    members = [Predictor(run, checkpoint=checkpoint, device=device, thresholds=False) for run in runs]
    check_compatible(members, method=method)
    return members


def check_compatible(members: Sequence[Predictor], *, method: str) -> None:
    """Same single task (head kind and classes, in order) in every member; softmax heads except for mean."""
    first = members[0]
    for member in members:
        if len(member.tasks) > 1:
            raise ValueError(f"runs: {member.run_dir} is a multitask run; ensembles of multitask runs are not "
                             "supported yet")
        if (member.head.kind, member.classes) != (first.head.kind, first.classes):
            raise ValueError(f"runs: {member.run_dir} has a {member.head.kind} head on {member.classes}, but "
                             f"{first.run_dir} has a {first.head.kind} head on {first.classes}; ensemble runs "
                             "trained on the same classes with the same head")
    if method != "mean":
        require_softmax_head(first.head, action=f"winnow ensemble --method {method}")


def fit_combiner(combiner: Combiner, members: Sequence[Predictor], data: EvalData, *, batch_size: int,
                 workers: int, strict: bool = False) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Fit `combiner` on the members' outputs for the readable images of `data` (no TTA).

    Returns:
        The fit context (saved in ensemble.json) and `(path, reason)` of the skipped images.
    """
    targets = encode_labels(members[0].head, data.labels, data_name=data.name)
    inputs = members[0].read_outputs(data.paths, lambda good: member_inputs(
        members, combiner.input_kind, good, TTA(), batch_size=batch_size, workers=workers), strict=strict)
    combiner.fit(single_view(inputs.values, combiner.input_kind), targets[inputs.rows])
    paths = [data.paths[i] for i in inputs.rows]
    return {"data": data.source, "n_samples": len(paths), "n_unreadable": len(inputs.bad),
            "images_sha1": image_set_hash(paths), "report": combiner.cv_report_}, inputs.bad


def training_images(members: Sequence[Predictor]) -> list[tuple[Predictor, set[str]]]:
    """Each member with a splits.csv, and the real paths of its training images (read once per build)."""
    found = []
    for member in members:
        splits = RunPaths(member.run_dir).splits
        if splits.is_file():
            found.append((member, {os.path.realpath(path) for path in load_splits(splits).where_split("train").paths}))
    return found


def fit_overlap_warnings(trained: list[tuple[Predictor, set[str]]], data: EvalData, method: str) -> list[str]:
    """Stacking on images a member trained on rewards memorisation: say how many there are."""
    if method != "stack":
        return []
    return [f"{count} of the {len(data.paths)} fit images ({data.source}) are in the training split of member "
            f"{member.run_dir}: the stacker will over-trust it; fit on images no member trained on (--data)"
            for member, count in _training_overlaps(trained, data.paths) if count]


def stacking_warnings(fit: dict[str, Any]) -> list[str]:
    """Stacking that scores below the plain mean out of fold is not worth its extra fit."""
    report = fit["report"]
    if "stack_out_of_fold" not in report:
        return []
    stack, mean = report["stack_out_of_fold"]["balanced_accuracy"], report["mean_of_members"]["balanced_accuracy"]
    if stack >= mean:
        return []
    return [f"out of fold, stacking reaches balanced accuracy {stack:.4f}, below the plain mean of the members "
            f"({mean:.4f}): prefer --method mean unless the log loss matters more to you"]


def split_overlap_warnings(first: Predictor, trained: list[tuple[Predictor, set[str]]]) -> list[str]:
    """Images of the ensemble's val / test splits (the `first` member's) that another member trained on."""
    path = RunPaths(first.run_dir).splits
    if not path.is_file():
        return []
    samples, found = load_splits(path), []
    for split in ("val", "test"):
        paths = samples.where_split(split).paths
        found += [f"{count} of the {len(paths)} {split} images of the ensemble (from {first.run_dir}) are in "
                  f"the training split of member {member.run_dir}: scores on {split} will be optimistic; "
                  "train the members on the same splits (same seed and split settings)"
                  for member, count in _training_overlaps(trained, paths) if count and member is not first]
    return found


def _training_overlaps(trained: list[tuple[Predictor, set[str]]], paths: list[str]) -> list[tuple[Predictor, int]]:
    wanted = {os.path.realpath(path) for path in paths}
    return [(member, len(wanted & images)) for member, images in trained]


def _new_folder(out: str | Path | None, first_run: Path, method: str) -> Path:
    if out is None:
        return unique_run_dir(first_run.resolve().parent, f"ensemble-{method}")
    folder = Path(out)
    if folder.exists():
        raise ValueError(f"out: {folder} already exists; pass a new folder or remove it first")
    return folder


def write_folder(folder: Path, definition: EnsembleDefinition, combiner: Combiner, *, splits: Path,
                 bad: Sequence[tuple[str, str]] = ()) -> None:
    """Write the whole folder under a temporary name, then rename it: never a half-built ensemble.

    `bad` (the fit images that could not be read) goes to the folder's bad_files.csv.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        save_ensemble(staging, definition, combiner)
        record_skipped(list(bad), RunPaths(staging).bad_files)
        if splits.is_file():
            shutil.copy2(splits, staging / splits.name)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build_summary(build: EnsembleBuild) -> list[str]:
    """Human-readable lines: members, the fit and its cross-validation, next steps, warnings."""
    definition = build.definition
    lines = [f"ensemble ({definition.method}) of {len(build.members)} run(s): {build.folder}"]
    lines += [f"  member {member.run_dir} (checkpoint {ref.checkpoint}"
              f"{', calibrated' if member.calibration else ''})" for ref, member in zip(definition.members,
                                                                                           build.members)]
    if definition.fit:
        lines += fit_summary(definition.method, definition.fit)
    lines += skipped_lines(build.bad, RunPaths(build.folder).bad_files)
    lines.append(f"next: winnow eval {build.folder} [DATA]; winnow tune {build.folder} --target ...; "
                 f"winnow predict {build.folder} IMAGES")
    return lines + [f"warning: {warning}" for warning in build.warnings]


def fit_summary(method: str, fit: dict[str, Any]) -> list[str]:
    """Lines describing the combiner's fit and its cross-validated scores."""
    report = fit["report"]
    lines = [f"fitted on {fit['data']} ({fit['n_samples']} images), {report['folds']}-fold cross-validation, "
             f"C={report['C']:g}"]
    if method == "stack":
        stack, mean = report["stack_out_of_fold"], report["mean_of_members"]
        lines.append("  out-of-fold: " + _scores(stack) + "  |  mean of members: " + _scores(mean))
        lines += [f"  member {i + 1}: {_scores(scores)}" for i, scores in enumerate(report["members"])]
    else:
        lines.append("  " + "  ".join(f"{key} {value:.4f}" for key, value in report.items()
                                      if key.startswith("cv_")))
    return lines


def _scores(scores: dict[str, float]) -> str:
    return "  ".join(f"{key} {value:.4f}" for key, value in scores.items())
