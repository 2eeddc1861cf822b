"""The report's gallery: the most confident mistakes and the least confident correct predictions.

Confidence is the probability of the predicted class. Rows the decision rule left uncertain
(per-class thresholds that no class passed) are neither mistakes nor correct, and are left out.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from winnow.data.imageio import read_image
from winnow.inference.predictions import Predictions
from winnow.metrics.checks import UNCERTAIN
from winnow.reporting.html import esc, image, paragraph

THUMBNAIL_PX = 96


@dataclass(frozen=True)
class Example:
    """One image of the gallery.

    Attributes:
        path: Image file.
        label: True label.
        predicted: Predicted label.
        predicted_probability: Probability of the predicted class.
        true_probability: Probability of the true class.
    """

    path: str
    label: str
    predicted: str
    predicted_probability: float
    true_probability: float


@dataclass(frozen=True)
class Gallery:
    """The picked examples and the counts they were picked from.

    Attributes:
        mistakes: Most confident mistakes first.
        least_confident_correct: Least confident correct predictions first.
        n_mistakes, n_correct, n_uncertain: Rows of each kind in the evaluated data.
    """

    mistakes: list[Example]
    least_confident_correct: list[Example]
    n_mistakes: int
    n_correct: int
    n_uncertain: int


def pick_examples(predictions: Predictions, targets: np.ndarray, *, n: int) -> Gallery:
    """The `n` most confident mistakes and the `n` least confident correct predictions (ties: input order).

    Args:
        predictions: Single-label predictions `[N, K]`.
        targets: True class indices `[N]`.
        n: Examples per list.

    Raises:
        ValueError: Multi-label targets, or a negative `n`.
    """
    if np.ndim(targets) != 1:
        raise ValueError("pick_examples: expected class indices [N] of a single-label head; "
                         "multi-label runs have no single predicted class per image")
    if n < 0:
        raise ValueError(f"gallery size: expected a number >= 0, got {n}")
    predicted = predictions.predicted_indices()
    decided = predicted != UNCERTAIN
    confidence = np.where(decided, predictions.probabilities[np.arange(len(predicted)), predicted], np.nan)
    wrong = np.flatnonzero(decided & (predicted != targets))
    right = np.flatnonzero(decided & (predicted == targets))
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:n]
    doubtful = right[np.argsort(confidence[right], kind="stable")][:n]
    return Gallery([_example(predictions, predicted, targets, i) for i in worst],
                   [_example(predictions, predicted, targets, i) for i in doubtful],
                   len(wrong), len(right), int((~decided).sum()))


def _example(predictions: Predictions, predicted: np.ndarray, targets: np.ndarray, row: int) -> Example:
    classes, probabilities = predictions.classes, predictions.probabilities[row]
    chosen, truth = int(predicted[row]), int(targets[row])
    return Example(predictions.paths[row], classes[truth], classes[chosen], float(probabilities[chosen]),
                   float(probabilities[truth]))


def thumbnail(path: str, *, size: int = THUMBNAIL_PX) -> bytes | None:
    """The image scaled to fit `size` x `size` pixels, as PNG bytes (None when it cannot be read now)."""
    try:
        array = read_image(path, in_chans=3)
    except ValueError:  # ImageReadError included: moved, deleted or changed since the evaluation
        return None
    image = Image.fromarray(array)
    scale = size / max(image.size)
    shape = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(shape, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def gallery_html(examples: list[Example], *, kind: str, size: int = THUMBNAIL_PX) -> str:
    """The examples as a row of captioned thumbnails; `kind` ("mistake" or "correct") styles the frame."""
    if not examples:
        return paragraph(f"none: no {'mistakes' if kind == 'mistake' else 'correct predictions'} in this data")
    cards = "".join(_card(example, kind=kind, size=size) for example in examples)
    return f'<div class="gallery">\n{cards}</div>\n'


def _card(example: Example, *, kind: str, size: int) -> str:
    png = thumbnail(example.path, size=size)
    picture = (image(png, alt=f"{example.label} predicted {example.predicted}") if png is not None
               else paragraph("(image unreadable now)", css_class="na"))
    name = "/".join(example.path.replace("\\", "/").split("/")[-2:])  # class folder and file name
    return (f'<figure class="thumb {esc(kind)}" title="{esc(example.path)}" data-path="{esc(example.path)}">'
            f'{picture}<figcaption><div class="name">{esc(name)}</div>'
            f"true: <b>{esc(example.label)}</b><br>predicted: <b>{esc(example.predicted)}</b><br>"
            f"p(predicted) {example.predicted_probability:.3f}<br>p(true) {example.true_probability:.3f}"
            "</figcaption></figure>\n")
