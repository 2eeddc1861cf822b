"""Image features for `--prior auto` before any model exists: small grayscale thumbnails.

A `size` x `size` grayscale thumbnail in [0, 1] per image, flattened to `[size * size]`. They only
need to separate positives from negatives roughly, since the estimators of `winnow.pu.prior` fit a
linear classifier on them; embeddings of a trained run (`winnow embed`) separate better, and
`estimate_prior` takes those just as well.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def thumbnails(paths: Sequence[str], *, size: int = 16) -> np.ndarray:
    """Flattened grayscale thumbnails `[N, size * size]` of the images at `paths`."""
    rows = []
    for path in paths:
        with Image.open(path) as image:
            rows.append(np.asarray(image.convert("L").resize((size, size), Image.BILINEAR), dtype=np.float32))
    return np.stack(rows).reshape(len(rows), -1) / 255.0
