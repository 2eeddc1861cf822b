"""Operating points: target syntax, threshold tuning with bootstrap intervals, decision rules."""

from winnow.operating.targets import Target, parse_target
from winnow.operating.tuner import PerClassThresholds, RuleStrategy, ThresholdTuner, decision_from_dict

__all__ = ["PerClassThresholds", "RuleStrategy", "Target", "ThresholdTuner", "decision_from_dict", "parse_target"]
