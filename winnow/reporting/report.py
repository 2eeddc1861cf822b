"""`winnow report RUN [DATA]`: evaluate a run and write one self-contained HTML page about it.

The page holds the run, the data summary, the training curves, the metrics, the confusion matrix
with the PR, ROC and reliability figures, the operating point with its bootstrap interval, a
gallery of the most confident mistakes and of the least confident correct predictions, and the
per-checkpoint table. Every image is embedded as a base64 PNG: the file needs no other file, no
script and no network.

It is written to `RUN/report.html` for the run's test split (DATA omitted) and to
`RUN/report-<data>.html` for other data (`<data>` as in `RUN/eval/<data>/`). Like `winnow eval`,
it also writes the evaluation files under `RUN/eval/<data>/`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from winnow._version import __version__
from winnow.evaluation.checkpoints import CheckpointSweep, evaluate_checkpoints, run_checkpoints
from winnow.evaluation.runner import evaluate
from winnow.reporting import run_files
from winnow.reporting.html import fmt, page
from winnow.reporting.sections import SECTIONS, ReportInputs
from winnow.runs.atomic import atomic_write_text
from winnow.runs.layout import RunPaths

GALLERY_SIZE = 12

__all__ = ["SECTIONS", "render", "write_report"]


def write_report(run_dir: str | Path, data: str | Path | None = None, *, checkpoint: str | Path = "best",
                 out: str | Path | None = None, checkpoints: bool = True, gallery: int = GALLERY_SIZE,
                 tta: str | int | None = None, tta_merge: str = "mean", device: str = "auto",
                 batch_size: int = 64, workers: int = 0, strict: bool = False, embeddings: bool = False) -> Path:
    """Evaluate a run (see the module docstring) and write its HTML report atomically.

    Args:
        run_dir: Run folder from `winnow train` (or an ensemble folder).
        data: Labelled data as for `evaluate` (None: the run's test split).
        checkpoint: The checkpoint reported in detail (name or `.pt` path).
        out: The HTML file; default `RUN/report.html` or `RUN/report-<data>.html`.
        checkpoints: Also evaluate every checkpoint for the per-checkpoint table.
        gallery: Images per gallery list (0: no gallery).
        tta, tta_merge, device, batch_size, workers, strict: As `evaluate` (unreadable images are skipped,
            listed on the page and in the evaluation folder's bad_files.csv; `strict`: refused).
        embeddings: Also score the embeddings and draw their map (see `evaluate`); without it the
            Embeddings section shows the map an earlier `winnow eval --embeddings` saved, if any.

    Returns:
        The path written.

    Raises:
        ValueError: Not a folder, not a run, no such checkpoint, unusable data, multitask run.
    """
    check_inputs(run_dir, gallery=gallery)
    settings = {"tta": tta, "tta_merge": tta_merge, "device": device, "batch_size": batch_size, "workers": workers,
                "strict": strict}
    evaluation = evaluate(run_dir, data, checkpoint=checkpoint, embeddings=embeddings, **settings)
    sweep, note = sweep_checkpoints(run_dir, data, enabled=checkpoints, settings=settings)
    inputs = ReportInputs(Path(run_dir).resolve(), evaluation, sweep, note, gallery)
    path = Path(out) if out else RunPaths(run_dir).report(None if data is None else
                                                     evaluation.metrics["data"]["name"])
    atomic_write_text(path, render(inputs))
    return path


def check_inputs(run_dir: str | Path, *, gallery: int) -> None:
    """Fail early, before any inference, on a missing folder or a negative gallery size."""
    if not Path(run_dir).is_dir():
        raise ValueError(f"{run_dir} is not a folder; pass a run folder from `winnow train` "
                         "(or an ensemble folder)")
    if len((run_files.preprocessing(Path(run_dir)) or {}).get("tasks", [])) > 1:
        raise ValueError(f"{run_dir} is a multitask run: its report is not supported yet; "
                         "`winnow eval RUN` scores every task")
    if gallery < 0:
        raise ValueError(f"gallery: expected a number of images >= 0 (0 turns it off), got {gallery}")


def sweep_checkpoints(run_dir: str | Path, data: str | Path | None, *, enabled: bool,
                      settings: dict) -> tuple[CheckpointSweep | None, str]:
    """Every checkpoint on the data, or None with the reason it is not available."""
    if not enabled:
        return None, "turned off (--checkpoints none)"
    try:
        run_checkpoints(run_dir)
    except ValueError as error:  # no checkpoints/ folder: an ensemble, or a run that never saved one
        return None, str(error)
    return evaluate_checkpoints(run_dir, data, plots=False, **settings), ""


def render(inputs: ReportInputs) -> str:
    """The HTML document of the report."""
    metrics = inputs.metrics
    checkpoint, data = metrics["checkpoint"], metrics["data"]
    subtitle = (f"checkpoint {checkpoint['name']} (epoch {fmt(checkpoint.get('epoch'))}) on {data['source']}: "
                f"{metrics.get('n_samples')} images")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    footer = f"written {stamp} by winnow {__version__}; evaluation files in {inputs.evaluation.directory}"
    sections = [(anchor, title, build(inputs)) for anchor, title, build in SECTIONS]
    return page(f"winnow report: {inputs.run_dir.name}", sections, subtitle=subtitle, footer=footer)
