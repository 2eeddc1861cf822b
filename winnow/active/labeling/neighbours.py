"""The labelled images nearest to the one on screen, by cosine similarity of the run's embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Neighbour:
    """A labelled image near the one on screen: its file, label and cosine similarity."""

    file: Path
    label: str
    cosine: float


class NearestLabelled:
    """Nearest labelled rows of an embeddings table (`winnow embed` files, concatenated).

    Args:
        embeddings: `[N, D]`.
        paths: Per row, the image file.
        labels: Per row, the label ("" for unlabelled rows: searched for, never shown).
        k: Neighbours per image.
    """

    def __init__(self, embeddings: np.ndarray, paths: list[str], labels: list[str], *, k: int = 4) -> None:
        vectors = np.asarray(embeddings, dtype=np.float32)
        unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        self.files = [Path(p).resolve() for p in paths]
        self.rows = {file: row for row, file in enumerate(self.files)}
        self.labelled = np.flatnonzero(np.asarray(labels) != "")
        self.unit, self.labels, self.k = unit, list(labels), k

    def __call__(self, file: Path) -> list[Neighbour]:
        """The `k` labelled images nearest `file` (itself left out); [] when `file` has no embedding."""
        row = self.rows.get(Path(file).resolve())
        if row is None:
            return []
        candidates = self.labelled[self.labelled != row]
        cosines = self.unit[candidates] @ self.unit[row]  # [M]
        best = candidates[np.argsort(-cosines, kind="stable")[:self.k]]
        return [Neighbour(self.files[i], self.labels[i], float(self.unit[i] @ self.unit[row])) for i in best]
