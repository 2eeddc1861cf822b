"""`winnow eval RUN --embeddings`: how well the model's embeddings separate the evaluated classes.

One more pass over the evaluated images (the same TTA views) gives their pre-logits embeddings
(`winnow.embeddings.extract.embed_paths`); `winnow.embeddings.quality` scores them (precision@1,
R-precision, MAP@R, NMI) and maps at most `MAP_POINTS` of them to 2-D. metrics.json gets the scores
as its `embedding` block; `embedding_map.npz` holds the map (coordinates, labels, mistakes, paths and
the checkpoint's fingerprint) and `embedding_map.png` draws it.

A head on embeddings (`winnow head`: a one-member folder) is scored on its member's embeddings, the
ones its classifier reads. An ensemble of several runs has no embedding of its own (each member embeds
in its own space) and a multi-label head no single class per image: for them the block says `skipped`
and why (a multitask run is refused).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from winnow.embeddings.extract import embed_paths
from winnow.embeddings.quality import MAP_POINTS, embedding_map, embedding_quality, map_sample
from winnow.inference.predictions import Predictions
from winnow.inference.predictor import Predictor, ScoringModel
from winnow.metrics.plots import embedding_map_png
from winnow.runs.atomic import atomic_write
from winnow.runs.files import fingerprint
from winnow.runs.layout import EMBEDDING_MAP_FIGURE, EMBEDDING_MAP_FILE

MAP_FORMAT = "winnow-embedding-map/1"


def embedding_block(predictor: ScoringModel, predictions: Predictions, targets: np.ndarray, directory: Path, *,
                    batch_size: int = 64, workers: int = 0, plots: bool = True,
                    max_points: int = MAP_POINTS) -> dict[str, Any]:
    """Score the embeddings of the predicted images and write their map; metrics.json's `embedding` block.

    Args:
        predictor: The evaluated model: a run's `Predictor`, or a one-member folder (a head on embeddings:
            its member's embeddings); an ensemble of several runs is skipped.
        predictions: The evaluation's predictions `[N, K]` (their images are embedded again).
        targets: True class indices `[N]`.
        directory: The evaluation folder (embedding_map.npz / .png go there).
        batch_size, workers: Inference settings.
        plots: Also draw embedding_map.png.
        max_points: Points of the 2-D map (a stratified sample beyond that).
    """
    model, source = embedding_model(predictor)
    reason = skip_reason(predictor, targets) if model is not None else source
    if reason:
        return {"skipped": reason}
    started = time.perf_counter()
    outputs = embed_paths(model, predictions.paths, predictions.tta, batch_size=batch_size, workers=workers)
    rows = np.asarray(outputs.rows, dtype=np.int64)  # a file unreadable since the first pass drops out here
    names = np.asarray(predictions.classes, dtype=str)[targets[rows]]
    block = {"source": source, **embedding_quality(outputs.values, names, device=model.accel.device)}
    mistakes = predictions.predicted_indices()[rows] != targets[rows]
    block["n_mistakes"] = int(mistakes.sum())
    block["map"] = write_map(directory, outputs.values, names, mistakes, [predictions.paths[i] for i in rows],
                             scores=block, fingerprint=predictor_fingerprint(predictor), plots=plots,
                             max_points=max_points)
    return {**block, "seconds": round(time.perf_counter() - started, 2)}


def embedding_model(predictor: ScoringModel) -> tuple[Predictor | None, str]:
    """The run whose embeddings are scored and where they come from, or None and why there is none."""
    if isinstance(predictor, Predictor):
        return predictor, "run"
    members = getattr(predictor, "members", [])
    if len(members) == 1:  # a head on embeddings: its classifier reads this member's embeddings
        return members[0], f"member 0 ({members[0].run_dir}), the embeddings the head reads"
    return None, (f"{predictor.run_dir} is an ensemble of {len(members)} runs, each embedding images in a "
                  "space of its own; evaluate a member run (listed in ensemble.json) with --embeddings")


def skip_reason(predictor: ScoringModel, targets: np.ndarray) -> str:
    """Why this evaluation of a run has no embedding block ("" when it has one)."""
    if np.ndim(targets) != 1:
        return "multi-label heads have no single class per image to compare embeddings by"
    counts = np.bincount(targets) if len(targets) else np.zeros(0, int)
    if (counts > 0).sum() < 2:
        return (f"the evaluated images hold a single class ({len(targets)} images); embedding quality "
                "compares classes, so evaluate data with several")
    if counts.max() < 2:
        return "every class has a single evaluated image, so no image has a neighbour of its own class"
    return ""


def predictor_fingerprint(predictor: ScoringModel) -> str | None:
    """The checkpoint the map is drawn from, so that the report can tell a stale map."""
    return fingerprint(predictor.checkpoint_path)


def write_map(directory: Path, embeddings: np.ndarray, labels: np.ndarray, mistakes: np.ndarray, paths: list[str],
              *, scores: dict[str, Any], fingerprint: str | None, plots: bool, max_points: int) -> dict[str, Any]:
    """2-D map of a sample of the embeddings `[N, D]` to embedding_map.npz (and .png); its summary.

    The file also keeps `scores` (the quality block) and the checkpoint's fingerprint, so that a report
    written later shows them, or tells that the map is stale.
    """
    sample = map_sample(labels, max_points=max_points)
    coordinates, method = embedding_map(embeddings[sample])
    meta = {"format": MAP_FORMAT, "method": method, "n_points": len(sample), "n_total": len(labels),
            "checkpoint_fingerprint": fingerprint, "scores": scores}
    atomic_write(directory / EMBEDDING_MAP_FILE, lambda handle: np.savez_compressed(
        handle, coordinates=coordinates, labels=labels[sample], mistakes=mistakes[sample],
        paths=np.asarray(paths, dtype=str)[sample], meta=np.asarray(json.dumps(meta))))
    if plots:
        embedding_map_png(coordinates, labels[sample], mistakes[sample], directory / EMBEDDING_MAP_FIGURE,
                          title=map_title(meta))
    return {"method": method, "n_points": len(sample), "file": EMBEDDING_MAP_FILE}


def map_title(meta: dict[str, Any]) -> str:
    """e.g. `Embeddings: t-SNE of 60 of 60 images (x: mistakes)`."""
    method = {"tsne": "t-SNE", "umap": "UMAP"}.get(meta["method"], meta["method"])
    return f"Embeddings: {method} of {meta['n_points']} of {meta['n_total']} images (x: mistakes)"


def read_map(path: str | Path) -> dict[str, Any] | None:
    """An embedding_map.npz as `{coordinates, labels, mistakes, paths, meta}`, or None when absent.

    Raises:
        ValueError: The file is not an embedding map.
    """
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as archive:
        if "meta" not in archive:
            raise ValueError(f"{path} is not a winnow embedding map; rewrite it with `winnow eval RUN --embeddings`")
        meta = json.loads(str(archive["meta"]))
        return {"coordinates": archive["coordinates"], "labels": archive["labels"], "mistakes": archive["mistakes"],
                "paths": archive["paths"], "meta": meta}


def embedding_summary(block: dict[str, Any]) -> str:
    """The one line `winnow eval` prints for the `embedding` block."""
    if "skipped" in block:
        return f"embedding: skipped: {block['skipped']}"
    map_info = block["map"]
    source = "" if block.get("source", "run") == "run" else f" of {block['source']}"
    return (f"embedding{source}: precision@1 {block['precision_at_1']:.4f}  R-precision {block['r_precision']:.4f}  "
            f"MAP@R {block['mean_average_precision_at_r']:.4f}  NMI {block['nmi']:.4f} "
            f"({block['n_samples']} images, D={block['dim']}, cosine; {map_info['method']} map of "
            f"{map_info['n_points']} points in {map_info['file']}; {block['seconds']:.1f} s)")
