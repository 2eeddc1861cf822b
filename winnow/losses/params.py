"""Checks of loss settings, on the shared vocabulary of `winnow.constraints`.

Messages name the setting, what was expected, what was given and how to fix it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import torch

from winnow.constraints import InvalidParameterError, Interval, Options, check_known_keys, check_value

REQUIRED = object()  # default of a setting that has no default and must be given

_FRACTION = Interval(Real, 0, 1, closed="left")
_EPOCH = Interval(Integral, 0, None, closed="left")


def as_mapping(where: str, params: Any) -> dict[str, Any]:
    """`params` as a dict; None is an empty one.

    Raises:
        InvalidParameterError: `params` is not a mapping.
    """
    if params is None:
        return {}
    return dict(check_value(where, params, [Mapping], hint="write it like {gamma: 2.0}"))


def take_params(where: str, params: Any, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """`params` merged over `defaults`.

    Raises:
        InvalidParameterError: `params` is not a mapping, or has a name not in `defaults`
            (the valid names are listed).
        ValueError: a REQUIRED name is missing.
    """
    given = check_known_keys(where, as_mapping(where, params), defaults)
    merged = {**defaults, **given}
    missing = sorted(name for name, value in merged.items() if value is REQUIRED)
    if missing:
        raise ValueError(f"{where} needs key(s) {missing}; add them")
    return merged


def real(name: str, value: Any) -> float:
    """A finite real number (bools are refused)."""
    return float(check_value(name, value, [Interval(Real, None, None)]))


def at_least(name: str, value: Any, low: float, *, hint: str = "") -> float:
    """A real number >= `low`."""
    return float(check_value(name, value, [Interval(Real, low, None, closed="left")], hint=hint))


def positive(name: str, value: Any, *, hint: str = "") -> float:
    """A real number > 0."""
    return float(check_value(name, value, [Interval(Real, 0, None, closed="neither")], hint=hint))


def beta_value(name: str, value: Any) -> float:
    """The effective-number beta, in [0, 1)."""
    return float(check_value(name, value, [_FRACTION], hint="0 gives equal weights, values close to 1 "
                             "(0.999, 0.9999) approach inverse-frequency weights"))


def smoothing_value(name: str, value: Any) -> float:
    """A label-smoothing amount in [0, 1)."""
    return float(check_value(name, value, [_FRACTION], hint="typical values are 0.05 to 0.2"))


def epoch_value(name: str, value: Any) -> int | None:
    """None, or a 0-based epoch index (int >= 0)."""
    check_value(name, value, [None, _EPOCH],
                hint="it is a 0-based epoch: that many epochs run before it takes effect")
    return None if value is None else int(value)


def choice(name: str, value: Any, valid: Sequence[str]) -> str:
    """One of `valid`."""
    return check_value(name, value, [Options(valid)])


def per_class(name: str, value: Any, num_classes: int, *, low: float = 0.0,
              high: float = math.inf) -> torch.Tensor | None:
    """None, a scalar `[1]` or one value per class `[K]`, each in [low, high], as float32.

    Raises:
        InvalidParameterError: a list whose length is not `num_classes`, or a value out of range.
    """
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != num_classes:
            raise InvalidParameterError(
                f"{name} must be a single number or a list of {num_classes} numbers (one per class, "
                f"in class order), got {len(value)} values {value!r}")
        named = [(f"{name}[{i}]", v) for i, v in enumerate(value)]
    else:
        named = [(name, value)]
    bounds = [Interval(Real, low, None if high == math.inf else high, closed="both")]
    numbers = [float(check_value(label, v, bounds)) for label, v in named]
    return torch.tensor(numbers, dtype=torch.float32)
