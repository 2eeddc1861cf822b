"""Per-image training weights from a manifest's `weight` column (e.g. pseudo-labels from `winnow pseudo-label`).

A weight multiplies that image's loss; rows without a weight (another source, an empty cell) weigh 1.
"""

from __future__ import annotations

import math

from winnow.data.sources import Samples

WEIGHT_COLUMN = "weight"


def sample_weights(samples: Samples) -> list[float] | None:
    """The weight of each image `[N]`, or None when no row has a `weight` column.

    Raises:
        ValueError: A weight that is not a finite number >= 0; the message names the manifest line.
    """
    if not any(WEIGHT_COLUMN in extra for extra in samples.extras):
        return None
    return [_weight(extra.get(WEIGHT_COLUMN, ""), origin or path)
            for extra, origin, path in zip(samples.extras, samples.origins, samples.paths)]


def _weight(text: str, where: str) -> float:
    if text == "":
        return 1.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: column {WEIGHT_COLUMN!r} must be a number >= 0 (the image's loss weight), "
                         f"got {text!r}; fix the cell or leave it empty for weight 1")
    return value
