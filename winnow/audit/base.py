"""What every audit check shares: the issue row, the check's template and the dataset it reads.

Each check is a small class (after cleanlab Datalab's issue managers): `find_issues(context)` fills
`issues_` (one row per image, or a row with an empty path for a dataset-level finding) and
`summary_` (counts and the check's own figures); `line()` is its printed line and `html()` its
section of audit.html. The orchestrator (`runner.audit`) only loads the data and loops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from winnow.data.sources import Samples

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)
ISSUE_COLUMNS = ("path", "issue", "severity", "score", "detail", "suggested_label", "suggested_probability",
                 "label", "split")


@dataclass(frozen=True)
class Issue:
    """One finding.

    Attributes:
        path: The image ("" for a finding about the whole dataset, e.g. a class absent from a split).
        issue: Short tag (unreadable, exact_duplicate, label, outlier, dark...).
        severity: error, warning or info.
        score: The check's score for the image (its meaning is in the check's section), None when it has none.
        detail: One sentence for a person.
        suggested_label: Label the check would give instead ("" when none), with `suggested_probability`.
    """

    path: str
    issue: str
    severity: str
    score: float | None
    detail: str
    suggested_label: str = ""
    suggested_probability: float | None = None
    label: str = ""
    split: str = ""

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ISSUE_COLUMNS}


@dataclass
class ImageFacts:
    """What one decode of every readable image gives the checks; rows of unreadable images are NaN / "".

    Attributes:
        pixel_hash: SHA-1 of the decoded pixels and their shape `[N]`.
        phash: Perceptual hash bits `[N, 64]` (imagehash.phash) as 0/1 uint8.
        stats: `{name: [N]}` simple statistics (intensity, background, contrast, size, aspect, channels).
        features: `[N, F]` float32 simple image features (gray thumbnail, intensity histogram, statistics).
        properties: cleanvision's raw properties, one row per decoded image indexed by its row (when a check
            asked for them, see `Check.facts`), else None.
    """

    pixel_hash: list[str]
    phash: np.ndarray
    stats: dict[str, np.ndarray]
    features: np.ndarray
    properties: pd.DataFrame | None = None


@dataclass
class AuditContext:
    """The dataset as every check sees it.

    Attributes:
        samples: Every row, each with a split (given, or assigned as `train` would).
        source: DATA as given, for the report.
        readable: `[N]` bool, the rows whose file decodes.
        bad: `(row, reason)` of the others (reason as in bad_files.csv).
        facts: Per-image facts from one decode.
        embeddings: `[N, D]` float32 embeddings of a run's model (NaN rows where unreadable), or None.
        embedding_source: Where the embeddings come from ("" without a run).
        reconstruction: `[N]` reconstruction error of each image by an autoencoder pretrain run (NaN where
            unreadable), or None (no run, or a run of another kind).
        min_support, folds, seed, workers: Settings of the checks.
        positive_class, unlabelled_class, prior: Set when the run is positive-unlabelled (`winnow train --pu`):
            the labelled positives' label, the unlabelled images' label and the run's prior among them.
    """

    samples: Samples
    source: str
    readable: np.ndarray
    bad: list[tuple[int, str]]
    facts: ImageFacts
    embeddings: np.ndarray | None = None
    embedding_source: str = ""
    reconstruction: np.ndarray | None = None
    min_support: int = 20
    folds: int = 5
    seed: int = 0
    workers: int = 1
    positive_class: str | None = None
    unlabelled_class: str | None = None
    prior: float | None = None

    @property
    def pu(self) -> bool:
        """Whether the labels are positive / unlabelled (a PU run embeds the images)."""
        return self.positive_class is not None

    @property
    def good(self) -> np.ndarray:
        """Row indices of the readable images `[n]`."""
        return np.flatnonzero(self.readable)

    def splits(self) -> list[str]:
        """The splits present, in train, val, test order."""
        present = set(self.samples.splits)
        return [name for name in ("train", "val", "test") if name in present]

    def space(self) -> tuple[np.ndarray, str]:
        """Vectors `[n, D]` of the readable rows and their name: the run's embeddings, else the image features."""
        if self.embeddings is not None:
            return self.embeddings[self.good], f"embeddings of {self.embedding_source}"
        return self.facts.features[self.good], "simple image features (gray thumbnail, histogram, statistics)"


class Check:
    """Template of a check: subclasses set `name`, `title` and implement `_find` and `_html`; `facts` names the
    optional per-image facts the single decoding pass must take for it (see `winnow.audit.facts`)."""

    name = ""
    title = ""
    facts: frozenset[str] = frozenset()

    def find_issues(self, context: AuditContext) -> "Check":
        """Run the check; fills `issues_`, `summary_` (with `errors`, `warnings` and `line`) and `drop_`
        (the rows `--fix` removes: unreadable files, duplicates and leaks; empty for the other checks)."""
        self.drop_: set[int] = set()
        issues, summary = self._find(context)
        counts = Counter(issue.severity for issue in issues)
        self.issues_ = issues
        self.summary_ = {"errors": counts[ERROR], "warnings": counts[WARNING], **summary}
        self.summary_.setdefault("line", f"{counts[ERROR]} error(s), {counts[WARNING]} warning(s)")
        return self

    def _find(self, context: AuditContext) -> tuple[list[Issue], dict[str, Any]]:
        raise NotImplementedError

    def line(self) -> str:
        """The printed line: `name: what was found`."""
        self._require_fitted()
        return f"{self.name}: {self.summary_['line']}"

    def html(self, context: AuditContext) -> str:
        """The check's section body in audit.html."""
        self._require_fitted()
        return self._html(context)

    def _html(self, context: AuditContext) -> str:
        raise NotImplementedError

    def _require_fitted(self) -> None:
        if not hasattr(self, "summary_"):
            raise RuntimeError(f"the {self.name} check has not run yet; call find_issues(context) first")
