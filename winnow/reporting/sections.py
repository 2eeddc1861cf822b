"""The sections of the report, each drawn from one `ReportInputs`.

A section whose inputs are absent (an ensemble has no metrics.jsonl, a run without thresholds.json
has no operating point...) shows a short "not available: <why>" note instead.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winnow._version import __version__
from winnow.evaluation.checkpoints import CheckpointSweep
from winnow.evaluation.embedding_eval import map_title, read_map
from winnow.evaluation.runner import Evaluation
from winnow.evaluation.scoring import headline
from winnow.metrics.plots import embedding_map_png, metric_over_epochs_png
from winnow.reporting import run_files
from winnow.reporting.gallery import gallery_html, pick_examples
from winnow.reporting.html import Markup, esc, figure, fmt, image, key_values, paragraph, table, unavailable
from winnow.runs.layout import (CHECKPOINT_PLOT_FILE, CONFUSION_FIGURE, EMBEDDING_MAP_FIGURE, EMBEDDING_MAP_FILE,
                                PR_FIGURE, RELIABILITY_FIGURE, ROC_FIGURE)

FIGURES = ((CONFUSION_FIGURE, "Confusion matrix (rows: true class, normalized per row)"),
           (PR_FIGURE, "Precision-recall curves (one-vs-rest; star: the operating threshold)"),
           (ROC_FIGURE, "ROC curves (one-vs-rest; star: the operating threshold)"),
           (RELIABILITY_FIGURE, "Reliability diagram (confidence against accuracy)"))
SOFTMAX_ONLY = (CONFUSION_FIGURE, RELIABILITY_FIGURE)
PREPROCESSING_KEYS = ("img_size", "in_chans", "fill", "autolevel", "automask", "mean", "std")
MAX_LISTED = 50
TUNE_HINT = "winnow tune RUN --target 'precision(CLASS)>=0.9'"


@dataclass(frozen=True)
class ReportInputs:
    """Everything the sections are drawn from.

    Attributes:
        run_dir: Run (or ensemble) folder.
        evaluation: The reported checkpoint on the reported data.
        sweep: Every checkpoint on the same data, or None.
        sweep_note: Why `sweep` is None.
        gallery_size: Examples per gallery list (0: no gallery).
    """

    run_dir: Path
    evaluation: Evaluation
    sweep: CheckpointSweep | None = None
    sweep_note: str = ""
    gallery_size: int = 12

    @property
    def metrics(self) -> dict[str, Any]:
        return self.evaluation.metrics


# --------------------------------------------------------------------------------------------- run


def run_body(inputs: ReportInputs) -> str:
    """What was evaluated, with which rule, trained by which code."""
    metrics, summary = inputs.metrics, run_files.training_summary(inputs.run_dir) or {}
    checkpoint, data = metrics["checkpoint"], metrics["data"]
    origin = run_files.provenance(inputs.run_dir)
    classes = ", ".join(map(str, inputs.evaluation.predictions.classes))
    pairs = [("run", f"{inputs.run_dir.name} ({inputs.run_dir})"),
             ("checkpoint", f"{checkpoint['name']} (epoch {fmt(checkpoint.get('epoch'))})"),
             ("data", f"{data['source']}: {data['n_images']} images, {data['n_unreadable']} unreadable"),
             ("head", f"{metrics['head']}; classes {classes}"),
             ("model", run_files.model_name(inputs.run_dir)),
             ("decision rule", metrics.get("decision_rule")),
             ("calibration", calibration_text(metrics)),
             ("test-time augmentation", metrics.get("tta") or "none")]
    pairs += ensemble_pairs(run_files.ensemble_record(inputs.run_dir)) or training_pairs(summary)
    pairs += [("trained with", code_text(origin) if origin else None),
              ("report written by", f"winnow {__version__}")]
    return key_values(pairs)


def calibration_text(metrics: dict[str, Any]) -> str:
    """The calibration applied, with the ECE before and after it."""
    calibration = metrics.get("calibration")
    if not calibration:
        return "none (no calibration.json; `winnow calibrate RUN` fits one)" + (
            f"; ECE {fmt(metrics['ece'])}" if "ece" in metrics else "")
    return (f"{calibration.get('method', '?')} scaling (calibration.json); ECE "
            f"{fmt(calibration.get('ece_uncalibrated'))} uncalibrated -> {fmt(calibration.get('ece_calibrated'))}"
            + (" (pooled over labels)" if metrics["head"] == "multilabel" else ""))


def training_pairs(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """Rows from summary.json: status, epochs, model selection."""
    if not summary:
        return [("training", "not available: no summary.json in the folder")]
    done, planned = summary.get("epochs_done", "?"), summary.get("epochs", "?")
    progress = f"{summary.get('status', '?')}: {done} of {planned} epochs"
    selection = f"{summary.get('select_metric', '?')} = {fmt(summary.get('best_metric'))}"
    best = f"{fmt(summary.get('best_epoch'))} by {selection}"
    return [("training", progress), ("best epoch", best)]


def ensemble_pairs(record: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """Rows from ensemble.json: the combining method and the member runs; [] for a run."""
    if not record:
        return []
    members = [f"{member.get('run', '?')} ({member.get('checkpoint', '?')})" for member in record.get("members", [])]
    head = ((record.get("fit") or {}).get("report") or {}).get("classifier")  # method svm: which head on embeddings
    combined = f"{record.get('method', '?')} of {len(members)} member(s)"
    combined += f"; {head} head on embeddings" if head else ""
    return [("ensemble", combined), ("members", "; ".join(members))]


def code_text(origin: dict[str, Any]) -> str:
    """`winnow 0.1.0 (git abc123), torch ..., timm ...` from the provenance block."""
    parts = [f"winnow {origin.get('winnow_version', '?')} (git {origin.get('git_commit') or 'unknown'})"]
    return ", ".join(parts + [f"{key} {origin[key]}" for key in ("torch", "timm", "python") if origin.get(key)])


# --------------------------------------------------------------------------------------------- data


def data_body(inputs: ReportInputs) -> str:
    """Images per class and split, unreadable files, preprocessing."""
    counts = run_files.split_counts(inputs.run_dir, head=inputs.metrics["head"])
    parts = ["<h3>Images per class and split (splits.csv)</h3>\n",
             table(counts) if counts else unavailable("no splits.csv in the folder (ensembles may have none)"),
             "<h3>Unreadable files</h3>\n", unreadable_html(inputs),
             "<h3>Preprocessing (of the first member)</h3>\n" if run_files.ensemble_record(inputs.run_dir)
             else "<h3>Preprocessing</h3>\n"]
    spec = run_files.preprocessing(inputs.run_dir)
    parts.append(key_values((key, spec.get(key)) for key in PREPROCESSING_KEYS if key in spec) if spec
                 else unavailable("no preprocessing.json in the folder"))
    return "".join(parts)


def unreadable_html(inputs: ReportInputs) -> str:
    """Files skipped at training (bad_files.csv) and at this evaluation."""
    training = run_files.bad_files(inputs.run_dir)
    evaluated = [{"path": path, "reason": reason} for path, reason in inputs.metrics["data"]["unreadable"]]
    source = "(bad_files.csv)" if training is not None else "(no bad_files.csv)"
    return (paragraph(f"training data: {len(training or [])} unreadable file(s) {source}")
            + file_list(training or []) + paragraph(f"evaluated data: {len(evaluated)} unreadable file(s)")
            + file_list(evaluated))


def file_list(rows: list[dict[str, str]], *, limit: int = MAX_LISTED) -> str:
    """The first `limit` (path, reason) rows as a table."""
    if not rows:
        return ""
    more = paragraph(f"first {limit} of {len(rows)} listed") if len(rows) > limit else ""
    return table(rows[:limit]) + more


# --------------------------------------------------------------------------------------------- training


def training_body(inputs: ReportInputs) -> str:
    """metrics.jsonl drawn per epoch, the best epoch marked."""
    history = run_files.training_history(inputs.run_dir)
    if not history:
        return unavailable("no metrics.jsonl in the folder (ensembles have none; has the run finished an epoch?)")
    best = (run_files.training_summary(inputs.run_dir) or {}).get("best_epoch")
    with tempfile.TemporaryDirectory() as scratch:
        try:
            png = metric_over_epochs_png(history, Path(scratch) / "history.png", best_epoch=best,
                                         title="Training history (metrics.jsonl)").read_bytes()
        except ValueError as error:
            return unavailable(str(error))
    caption = f"{len(history)} epoch(s); dashed line: best epoch {fmt(best)}"
    return (f'<figure class="plot">{image(png, alt="training curves")}'
            f"<figcaption>{esc(caption)}</figcaption></figure>\n")


# --------------------------------------------------------------------------------------------- metrics


def metrics_body(inputs: ReportInputs) -> str:
    """Headline metrics, per-class metrics and the confusion counts."""
    metrics = inputs.metrics
    numbers = {"n_samples": metrics.get("n_samples"), **headline(metrics)}
    if "coverage" in metrics:
        numbers.update(coverage=metrics["coverage"], n_uncertain=metrics.get("n_uncertain"))
    unit = "label" if "per_label" in metrics else "class"
    rows = [{unit: name, **values} for name, values in (metrics.get(f"per_{unit}") or {}).items()]
    parts = ["<h3>Headline</h3>\n", key_values(numbers.items()), f"<h3>Per {unit}</h3>\n",
             table(rows) if rows else unavailable(f"no per-{unit} metrics in metrics.json")]
    if "confusion_matrix" in metrics:
        parts += ["<h3>Confusion counts (rows: true, columns: predicted)</h3>\n", confusion_table(metrics)]
    return "".join(parts)


def confusion_table(metrics: dict[str, Any]) -> str:
    """The confusion counts of metrics.json as a table."""
    matrix = metrics["confusion_matrix"]
    names = [str(name) for name in matrix["labels"]]
    columns = list(dict.fromkeys(["true \\ predicted", *names]))
    rows = [{columns[0]: name, **dict(zip(names, counts))} for name, counts in zip(names, matrix["counts"])]
    return table(rows, columns=columns)


def figures_body(inputs: ReportInputs) -> str:
    """The PNGs `evaluate` wrote, embedded."""
    multilabel = inputs.metrics["head"] == "multilabel"
    parts, notes = [], []
    for name, caption in FIGURES:
        path = inputs.evaluation.directory / name
        if path.is_file():
            parts.append(figure(path, caption=caption))
        else:
            why = "not drawn for multi-label heads" if multilabel and name in SOFTMAX_ONLY else f"no {path}"
            notes.append(unavailable(f"{caption.split(' (')[0]}: {why}"))
    return "".join(notes) + (f'<div class="plots">\n{"".join(parts)}</div>\n' if parts else "")


# --------------------------------------------------------------------------------------------- operating point


def operating_body(inputs: ReportInputs) -> str:
    """The tuned target on this data (values, interval, met or not) and its tuning record."""
    metrics = inputs.metrics
    point, rule = metrics.get("operating_point"), metrics.get("thresholds")
    if point:
        return operating_point_html(point) + tuning_html(run_files.tuning_record(inputs.run_dir))
    if rule:
        return (paragraph(f"decision rule: {metrics.get('decision_rule')}")
                + unavailable("per-class thresholds have no target, so no interval; "
                              f"`{TUNE_HINT}` tunes one with a target"))
    return paragraph(f"Operating point not set: the folder has no thresholds.json, so predictions use "
                     f"{metrics.get('decision_rule')}. Set one on validation data with `{TUNE_HINT}`, "
                     "then write the report again.", css_class="warn")


def operating_point_html(point: dict[str, Any]) -> str:
    """`ThresholdTuner.evaluate` output (metrics.json's operating_point) as a table with its warnings."""
    interval = point["interval"]
    met = Markup('<span class="good">held</span>' if point["target_met"] else '<span class="bad">NOT met</span>')
    pairs = [("target", point["target"]), ("threshold", f"{point['threshold']:.6g}"),
             *[(f"achieved {key}", value) for key, value in point["achieved"].items()],
             (f"{interval['confidence']:.0%} bootstrap interval", f"[{fmt(interval['low'])}, {fmt(interval['high'])}]"),
             ("conservative bound", point.get("conservative_bound")),
             ("target on this data", met), ("images", point["n_samples"])]
    return "<h3>On the reported data</h3>\n" + key_values(pairs) + warnings_html(point.get("warnings", []))


def tuning_html(record: dict[str, Any] | None) -> str:
    """Where the threshold was tuned (thresholds.json): data, checkpoint, values and interval there."""
    if not record:
        return unavailable("no thresholds.json to tell where the threshold was tuned")
    tuned = record.get("tuner", record)  # multi-label: the tuned label's ThresholdTuner
    interval = tuned.get("interval") or [None, None]
    confidence = (tuned.get("params") or {}).get("confidence")
    label = f"{confidence:.0%} bootstrap interval" if isinstance(confidence, float) else "bootstrap interval"
    pairs = [("tuned on", record.get("data")), ("images", record.get("n_samples")),
             ("checkpoint", record.get("checkpoint")), ("target", tuned.get("parsed_target")),
             *[(f"achieved {key}", value) for key, value in (tuned.get("achieved") or {}).items()],
             (label, f"[{fmt(interval[0])}, {fmt(interval[1])}]"),
             ("calibrated", record.get("calibrated")), ("test-time augmentation", record.get("tta") or "none")]
    return ("<h3>Where it was tuned (thresholds.json)</h3>\n" + key_values(pairs)
            + warnings_html(tuned.get("warnings", [])))


def warnings_html(warnings: list[str]) -> str:
    if not warnings:
        return ""
    return '<ul class="warn">\n' + "".join(f"<li>warning: {esc(text)}</li>\n" for text in warnings) + "</ul>\n"


# --------------------------------------------------------------------------------------------- gallery, checkpoints


def gallery_body(inputs: ReportInputs) -> str:
    """Thumbnails of the most confident mistakes and of the least confident correct predictions."""
    if inputs.gallery_size == 0:
        return unavailable("gallery turned off (--gallery 0)")
    if inputs.evaluation.targets.ndim != 1:
        return unavailable("multi-label heads have no single predicted class per image")
    gallery = pick_examples(inputs.evaluation.predictions, inputs.evaluation.targets, n=inputs.gallery_size)
    doubtful = gallery.least_confident_correct
    parts = [f"<h3>Most confident mistakes ({len(gallery.mistakes)} of {gallery.n_mistakes})</h3>\n",
             gallery_html(gallery.mistakes, kind="mistake"),
             f"<h3>Least confident correct predictions ({len(doubtful)} of {gallery.n_correct})</h3>\n",
             gallery_html(doubtful, kind="correct")]
    if gallery.n_uncertain:
        parts.append(paragraph(f"{gallery.n_uncertain} image(s) left uncertain by the decision rule are not shown"))
    return "".join(parts)


def checkpoints_body(inputs: ReportInputs) -> str:
    """One row per checkpoint on the same data (checkpoints.csv) and the metrics-over-epochs plot."""
    if inputs.sweep is None:
        return unavailable(inputs.sweep_note or "no checkpoints evaluated")
    plot = inputs.sweep.directory / CHECKPOINT_PLOT_FILE
    parts = [table(inputs.sweep.rows),
             paragraph(f"written to {inputs.sweep.directory / 'checkpoints.csv'}")]
    if plot.is_file():
        parts.append(figure(plot, caption="Metrics of each checkpoint against its epoch"))
    return "".join(parts)


# --------------------------------------------------------------------------------------------- embeddings


EMBEDDING_KEYS = ("precision_at_1", "r_precision", "mean_average_precision_at_r", "nmi", "n_samples", "n_classes",
                  "n_lone", "dim", "n_mistakes")
EMBEDDINGS_HINT = "`winnow report RUN [DATA] --embeddings` (or `winnow eval RUN [DATA] --embeddings`) computes it"


def embeddings_body(inputs: ReportInputs) -> str:
    """Retrieval and clustering scores of the embeddings and their 2-D map, from embedding_map.npz."""
    block = inputs.metrics.get("embedding") or {}
    if "skipped" in block:
        return unavailable(block["skipped"])
    path = inputs.evaluation.directory / EMBEDDING_MAP_FILE
    try:
        saved = read_map(path)
    except ValueError as error:
        return unavailable(str(error))
    if saved is None:
        return unavailable(f"no {EMBEDDING_MAP_FILE} in the evaluation folder; {EMBEDDINGS_HINT}")
    meta = saved["meta"]
    if meta.get("checkpoint_fingerprint") != inputs.metrics["checkpoint"]["fingerprint"]:
        return unavailable(f"{path} was written for another state of the checkpoint (retrained since?); "
                           f"{EMBEDDINGS_HINT} again")
    scores = block or meta.get("scores", {})
    with tempfile.TemporaryDirectory() as scratch:
        png = embedding_map_png(saved["coordinates"], saved["labels"], saved["mistakes"],
                                Path(scratch) / EMBEDDING_MAP_FIGURE, title=map_title(meta)).read_bytes()
    caption = (f"{map_title(meta)}; colour: true class; x: the classifier's mistakes. Retrieval: each image a "
               "query against the others, cosine similarity; NMI: k-means with K = number of classes")
    return (key_values((key, scores.get(key)) for key in EMBEDDING_KEYS if key in scores)
            + f'<figure class="plot">{image(png, alt="embedding map")}<figcaption>{esc(caption)}</figcaption>'
              "</figure>\n")


SECTIONS: tuple[tuple[str, str, Callable[[ReportInputs], str]], ...] = (
    ("run", "Run", run_body),
    ("data", "Data", data_body),
    ("training", "Training curves", training_body),
    ("metrics", "Metrics", metrics_body),
    ("figures", "Confusion matrix, PR, ROC and reliability", figures_body),
    ("operating-point", "Operating point", operating_body),
    ("gallery", "Gallery", gallery_body),
    ("embeddings", "Embeddings", embeddings_body),
    ("checkpoints", "Per-checkpoint table", checkpoints_body),
)
