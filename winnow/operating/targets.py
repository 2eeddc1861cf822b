"""Operating-point target syntax.

A target is one constraint on a class, optionally followed by the objective to optimise::

    precision(good)>=0.90                      # keep precision of "good" >= 0.90, maximise recall(good)
    recall(bad)>=0.95                          # keep recall of "bad" >= 0.95, maximise precision(bad)
    fpr(good)<=0.01                            # at most 1% of non-"good" samples called "good", maximise recall(good)
    fpr<=0.01                                  # binary only: the class is the positive one, classes[1]
    precision(good)>=0.9 maximize recall(good) # explicit objective ("maximise" also accepted)
    recall(bad)>=0.95 minimize fpr(bad)

Metrics: `precision`, `recall` (alias `tpr`) take `>=`; `fpr` takes `<=`. Values are in [0, 1].
Objectives: `maximize precision|recall|tpr` or `minimize fpr`; the objective's class defaults to the
constraint's. Spaces are optional; metric names and keywords are case-insensitive, class names are not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

METRIC_OPS = {"precision": ">=", "recall": ">=", "fpr": "<="}  # the sense each metric is constrained in
ALIASES = {"tpr": "recall"}
DEFAULT_OBJECTIVE = {"precision": "recall", "recall": "precision", "fpr": "recall"}
EXAMPLES = "precision(good)>=0.90, recall(bad)>=0.95, fpr(good)<=0.01, precision(good)>=0.9 maximize recall(good)"

_TERM = r"(?P<{m}>[A-Za-z_]+)\s*(?:\(\s*(?P<{c}>[^()]*?)\s*\))?"
_PATTERN = re.compile(
    r"^\s*" + _TERM.format(m="metric", c="cls") + r"\s*(?P<op>>=|<=|=>|=<|>|<|==?)\s*(?P<value>[^\s<>=]+)"
    r"(?:\s+(?P<direction>maximi[sz]e|minimi[sz]e)\s+" + _TERM.format(m="objective", c="objective_cls") + r")?\s*$",
    re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """A parsed operating-point target.

    Attributes:
        metric: Constrained metric: "precision", "recall" or "fpr".
        cls: Class the constraint (and the threshold) applies to.
        op: ">=" (precision, recall) or "<=" (fpr).
        value: Required value in [0, 1].
        objective_metric: Metric optimised among thresholds meeting the constraint.
        objective_cls: Class of the objective metric.
    """

    metric: str
    cls: str
    op: str
    value: float
    objective_metric: str
    objective_cls: str

    @property
    def maximize(self) -> bool:
        """True when the objective is maximised (precision, recall), False when minimised (fpr)."""
        return self.objective_metric != "fpr"

    def satisfied(self, value: float) -> bool:
        """Whether a measured value of the constrained metric meets the target."""
        return value >= self.value if self.op == ">=" else value <= self.value

    def __str__(self) -> str:
        direction = "maximize" if self.maximize else "minimize"
        return (f"{self.metric}({self.cls}){self.op}{self.value:g} "
                f"{direction} {self.objective_metric}({self.objective_cls})")


def parse_target(text: str, classes: Sequence[str]) -> Target:
    """Parse a target string (syntax in the module docstring) against the class names.

    Args:
        text: e.g. "precision(good)>=0.90".
        classes: Class names `[K]`; a class may be left out only when K == 2 (it is then classes[1]).

    Raises:
        ValueError: Malformed text, unknown metric/class, wrong comparison or value outside [0, 1];
            the message shows valid examples.
    """
    if not isinstance(text, str):
        raise TypeError(f"target: expected a string such as 'precision(good)>=0.9', got {type(text).__name__}")
    match = _PATTERN.match(text)
    if match is None:
        raise _syntax_error(text, "could not read it")
    metric = _metric(match["metric"], text)
    cls = _class_name(match["cls"], classes, text)
    op = _op(match["op"], metric, text)
    value = _value(match["value"], text)
    objective, objective_cls = _objective(match, metric, cls, classes, text)
    return Target(metric, cls, op, value, objective, objective_cls)


def _metric(name: str, text: str) -> str:
    metric = ALIASES.get(name.lower(), name.lower())
    if metric not in METRIC_OPS:
        raise _syntax_error(text, f"unknown metric {name!r}; expected one of precision, recall, tpr, fpr")
    return metric


def _class_name(name: str | None, classes: Sequence[str], text: str) -> str:
    names = [str(c) for c in classes]
    if name is None or name == "":
        if len(names) != 2:
            raise _syntax_error(text, f"name the class, e.g. precision({names[0] if names else 'good'})>=0.9 "
                                      f"(it can be left out only for 2 classes); classes: {names}")
        return names[1]
    if name not in names:
        raise ValueError(f"target {text!r}: unknown class {name!r}; expected one of {names}")
    return name


def _op(op: str, metric: str, text: str) -> str:
    op = {"=>": ">=", "=<": "<="}.get(op, op)
    if op != METRIC_OPS[metric]:
        raise _syntax_error(text, f"{metric} takes '{METRIC_OPS[metric]}', got {op!r}")
    return op


def _value(raw: str, text: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise _syntax_error(text, f"{raw!r} is not a number") from None
    if not 0 <= value <= 1:
        raise _syntax_error(text, f"the value must be in [0, 1], got {value:g} (write 0.9, not 90)")
    return value


def _objective(match: re.Match, metric: str, cls: str, classes: Sequence[str], text: str) -> tuple[str, str]:
    if match["direction"] is None:
        return DEFAULT_OBJECTIVE[metric], cls
    objective = _metric(match["objective"], text)
    maximize = match["direction"].lower().startswith("maxim")
    if maximize != (objective != "fpr"):
        wanted = "minimize fpr" if objective == "fpr" else f"maximize {objective}"
        raise _syntax_error(text, f"the objective must be '{wanted}'")
    objective_cls = cls if match["objective_cls"] in (None, "") else _class_name(match["objective_cls"], classes, text)
    return objective, objective_cls


def _syntax_error(text: str, reason: str) -> ValueError:
    return ValueError(f"target {text!r}: {reason}. Valid targets look like: {EXAMPLES}")
