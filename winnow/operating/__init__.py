"""Operating points: target syntax, threshold tuning with bootstrap intervals, decision rules."""

from winnow.operating.targets import Target, parse_target
from winnow.operating.decisions import PerClassThresholds, RuleStrategy, decision_from_dict
from winnow.operating.label_thresholds import LabelThresholds
from winnow.operating.tuner import ThresholdTuner

__all__ = ["LabelThresholds", "PerClassThresholds", "RuleStrategy", "Target", "ThresholdTuner", "decision_from_dict", "parse_target"]
