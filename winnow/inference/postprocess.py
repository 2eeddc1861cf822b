"""From raw outputs of a single-task model to probabilities and decisions.

Logits are first put in softmax form `[..., K]`: unchanged for multi-class heads, `[0, z]` for a
binary head's single logit `z` (its softmax is `[1 - sigmoid(z), sigmoid(z)]`), so that one
calibrator (temperature or vector scaling, fitted on these) serves both. Multi-label heads keep one
independent logit per label (calibrated by a `multilabel=True` scaler, then a sigmoid).

Order at prediction: logits -> calibration (calibration.json) -> probabilities -> decision rule
(thresholds.json, else the head's own rule: argmax, or the binary threshold). A folder whose head on
embeddings has a reject option labels the images it rejects "unknown" first; the rule decides the rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit, softmax

from winnow.calibration.store import Calibrator
from winnow.operating.decisions import PerClassThresholds
from winnow.operating.label_thresholds import LabelThresholds
from winnow.operating.store import Decision
from winnow.operating.tuner import ThresholdTuner
from winnow.tasks.heads import Head

SOFTMAX_KINDS = ("multiclass", "binary")  # heads whose probabilities sum to one (calibratable, tunable)
PROBABILITY_FLOOR = 1e-12
UNKNOWN = "unknown"  # predicted label of an image the reject option finds far from every class


def require_softmax_head(head: Head, *, action: str) -> None:
    """Raise a clear error when `action` (e.g. "winnow tune") needs a multi-class or binary head."""
    if head.kind not in SOFTMAX_KINDS:
        raise ValueError(f"{action} supports multiclass and binary heads, got a {head.kind} head; "
                         "not supported yet for this head")


def softmax_logits(head: Head, logits: np.ndarray) -> np.ndarray:
    """Raw outputs `[..., K']` -> softmax-form logits `[..., K]` (binary: `[..., 1]` -> `[..., 2]`)."""
    logits = np.asarray(logits, dtype=np.float64)
    if head.kind != "binary":
        return logits
    return np.concatenate([np.zeros_like(logits), logits], axis=-1)


def to_probabilities(head: Head, logits: np.ndarray, *, calibration: Calibrator | None = None) -> np.ndarray:
    """Softmax-form logits `[..., K]` -> probabilities `[..., K]`, calibrated first when given.

    Raises:
        ValueError: A calibrator fitted for the other kind of head (multi-label vs softmax).
    """
    if calibration is not None and calibration.multilabel != (head.kind == "multilabel"):
        fitted = "multilabel" if calibration.multilabel else "softmax (multiclass or binary)"
        raise ValueError(f"the calibration was fitted for a {fitted} head but this is a {head.kind} head; "
                         "re-run `winnow calibrate` for this run")
    if head.kind == "multilabel":
        return expit(logits if calibration is None else _calibrated(calibration, logits))
    return softmax(logits if calibration is None else _calibrated(calibration, logits), axis=-1)


def _calibrated(calibration: Calibrator, logits: np.ndarray) -> np.ndarray:
    """`calibration.transform` over any leading dimensions `[..., K]`."""
    return calibration.transform(logits.reshape(-1, logits.shape[-1])).reshape(logits.shape)


def probabilities_to_logits(head: Head, probabilities: np.ndarray) -> np.ndarray:
    """Inverse of `to_probabilities` without calibration: softmax-form logits `[..., K]` of probabilities.

    `log p` for softmax heads (softmax of it gives `p` back), `log(p / (1 - p))` per label for
    multi-label heads. Probabilities are clipped to `[1e-12, 1 - 1e-12]` so that zeros stay finite.
    """
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    if head.kind == "multilabel":
        return np.log(clipped) - np.log1p(-clipped)
    return np.log(clipped)


def decide(head: Head, decision: Decision | None, probabilities: np.ndarray) -> np.ndarray:
    """Class indices `[N]` (-1 = uncertain) of a softmax head: the decision rule, else the head's rule."""
    if decision is not None:
        return decision.predict(probabilities)
    if head.kind == "binary":
        return (probabilities[:, 1] >= head.threshold).astype(np.int64)
    return probabilities.argmax(axis=1)


def decided_labels(head: Head, decision: Decision | None, probabilities: np.ndarray) -> list[str]:
    """Predicted labels `[N]` ("uncertain" for rejected rows; "a|b" for multi-label heads)."""
    if head.kind == "multilabel":
        return decision.predict_labels(probabilities) if decision is not None else head.predict(probabilities)
    if decision is not None:
        return decision.predict_labels(probabilities)
    return [head.classes[k] for k in decide(head, None, probabilities).tolist()]


def describe_decision(head: Head, decision: Decision | None, *, reject: dict[str, Any] | None = None) -> str:
    """One line saying which rule makes the predicted labels (after the reject option, when there is one)."""
    if reject is not None:
        return f"{describe_reject(reject)}; then {describe_decision(head, decision)}"
    if isinstance(decision, ThresholdTuner):
        return (f"predicted {decision.target_.cls!r} when prob_{decision.target_.cls} >= {decision.threshold_:.6g} "
                f"(thresholds.json, target {decision.target_})")
    if isinstance(decision, LabelThresholds):
        return (f"label {decision.label_!r} when prob_{decision.label_} >= {decision.tuner_.threshold_:.6g} "
                f"(thresholds.json, target {decision.tuner_.target_}); other labels at {decision.default_threshold:g}")
    if isinstance(decision, PerClassThresholds):
        return f"per-class thresholds {dict(decision.thresholds)} (thresholds.json; none passing: uncertain)"
    if head.kind in ("binary", "multilabel"):
        return f"the head's default threshold {head.threshold:g} (no thresholds.json; run `winnow tune` to set one)"
    return "argmax of the probabilities (no thresholds.json)"



def describe_reject(reject: dict[str, Any]) -> str:
    """The reject option of a head on embeddings (`EmbeddingHead.reject_report_` plus its fit data) in words."""
    where = f" on {reject['data']}" if reject.get("data") else ""
    return (f"{UNKNOWN!r} when the {reject['score']} exceeds {reject['threshold']:.6g} (reject option fitted{where} "
            f"to accept {reject['tpr']:.0%} of known-class images)")
