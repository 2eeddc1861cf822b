"""`winnow calibrate RUN`: fit temperature or vector scaling on validation logits, save calibration.json.

Logits are in softmax form (binary heads `[0, z]`, see `winnow.inference.postprocess`; multi-label
heads: one logit per label, fitted with binary cross-entropy), taken without TTA and without any
existing calibration. `predict`, `eval` and `tune` then apply it. Unreadable images are skipped
(`strict=True`: refused) and listed in `RUN/calibration.bad_files.csv`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from winnow.calibration.store import Calibrator, make_calibrator, save_calibration
from winnow.data.labelled import EvalData, resolve_eval_data
from winnow.data.validation import record_skipped
from winnow.evaluation.pu_split import pu_prior
from winnow.evaluation.runner import predict_labelled
from winnow.evaluation.scoring import calibration_scores
from winnow.inference.postprocess import to_probabilities
from winnow.loading import load
from winnow.runs.files import fingerprint
from winnow.runs.layout import RunPaths, bad_files_beside, checkpoint_label


@dataclass
class CalibrationResult:
    """A fitted calibrator with its effect on the fit data.

    Attributes:
        calibrator: Fitted `TemperatureScaling` or `VectorScaling`.
        data: The data it was fitted on.
        path: The calibration.json written.
        nll_before, nll_after: Mean negative log-likelihood before and after.
        ece_before, ece_after: Expected calibration error before and after.
        warnings: e.g. thresholds.json now needs re-tuning.
        n_samples: Images it was fitted on (the readable ones).
        skipped: The line saying how many unreadable images were skipped and where they are listed.
    """

    calibrator: Calibrator
    data: EvalData
    path: Path
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    warnings: list[str]
    n_samples: int = 0
    skipped: list[str] = field(default_factory=list)


def calibrate_run(run_dir: str | Path, *, data: str | Path | None = None, method: str = "temperature",
                  checkpoint: str | Path = "best", device: str = "auto", batch_size: int = 64,
                  workers: int = 0, strict: bool = False) -> CalibrationResult:
    """Fit a calibrator on the run's logits of `data` (default: its val split) and save it.

    `strict`: an unreadable image is an error (default: skipped).

    Raises:
        ValueError: Unknown method, labels outside the run's classes, a multitask run, a positive-unlabelled
            split, or no readable image (`strict`: an unreadable one).
    """
    make_calibrator(method)  # an unknown method fails before any inference
    refuse_pu_split(run_dir, data)
    predictor = load(run_dir, checkpoint=checkpoint, device=device, calibration=False, thresholds=False)
    head = predictor.head
    calibrator = make_calibrator(method, multilabel=head.kind == "multilabel")
    eval_data = resolve_eval_data(run_dir, data, split="val")
    # fitted on one view's logits: predict applies the calibrator to each test-time view before merging them
    predictions, targets, _ = predict_labelled(predictor, eval_data, tta="none", batch_size=batch_size,
                                               workers=workers, strict=strict)
    calibrator.fit(predictions.logits, targets)
    after = to_probabilities(head, predictions.logits, calibration=calibrator)
    result = CalibrationResult(calibrator, eval_data, RunPaths(run_dir).calibration, calibrator.nll_before_,
                               calibrator.nll_after_, calibration_scores(predictions.probabilities, targets)["ece"],
                               calibration_scores(after, targets)["ece"],
                               _warnings(run_dir) + predictor.reuse_warnings(predictions.paths, action="calibration"),
                               len(targets))
    save_calibration(result.path, calibrator, classes=predictor.classes, context={
        "checkpoint": checkpoint_label(checkpoint), "checkpoint_fingerprint": fingerprint(predictor.checkpoint_path),
        "data": eval_data.source, "n_samples": len(targets), "nll_before": result.nll_before,
        "nll_after": result.nll_after, "ece_before": result.ece_before, "ece_after": result.ece_after})
    result.skipped = record_skipped(predictions.bad, bad_files_beside(result.path))
    return result


def refuse_pu_split(run_dir: str | Path, data: str | Path | None) -> None:
    """A ValueError when `data` is a PU split of a PU run: its unlabelled images are not negatives."""
    if pu_prior(run_dir, data) is None:
        return
    raise ValueError(f"calibrate {run_dir} on {data or 'val'}: that is a positive-unlabelled split, whose unlabelled "
                     "images are not negatives (some are hidden positives), so a calibrator fitted there would learn "
                     "to pull positives' probabilities down. Give labelled data with true negatives (--data LABELLED, "
                     "or --data test when the run was given --test); without it keep the nnPU scores and take the "
                     f"prior's threshold (`winnow pu-sensitivity {run_dir}` shows what each prior gives)")


def _warnings(run_dir: str | Path) -> list[str]:
    if not RunPaths(run_dir).thresholds.is_file():
        return []
    return [f"{RunPaths(run_dir).thresholds} was tuned on the previous probabilities; re-run `winnow tune` "
            "so that its threshold applies to the calibrated ones"]


def calibration_summary(result: CalibrationResult) -> list[str]:
    """Human-readable lines: NLL and ECE before/after, the fitted parameters, warnings."""
    saved = result.calibrator.to_dict()
    parameters = {key: value for key, value in saved.items() if key not in ("format", "method", "n_classes")}
    lines = [f"{saved['method']} scaling fitted on {result.data.source} ({result.n_samples} images): "
             f"{parameters}",
             f"NLL {result.nll_before:.4f} -> {result.nll_after:.4f}   "
             f"ECE {result.ece_before:.4f} -> {result.ece_after:.4f}",
             f"saved {result.path}", *result.skipped]
    return lines + [f"warning: {warning}" for warning in result.warnings]
