"""Score an unlabelled pool with a run, an ensemble or a head on embeddings (no training augmentation).

Probabilities come from `winnow.load(folder).predict` (the folder's calibration applied, no TTA);
embeddings are the pre-logits `forward_head(pre_logits=True)` of `winnow.embeddings.extract`
(an ensemble's members' embeddings, each scaled to unit length, side by side); the stochastic
samples BALD needs are the members' probabilities of an ensemble, or MC-dropout passes of a run
whose model has dropout (modules, or timm's `drop_rate` head dropout).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from winnow.active.batch import unit_rows
from winnow.active.pool import Pool
from winnow.data.splits import load_splits
from winnow.embeddings.extract import embed_paths
from winnow.ensembles.predictor import EnsemblePredictor
from winnow.inference.predictor import Predictor, ScoringModel
from winnow.inference.tta import parse_tta
from winnow.runs.layout import RunPaths

PSEUDO_MARK = "precision_level"  # the column only pseudo-label manifests have


def member_runs(model: ScoringModel) -> list[Predictor]:
    """The runs behind `model`: itself, or an ensemble's (or head's) members."""
    return list(model.members) if isinstance(model, EnsemblePredictor) else [model]


def is_pu(model: ScoringModel) -> bool:
    """Whether the runs behind `model` are positive-unlabelled (`winnow train --pu`)."""
    return any(run.config.pu for run in member_runs(model))


def labelled_paths(model: ScoringModel) -> list[str]:
    """Real paths of the images in the splits.csv of the runs behind `model` (its labelled data).

    Rows that came from `winnow pseudo-label` (a `precision_level` cell) are not labelled: the next
    round predicts them again. In a PU run only the labelled positives and the test split (true
    labels) are labelled: its unlabelled images stay in a pool, to be ranked.
    """
    return list(labels_of(model))


def labels_of(model: ScoringModel) -> dict[str, str]:
    """Real path -> label of the labelled images of `model` (those `labelled_paths` lists, in its order)."""
    found: dict[str, str] = {}
    for run in member_runs(model):
        splits = RunPaths(run.run_dir).splits
        if splits.is_file():
            samples = load_splits(splits)
            found.update({os.path.realpath(path): label for path, label, split, _, extra in samples.rows()
                          if not extra.get(PSEUDO_MARK) and _labelled(run, label, split)})
    return found


def _labelled(run: Predictor, label: str, split: str | None) -> bool:
    return not run.config.pu or label == run.classes[-1] or split == "test"  # a binary head's positive is last


def embeddings_of(model: ScoringModel, paths: list[str], *, batch_size: int = 64, workers: int = 0) -> np.ndarray:
    """`[N, D]` pre-logits embeddings of readable `paths` (ensembles: members' unit embeddings side by side).

    Raises:
        ValueError: An image that cannot be read (score only readable images).
    """
    parts = []
    for run in member_runs(model):
        outputs = embed_paths(run, paths, parse_tta(None), batch_size=batch_size, workers=workers, strict=True)
        parts.append(outputs.values if len(member_runs(model)) == 1 else unit_rows(outputs.values))
    return np.concatenate(parts, axis=1)


def stochastic_samples(model: ScoringModel, paths: list[str], *, passes: int = 8, seed: int = 0,
                       batch_size: int = 64, workers: int = 0) -> np.ndarray | None:
    """`[S, N, K]` probabilities of an ensemble's members, or of `passes` MC-dropout passes of a run.

    Returns:
        None for a single run without dropout layers (BALD then says what it needs).
    """
    settings = {"batch_size": batch_size, "workers": workers, "strict": True}
    if isinstance(model, EnsemblePredictor):
        return np.stack([member.predict(paths, **settings).probabilities for member in model.members])
    network, trained_rate = model.model, float(model.config.drop_rate or 0.0)
    saved_rate = getattr(network, "drop_rate", None)
    if trained_rate > 0 and saved_rate is not None:
        network.drop_rate = trained_rate  # inference builds the network without its (eval-time inert) head dropout
    if not has_dropout(network):
        return None
    # inference puts the model in eval mode; this hook switches dropout back on before each forward
    hook = network.register_forward_pre_hook(lambda module, _: dropout_only_training(module))
    try:
        runs = []
        for index in range(passes):
            torch.manual_seed(seed + index)
            runs.append(model.predict(paths, **settings).probabilities)
        return np.stack(runs)
    finally:
        hook.remove()
        network.eval()
        if saved_rate is not None:
            network.drop_rate = saved_rate


def has_dropout(model: nn.Module) -> bool:
    """Dropout modules, or timm's functional head dropout (`drop_rate`), with a rate > 0."""
    modules = any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    return modules or float(getattr(model, "drop_rate", 0.0) or 0.0) > 0


def dropout_only_training(model: nn.Module) -> None:
    """Training mode for dropout (modules and timm's `F.dropout(training=self.training)`), eval for batch norm."""
    model.train(True)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):  # keep the running statistics, not the batch's
            module.eval()


def score_pool(model: ScoringModel, paths: list[str], *, embeddings: bool, samples: bool,
               labelled: list[str] | None = None, seed: int = 0, batch_size: int = 64, workers: int = 0) -> Pool:
    """The `Pool` of the readable images of `paths`, with what the chosen strategy needs.

    Args:
        model: `winnow.load(folder)`.
        paths: Unlabelled images `[N]`.
        embeddings: Also compute the pool's embeddings (diverse batches, coreset, badge, typiclust).
        samples: Also compute stochastic samples (bald).
        labelled: Labelled images whose embeddings coreset and typiclust measure coverage against.
    """
    settings = {"batch_size": batch_size, "workers": workers}
    predictions = model.predict(paths, tta="none", **settings)  # one view per image: pools are large
    kept = predictions.paths
    return Pool(kept, predictions.probabilities,
                embeddings=embeddings_of(model, kept, **settings) if embeddings else None,
                samples=stochastic_samples(model, kept, seed=seed, **settings) if samples else None,
                labelled_embeddings=embeddings_of(model, labelled, **settings) if embeddings and labelled else None,
                classes=list(model.classes))
