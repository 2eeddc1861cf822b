"""From DATA (and a run) to the `AuditContext` every check reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from winnow.audit.base import AuditContext
from winnow.audit.facts import image_facts
from winnow.config import Config
from winnow.data.sources import Samples, read_sources
from winnow.data.splits import assign_splits
from winnow.data.validation import scan
from winnow.embeddings.extract import embed_paths
from winnow.inference.predictor import Predictor
from winnow.inference.tta import parse_tta


def load_samples(data: list[str], *, seed: int = 0) -> Samples:
    """DATA as `train` reads it: splits given by a split tree or manifest are kept, the rest assigned.

    Raises:
        ValueError: No DATA, unreadable sources, or fewer than two classes.
    """
    if not data:
        raise ValueError("no data: pass DATA (a folder of class folders, a split tree or CSV manifest(s))")
    classes = sorted(set(read_sources(list(data)).labels))  # before the split, which would fail less clearly
    if len(classes) < 2:
        raise ValueError(f"DATA {', '.join(data)} has one class only ({classes}); an audit compares classes: "
                         "pass labelled data with at least two classes")
    defaults = Config()
    return assign_splits(list(data), val_fraction=defaults.val_fraction, test_fraction=defaults.test_fraction,
                         seed=seed)


def build_context(data: list[str], *, run: str | None = None, checkpoint: str = "best", device: str = "auto",
                  batch_size: int = 64, workers: int = 1, folds: int = 5, min_support: int = 20,
                  seed: int = 0) -> AuditContext:
    """Read DATA, decode every file once (unreadable ones listed), and embed the images with `run` if given.

    Raises:
        ValueError: Bad DATA (see `load_samples`), no readable image, or a run of other classes.
    """
    samples = load_samples(data, seed=seed)
    predictor = None if run is None else run_predictor(run, samples, checkpoint=checkpoint, device=device)
    report = scan(samples, max_pixels=Config().max_image_pixels, full=True, workers=workers)
    readable = np.zeros(len(samples), bool)
    readable[report.good] = True
    if not readable.any():
        raise ValueError(f"none of the {len(samples)} image(s) of {', '.join(data)} can be read: {report.summary()}")
    bad = _bad_rows(readable, report.bad)
    context = AuditContext(samples, ", ".join(data), readable, bad, image_facts(samples.paths, readable,
                           workers=workers), min_support=min_support, folds=folds, seed=seed, workers=workers)
    if predictor is not None:
        context.embeddings = run_embeddings(predictor, samples, readable, batch_size=batch_size)
        context.embedding_source = f"run {Path(run).name} (checkpoint {checkpoint})"
        failed = context.readable & np.isnan(context.embeddings).any(axis=1)  # changed or gone since the scan
        context.bad += [(int(row), "unreadable: failed while the run embedded it") for row in np.flatnonzero(failed)]
        context.readable &= ~failed
        if predictor.config.pu:
            context.unlabelled_class, context.positive_class = predictor.classes  # a binary head: positive last
            context.prior = float(predictor.config.prior)
    return context


def _bad_rows(readable: np.ndarray, bad: list[tuple[str, str]]) -> list[tuple[int, str]]:
    """`(row, reason)` of the rows the scan refused (it lists them in row order; a path listed twice is
    refused on its later rows)."""
    return list(zip(np.flatnonzero(~readable).tolist(), (reason for _, reason in bad)))


def run_predictor(run: str, samples: Samples, *, checkpoint: str = "best", device: str = "auto") -> Predictor:
    """The run's model, checked to know every class of DATA.

    Raises:
        ValueError: Not a run, or a run trained on classes that are not DATA's (another dataset).
    """
    predictor = Predictor(run, checkpoint=checkpoint, device=device, calibration=False, thresholds=False)
    unknown = sorted(set(samples.labels) - set(predictor.classes))
    if unknown:
        raise ValueError(f"--run {run} was trained on classes {predictor.classes}, but DATA has label(s) "
                         f"{unknown[:20]} that are not among them (a run of another dataset?); audit with a run "
                         "trained on this data, or without --run (simple image features are used then)")
    return predictor


def run_embeddings(predictor: Predictor, samples: Samples, readable: np.ndarray, *,
                   batch_size: int = 64) -> np.ndarray:
    """Embeddings `[N, D]` of the readable rows by the run's model (NaN rows elsewhere)."""
    rows = np.flatnonzero(readable)
    outputs = embed_paths(predictor, [samples.paths[i] for i in rows], parse_tta(None, seed=predictor.seed),
                          batch_size=batch_size)
    embeddings = np.full((len(samples), outputs.values.shape[1]), np.nan, np.float32)
    embeddings[rows[outputs.rows]] = outputs.values
    return embeddings
