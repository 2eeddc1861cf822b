"""From DATA (and a run) to the `AuditContext` every check reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from winnow.audit.base import AuditContext, ImageFacts
from winnow.audit.facts import image_facts
from winnow.config import Config, read_saved
from winnow.data.sources import Samples, read_sources
from winnow.data.splits import assign_splits
from winnow.data.validation import bad_summary, scan
from winnow.embeddings.extract import embed_paths
from winnow.inference.predictor import Predictor
from winnow.inference.tta import parse_tta
from winnow.pretraining.reconstruction import reconstruct
from winnow.runs.layout import RunPaths, checkpoint_names


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
                  batch_size: int = 64, workers: int = 1, folds: int = 5, min_support: int = 20, seed: int = 0,
                  facts: frozenset[str] = frozenset()) -> AuditContext:
    """Read DATA, decode every file once (unreadable ones listed), and embed the images with `run` if given
    (a train run's model, or an autoencoder pretrain run's encoder, which also gives reconstruction errors).

    Args:
        facts: Optional per-image facts the checks need (the union of their `Check.facts`).

    Raises:
        ValueError: Bad DATA (see `load_samples`), no readable image, or a run of other classes or another kind.
    """
    samples = load_samples(data, seed=seed)
    model = None if run is None else open_run(run, samples, checkpoint=checkpoint, device=device)
    readable, bad, image_facts_ = decode_once(samples, workers=workers, facts=facts)
    if not readable.any():
        raise ValueError(f"none of the {len(samples)} image(s) of {', '.join(data)} can be read: "
                         f"{bad_summary([(samples.paths[row], reason) for row, reason in bad])}")
    context = AuditContext(samples, ", ".join(data), readable, bad, image_facts_, min_support=min_support,
                           folds=folds, seed=seed, workers=workers)
    if model is not None:
        embed_with_run(context, model, checkpoint=checkpoint, batch_size=batch_size, device=device)
    return context


def open_run(run: str, samples: Samples, *, checkpoint: str = "best", device: str = "auto") -> Predictor | Path:
    """A train run's model (checked to know DATA's classes), or an autoencoder pretrain run's folder (checked to
    have the checkpoint), before the images are decoded.

    Raises:
        ValueError: Not a run, a run of other classes, a pretrain run of another method, a missing checkpoint.
    """
    if not is_autoencoder_run(run):
        return run_predictor(run, samples, checkpoint=checkpoint, device=device)
    file = RunPaths(run).checkpoint(checkpoint)
    if not file.is_file():
        raise ValueError(f"--checkpoint {checkpoint}: the autoencoder run {run} has no {file}; pass one of "
                         f"{checkpoint_names(run)}")
    return Path(run)


def embed_with_run(context: AuditContext, model: Predictor | Path, *, checkpoint: str = "best", batch_size: int = 64,
                   device: str = "auto") -> None:
    """Fill the context's embeddings (and, with an autoencoder run, its reconstruction errors); files that fail to
    decode now (changed or gone since the pass) become unreadable rows."""
    samples, readable = context.samples, context.readable
    if isinstance(model, Predictor):
        context.embeddings = run_embeddings(model, samples, readable, batch_size=batch_size)
        context.embedding_source = f"run {Path(model.run_dir).name} (checkpoint {checkpoint})"
        if model.config.pu:
            context.unlabelled_class, context.positive_class = model.classes  # a binary head: positive last
            context.prior = float(model.config.prior)
    else:
        context.embeddings, context.reconstruction = autoencoder_outputs(
            str(model), samples, readable, checkpoint=checkpoint, batch_size=batch_size, device=device)
        context.embedding_source = f"run {model.name} (autoencoder pretrain, checkpoint {checkpoint})"
    failed = context.readable & np.isnan(context.embeddings).any(axis=1)
    context.bad += [(int(row), "unreadable: failed while the run embedded it") for row in np.flatnonzero(failed)]
    context.readable &= ~failed


def decode_once(samples: Samples, *, workers: int = 1,
                facts: frozenset[str] = frozenset()) -> tuple[np.ndarray, list[tuple[int, str]], ImageFacts]:
    """A header scan (missing, empty, too large, not an image, paths listed twice), then the single decoding
    pass over the rest: its full decode finds what `train --verify full` finds, and it takes the facts.

    Returns:
        `[N]` bool readable, `(row, reason)` of the others in row order (reasons as in bad_files.csv), the facts.
    """
    report = scan(samples, max_pixels=Config().max_image_pixels, full=False, workers=workers)
    header_bad = zip(sorted(set(range(len(samples))) - set(report.good)), (reason for _, reason in report.bad))
    image_facts_, decode_bad = image_facts(samples.paths, np.asarray(report.good, int), workers=workers,
                                           extras=facts)
    bad = sorted([*header_bad, *decode_bad])
    readable = np.ones(len(samples), bool)
    readable[[row for row, _ in bad]] = False
    return readable, bad, image_facts_


def is_autoencoder_run(run: str) -> bool:
    """True for a `winnow pretrain --method autoencoder` run folder; False for any other folder (a train run).

    Raises:
        ValueError: A pretrain run of another method (an encoder without a classifier or a decoder).
    """
    path = RunPaths(run).config
    method = read_saved(path).pretrain_method if path.is_file() else None
    if method not in (None, "autoencoder"):
        raise ValueError(f"--run {run} is a `winnow pretrain --method {method}` run; audit embeds with a train run "
                         "or an autoencoder pretrain run (whose reconstruction errors also rank the outliers): "
                         "pass one of those, or no --run")
    return method == "autoencoder"


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


def autoencoder_outputs(run: str, samples: Samples, readable: np.ndarray, *, checkpoint: str = "best",
                        batch_size: int = 64, device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Encoder embeddings `[N, F]` and reconstruction errors `[N]` of the readable rows by an autoencoder pretrain
    run, from one pass of its model (NaN rows elsewhere, and where a file fails to decode now)."""
    rows = np.flatnonzero(readable)
    outputs = reconstruct(run, [samples.paths[i] for i in rows], checkpoint=checkpoint, batch_size=batch_size,
                          device=device)
    embeddings = np.full((len(samples), outputs.embeddings.shape[1]), np.nan, np.float32)
    errors = np.full(len(samples), np.nan)
    embeddings[rows[outputs.rows]], errors[rows[outputs.rows]] = outputs.embeddings, outputs.errors
    return embeddings, errors
