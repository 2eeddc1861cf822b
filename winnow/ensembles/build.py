"""`winnow ensemble RUN1 RUN2 ... --method M` and `winnow head RUN --kind K`: check the members, fit the
combiner, write the folder.

`mean` and `vote` learn nothing. `stack` fits on validation images (default: the first member's val
split), `svm` (a head on embeddings, `classifier` any kind of `winnow.embeddings.heads`) on training
images (default: its train split), both without TTA. With `reject_tpr`, the head's reject option is then
fitted on images it was not fitted on (default: the first member's val split). `winnow head` is method
svm with one member. The folder gets the first member's splits.csv, so that `winnow eval ENSEMBLE`
defaults to the same test split; images that some member trained on are reported, since they make the
ensemble look better than it is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sklearn

from winnow.data.labelled import EvalData, encode_labels, resolve_eval_data
from winnow.data.splits import load_splits
from winnow.data.validation import skipped_lines
from winnow.embeddings.base import check_tpr
from winnow.ensembles.feature_head import check_classifier
from winnow.ensembles.folder import write_folder
from winnow.ensembles.fit_classes import class_warnings, data_splits, head_task
from winnow.ensembles.inputs import member_inputs, single_view
from winnow.ensembles.methods import MIN_MEMBERS, Combiner, make_combiner
from winnow.ensembles.store import EnsembleDefinition, member_ref
from winnow.inference.postprocess import UNKNOWN, describe_reject, require_softmax_head
from winnow.inference.predictor import Predictor, image_set_hash
from winnow.inference.tta import TTA
from winnow.runs.atomic import atomic_write_text
from winnow.runs.files import fingerprint
from winnow.runs.layout import COMBINER_FILE, RunPaths, is_ensemble, unique_run_dir
from winnow.runs.provenance import provenance
from winnow.tasks.heads import Head
from winnow.tasks.spec import TaskSpec

LOW_CLASS_ACCEPTANCE = 0.1  # warn when a class keeps this much less than the asked TPR under the reject threshold


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
                   oversample: str = "none", reject_tpr: float | None = None, reject_data: str | Path | None = None,
                   device: str = "auto", batch_size: int = 64, workers: int = 0,
                   strict: bool = False) -> EnsembleBuild:
    """Build an ensemble folder of `runs` (see the module docstring).

    Args:
        runs: Run folders from `winnow train`.
        method: mean, vote, stack or svm.
        out: The new folder (default: `ensemble-<method>` beside the first run).
        checkpoint: Checkpoint name of every member.
        data: Fit data of stack / svm (a data argument as `winnow eval`).
        classifier: The head of method svm: a kind of `winnow.embeddings.heads.HEADS` (svm, logistic, knn...).
            Its classes are those of its fit data, which may differ from the run's (a head on new classes,
            `winnow.ensembles.fit_classes`).
        oversample: Method svm: synthetic minority samples in each of the head's fits, CV folds included (none,
            smote, adasyn, borderline; `winnow.embeddings.oversample`).
        reject_tpr: Method svm: fit the head's reject option to accept this share of the `reject_data`
            images (default: no reject option).
        reject_data: Data of the reject option (default: the first member's val split; for a head on new
            classes the val split of `data`).
        device, batch_size, workers: Inference settings.
        strict: An unreadable fit image is an error (default: skipped, listed in the folder's bad_files.csv).

    Raises:
        ValueError: Too few or incompatible members, `data`, `oversample` or `reject_*` for a method that cannot
            use them, an existing `out`, fit data lacking a class or with too few images of one, new classes
            without reject data of them, or no readable fit image (`strict`: an unreadable one).
    """
    combiner = make_combiner(method, classifier=classifier, oversample=oversample)
    check_fit_settings(combiner, method, data=data, reject_tpr=reject_tpr, reject_data=reject_data)
    members = load_members(runs, method=method, checkpoint=checkpoint, device=device)
    fit_data = resolve_eval_data(members[0].run_dir, data, split=combiner.fit_split) if combiner.fit_split else None
    task = head_task(members[0], fit_data, classifier=classifier if combiner.input_kind == "embeddings" else None)
    new_classes = task["classes"] != members[0].classes
    _check_reject_label(members[0], task["classes"], reject_tpr)
    folder = _new_folder(out, Path(runs[0]), method)
    trained, settings = training_images(members), {"batch_size": batch_size, "workers": workers, "strict": strict}
    reject_data = _reject_data(data, reject_data, new_classes=new_classes, reject_tpr=reject_tpr)
    fit, bad, warnings = fit_all(combiner, members, method, fit_data=fit_data, task=task, reject_tpr=reject_tpr,
                                 reject_data=reject_data, trained=trained, settings=settings)
    warnings += split_overlap_warnings(members[0], trained) if not new_classes else class_warnings(task, members[0])
    definition = EnsembleDefinition(
        method, [member_ref(folder, m.run_dir, checkpoint, checkpoint_fingerprint=fingerprint(m.checkpoint_path),
                            calibration_fingerprint=fingerprint(m.calibration_file)) for m in members],
        [task], COMBINER_FILE if fit else None, fit, {**provenance(), "sklearn": sklearn.__version__})
    # a head on new classes cannot be evaluated on the run's splits (other classes): it gets the data's, if any
    splits = data_splits(data) if new_classes else RunPaths(members[0].run_dir).splits
    write_folder(folder, definition, combiner, splits=splits, bad=bad)
    write_oob_scores(folder, combiner)
    return EnsembleBuild(folder, definition, members, warnings, bad)


OOB_FILE = "oob_scores.csv"


def write_oob_scores(folder: Path, combiner: Combiner) -> Path | None:
    """`oob_scores.csv` (path, oob_score; highest first) of a head with out-of-bag scores (pu_bagging), else None.

    The unlabelled images most likely to be positive come first: the list to relabel the pile from.
    """
    head = getattr(combiner, "head_", None)
    scores, paths = getattr(head, "oob_scores_", None), getattr(combiner, "fit_paths_", None)
    if scores is None or paths is None:
        return None
    rows = sorted(((p, s) for p, s in zip(paths, scores) if np.isfinite(s)), key=lambda row: -row[1])
    text = "path,oob_score\n" + "".join(f"{csv_field(p)},{s:.6f}\n" for p, s in rows)
    atomic_write_text(folder / OOB_FILE, text)
    return folder / OOB_FILE


def csv_field(value: str) -> str:
    """A CSV field, quoted when it holds a comma, a quote or a newline."""
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(c in value for c in ',"\n') else value


def _reject_data(data: str | Path | None, reject_data: str | Path | None, *, new_classes: bool,
                 reject_tpr: float | None) -> str | Path | None:
    """The reject option's data: as given; for a head on new classes, default the val split of its fit data.

    Raises:
        ValueError: A head on new classes whose fit data has no val split, and no `reject_data`.
    """
    if reject_tpr is None or reject_data is not None or not new_classes:
        return reject_data
    splits = data_splits(data)
    if splits is None or "val" not in splits.splits:
        raise ValueError(f"reject_data: the head is fitted on other classes than the run's ({data}), so the run's "
                         "val split cannot set its reject threshold, and the data has no val split; pass "
                         "--reject-data with other labelled images of these classes (or a manifest with a split "
                         "column)")
    return data


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


def check_fit_settings(combiner: Combiner, method: str, *, data: str | Path | None, reject_tpr: float | None,
                       reject_data: str | Path | None) -> None:
    """Refuse fit settings the method cannot use, before any image is read.

    Raises:
        ValueError: `data` for a method that fits nothing, `reject_tpr` for a method without a head on
            embeddings or out of (0, 1], `reject_data` without `reject_tpr`.
    """
    if data is not None and combiner.fit_split is None:
        raise ValueError(f"data: method {method} fits nothing; drop --data (it is for stack and svm)")
    if reject_tpr is not None and combiner.input_kind != "embeddings":
        raise ValueError(f"reject_tpr: method {method} has no head on embeddings to reject with; use --method svm "
                         "(any --classifier) or `winnow head`")
    if reject_tpr is not None:
        check_tpr(reject_tpr)
    if reject_data is not None and reject_tpr is None:
        raise ValueError("reject_data: given without reject_tpr; add --reject-tpr (e.g. 0.95) or drop --reject-data")


def _check_reject_label(first: Predictor, classes: list[str], reject_tpr: float | None) -> None:
    if reject_tpr is not None and UNKNOWN in classes:
        where = first.run_dir if classes == first.classes else "the fit data"
        raise ValueError(f"reject_tpr: {where} has a class named {UNKNOWN!r}, the label the reject option "
                         "gives; rename that class, or drop --reject-tpr")


def fit_all(combiner: Combiner, members: Sequence[Predictor], method: str, *, fit_data: EvalData | None,
            task: dict[str, Any], reject_tpr: float | None, reject_data: str | Path | None,
            trained: list[tuple[Predictor, set[str]]],
            settings: dict[str, Any]) -> tuple[dict[str, Any] | None, list[tuple[str, str]], list[str]]:
    """Fit the combiner on `fit_data` (when its method fits) and then its reject option (when asked).

    Args:
        task: The folder's task (its classes: the members' or, for a head on embeddings, the fit data's).

    Returns:
        The fit context (None for mean / vote), the unreadable images and the warnings.
    """
    if fit_data is None:
        return None, [], []
    head = TaskSpec.from_saved(task).head
    fit, bad = fit_combiner(combiner, members, fit_data, head=head, **settings)
    warnings = fit_overlap_warnings(trained, fit_data, method) + stacking_warnings(fit)
    if reject_tpr is not None:
        reject_set = resolve_eval_data(members[0].run_dir, reject_data, split="val")
        fit["reject"], reject_bad = fit_reject(combiner, members, reject_set, head=head, tpr=reject_tpr, **settings)
        bad = list(dict(bad + reject_bad).items())  # a file in both sets is listed once
        warnings += reject_warnings(fit_data, reject_set, fit["reject"], head.classes)
    return fit, bad, warnings


def read_fit_inputs(combiner: Combiner, members: Sequence[Predictor], data: EvalData, *, head: Head,
                    batch_size: int, workers: int,
                    strict: bool) -> tuple[np.ndarray, np.ndarray, list[str], list[tuple[str, str]]]:
    """The members' outputs for the readable images of `data`, without TTA (what `combiner.fit` takes);
    labels encoded as classes of `head` (the folder's).

    Returns:
        Inputs (`[M, N, K]` or `[N, D]`), class indices `[N]`, the images read `[N]` and the skipped ones.
    """
    targets = encode_labels(head, data.labels, data_name=data.name)
    inputs = members[0].read_outputs(data.paths, lambda good: member_inputs(
        members, combiner.input_kind, good, TTA(), batch_size=batch_size, workers=workers), strict=strict)
    return (single_view(inputs.values, combiner.input_kind), targets[inputs.rows],
            [data.paths[i] for i in inputs.rows], inputs.bad)


def fit_combiner(combiner: Combiner, members: Sequence[Predictor], data: EvalData, *, head: Head, batch_size: int,
                 workers: int, strict: bool = False) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Fit `combiner` on the members' outputs for the readable images of `data` (no TTA).

    Returns:
        The fit context (saved in ensemble.json) and `(path, reason)` of the skipped images.
    """
    inputs, targets, paths, bad = read_fit_inputs(combiner, members, data, head=head, batch_size=batch_size,
                                                  workers=workers, strict=strict)
    combiner.fit(inputs, targets, n_classes=len(head.classes))
    combiner.fit_paths_ = paths  # the fit images `[N]`, for per-image fit outputs (oob_scores.csv)
    return {"data": data.source, "n_samples": len(paths), "n_unreadable": len(bad),
            "images_sha1": image_set_hash(paths), "report": combiner.cv_report_}, bad


def fit_reject(combiner: Combiner, members: Sequence[Predictor], data: EvalData, *, head: Head, tpr: float,
               batch_size: int, workers: int,
               strict: bool = False) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Fit the head's reject option on the members' embeddings of the readable images of `data` (no TTA).

    Returns:
        The reject context (saved in ensemble.json as `fit["reject"]`) and the skipped images.
    """
    embeddings, targets, paths, bad = read_fit_inputs(combiner, members, data, head=head, batch_size=batch_size,
                                                      workers=workers, strict=strict)
    combiner.fit_reject(embeddings, targets, tpr=tpr)
    return {"data": data.source, "n_samples": len(paths), "n_unreadable": len(bad),
            "images_sha1": image_set_hash(paths), **combiner.head_.reject_report_}, bad


def reject_warnings(fit_data: EvalData, reject_set: EvalData, reject: dict[str, Any], classes: list[str]) -> list[str]:
    """A threshold fitted on the head's own fit images is too strict; a class far below the TPR loses many images."""
    found = []
    shared = {os.path.realpath(p) for p in fit_data.paths} & {os.path.realpath(p) for p in reject_set.paths}
    if shared:
        found.append(f"{len(shared)} of the {len(reject_set.paths)} reject images ({reject_set.source}) are among the "
                     "images the head was fitted on: they look closer to their class than new images do, so the "
                     "threshold is too strict; fit the reject option on other images (--reject-data)")
    for name, rate in zip(classes, reject["accepted_per_class"]):
        if rate is not None and rate < reject["tpr"] - LOW_CLASS_ACCEPTANCE:
            found.append(f"class {name!r} keeps only {rate:.0%} of its reject images under the threshold (overall "
                         f"{reject['accepted_rate']:.0%}): many of its images will be predicted {UNKNOWN!r}")
    return found


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


def build_head(run: str | Path, *, kind: str, out: str | Path | None = None, **settings: Any) -> EnsembleBuild:
    """`winnow head RUN --kind K`: a head on one run's embeddings, as a one-member ensemble of method svm.

    Args:
        run: Run folder from `winnow train`.
        kind: A kind of `winnow.embeddings.heads.HEADS`.
        out: The new folder (default: `<run name>-head-<kind>` beside the run).
        settings: Further arguments of `build_ensemble` (checkpoint, data, reject_tpr, reject_data, device...).
    """
    check_classifier(kind)
    if out is None:
        run_path = Path(run)
        named = run_path.name not in ("", ".", "..")  # "." has no name to build on: use its real folder
        parent = run_path.parent if named else run_path.resolve().parent
        out = unique_run_dir(parent, f"{run_path.resolve().name}-head-{kind}")
    return build_ensemble([run], method="svm", classifier=kind, out=out, **settings)


def build_summary(build: EnsembleBuild, *, title: str | None = None) -> list[str]:
    """Human-readable lines: members, the fit and its cross-validation, the reject option, next steps, warnings.

    Args:
        build: The written folder.
        title: First line (default: "ensemble (METHOD) of N run(s): FOLDER").
    """
    definition = build.definition
    lines = [title or f"ensemble ({definition.method}) of {len(build.members)} run(s): {build.folder}"]
    lines += [f"  member {member.run_dir} (checkpoint {ref.checkpoint}"
              f"{', calibrated' if member.calibration else ''})" for ref, member in zip(definition.members,
                                                                                           build.members)]
    classes = definition.tasks[0]["classes"]
    if classes != build.members[0].classes:
        lines.append(f"  classes from the fit data, not the run's (no retraining): {classes}")
    if definition.fit:
        lines += fit_summary(definition.method, definition.fit)
    lines += skipped_lines(build.bad, RunPaths(build.folder).bad_files)
    lines.append(f"next: winnow eval {build.folder} [DATA]; winnow tune {build.folder} --target ...; "
                 f"winnow predict {build.folder} IMAGES")
    return lines + [f"warning: {warning}" for warning in build.warnings]


def fit_summary(method: str, fit: dict[str, Any]) -> list[str]:
    """Lines describing the combiner's fit, its cross-validated scores and its reject option."""
    report = fit["report"]
    if method == "stack":
        stack, mean = report["stack_out_of_fold"], report["mean_of_members"]
        lines = [f"fitted on {fit['data']} ({fit['n_samples']} images), {report['folds']}-fold cross-validation, "
                 f"C={report['C']:g}",
                 "  out-of-fold: " + _scores(stack) + "  |  mean of members: " + _scores(mean)]
        lines += [f"  member {i + 1}: {_scores(scores)}" for i, scores in enumerate(report["members"])]
    else:
        lines = [f"fitted on {fit['data']} ({fit['n_samples']} images): {head_choice(report)}"]
        scores = "  ".join(f"{key} {value:.4f}" for key, value in report.items() if key.startswith("cv_"))
        lines += [f"  {scores}"] if scores else []
        lines += [f"  {report['note']}"] if report.get("note") else []  # e.g. why nothing was cross-validated
    return lines + (reject_summary(fit["reject"]) if fit.get("reject") else [])


def head_choice(report: dict[str, Any]) -> str:
    """e.g. "knn head, 5-fold cross-validation, k=5" or "gmm head, components=[1, 2] by BIC, covariance diag"."""
    chosen = ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                       for key, value in report["chosen"].items())
    parts = [f"{report['classifier']} head"] + ([f"{report['folds']}-fold cross-validation"] if report["folds"] else [])
    parts.append(chosen + (f" by {report['selection']}" if report.get("selection") else ""))
    if report.get("covariance_type"):
        parts.append(f"covariance {report['covariance_type']}, priors {report['priors']}")
    if report.get("oversample"):
        resampled = report["oversample"]
        parts.append(f"oversampled by {resampled['method']} ({resampled['neighbours']} neighbours): class counts "
                     f"{resampled['counts_before']} -> {resampled['counts_after']}")
    return ", ".join(parts)


def reject_summary(reject: dict[str, Any]) -> list[str]:
    """The reject option: rule, where it was fitted, the acceptance achieved there."""
    rates = [rate for rate in reject["accepted_per_class"] if rate is not None]
    return [f"reject: {describe_reject(reject)}",
            f"  on those {reject['n_samples']} images: {reject['accepted_rate']:.1%} accepted "
            f"(lowest class {min(rates):.1%}), {1 - reject['accepted_rate']:.1%} rejected"]


def _scores(scores: dict[str, float]) -> str:
    return "  ".join(f"{key} {value:.4f}" for key, value in scores.items())
