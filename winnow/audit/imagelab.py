"""cleanvision's image-property issues from images the audit decodes once.

`Imagelab(filepaths=...).find_issues` opens every file itself. Here its per-image properties (the
same `ImageProperty.calculate` calls, through cleanvision's `compute_scores`) are taken while the audit's
single pass holds the decoded image, and its issue manager scores them over the dataset afterwards from
those stored properties (the way Imagelab reuses earlier computations), so the files are not opened again.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from cleanvision.dataset.base_dataset import Dataset
from cleanvision.issue_managers.image_property_issue_manager import ImagePropertyIssueManager, compute_scores
from PIL import Image

IMAGE_ISSUES = ("dark", "light", "blurry", "low_information", "odd_aspect_ratio", "odd_size")
MIX_ISSUES = ("grayscale",)  # a property more than a defect: reported where classes or splits differ in it
KINDS = (*IMAGE_ISSUES, *MIX_ISSUES)
# light reads the brightness percentiles that dark's property computes (cleanvision defers it the same way)
COMPUTED = tuple(kind for kind in KINDS if kind != "light")
_PROPERTIES = ImagePropertyIssueManager().image_properties


def image_properties(image: Image.Image) -> dict[str, float | str]:
    """cleanvision's raw properties of one image (brightness percentiles, entropy, blurriness, size, mode...)."""
    values = compute_scores(0, [image], list(COMPUTED), _PROPERTIES)
    values.pop("index")
    return values


class _Rows(Dataset):
    """The index of a dataset whose properties are already computed (cleanvision only reads `index`)."""

    def __init__(self, index: list) -> None:
        super().__init__()
        self.index = index

    def __len__(self) -> int:
        return len(self.index)


def score_issues(properties: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """cleanvision's issue flags and scores from stored properties, one row per image.

    Args:
        properties: `[n rows]` of `image_properties` (a DataFrame, rows in image order).

    Returns:
        `{issue: [n] bool}` flags and `{issue: [n]}` scores (lower is worse), in the rows' order.
    """
    manager = ImagePropertyIssueManager()
    # stored computations under an issue name are joined, and the issues they cover are not computed again
    manager.find_issues(params={kind: {} for kind in KINDS}, dataset=_Rows(list(properties.index)),
                        imagelab_info={"statistics": {}, KINDS[0]: properties}, n_jobs=1, verbose=False)
    table = manager.issues.loc[properties.index]
    flags = {kind: table[f"is_{kind}_issue"].to_numpy(bool) for kind in KINDS}
    scores = {kind: table[f"{kind}_score"].to_numpy(float) for kind in KINDS}
    return flags, scores
