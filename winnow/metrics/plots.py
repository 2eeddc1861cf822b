"""Evaluation figures written as PNG files (matplotlib Agg canvas; no display, no pyplot state).

Each function draws one figure, writes it atomically (temporary file beside `path`, then rename) and
returns the path. Curves reuse scikit-learn's display classes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

from winnow.metrics.checks import check_classes, check_multilabel_targets, check_probabilities, check_targets
from winnow.metrics.report import ECE_BINS, reliability_bins
from winnow.runs.atomic import atomic_write

DPI = 120
MAX_ANNOTATED_CLASSES = 25  # confusion matrices above this size show colours only
NOT_PLOTTED = ("epoch", "lr")  # history keys left out of metric_over_epochs_png by default


def confusion_matrix_png(confusion: np.ndarray, classes: Sequence[str], path: str | Path, *, normalize: bool = True,
                         title: str = "Confusion matrix") -> Path:
    """Confusion matrix image (rows = true class).

    Args:
        confusion: Counts `[K, K]` (e.g. `full_metrics(...)["confusion_matrix"]["counts"]`).
        classes: Class names `[K]`.
        path: Output PNG.
        normalize: Show row-normalised fractions (recall per class) instead of counts.
        title: Figure title.
    """
    counts = np.asarray(confusion)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"confusion: expected a square [K, K] matrix of counts, got shape {counts.shape}")
    names = check_classes(classes, n_classes=len(counts))
    rows = counts.sum(axis=1, keepdims=True)
    values = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0) if normalize else counts
    size = min(4 + 0.5 * len(names), 24)
    fig, ax = _figure(size, size * 0.85)
    ConfusionMatrixDisplay(values, display_labels=names).plot(
        ax=ax, cmap="Blues", xticks_rotation=45 if len(names) > 3 else "horizontal",
        include_values=len(names) <= MAX_ANNOTATED_CLASSES, values_format=".2f" if normalize else "d",
        im_kw={"vmin": 0, "vmax": 1} if normalize else None)
    ax.set_title(f"{title} ({'row-normalised' if normalize else 'counts'})")
    return _save(fig, path)


def pr_curves_png(probabilities: np.ndarray, targets: np.ndarray, classes: Sequence[str], path: str | Path, *,
                  operating_points: Mapping[str, float] | None = None, title: str = "Precision-recall (one-vs-rest)"
                  ) -> Path:
    """One precision-recall curve per class present in the targets.

    Args:
        probabilities: Scores `[N, K]`.
        targets: Class indices `[N]`, or multi-hot `[N, K]`.
        classes: Class names `[K]`.
        path: Output PNG.
        operating_points: `{class name: threshold}` marked on that class's curve (score >= threshold).
        title: Figure title.
    """
    scores, indicator, names = _curve_inputs(probabilities, targets, classes)
    fig, ax = _figure(7, 6)
    for k in _present(indicator, names):
        display = PrecisionRecallDisplay.from_predictions(indicator[:, k], scores[:, k], ax=ax, name=names[k])
        if names[k] in (operating_points or {}):
            point = _rates_at(indicator[:, k], scores[:, k], operating_points[names[k]])
            _mark(ax, point["recall"], point["precision"], operating_points[names[k]], display.line_.get_color())
    ax.set(xlim=(0, 1.01), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=title)
    ax.legend(loc="lower left", fontsize="small")
    return _save(fig, path)


def roc_curves_png(probabilities: np.ndarray, targets: np.ndarray, classes: Sequence[str], path: str | Path, *,
                   operating_points: Mapping[str, float] | None = None, title: str = "ROC (one-vs-rest)") -> Path:
    """One ROC curve per class present in the targets (and absent from none), with the chance line.

    Args: as `pr_curves_png`; operating points are marked at (FPR, TPR).
    """
    scores, indicator, names = _curve_inputs(probabilities, targets, classes)
    fig, ax = _figure(7, 6)
    for k in _present(indicator, names, both=True):
        display = RocCurveDisplay.from_predictions(indicator[:, k], scores[:, k], ax=ax, name=names[k])
        if names[k] in (operating_points or {}):
            point = _rates_at(indicator[:, k], scores[:, k], operating_points[names[k]])
            _mark(ax, point["fpr"], point["recall"], operating_points[names[k]], display.line_.get_color())
    ax.plot([0, 1], [0, 1], linestyle=":", color="gray", label="chance")
    ax.set(xlim=(-0.01, 1.01), ylim=(0, 1.02), xlabel="false positive rate", ylabel="true positive rate (recall)",
           title=title)
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def reliability_png(probabilities: np.ndarray | Mapping[str, np.ndarray], targets: np.ndarray, path: str | Path, *,
                    n_bins: int = ECE_BINS, title: str = "Reliability (top-label)") -> Path:
    """Reliability diagram: accuracy vs confidence per bin, with the per-bin sample counts below.

    Args:
        probabilities: Probabilities `[N, K]`, or `{name: [N, K]}` to compare (e.g. before/after calibration).
        targets: Class indices `[N]`.
        path: Output PNG.
        n_bins: Equal-width confidence bins.
        title: Figure title.
    """
    curves = probabilities if isinstance(probabilities, Mapping) else {"model": probabilities}
    fig = Figure(figsize=(6, 7), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle=":", color="gray", label="perfect calibration")
    for offset, (name, values) in enumerate(curves.items()):
        bins = reliability_bins(values, targets, n_bins=n_bins)
        filled = bins.counts > 0
        top.plot(bins.confidence[filled], bins.accuracy[filled], marker="o", label=f"{name} (ECE {bins.ece:.3f})")
        width = np.diff(bins.edges) / len(curves)
        bottom.bar(bins.edges[:-1] + offset * width, bins.counts, width=width, align="edge", label=name)
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    top.legend(loc="upper left", fontsize="small")
    bottom.set(xlabel="confidence (max probability)", ylabel="samples")
    return _save(fig, path)


def metric_over_epochs_png(history: Sequence[Mapping[str, float]], path: str | Path, *,
                           metrics: Sequence[str] | None = None, best_epoch: int | None = None,
                           title: str = "Training history") -> Path:
    """Metrics per epoch: losses on the left panel, other metrics on the right.

    Args:
        history: One row per epoch, e.g. `[{"epoch": 1, "train_loss": 0.9, "val_macro_f1": 0.7}, ...]`
            (the run's metrics.jsonl); rows without "epoch" are numbered from 1.
        path: Output PNG.
        metrics: Keys to plot; default: every numeric key but "epoch", "lr" and "*_s" (timings, rates).
        best_epoch: Marked with a dashed vertical line.
        title: Figure title.
    """
    if not history:
        raise ValueError("history: expected at least one epoch row, got none; has the run finished an epoch?")
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    keys = list(metrics) if metrics is not None else _numeric_keys(history)
    groups = [group for group in ([k for k in keys if "loss" in k], [k for k in keys if "loss" not in k]) if group]
    if not groups:
        raise ValueError(f"metrics: nothing to plot; expected numeric keys such as val_loss, got {sorted(history[0])}")
    fig = Figure(figsize=(6 * len(groups), 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, group in zip(np.atleast_1d(fig.subplots(1, len(groups))), groups):
        _plot_series(ax, epochs, history, group, best_epoch)
    fig.suptitle(title)
    return _save(fig, path)


def embedding_map_png(coordinates: np.ndarray, labels: Sequence[str], mistakes: np.ndarray, path: str | Path, *,
                      title: str = "Embeddings (2-D map)") -> Path:
    """Scatter of a 2-D map of embeddings, coloured by true class, the classifier's mistakes marked x.

    Args:
        coordinates: Points `[n, 2]` (e.g. t-SNE or UMAP of the embeddings).
        labels: True class of each point `[n]`.
        mistakes: Whether the prediction of each point is wrong `[n]` (bool).
        path: Output PNG.
        title: Figure title.
    """
    points = np.asarray(coordinates, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"coordinates: expected [n, 2] points, got shape {points.shape}")
    names, wrong = np.asarray(labels).astype(str), np.asarray(mistakes, dtype=bool)
    if names.shape != (len(points),) or wrong.shape != (len(points),):
        raise ValueError(f"labels, mistakes: expected one per point ({len(points)}), got shapes {names.shape} "
                         f"and {wrong.shape}")
    fig, ax = _figure(8, 7)
    classes = np.unique(names)
    colours = matplotlib.colormaps["tab10" if len(classes) <= 10 else "tab20"]
    size = 12 if len(points) <= 2000 else 4
    for k, name in enumerate(classes):
        mine = names == name
        ax.scatter(*points[mine].T, s=size, color=colours(k % colours.N), alpha=0.7,
                   label=name if len(classes) <= MAX_ANNOTATED_CLASSES else None)
    ax.scatter(*points[wrong].T, s=size * 3, marker="x", color="black", linewidths=0.8,
               label=f"mistake ({int(wrong.sum())})")
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend(loc="best", fontsize="small", markerscale=2)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------- helpers


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=DPI))
    return path


def _curve_inputs(probabilities: np.ndarray, targets: np.ndarray,
                  classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Scores `[N, K]`, a one-vs-rest indicator `[N, K]` and the class names."""
    scores = check_probabilities(probabilities, rows_sum_to_one=False)
    names = check_classes(classes, n_classes=scores.shape[1])
    if np.ndim(targets) == 2:
        return scores, check_multilabel_targets(targets, shape=scores.shape), names
    indices = check_targets(targets, n_samples=len(scores), n_classes=scores.shape[1])
    return scores, np.eye(scores.shape[1], dtype=np.int64)[indices], names


def _present(indicator: np.ndarray, names: list[str], *, both: bool = False) -> list[int]:
    """Columns with positives (and negatives when `both`); warns about the others."""
    positives = indicator.sum(axis=0)
    keep = (positives > 0) & ((positives < len(indicator)) if both else True)
    if not keep.all():
        skipped = [name for name, kept in zip(names, keep) if not kept]
        warnings.warn(f"no curve for {skipped}: absent from the targets (or the only class present)", stacklevel=3)
    return np.flatnonzero(keep).tolist()


def _rates_at(truth: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """One-vs-rest precision, recall and FPR when predicting positive for score >= threshold."""
    predicted, positive = scores >= threshold, truth.astype(bool)
    tp = float((predicted & positive).sum())
    return {"precision": tp / max(predicted.sum(), 1), "recall": tp / max(positive.sum(), 1),
            "fpr": float((predicted & ~positive).sum()) / max((~positive).sum(), 1)}


def _mark(ax: Axes, x: float, y: float, threshold: float, color: str) -> None:
    ax.plot([x], [y], marker="*", markersize=14, color=color, markeredgecolor="black", zorder=5)
    ax.annotate(f"t={threshold:.3g}", (x, y), textcoords="offset points", xytext=(6, -12), fontsize="small")


def _numeric_keys(history: Sequence[Mapping[str, float]]) -> list[str]:
    keys = dict.fromkeys(key for row in history for key, value in row.items()
                         if isinstance(value, (int, float)) and not isinstance(value, bool))
    return [key for key in keys if key not in NOT_PLOTTED and not key.endswith("_s")]  # "_s": seconds, rates


def _plot_series(ax: Axes, epochs: list[int], history: Sequence[Mapping[str, float]], keys: list[str],
                 best_epoch: int | None) -> None:
    for key in keys:
        points = [(epoch, row[key]) for epoch, row in zip(epochs, history) if row.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3, label=key)
    if best_epoch is not None:
        ax.axvline(best_epoch, linestyle="--", color="gray", label=f"best epoch {best_epoch}")
    ax.set(xlabel="epoch")
    ax.legend(fontsize="small")
