"""winnow: train, tune, audit and serve image classifiers on hard real-world data."""

__version__ = "0.1.0"

from winnow.config import Config  # noqa: E402
from winnow.inference.loading import load  # noqa: E402
from winnow.training.trainer import Run, train  # noqa: E402

__all__ = ["Config", "Run", "load", "train", "__version__"]
