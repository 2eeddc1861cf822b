"""winnow: train, tune, audit and serve image classifiers on hard real-world data.

The package face is light: `import winnow` loads neither torch nor timm. `winnow.train`,
`winnow.Run`, `winnow.load` and `winnow.Config` are imported on first use (PEP 562).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from winnow._version import __version__

if TYPE_CHECKING:
    from winnow.config import Config
    from winnow.loading import load
    from winnow.training.trainer import Run, train

_LAZY = {"Config": "winnow.config", "load": "winnow.loading", "Run": "winnow.training.trainer",
         "train": "winnow.training.trainer"}

__all__ = ["Config", "Run", "load", "train", "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'winnow' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
