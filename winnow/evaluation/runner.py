"""`winnow eval RUN [DATA]` for one checkpoint: predict labelled data, score it, write the report files.

Results go to `RUN/eval/<data>/<checkpoint>/`, scored with the run's own test-time views (config `tta`;
other views go to `<checkpoint>-tta-<mode>-<merge>`, a single view on a run with views to `-tta-none`):
metrics.json, predictions.csv (path, label, predicted, prob_<class>...), confusion_matrix.png,
pr_curves.png, roc_curves.png and reliability.png. The run's calibration.json and thresholds.json
are applied when present (calibration first, then thresholds) and reported in metrics.json.
Unreadable images are skipped (`strict=True`: refused) and listed in the folder's bad_files.csv.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from winnow.data.labelled import EvalData, encode_labels, resolve_eval_data
from winnow.data.validation import record_skipped
from winnow.evaluation.embedding_eval import embedding_block, embedding_summary
from winnow.evaluation.multitask import score_tasks, task_means
from winnow.evaluation.report_files import write_report_files
from winnow.evaluation.scoring import score
from winnow.inference.predictions import Predictions
from winnow.inference.predictor import ScoringModel
from winnow.inference.tta import TTA, parse_tta
from winnow.loading import load
from winnow.runs.files import fingerprint, write_json
from winnow.runs.layout import BAD_FILES_FILE, EVAL_METRICS_FILE, RunPaths, checkpoint_label


@dataclass
class Evaluation:
    """One checkpoint evaluated on one data set.

    Attributes:
        directory: Folder of the report files.
        metrics: Content of metrics.json.
        predictions: Predictions of the readable images `[N, K]`.
        targets: Their true class indices `[N]` (multi-label: multi-hot `[N, K]`); empty for a multitask
            run, whose per-task labels and predictions are in the task sub-folders.
        labels: Their true labels `[N]` (empty for a multitask run).
    """

    directory: Path
    metrics: dict[str, Any]
    predictions: Predictions
    targets: np.ndarray | dict
    labels: list[str]


def predict_labelled(predictor: ScoringModel, data: EvalData, *, tta: str | int | None = None, tta_merge: str = "mean",
                     batch_size: int = 64, workers: int = 0,
                     strict: bool = False) -> tuple[Predictions, np.ndarray, list[str]]:
    """Predict labelled data; labels are checked against the run's classes before any inference.

    Unreadable images are skipped and listed in `Predictions.bad` (`strict`: an error).

    Returns:
        Predictions of the readable images, their targets `[N]` and their labels `[N]`.
    """
    targets = encode_labels(predictor.head, data.labels, data_name=data.name)
    predictions = predictor.predict(data.paths, batch_size=batch_size, workers=workers, tta=tta, tta_merge=tta_merge,
                                    strict=strict)
    rows = predictions.source_index
    return predictions, targets[rows], [data.labels[i] for i in rows]


def evaluate(run_dir: str | Path, data: str | Path | None = None, *, checkpoint: str | Path = "best",
             tta: str | int | None = None, tta_merge: str = "mean", calibration: bool | str | Path = True,
             thresholds: bool | str | Path = True, device: str = "auto", batch_size: int = 64, workers: int = 0,
             strict: bool = False, plots: bool = True, embeddings: bool = False) -> Evaluation:
    """Evaluate one checkpoint of a run on labelled data (default: the run's test split).

    Args:
        run_dir: Run folder.
        data: See `winnow.data.labelled` (None: the run's test split).
        checkpoint: Checkpoint name or `.pt` path.
        tta, tta_merge: Test-time augmentation (see `winnow.inference.tta`).
        calibration, thresholds: As `winnow.load` (True: the run's files when present).
        device, batch_size, workers: Inference settings.
        strict: An unreadable image is an error (default: skipped, listed in the folder's bad_files.csv).
        plots: Draw the figures.
        embeddings: Also score the model's embeddings (one more pass; see `winnow.evaluation.embedding_eval`).

    Raises:
        ValueError: Missing checkpoint, labels outside the run's classes, multitask run, no readable image
            (`strict`: an unreadable one).
    """
    predictor = load(run_dir, checkpoint=checkpoint, device=device, calibration=calibration, thresholds=thresholds)
    eval_data = resolve_eval_data(run_dir, data, split="test")
    return evaluate_predictor(predictor, eval_data, checkpoint=checkpoint, tta=tta, tta_merge=tta_merge,
                              batch_size=batch_size, workers=workers, strict=strict, plots=plots,
                              embeddings=embeddings)


def evaluate_predictor(predictor: ScoringModel, data: EvalData, *, checkpoint: str | Path, tta: str | int | None = None,
                       tta_merge: str = "mean", batch_size: int = 64, workers: int = 0, strict: bool = False,
                       plots: bool = True, embeddings: bool = False) -> Evaluation:
    """`evaluate` with a loaded predictor and resolved data (`checkpoint` names the output folder)."""
    if len(predictor.tasks) > 1:
        if embeddings:
            raise ValueError("--embeddings: multitask runs have no single class per image to compare "
                             "embeddings by; drop --embeddings")
        return evaluate_multitask(predictor, data, checkpoint=checkpoint, tta=tta, batch_size=batch_size,
                                  workers=workers, strict=strict, plots=plots)
    predictions, targets, labels = predict_labelled(predictor, data, tta=tta, tta_merge=tta_merge,
                                                    batch_size=batch_size, workers=workers, strict=strict)
    metrics = {**context(predictor, data, predictions, checkpoint), **score(predictions, targets)}
    directory = RunPaths(predictor.run_dir).evaluation(data.name, checkpoint,
                                                       tta_label=folder_tta_label(predictions.tta, predictor))
    if embeddings:
        metrics["embedding"] = embedding_block(predictor, predictions, targets, directory, batch_size=batch_size,
                                               workers=workers, plots=plots)
    write_report_files(directory, metrics, predictions, targets, labels, plots=plots)
    record_skipped(predictions.bad, directory / BAD_FILES_FILE)
    return Evaluation(directory, metrics, predictions, targets, labels)


def folder_tta_label(tta: TTA, predictor: ScoringModel) -> str:
    """The `-tta-<label>` of an evaluation folder: "" for the views the run scores with by default (its
    config `tta`), so that `eval/<data>/<checkpoint>/` is always the run's own evaluation that `select`,
    `tune` and the report read; otherwise the views' label ("none" for a single view)."""
    if tta == parse_tta(predictor.default_tta, merge=tta.merge, seed=tta.seed) and tta.merge == "mean":
        return ""
    return tta.label or "none"


def evaluate_multitask(predictor: ScoringModel, data: EvalData, *, checkpoint: str | Path,
                       tta: str | int | None = None, batch_size: int = 64, workers: int = 0, strict: bool = False,
                       plots: bool = True) -> Evaluation:
    """`evaluate_predictor` for a multitask run (see `winnow.evaluation.multitask`).

    `Evaluation.targets` and `.labels` are then empty: each task's are in its sub-folder's predictions.csv.
    """
    if tta is not None:
        raise ValueError("TTA of multitask runs is not supported yet; drop --tta")
    directory = RunPaths(predictor.run_dir).evaluation(data.name, checkpoint)
    predictions, scores = score_tasks(predictor, data, directory, batch_size=batch_size, workers=workers,
                                      strict=strict, plots=plots)
    metrics = {**context(predictor, data, predictions, checkpoint), "n_samples": len(predictions.paths),
               **task_means(scores), "tasks": scores}
    write_json(directory / EVAL_METRICS_FILE, metrics)
    record_skipped(predictions.bad, directory / BAD_FILES_FILE)
    return Evaluation(directory, metrics, predictions, {}, [])


def context(predictor: ScoringModel, data: EvalData, predictions: Predictions, checkpoint: str | Path) -> dict[str, Any]:
    """What was evaluated: run, checkpoint, data, head, TTA and the operating files' fingerprints."""
    return {
        "run": str(predictor.run_dir),
        "checkpoint": {"name": checkpoint_label(checkpoint), "path": str(predictor.checkpoint_path),
                       "epoch": predictor.epoch, "fingerprint": fingerprint(predictor.checkpoint_path)},
        "data": {"name": data.name, "source": data.source, "n_images": len(data.paths),
                 "n_unreadable": len(predictions.bad), "unreadable": [list(item) for item in predictions.bad]},
        "head": predictor.head.kind if len(predictor.tasks) == 1 else "multitask",
        "tta": predictions.tta.label or None,
        "files": {"calibration": fingerprint(predictor.calibration_file),
                  "thresholds": fingerprint(predictor.thresholds_file)},
    }


def evaluation_summary(metrics: dict[str, Any]) -> list[str]:
    """Human-readable lines of a metrics.json (a multitask run: one block per task)."""
    checkpoint, data = metrics["checkpoint"], metrics["data"]
    # an ensemble (or a head on embeddings) has no epoch of its own: its members' are in its folder
    epoch = f" (epoch {checkpoint['epoch']})" if checkpoint.get("epoch") is not None else ""
    lines = [f"checkpoint {checkpoint['name']}{epoch} on {data['source']}: "
             f"{metrics['n_samples']} images"
             + (f", {data['n_unreadable']} unreadable skipped ({BAD_FILES_FILE})" if data["n_unreadable"] else "")
             + (f", TTA {metrics['tta']}" if metrics.get("tta") else "")]
    if "tasks" not in metrics:
        return lines + score_summary(metrics) + ([embedding_summary(metrics["embedding"])]
                                                 if "embedding" in metrics else [])
    for name, task_metrics in metrics["tasks"].items():
        lines += [f"task {name} ({task_metrics['n_samples']} labelled images):"]
        lines += [f"  {line}" for line in score_summary(task_metrics)]
    return lines


def score_summary(metrics: dict[str, Any]) -> list[str]:
    """Lines of one task's scores: headline metrics, decision rule, calibration, operating point."""
    keys = ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "subset_accuracy", "micro_f1",
            "roc_auc_macro", "log_loss", "ece")
    lines = ["  ".join(f"{key} {metrics[key]:.4f}" for key in keys if isinstance(metrics.get(key), float)),
             f"decision: {metrics['decision_rule']}"]
    if metrics.get("calibration"):
        calibration = metrics["calibration"]
        lines.append(f"calibration: {calibration['method']} scaling; ECE {calibration['ece_uncalibrated']:.4f} "
                     f"uncalibrated -> {calibration['ece_calibrated']:.4f}")
    if metrics.get("reject"):
        lines += reject_summary(metrics["reject"])
    if metrics.get("operating_point"):
        lines += operating_point_summary(metrics["operating_point"])
    return lines


def reject_summary(reject: dict[str, Any]) -> list[str]:
    """Lines for metrics.json's `reject`: how many images were rejected, and the metrics counting them wrong."""
    every = reject["all_images"]
    scores = "  ".join(f"{key} {every[key]:.4f}" for key in ("accuracy", "balanced_accuracy", "macro_f1"))
    return [f"rejected as {reject['label']!r}: {reject['n_rejected']} of {every['n_samples']} images "
            f"({reject['rate']:.1%}); the label metrics above leave them out",
            f"  all {every['n_samples']} images, {reject['label']!r} counted wrong: {scores}"]


def operating_point_summary(point: dict[str, Any]) -> list[str]:
    """Lines for `ThresholdTuner.evaluate` output: achieved values, interval, whether the target held."""
    interval = point["interval"]
    low, high = (f"{value:.4f}" if value is not None else "undefined" for value in (interval["low"], interval["high"]))
    achieved = "  ".join(f"{key} {value:.4f}" for key, value in point["achieved"].items())
    lines = [f"operating point: {point['target']} at threshold {point['threshold']:.6g}: {achieved}",
             f"  {interval['confidence']:.0%} bootstrap interval [{low}, {high}]; "
             f"target {'held' if point['target_met'] else 'NOT met'} on these {point['n_samples']} images"]
    return lines + [f"  warning: {warning}" for warning in point["warnings"]]
