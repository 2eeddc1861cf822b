"""`augment`: presets of the four jitter keys, `auto` from the training imbalance, resolved into config.yaml."""

from __future__ import annotations

import pytest
import yaml

import winnow
from winnow.data.augment_policy import STANDARD, preset_name, resolve_augment

from conftest import fast_config, make_image_folder

BALANCED, SKEWED = [0, 1, 2] * 10, [0] * 40 + [1] * 4 + [2] * 2


def test_auto_picks_standard_on_imbalanced_and_flips_on_balanced_targets():
    assert preset_name("auto", BALANCED, 3) == "flips" and preset_name("auto", SKEWED, 3) == "standard"
    assert preset_name("standard", BALANCED, 3) == "standard"  # a named preset stays as given


def test_a_value_set_in_the_config_wins_over_the_preset(tmp_path):
    config = fast_config(tmp_path, tmp_path, rotate=30.0)
    assert resolve_augment(config, BALANCED, 3) == {"rotate": 30.0, "scale_jitter": 0.0, "brightness": 0.0,
                                                    "contrast": 0.0}
    assert resolve_augment(config.replace(augment="standard"), BALANCED, 3) == {**STANDARD, "rotate": 30.0}


def test_unknown_augment_mode_is_refused_with_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="augment"):
        fast_config(tmp_path, tmp_path, augment="strong")
    with pytest.raises(ValueError, match="augment: expected auto, standard or flips, got 'strong'"):
        preset_name("strong", BALANCED, 3)


def test_the_run_folder_saves_the_resolved_values(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=8)  # balanced classes: flips only
    run = winnow.train(fast_config(tmp_path, data, epochs=1, name="policy"))
    saved = yaml.safe_load((run.path / "config.yaml").read_text())
    assert saved["augment"] == "auto"
    assert {key: saved[key] for key in STANDARD} == {key: 0.0 for key in STANDARD}
