"""How well embeddings separate the classes: retrieval metrics, clustering NMI and a 2-D map.

`embedding_quality` gives precision@1, R-precision and MAP@R (pytorch-metric-learning's
`AccuracyCalculator`, each image a query against all the others, cosine similarity) and the NMI of
k-means clusters (K = number of classes) against the labels. The kNN runs one chunk of queries at a
time, so memory is about `chunk_size * (N * 4 + R_max * 40)` bytes (R_max: the largest class size)
and never holds an `[N, N]` matrix: 100k embeddings fit in a few hundred MB.

`embedding_map` gives 2-D coordinates (UMAP when umap-learn is installed, else scikit-learn t-SNE)
of at most `max_points` embeddings, a seeded stratified sample.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

RETRIEVAL_METRICS = ("precision_at_1", "r_precision", "mean_average_precision_at_r")
CHUNK_SIZE = 256
MAP_POINTS = 2000  # t-SNE of 2,000 points takes about 15 s on 2 busy cores


def embedding_quality(embeddings: np.ndarray, labels: np.ndarray | list, *, chunk_size: int = CHUNK_SIZE,
                      seed: int = 0, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Retrieval and clustering quality of labelled embeddings (cosine on L2-normalised rows).

    Every image is a query against all the others (itself left out); an image whose class has no other
    image is not a query (`n_lone`) but stays a neighbour of the others.

    Args:
        embeddings: `[N, D]`.
        labels: Class of each row `[N]` (any hashable values), at least two classes.
        chunk_size: Queries per kNN step (memory, see the module docstring).
        seed: k-means seed.
        device: Where the kNN runs.

    Returns:
        precision_at_1, r_precision, mean_average_precision_at_r, nmi, n_samples, n_classes, n_queries,
        n_lone, dim.

    Raises:
        ValueError: Not `[N, D]`, labels of another length, fewer than two classes, non-finite values,
            `chunk_size` < 1.
    """
    vectors, codes = check_labelled(embeddings, labels)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size: expected an integer >= 1 (queries per kNN step), got {chunk_size!r}")
    retrieval, n_queries = retrieval_metrics(vectors, codes, chunk_size=chunk_size, device=torch.device(device))
    n_classes = int(codes.max()) + 1
    return {**retrieval, "nmi": clustering_nmi(vectors, codes, seed=seed), "n_samples": len(codes),
            "n_classes": n_classes, "n_queries": n_queries, "n_lone": len(codes) - n_queries,
            "dim": int(vectors.shape[1])}


def check_labelled(embeddings: np.ndarray, labels: np.ndarray | list) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised float32 embeddings `[N, D]` and class codes `[N]` (0..K-1), or a clear error."""
    vectors = np.asarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"embeddings: expected a non-empty [N, D] array, got shape {vectors.shape}")
    names = np.asarray(labels)
    if names.shape != (len(vectors),):
        raise ValueError(f"labels: expected one label per embedding ({len(vectors)}), got shape {names.shape}; "
                         "pass the labels of the same rows")
    if not np.isfinite(vectors).all():
        raise ValueError("embeddings: expected finite values, got NaN or inf; check the model's outputs")
    classes, codes = np.unique(names, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"labels: embedding quality compares classes; expected at least 2, got "
                         f"{len(classes)} ({classes.tolist()}); evaluate data with several classes")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12), codes.astype(np.int64)


def retrieval_metrics(vectors: np.ndarray, codes: np.ndarray, *, chunk_size: int,
                      device: torch.device) -> tuple[dict[str, float], int]:
    """precision@1, R-precision and MAP@R over every query `[N]`, one chunk of queries at a time.

    pml wants the queries first in the reference (`ref_includes_query`: it drops each query's own row by
    position), so each chunk is swapped to the front of one shared buffer and back: no `[N, D]` copy per
    chunk. The three metrics are means over queries, so chunk means weighted by their queries are exact.
    """
    calculator = AccuracyCalculator(include=RETRIEVAL_METRICS, k="max_bin_count", device=device,
                                    knn_func=CustomKNN(CosineSimilarity(), batch_size=chunk_size))
    reference = torch.from_numpy(vectors).to(device)
    reference_labels = torch.from_numpy(codes).to(device, torch.float)  # pml compares labels as floats
    counts = np.bincount(codes)
    totals, n_queries = dict.fromkeys(RETRIEVAL_METRICS, 0.0), 0
    for start in range(0, len(codes), chunk_size):
        rows = np.arange(start, min(start + chunk_size, len(codes)))
        weight = int((counts[codes[rows]] > 1).sum())  # pml leaves out lone queries
        if weight == 0:
            continue
        with _at_front(reference, reference_labels, start=start, n=len(rows)):
            scores = calculator.get_accuracy(reference[:len(rows)], reference_labels[:len(rows)], reference,
                                             reference_labels, ref_includes_query=True)
        for key in RETRIEVAL_METRICS:
            totals[key] += weight * float(scores[key])
        n_queries += weight
    if n_queries == 0:
        raise ValueError("labels: every class has a single image, so no image has a neighbour of its class; "
                         "embedding retrieval needs at least two images of some class")
    return {key: value / n_queries for key, value in totals.items()}, n_queries


@contextmanager
def _at_front(*tensors: torch.Tensor, start: int, n: int) -> Iterator[None]:
    """Swap rows `[start, start + n)` of the tensors with rows `[0, n)`, and back on exit."""
    front, chunk = slice(0, n), slice(start, start + n)

    def swap() -> None:
        for tensor in tensors:
            tensor[front], tensor[chunk] = tensor[chunk].clone(), tensor[front].clone()

    if start:
        swap()
    try:
        yield
    finally:
        if start:
            swap()


def clustering_nmi(vectors: np.ndarray, codes: np.ndarray, *, seed: int = 0) -> float:
    """NMI of k-means clusters (K = number of classes, seeded) of `vectors` `[N, D]` against `codes` `[N]`."""
    n_classes = int(codes.max()) + 1
    clusters = KMeans(n_clusters=min(n_classes, len(codes)), n_init=1, random_state=seed).fit_predict(vectors)
    return float(normalized_mutual_info_score(codes, clusters))


def map_sample(labels: np.ndarray, *, max_points: int = MAP_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted row indices of a seeded sample of at most `max_points` rows, every class kept in proportion."""
    n = len(labels)
    if n <= max_points:
        return np.arange(n)
    from sklearn.model_selection import train_test_split  # stratified subsampling, only for large sets

    _, _, _, kept = train_test_split(labels, np.arange(n), test_size=max_points, random_state=seed,
                                     stratify=labels if np.unique(labels, return_counts=True)[1].min() > 1 else None)
    return np.sort(kept)


def embedding_map(embeddings: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates `[n, 2]` of embeddings `[n, D]` (cosine), and the method: "umap" or "tsne".

    UMAP is used when umap-learn is installed (not a dependency); otherwise scikit-learn's t-SNE
    (perplexity capped for small n). Both are seeded.
    """
    vectors = np.asarray(embeddings, dtype=np.float32)
    if len(vectors) < 3:
        raise ValueError(f"embeddings: a 2-D map needs at least 3 points, got {len(vectors)}")
    try:
        import umap  # optional: faster than t-SNE on thousands of points
    except ImportError:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (len(vectors) - 1) / 3))
        tsne = TSNE(n_components=2, metric="cosine", init="pca", perplexity=perplexity, random_state=seed)
        return tsne.fit_transform(vectors).astype(np.float32), "tsne"
    reducer = umap.UMAP(n_components=2, metric="cosine", random_state=seed)
    return np.asarray(reducer.fit_transform(vectors), dtype=np.float32), "umap"
