"""`query(folder, pool, budget, strategy)`: the images worth labelling next, written to a CSV."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from winnow.active.arm_report import ArmReport, compare_arms, read_previous
from winnow.active.arms import STRATEGY_ARM, check_random_arm, random_arm_size, with_random_arm
from winnow.active.base import QueryStrategy, Selection
from winnow.active.pool import Pool
from winnow.active.registry import NEEDS_SAMPLES, make_strategy
from winnow.active.scoring import is_pu, labels_of, score_pool
from winnow.inference.predictor import collect_images
from winnow.loading import load
from winnow.runs.atomic import atomic_write_text

COLUMNS = ("rank", "path", "score", "reason", "predicted", "confidence", "arm")
COVERAGE = ("coreset", "typiclust")  # strategies that measure distance to the labelled images


@dataclass
class QueryResult:
    """The selection, the scored pool, how many pool images were already labelled, and the strategy's name.

    Attributes:
        arms: Each pick's arm, `strategy` or `random` (empty: all the strategy's).
        report: The arms of the previous round compared (`previous=`), or None.
    """

    selection: Selection
    pool: Pool
    excluded: int
    strategy: str = ""
    arms: list[str] = field(default_factory=list)
    report: ArmReport | None = None

    def arm_counts(self) -> dict[str, int]:
        """Picks per arm."""
        arms = self.arms or [STRATEGY_ARM] * len(self.selection.paths)
        return {arm: arms.count(arm) for arm in dict.fromkeys(arms)}


def unlabelled(pool_source: str | Path, labelled: list[str]) -> tuple[list[str], int]:
    """Images of `pool_source` (folder, manifest, files) that are not in `labelled`, and how many were.

    Raises:
        ValueError: No image in the pool, or every one is labelled already.
    """
    paths = collect_images([pool_source])
    known = set(labelled)
    kept = [p for p in paths if os.path.realpath(p) not in known]
    if not kept:
        raise ValueError(f"pool {pool_source}: all {len(paths)} images are already in the run's splits.csv "
                         "(labelled); pass a folder or manifest of unlabelled images")
    return kept, len(paths) - len(kept)


def query(folder: str | Path, pool_source: str | Path, budget: int, strategy: str | None = None, *,
          random_arm: float = 0.0, previous: str | Path | None = None, seed: int = 0, max_cosine: float = 0.99,
          checkpoint: str = "best", device: str = "auto", batch_size: int = 64, workers: int = 0) -> QueryResult:
    """Rank the unlabelled images of `pool_source` with `strategy` and pick `budget` of them.

    Args:
        folder: A run, an ensemble or a head folder.
        pool_source: A folder or manifest of images; those in the folder's splits.csv are left out (of a PU
            run: its labelled positives and test split; its unlabelled images may be ranked).
        budget: Images to pick (fewer when the pool is smaller).
        strategy: A name of `winnow.active.registry.STRATEGIES`; None: `positive` for a PU run (most likely
            positive first), else `margin`.
        random_arm: Share of `budget` drawn uniformly from the images the strategy did not pick
            (`winnow.active.arms.random_arm_size`); 0: none.
        previous: The previous round's to_label.csv: its arms are compared on the images now labelled in
            the folder's splits.csv (`QueryResult.report`).
        seed: Ties, random picks, k-means seeds, MC-dropout passes.
        max_cosine: Near-duplicate threshold within the batch.
    """
    fraction = check_random_arm(random_arm)
    previous_rows = read_previous(previous) if previous is not None else None
    chosen = make_strategy(strategy, max_cosine=max_cosine) if strategy else None
    model = load(folder, checkpoint=checkpoint, device=device, thresholds=False)
    chosen = chosen or make_strategy("positive" if is_pu(model) else "margin", max_cosine=max_cosine)
    labels = labels_of(model)
    report = None if previous_rows is None else compare_arms(previous_rows, labels, previous=previous, run=folder)
    labelled = list(labels)
    paths, excluded = unlabelled(pool_source, labelled)
    # embeddings serve near-duplicate checks and the strategies built on them; `positive` needs neither
    pool = score_pool(model, paths, embeddings=chosen.deduplicate, samples=chosen.name in NEEDS_SAMPLES,
                      labelled=labelled if chosen.name in COVERAGE else None, seed=seed, batch_size=batch_size,
                      workers=workers)
    selection, arms = _select(chosen.fit(pool), budget, random_arm_size(budget, fraction), seed=seed)
    return QueryResult(selection, pool, excluded, chosen.name, arms, report)


def _select(fitted: QueryStrategy, budget: int, random_count: int, *, seed: int) -> tuple[Selection, list[str]]:
    """The strategy's `budget - random_count` picks, then the random arm's from the rest of the pool."""
    return with_random_arm(fitted.select(budget - random_count, seed=seed), fitted.pool_, fitted.scores_,
                           random_count, seed=seed)


def write_selection(result: QueryResult, path: str | Path) -> Path:
    """Write the picks (rank, path, score, reason, predicted, confidence, arm) to a CSV atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    selection, pool = result.selection, result.pool
    arms = result.arms or [STRATEGY_ARM] * len(selection.indices)
    picks = zip(selection.indices, selection.scores, selection.reasons, arms)
    for rank, (index, score, reason, arm) in enumerate(picks, 1):
        probs = pool.probabilities[index]
        writer.writerow([rank, pool.paths[index], f"{score:.6g}", reason, pool.class_name(int(probs.argmax())),
                         f"{probs.max():.4f}", arm])
    atomic_write_text(Path(path), buffer.getvalue())
    return Path(path)
