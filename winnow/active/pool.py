"""`Pool`: what a query strategy sees of the unlabelled images (scored without training augmentation)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Pool:
    """Model outputs on the unlabelled pool, one row per image.

    Attributes:
        paths: `[N]` image paths.
        probabilities: `[N, K]` class probabilities of the run or ensemble.
        embeddings: `[N, D]` pre-logits embeddings, or None.
        samples: `[S, N, K]` probabilities of S stochastic passes (MC dropout) or ensemble members, or None.
        labelled_embeddings: `[M, D]` embeddings of the already-labelled images, or None.
        classes: `[K]` class names (None: shown as indices).
    """

    paths: list[str]
    probabilities: np.ndarray
    embeddings: np.ndarray | None = None
    samples: np.ndarray | None = None
    labelled_embeddings: np.ndarray | None = None
    classes: list[str] | None = None

    def __post_init__(self) -> None:
        self.probabilities = np.asarray(self.probabilities, dtype=np.float64)
        n = len(self.paths)
        if self.probabilities.ndim != 2 or len(self.probabilities) != n:
            raise ValueError(f"probabilities: expected shape [{n}, K] (one row per pool path), "
                             f"got {self.probabilities.shape}")
        if self.embeddings is not None and len(self.embeddings) != n:
            raise ValueError(f"embeddings: expected {n} rows (one per pool path), got {len(self.embeddings)}")
        if self.samples is not None and (np.ndim(self.samples) != 3 or np.shape(self.samples)[1] != n):
            raise ValueError(f"samples: expected shape [S, {n}, K], got {np.shape(self.samples)}")

    def __len__(self) -> int:
        return len(self.paths)

    def class_name(self, index: int) -> str:
        return self.classes[index] if self.classes else str(index)

    def require(self, what: str, strategy: str) -> np.ndarray:
        """The `embeddings` or `samples` array, or a ValueError saying how to get it."""
        value = getattr(self, what)
        if value is None:
            fix = ("score the pool with a run whose model gives pre-logits embeddings" if what == "embeddings"
                   else "use an ensemble folder or a model with dropout (MC dropout passes)")
            raise ValueError(f"strategy {strategy!r} needs the pool's {what}; {fix}")
        return np.asarray(value)
