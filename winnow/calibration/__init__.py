"""Post-hoc calibration of classifier logits."""

from winnow.calibration.scaling import TemperatureScaling, VectorScaling, logits_from_probabilities

__all__ = ["TemperatureScaling", "VectorScaling", "logits_from_probabilities"]
