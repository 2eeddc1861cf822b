"""Checks of loss settings, with messages that name the setting, what was expected and how to fix it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import torch

REQUIRED = object()  # default of a setting that has no default and must be given


def as_mapping(where: str, params: Any) -> dict[str, Any]:
    """`params` as a dict; None is an empty one."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(f"{where} must be a mapping of name: value, got {type(params).__name__} "
                        f"({params!r}); write it like {{gamma: 2.0}}")
    return dict(params)


def take_params(where: str, params: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`params` merged over `defaults`.

    Raises:
        ValueError: a name not in `defaults` (the valid names are listed), or a REQUIRED one missing.
    """
    given = as_mapping(where, params)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        valid = ", ".join(sorted(defaults)) or "none (leave it empty)"
        raise ValueError(f"unknown key(s) {unknown} in {where}; valid keys: {valid}")
    merged = {**defaults, **given}
    missing = sorted(name for name, value in merged.items() if value is REQUIRED)
    if missing:
        raise ValueError(f"{where} needs key(s) {missing}; add them")
    return merged


def real(name: str, value: Any) -> float:
    """A finite real number (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number, got {value!r} ({type(value).__name__})")
    return float(value)


def at_least(name: str, value: Any, low: float, *, hint: str = "") -> float:
    """A real number >= `low`."""
    number = real(name, value)
    if number < low:
        raise ValueError(f"{name} must be >= {low}, got {number}{'; ' + hint if hint else ''}")
    return number


def positive(name: str, value: Any, *, hint: str = "") -> float:
    """A real number > 0."""
    number = real(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be > 0, got {number}{'; ' + hint if hint else ''}")
    return number


def beta_value(name: str, value: Any) -> float:
    """The effective-number beta, in [0, 1)."""
    number = real(name, value)
    if not 0 <= number < 1:
        raise ValueError(f"{name} must be in [0, 1), got {number}; 0 gives equal weights, values close to 1 "
                         "(0.999, 0.9999) approach inverse-frequency weights")
    return number


def smoothing_value(name: str, value: Any) -> float:
    """A label-smoothing amount in [0, 1)."""
    number = real(name, value)
    if not 0 <= number < 1:
        raise ValueError(f"{name} must be in [0, 1), got {number}; typical values are 0.05 to 0.2")
    return number


def epoch_value(name: str, value: Any) -> int | None:
    """None, or a 0-based epoch index (int >= 0)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"{name} must be None or an integer >= 0 (a 0-based epoch: that many epochs run "
                         f"before it takes effect), got {value!r}")
    return int(value)


def choice(name: str, value: Any, valid: Sequence[str]) -> str:
    """One of `valid`."""
    if value not in valid:
        raise ValueError(f"{name} must be one of {list(valid)}, got {value!r}")
    return value


def per_class(name: str, value: Any, num_classes: int, *, low: float = 0.0,
              high: float = math.inf) -> torch.Tensor | None:
    """None, a scalar `[1]` or one value per class `[K]`, each in [low, high], as float32.

    Raises:
        ValueError: a list whose length is not `num_classes`, or a value out of range.
    """
    if value is None:
        return None
    if isinstance(value, Real) and not isinstance(value, bool):
        values = [value]
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == num_classes:
        values = list(value)
    else:
        raise ValueError(f"{name} must be a single number or a list of {num_classes} numbers (one per class, "
                         f"in class order), got {value!r}")
    numbers = [real(f"{name}[{i}]", v) for i, v in enumerate(values)]
    if any(not low <= v <= high for v in numbers):
        raise ValueError(f"{name} values must be in [{low}, {high}], got {numbers}")
    return torch.tensor(numbers, dtype=torch.float32)
