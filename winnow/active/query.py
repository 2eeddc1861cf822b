"""`query(folder, pool, budget, strategy)`: the images worth labelling next, written to a CSV."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from winnow.active.base import Selection
from winnow.active.pool import Pool
from winnow.active.registry import NEEDS_SAMPLES, make_strategy
from winnow.active.scoring import is_pu, labelled_paths, score_pool
from winnow.inference.predictor import collect_images
from winnow.loading import load
from winnow.runs.atomic import atomic_write_text

COLUMNS = ("rank", "path", "score", "reason", "predicted", "confidence")
COVERAGE = ("coreset", "typiclust")  # strategies that measure distance to the labelled images


@dataclass
class QueryResult:
    """The selection, the scored pool, how many pool images were already labelled, and the strategy's name."""

    selection: Selection
    pool: Pool
    excluded: int
    strategy: str = ""


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
          seed: int = 0, max_cosine: float = 0.99, checkpoint: str = "best", device: str = "auto",
          batch_size: int = 64, workers: int = 0) -> QueryResult:
    """Rank the unlabelled images of `pool_source` with `strategy` and pick `budget` of them.

    Args:
        folder: A run, an ensemble or a head folder.
        pool_source: A folder or manifest of images; those in the folder's splits.csv are left out (of a PU
            run: its labelled positives and test split; its unlabelled images may be ranked).
        budget: Images to pick (fewer when the pool is smaller).
        strategy: A name of `winnow.active.registry.STRATEGIES`; None: `positive` for a PU run (most likely
            positive first), else `margin`.
        seed: Ties, random picks, k-means seeds, MC-dropout passes.
        max_cosine: Near-duplicate threshold within the batch.
    """
    chosen = make_strategy(strategy, max_cosine=max_cosine) if strategy else None
    model = load(folder, checkpoint=checkpoint, device=device, thresholds=False)
    chosen = chosen or make_strategy("positive" if is_pu(model) else "margin", max_cosine=max_cosine)
    labelled = labelled_paths(model)
    paths, excluded = unlabelled(pool_source, labelled)
    # embeddings serve near-duplicate checks and the strategies built on them; `positive` needs neither
    pool = score_pool(model, paths, embeddings=chosen.deduplicate, samples=chosen.name in NEEDS_SAMPLES,
                      labelled=labelled if chosen.name in COVERAGE else None, seed=seed, batch_size=batch_size,
                      workers=workers)
    return QueryResult(chosen.fit(pool).select(budget, seed=seed), pool, excluded, chosen.name)


def write_selection(result: QueryResult, path: str | Path) -> Path:
    """Write the picks (rank, path, score, reason, predicted, confidence) to a CSV atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    selection, pool = result.selection, result.pool
    for rank, (index, score, reason) in enumerate(zip(selection.indices, selection.scores, selection.reasons), 1):
        probs = pool.probabilities[index]
        writer.writerow([rank, pool.paths[index], f"{score:.6g}", reason, pool.class_name(int(probs.argmax())),
                         f"{probs.max():.4f}"])
    atomic_write_text(Path(path), buffer.getvalue())
    return Path(path)
