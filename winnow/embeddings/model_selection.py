"""Cross-validation helpers shared by the heads on embeddings and the ensembles' stacker.

Small fit sets are the rule here (a few dozen images of a rare class), so folds shrink to the rarest
class and every class is checked for enough samples before anything is fitted.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

CS = np.logspace(-3, 2, 11)  # regularisation strengths tried (inverse; features standardised)
LOGISTIC_ITERATIONS = 2000


def check_class_counts(targets: np.ndarray, n_classes: int, *, min_per_class: int, what: str,
                       hint: str = "pass --data with more labelled images") -> np.ndarray:
    """Samples per class `[K]` of class indices `targets` `[N]`; `hint` says how to fix too few.

    Raises:
        ValueError: A class with fewer than `min_per_class` samples (absent included).
    """
    counts = np.bincount(targets, minlength=n_classes)
    if counts.min() < min_per_class:
        missing = [k for k, count in enumerate(counts) if count < min_per_class]
        raise ValueError(f"{what}: every class needs at least {min_per_class} samples in the fit data; class indices "
                         f"{missing} have {counts[missing].tolist()}; {hint}")
    return counts


def stratified_folds(targets: np.ndarray, n_classes: int, *, max_folds: int, seed: int, what: str,
                     min_per_class: int = 2) -> StratifiedKFold:
    """Stratified folds: `max_folds`, fewer when the rarest class has fewer samples.

    Raises:
        ValueError: A class with fewer than `min_per_class` samples (absent included).
    """
    counts = check_class_counts(targets, n_classes, min_per_class=min_per_class, what=what)
    return StratifiedKFold(n_splits=int(min(max_folds, counts.min())), shuffle=True, random_state=seed)


def logistic_cv(folds: StratifiedKFold, *, class_weight: str | None = None) -> LogisticRegressionCV:
    """An L2 logistic regression whose `C` is chosen on `folds` by log loss (expects standardised features)."""
    return LogisticRegressionCV(Cs=CS, cv=folds, scoring="neg_log_loss", class_weight=class_weight,
                                max_iter=LOGISTIC_ITERATIONS, l1_ratios=(0.0,), use_legacy_attributes=False)
