"""`winnow tune RUN --target T`: fit the operating threshold on validation predictions, save thresholds.json.

Multi-label runs tune the target's label alone (`LabelThresholds`). The probabilities are the ones
`predict` will produce: calibrated when the run has calibration.json,
merged over TTA views when `tta` is given. thresholds.json holds `ThresholdTuner.to_dict()` plus the
checkpoint, data and calibration it was tuned with, so that later use on other weights warns.
Unreadable images are skipped (`strict=True`: refused) and listed in `RUN/thresholds.bad_files.csv`.
On a positive-unlabelled run's own split only `recall(P)>=x` targets are tuned (`winnow.evaluation.pu_split`).
A folder whose head has a reject option is tuned on the images it accepts: `predict` rejects first, and the
tuned rule decides only the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from winnow.data.labelled import EvalData, resolve_eval_data
from winnow.data.validation import record_skipped
from winnow.evaluation.pu_split import pu_prior, pu_target
from winnow.evaluation.runner import predict_labelled
from winnow.inference.postprocess import UNKNOWN
from winnow.inference.predictions import Predictions
from winnow.loading import load
from winnow.operating.label_thresholds import LabelThresholds
from winnow.operating.store import save_thresholds
from winnow.operating.targets import parse_target
from winnow.operating.tuner import ThresholdTuner
from winnow.runs.files import fingerprint
from winnow.runs.layout import RunPaths, bad_files_beside, checkpoint_label

PU_NOTE = ("positive-unlabelled split: recall({positive}) is that of the labelled positives; fpr({positive}) is the "
           "share of unlabelled images predicted {positive} (minimised at the recall), and precision({positive}) "
           "counts the unlabelled as negatives, so neither is the true value")


@dataclass
class TuneResult:
    """A fitted tuner and where it was saved.

    Attributes:
        tuner: The fitted `ThresholdTuner`.
        data: The tuning data.
        path: The thresholds.json written.
        context: What was saved beside the tuner (checkpoint, data, calibration...).
        warnings: About the tuning data (e.g. an ensemble's stacker was fitted on it).
        skipped: The line saying how many unreadable images were skipped and where they are listed.
    """

    tuner: ThresholdTuner
    data: EvalData
    path: Path
    context: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def tune_run(run_dir: str | Path, target: str, *, data: str | Path | None = None, checkpoint: str | Path = "best",
             tta: str | int | None = None, tta_merge: str = "mean", n_bootstrap: int = 1000,
             confidence: float = 0.95, min_support: int = 20, device: str = "auto", batch_size: int = 64,
             workers: int = 0, strict: bool = False) -> TuneResult:
    """Fit a `ThresholdTuner` for `target` on the run's predictions of `data` (default: its val split).

    Multi-label runs get `LabelThresholds`: the target's label tuned alone, the others at the head's
    threshold; `TuneResult.tuner` is then the label's tuner. `strict`: an unreadable image is an error
    (default: skipped).

    Raises:
        ValueError: Malformed target or unknown class (before any inference), labels outside the run's
            classes, an unreachable target, a multitask run, or no readable image (`strict`: an unreadable one).
    """
    predictor = load(run_dir, checkpoint=checkpoint, device=device, thresholds=False)
    head = predictor.head
    parse_target(target, predictor.classes)
    eval_data = resolve_eval_data(run_dir, data, split="val")
    prior = pu_prior(run_dir, data)
    if prior is not None:  # a PU split: only recall of the labelled positives is measured (winnow.evaluation.pu_split)
        target = pu_target(target, predictor.classes, source=eval_data.source, action="tune")
    predictions, targets, _ = predict_labelled(predictor, eval_data, tta=tta, tta_merge=tta_merge,
                                               batch_size=batch_size, workers=workers, strict=strict)
    settings = {"n_bootstrap": n_bootstrap, "confidence": confidence, "min_support": min_support}
    accepted = accepted_rows(predictions)
    decision = (LabelThresholds(target, default_threshold=head.threshold, **settings) if head.kind == "multilabel"
                else ThresholdTuner(target, **settings)).fit(predictions.probabilities[accepted], targets[accepted],
                                                             predictor.classes)
    context = {"checkpoint": checkpoint_label(checkpoint),
               "checkpoint_fingerprint": fingerprint(predictor.checkpoint_path),
               "data": eval_data.source, "n_samples": int(accepted.sum()), "n_rejected": int((~accepted).sum()),
               "tta": predictions.tta.label or None,
               "calibrated": predictor.calibration is not None,
               "calibration_fingerprint": fingerprint(predictor.calibration_file)}
    path = RunPaths(run_dir).thresholds
    save_thresholds(path, decision, context=context)
    skipped = record_skipped(predictions.bad, bad_files_beside(path))
    tuner = decision.tuner_ if isinstance(decision, LabelThresholds) else decision
    notes = [] if prior is None else [PU_NOTE.format(positive=predictor.classes[1])]
    return TuneResult(tuner, eval_data, path, context,
                      notes + predictor.reuse_warnings(predictions.paths, action="tuning"), skipped)


def accepted_rows(predictions: Predictions) -> np.ndarray:
    """The images the reject option accepts `[N]` (all without one): the ones the tuned rule will decide.

    Raises:
        ValueError: The reject option rejects every image.
    """
    accepted = predictions.accepted
    if not accepted.any():
        raise ValueError(f"the reject option rejects all {len(accepted)} tuning images as {UNKNOWN!r}, so nothing is "
                         "left to tune on; refit it on these classes' images (`winnow head --reject-tpr`) or tune "
                         "on other data (--data)")
    return accepted


def tune_summary(result: TuneResult) -> list[str]:
    """Human-readable lines: threshold, achieved values, interval and lower bound, warnings."""
    tuner, target = result.tuner, result.tuner.target_
    key = f"{target.metric}({target.cls})"
    low, high = tuner.interval_
    lines = [f"target {target} on {result.data.source} ({result.context['n_samples']} images, checkpoint "
             f"{result.context['checkpoint']}{', calibrated' if result.context['calibrated'] else ''})",
             f"threshold {tuner.threshold_:.6g}: predict {target.cls!r} when prob_{target.cls} >= threshold",
             f"{key} = {tuner.achieved_[key]:.4f}, {tuner.confidence:.0%} bootstrap CI [{low:.4f}, {high:.4f}], "
             f"{'lower' if target.op == '>=' else 'upper'} bound {tuner.conservative_bound_:.4f}",
             "  ".join(f"{name} {value:.4f}" for name, value in tuner.achieved_.items() if name != key),
             f"saved {result.path}", *result.skipped]
    if result.context.get("n_rejected"):
        lines.insert(1, f"the reject option rejects {result.context['n_rejected']} of these images as {UNKNOWN!r}; "
                        f"tuned on the {result.context['n_samples']} it accepts (predict rejects first, then applies "
                        "this threshold)")
    return lines + [f"warning: {warning}" for warning in [*tuner.warnings_, *result.warnings]]
