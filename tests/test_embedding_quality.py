"""Embedding quality metrics (precision@1, R-precision, MAP@R, NMI), the 2-D map and its figure."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from sklearn.metrics import normalized_mutual_info_score

from winnow.embeddings.quality import embedding_map, embedding_quality, map_sample
from winnow.metrics.plots import embedding_map_png


def clustered(n: int, n_classes: int, dim: int, *, seed: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs `[n, dim]` around one random centre per class, and the class of each row."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    centres = rng.normal(size=(n_classes, dim))
    return (centres[labels] + spread * rng.normal(size=(n, dim))).astype(np.float32), labels


def naive_retrieval(embeddings: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """precision@1, R-precision and MAP@R with one explicit loop over the queries (cosine, self left out)."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    p1, r_prec, map_r = [], [], []
    for i in range(len(unit)):
        r = int((labels == labels[i]).sum()) - 1
        if r == 0:
            continue
        similarity = unit @ unit[i]
        similarity[i] = -np.inf
        order = np.argsort(-similarity, kind="stable")[:r]
        relevant = labels[order] == labels[i]
        p1.append(float(relevant[0]))
        r_prec.append(relevant.sum() / r)
        map_r.append(sum(relevant[: j + 1].sum() / (j + 1) for j in range(r) if relevant[j]) / r)
    return {"precision_at_1": np.mean(p1), "r_precision": np.mean(r_prec), "mean_average_precision_at_r": np.mean(map_r)}


@pytest.mark.parametrize("chunk_size", [7, 64, 1000])
def test_retrieval_metrics_match_a_naive_loop_and_pml_on_the_whole_set(chunk_size):
    embeddings, labels = clustered(150, 4, 6, seed=0, spread=1.5)
    labels[0] = 9  # a class with one image: not a query, still a neighbour
    scores = embedding_quality(embeddings, labels, chunk_size=chunk_size)
    naive = naive_retrieval(embeddings, labels)
    whole = AccuracyCalculator(include=tuple(naive), k="max_bin_count", device=torch.device("cpu"),
                               knn_func=CustomKNN(CosineSimilarity())).get_accuracy(embeddings, labels)
    for key in naive:
        assert scores[key] == pytest.approx(naive[key], abs=1e-6), key
        assert scores[key] == pytest.approx(whole[key], abs=1e-6), key
    assert 0.2 < scores["mean_average_precision_at_r"] < 0.95  # neither trivial nor perfect
    assert (scores["n_samples"], scores["n_queries"], scores["n_lone"], scores["n_classes"]) == (150, 149, 1, 5)


def test_nmi_is_sklearn_nmi_of_kmeans_and_separated_classes_score_one():
    embeddings, labels = clustered(200, 3, 8, seed=1, spread=0.05)
    scores = embedding_quality(embeddings, np.array(["a", "b", "c"])[labels])
    assert scores["nmi"] == pytest.approx(1.0)
    assert scores["precision_at_1"] == scores["mean_average_precision_at_r"] == 1.0
    noisy = embedding_quality(*clustered(200, 3, 8, seed=1, spread=3.0))
    assert 0.0 <= noisy["nmi"] < 0.5
    assert normalized_mutual_info_score(labels, labels) == 1.0


def test_twenty_thousand_embeddings_in_chunks_run_in_seconds():
    embeddings, labels = clustered(20_000, 400, 4, seed=2)  # an [N, N] float matrix would be 1.6 GB
    started = time.perf_counter()
    scores = embedding_quality(embeddings, labels, chunk_size=2048)
    assert time.perf_counter() - started < 60  # about 3 s on 2 idle cores
    assert scores["n_queries"] == 20_000 and 0 < scores["precision_at_1"] < 1


@pytest.mark.parametrize("embeddings, labels, message", [
    (np.zeros((4, 3)), [0, 1, 0], r"labels: expected one label per embedding \(4\), got shape \(3,\)"),
    (np.zeros((4, 3)), [1, 1, 1, 1], r"expected at least 2, got 1 \(\[1\]\)"),
    (np.zeros(4), [0, 1, 0, 1], r"embeddings: expected a non-empty \[N, D\] array, got shape \(4,\)"),
    (np.full((2, 2), np.nan), [0, 1], "expected finite values"),
    (np.eye(3), [0, 1, 2], "every class has a single image"),
])
def test_bad_input_is_a_clear_error(embeddings, labels, message):
    with pytest.raises(ValueError, match=message):
        embedding_quality(embeddings, labels)


def test_bad_chunk_size_is_refused():
    with pytest.raises(ValueError, match="chunk_size: expected an integer >= 1"):
        embedding_quality(np.eye(4), [0, 0, 1, 1], chunk_size=0)


def test_map_sample_keeps_every_class_and_the_size_cap():
    labels = np.repeat(np.arange(5), [1000, 500, 50, 10, 2])
    kept = map_sample(labels, max_points=300, seed=0)
    assert len(kept) == 300 and np.all(np.diff(kept) > 0)
    assert set(labels[kept]) == {0, 1, 2, 3} | ({4} & set(labels[kept]))
    assert len(map_sample(labels[:100], max_points=300)) == 100


def test_map_coordinates_and_figure(tmp_path):
    embeddings, labels = clustered(60, 3, 5, seed=3, spread=0.1)
    coordinates, method = embedding_map(embeddings, seed=0)
    assert coordinates.shape == (60, 2) and method in ("tsne", "umap")
    again, _ = embedding_map(embeddings, seed=0)
    np.testing.assert_allclose(coordinates, again)  # seeded
    path = embedding_map_png(coordinates, np.array(["a", "b", "c"])[labels], labels == 0, tmp_path / "map.png")
    with Image.open(path) as image:
        assert image.size[0] > 500
    with pytest.raises(ValueError, match=r"labels, mistakes: expected one per point \(60\)"):
        embedding_map_png(coordinates, labels[:5], labels == 0, tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"coordinates: expected \[n, 2\] points"):
        embedding_map_png(embeddings, labels, labels == 0, tmp_path / "bad.png")
