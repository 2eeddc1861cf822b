"""`winnow train --pu --prior auto`: the run's prior estimated from its data before training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
    estimate = data_prior(config.data, config.unlabeled, config.positive_class, seed=config.seed, bootstrap=bootstrap)
    return config.replace(prior=round(estimate.prior, 4)), estimate


def resolve_prior_values(values: Mapping[str, Any], *, bootstrap: int = 20) -> tuple[dict[str, Any],
                                                                                     PriorEstimate | None]:
    """Config values (a YAML file's and the flags') with `prior: auto` replaced by the estimate, as `resolve_prior`.

    For commands that build several configs from one set of values (`winnow train --recipe auto`,
    `winnow search`): the prior is estimated once, so every candidate or trial trains with the same number.
    """
    values = dict(values)
    if not values.get("pu") or values.get("prior") != "auto":
        return values, None
    estimate = data_prior(_paths(values.get("data")), _paths(values.get("unlabeled")), values.get("positive_class"),
                          seed=values.get("seed", Config.seed), bootstrap=bootstrap)
    values["prior"] = round(estimate.prior, 4)
    return values, estimate


def data_prior(data: Sequence[str], unlabeled: Sequence[str], positive_class: str | None, *, seed: int,
               bootstrap: int = 20) -> PriorEstimate:
    """The prior among the unlabelled images of `data` (labels other than `positive_class`) and `unlabeled`.

    Raises:
        ValueError: No `positive_class`, or what `estimate_prior` refuses.
    """
    if positive_class is None:
        raise ValueError("--prior auto needs --positive-class, the label of the labelled positives")
    samples = read_sources(list(data))
    if unlabeled:
        samples.extend(read_unlabelled(list(unlabeled)))  # every image there is unlabelled
    labelled = np.array([label == positive_class for label in samples.labels])
    return estimate_prior(thumbnails(samples.paths), labelled, bootstrap=bootstrap, seed=seed)


def _paths(value: Any) -> list[str]:
    """A path or a list of paths, as a config value holds them, as a list."""
    if value is None:
        return []
    return [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value]
