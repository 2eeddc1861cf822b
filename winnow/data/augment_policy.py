"""How strong the training augmentation is: config `augment` and the four keys it presets.

Presets of `rotate`, `scale_jitter`, `brightness` and `contrast` (flips are `hflip` / `vflip`, on in both):

- ``standard``: 15 degrees, 0.1, 0.1, 0.1.
- ``flips``: all four 0, flips only.
- ``auto`` (default): ``standard`` when the training classes are imbalanced (`class_imbalance` >= 0.1, the
  rule that also makes `sampler: auto` pick `sqrt`, which repeats the images of rare classes many times
  per epoch), else ``flips``. On the five real sets of `bench/generalization.py` at 15 epochs, geometric
  and colour jitter cost accuracy on the balanced sets and helped on the imbalanced ones.

A key set in the config (YAML or flag) wins over the preset. The trainer resolves them once from the
training split and saves the values in the run's config.yaml.
"""

from __future__ import annotations

from typing import Any

from winnow.data.samplers import IMBALANCE_THRESHOLD, class_imbalance

STANDARD = {"rotate": 15.0, "scale_jitter": 0.1, "brightness": 0.1, "contrast": 0.1}
PRESETS = {"standard": STANDARD, "flips": {key: 0.0 for key in STANDARD}}
KEYS = tuple(STANDARD)


def preset_name(mode: str, targets: list[int], num_classes: int) -> str:
    """`mode` ("standard", "flips"), or for "auto" the preset the training targets' imbalance calls for."""
    if mode == "auto":
        return "standard" if class_imbalance(targets, num_classes) >= IMBALANCE_THRESHOLD else "flips"
    if mode not in PRESETS:
        raise ValueError(f"augment: expected auto, {' or '.join(PRESETS)}, got {mode!r}")
    return mode


def resolve_augment(config: Any, targets: list[int], num_classes: int) -> dict[str, float]:
    """Values of the four keys: the config's where set (not None), the rest from the `augment` preset.

    Args:
        config: A `winnow.config.Config`.
        targets: Class index per training image (the sampler's targets).
        num_classes: Number of classes.
    """
    preset = PRESETS[preset_name(config.augment, targets, num_classes)]
    return {key: preset[key] if getattr(config, key) is None else getattr(config, key) for key in KEYS}
