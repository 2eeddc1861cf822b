"""`winnow train --pu --prior auto`: the run's prior estimated from its data before training."""

from __future__ import annotations

import numpy as np

from winnow.config import Config
from winnow.data.sources import read_sources
from winnow.data.unlabelled import read_unlabelled
from winnow.pu.features import thumbnails
from winnow.pu.prior import PriorEstimate, estimate_prior


def resolve_prior(config: Config, *, bootstrap: int = 20) -> tuple[Config, PriorEstimate | None]:
    """`config` with `prior: auto` replaced by the estimate (unchanged, None otherwise).

    The labelled positives are the images labelled `positive_class`, every other image of `data`
    and every image of `unlabeled` is unlabelled; the features are thumbnails (`winnow.pu.features`).
    """
    if not config.pu or config.prior != "auto":
        return config, None
    if config.positive_class is None:
        raise ValueError("--prior auto needs --positive-class, the label of the labelled positives")
    samples = read_sources(config.data)
    if config.unlabeled:
        samples.extend(read_unlabelled(config.unlabeled))  # every image there is unlabelled
    labelled = np.array([label == config.positive_class for label in samples.labels])
    estimate = estimate_prior(thumbnails(samples.paths), labelled, bootstrap=bootstrap, seed=config.seed)
    return config.replace(prior=round(estimate.prior, 4)), estimate
