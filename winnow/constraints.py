"""One vocabulary for checking user-supplied settings, with one message shape.

A setting is described by a list of constraints; a value is valid when it meets any of
them. A constraint is an :class:`Interval` (integers or finite numbers in a range), an
:class:`Options` (a fixed set of choices), a :class:`Matches` (a string of a given form),
a type (``str``, ``bool``, ``dict``, ...) or ``None`` (None is allowed). A value that meets none raises
:class:`InvalidParameterError` with one message shape::

    check_value("epochs", 0, [Interval(Integral, 1, None, closed="left")])
    # InvalidParameterError: epochs must be a positive integer, got 0

    check_value("grad_clip", -1, [None, Interval(Real, 0, None, closed="neither")],
                hint="try 1.0")
    # InvalidParameterError: grad_clip must be None or a number > 0, got -1; try 1.0

The idea follows scikit-learn's ``_parameter_constraints``. Standard library only, so
any winnow module (configuration, losses, samplers, models) can use it.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Mapping, Sequence
from numbers import Integral, Real
from pathlib import PurePath
from typing import Any, Literal, Union

__all__ = [
    "Constraint",
    "ConstraintLike",
    "InvalidParameterError",
    "Interval",
    "Matches",
    "Options",
    "check_known_keys",
    "check_value",
    "describe",
    "validate_params",
]

Closed = Literal["both", "left", "right", "neither"]
_MAX_SHOWN = 120  # characters of a bad value's repr kept in a message


class InvalidParameterError(ValueError, TypeError):
    """A user-supplied value of the wrong type or out of range.

    Both a ValueError and a TypeError: callers that catch ValueError (the CLI) see every
    bad setting, and code that expected a TypeError for a wrong type still gets one.
    """


class Constraint(ABC):
    """What a value may be, with the words used for it in error messages."""

    @abstractmethod
    def is_satisfied_by(self, value: Any) -> bool:
        """Whether `value` meets the constraint."""

    @property
    @abstractmethod
    def description(self) -> str:
        """What a valid value is, e.g. "an integer >= 1" (fits after "must be")."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.description}>"


class Interval(Constraint):
    """Integers or finite real numbers between `low` and `high`.

    Bools are never numbers here (``True`` is not a count), and ``Real`` refuses NaN and
    infinities; ``Real`` accepts ints.

    Args:
        kind: ``numbers.Integral`` or ``numbers.Real``.
        low: Lower bound, or None for no lower bound.
        high: Upper bound, or None for no upper bound.
        closed: Which bounds belong to the interval: "both", "left", "right" or "neither".
    """

    def __init__(self, kind: type, low: float | None, high: float | None, *,
                 closed: Closed = "both") -> None:
        if kind not in (Integral, Real):
            raise TypeError(f"Interval kind must be numbers.Integral or numbers.Real, got {kind!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"Interval closed must be 'both', 'left', 'right' or 'neither', got {closed!r}")
        if low is not None and high is not None and low > high:
            raise ValueError(f"Interval low must be <= high, got low={low!r}, high={high!r}")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if not isinstance(value, Integral) and not math.isfinite(value):
            return False
        return self._above_low(value) and self._below_high(value)

    def _above_low(self, value: Any) -> bool:
        if self.low is None:
            return True
        return value >= self.low if self.closed in ("both", "left") else value > self.low

    def _below_high(self, value: Any) -> bool:
        if self.high is None:
            return True
        return value <= self.high if self.closed in ("both", "right") else value < self.high

    @property
    def description(self) -> str:
        integral = self.kind is Integral
        noun = "an integer" if integral else "a number"
        low_closed = self.closed in ("both", "left")
        high_closed = self.closed in ("both", "right")
        if self.low is None and self.high is None:
            return noun if integral else "a finite number"
        if self.high is None:
            if integral and (self.low, low_closed) in ((1, True), (0, False)):
                return "a positive integer"
            return f"{noun} {'>=' if low_closed else '>'} {_bound(self.low)}"
        if self.low is None:
            return f"{noun} {'<=' if high_closed else '<'} {_bound(self.high)}"
        return (f"{noun} in {'[' if low_closed else '('}{_bound(self.low)}, "
                f"{_bound(self.high)}{']' if high_closed else ')'}")


class Options(Constraint):
    """One of a fixed set of values, e.g. ``Options(("auto", 1, 3))``.

    A bool matches only a bool option: ``True == 1`` in Python, but True is not the
    choice 1.

    Args:
        values: The valid choices (hashable), in the order messages list them.
    """

    def __init__(self, values: Iterable[Hashable]) -> None:
        self.values = tuple(values)
        if not self.values:
            raise ValueError("Options needs at least one valid value")

    def is_satisfied_by(self, value: Any) -> bool:
        return any(_same_option(value, option) for option in self.values)

    @property
    def description(self) -> str:
        return f"one of {list(self.values)}"


class Matches(Constraint):
    """A string that matches a regular expression in full, e.g. ``"30s"`` for a duration.

    Args:
        pattern: The regular expression (matched with `re.fullmatch`).
        description: What such a string is, with an example, e.g. "a duration such as '30s'".
    """

    def __init__(self, pattern: str, description: str) -> None:
        self.pattern, self._description = re.compile(pattern), description

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, str) and self.pattern.fullmatch(value) is not None

    @property
    def description(self) -> str:
        return self._description


class _IsNone(Constraint):
    """The value None (written as plain ``None`` in a constraint list)."""

    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    @property
    def description(self) -> str:
        return "None"


class _InstanceOf(Constraint):
    """An instance of a type (written as the type itself in a constraint list).

    A bool counts only as ``bool``: a flag is not a number, whatever Python's int says.
    """

    def __init__(self, kind: type) -> None:
        self.kind = kind

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) and self.kind is not bool:
            return False
        return isinstance(value, self.kind)

    @property
    def description(self) -> str:
        return _TYPE_WORDS.get(self.kind, f"an instance of {self.kind.__name__}")


_TYPE_WORDS: dict[type, str] = {
    bool: "a boolean (True or False)",
    str: "a string",
    dict: "a mapping",
    Mapping: "a mapping",
    list: "a list",
    tuple: "a tuple",
    Sequence: "a sequence",
    PurePath: "a path",
}

ConstraintLike = Union[Constraint, type, None]
"""A constraint object, a type (isinstance) or None (None is allowed)."""


def check_value(name: str, value: Any, constraints: Sequence[ConstraintLike], *, hint: str = "") -> Any:
    """Return `value` if it meets any of `constraints`, else raise naming `name`.

    Args:
        name: The setting's name, as the user writes it (e.g. "epochs", "focal gamma").
        value: The value given.
        constraints: What the value may be (see the module docstring).
        hint: How to fix a bad value, appended after "; ".

    Returns:
        `value`, unchanged.

    Raises:
        InvalidParameterError: `value` meets none of `constraints`; the message reads
            "{name} must be {what} or {what}, got {value!r}; {hint}".
    """
    parsed = [_as_constraint(c) for c in constraints]
    if any(c.is_satisfied_by(value) for c in parsed):
        return value
    message = f"{name} must be {describe(parsed)}, got {_shown(value)}"
    raise InvalidParameterError(f"{message}; {hint}" if hint else message)


def validate_params(values: Mapping[str, Any], table: Mapping[str, Sequence[ConstraintLike]], *,
                    where: str = "", hints: Mapping[str, str] | None = None) -> None:
    """Check every entry of `values` that `table` names (entries it does not name are not checked).

    Args:
        values: name -> value, e.g. a config's fields.
        table: name -> constraint list, e.g. ``{"epochs": [Interval(Integral, 1, None, closed="left")]}``.
        where: Prefix naming the source in messages ("config.yaml: epochs must be ...").
        hints: name -> how to fix a bad value of that entry.

    Raises:
        InvalidParameterError: the first entry whose value meets none of its constraints.
    """
    prefix = f"{where}: " if where else ""
    for name, constraints in table.items():
        if name in values:
            check_value(prefix + name, values[name], constraints, hint=(hints or {}).get(name, ""))


def check_known_keys(where: str, given: Mapping[str, Any] | None, valid: Iterable[str], *,
                     hint: str = "") -> dict[str, Any]:
    """`given` as a dict (None is an empty one), refusing keys not in `valid`.

    Args:
        where: What `given` is, for messages (e.g. "loss_params of loss 'focal'").
        given: name -> value as the user wrote it.
        valid: The names allowed.
        hint: How to fix a bad mapping, appended after "; ".

    Raises:
        InvalidParameterError: `given` is not a mapping, or has keys not in `valid`
            (the message lists the unknown and the valid keys).
    """
    if given is None:
        return {}
    check_value(where, given, [Mapping], hint=hint)
    valid = set(valid)
    unknown = sorted(set(given) - valid, key=str)
    if unknown:
        listed = ", ".join(sorted(valid)) or "none (leave it empty)"
        message = f"unknown key(s) {unknown} in {where}; valid keys: {listed}"
        raise InvalidParameterError(f"{message}; {hint}" if hint else message)
    return dict(given)


def describe(constraints: Sequence[ConstraintLike]) -> str:
    """The words for a constraint list, e.g. "None or an integer >= 0"."""
    words = [_as_constraint(c).description for c in constraints]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _as_constraint(spec: ConstraintLike) -> Constraint:
    if spec is None:
        return _IsNone()
    if isinstance(spec, Constraint):
        return spec
    if isinstance(spec, type):
        return _InstanceOf(spec)
    raise TypeError(f"a constraint must be a Constraint, a type or None, got {spec!r}")


def _same_option(value: Any, option: Any) -> bool:
    if isinstance(value, bool) != isinstance(option, bool):
        return False
    try:
        return bool(value == option)
    except (TypeError, ValueError):  # e.g. an array compared with a string has no single truth value
        return False


def _bound(number: float) -> str:
    """A bound as people write it: 0 rather than 0.0, but 0.5 and 1e-08 as they are."""
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return str(number)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[:_MAX_SHOWN - 3]}..."
