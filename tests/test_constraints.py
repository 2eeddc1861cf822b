"""The shared validation vocabulary (winnow.constraints) and the Config table built on it."""

from __future__ import annotations

import math
from dataclasses import fields
from numbers import Integral, Real

import pytest

from winnow.config import PARAMETER_CONSTRAINTS, PARAMETER_HINTS, Config, field_names, from_dict, validate
from winnow.constraints import (InvalidParameterError, Interval, Options, check_known_keys, check_value, describe,
                                validate_params)

POSITIVE_INT = Interval(Integral, 1, None, closed="left")
NUMBER = Interval(Real, None, None)


def test_the_error_is_both_a_value_error_and_a_type_error():
    assert issubclass(InvalidParameterError, ValueError) and issubclass(InvalidParameterError, TypeError)
    with pytest.raises(ValueError):
        check_value("epochs", "3", [POSITIVE_INT])
    with pytest.raises(TypeError):
        check_value("epochs", "3", [POSITIVE_INT])


def test_a_valid_value_is_returned_unchanged():
    assert check_value("epochs", 3, [POSITIVE_INT]) == 3
    assert check_value("lr", 1, [Interval(Real, 0, None, closed="neither")]) == 1  # Real takes ints
    assert check_value("grad_clip", None, [None, Interval(Real, 0, None, closed="neither")]) is None


@pytest.mark.parametrize("constraint", [POSITIVE_INT, Interval(Integral, 0, None, closed="left"), NUMBER,
                                        Interval(Real, 0, 1, closed="both")])
@pytest.mark.parametrize("flag", [True, False])
def test_bools_are_not_numbers(constraint, flag):
    assert not constraint.is_satisfied_by(flag)
    with pytest.raises(InvalidParameterError, match=f"got {flag}"):
        check_value("x", flag, [constraint])


def test_true_is_not_a_positive_integer():
    with pytest.raises(InvalidParameterError, match="epochs must be a positive integer, got True"):
        check_value("epochs", True, [POSITIVE_INT])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_real_requires_finite_values(value):
    with pytest.raises(InvalidParameterError, match=r"lr must be a number > 0, got (nan|inf|-inf)$"):
        check_value("lr", value, [Interval(Real, 0, None, closed="neither")])
    assert not NUMBER.is_satisfied_by(value)


def test_integral_refuses_floats_and_strings():
    for value in (2.0, 2.5, "2"):
        assert not POSITIVE_INT.is_satisfied_by(value)


@pytest.mark.parametrize("closed, inside, outside", [
    ("both", [0, 0.5, 1], [-0.1, 1.1]),
    ("left", [0, 0.5], [1]),
    ("right", [0.5, 1], [0]),
    ("neither", [0.5], [0, 1]),
])
def test_interval_bounds_follow_closed(closed, inside, outside):
    interval = Interval(Real, 0, 1, closed=closed)
    assert all(interval.is_satisfied_by(v) for v in inside)
    assert not any(interval.is_satisfied_by(v) for v in outside)


@pytest.mark.parametrize("constraint, words", [
    (POSITIVE_INT, "a positive integer"),
    (Interval(Integral, 0, None, closed="neither"), "a positive integer"),
    (Interval(Integral, 0, None, closed="left"), "an integer >= 0"),
    (Interval(Integral, 0, 255), "an integer in [0, 255]"),
    (Interval(Integral, None, None), "an integer"),
    (Interval(Real, 0, 1, closed="left"), "a number in [0, 1)"),
    (Interval(Real, 0.0, 1.0, closed="neither"), "a number in (0, 1)"),
    (Interval(Real, 0, None, closed="neither"), "a number > 0"),
    (Interval(Real, None, 5, closed="right"), "a number <= 5"),
    (Interval(Real, 1e-8, None, closed="left"), "a number >= 1e-08"),
    (NUMBER, "a finite number"),
    (Options(("sgd", "adamw")), "one of ['sgd', 'adamw']"),
])
def test_descriptions(constraint, words):
    assert constraint.description == words


def test_several_constraints_read_as_alternatives():
    assert describe([None, POSITIVE_INT]) == "None or a positive integer"
    assert describe([None, str, Options((1, 3))]) == "None, a string or one of [1, 3]"


def test_none_is_allowed_only_when_listed():
    with pytest.raises(InvalidParameterError, match="save_every must be a positive integer, got None"):
        check_value("save_every", None, [POSITIVE_INT])
    assert check_value("save_every", None, [None, POSITIVE_INT]) is None


def test_options_message_lists_the_choices_and_the_hint():
    with pytest.raises(InvalidParameterError,
                       match=r"^optimizer must be one of \['sgd', 'adamw'\], got 'adam'; try 'adamw'$"):
        check_value("optimizer", "adam", [Options(("sgd", "adamw"))], hint="try 'adamw'")


def test_options_take_any_hashable_values_but_not_bools_for_numbers():
    channels = Options(("auto", 1, 3))
    assert channels.is_satisfied_by("auto") and channels.is_satisfied_by(3)
    assert not channels.is_satisfied_by(True) and not channels.is_satisfied_by(2)
    assert not channels.is_satisfied_by(["auto"])
    assert Options((True, False)).is_satisfied_by(True) and not Options((True, False)).is_satisfied_by(1)


def test_types_mean_isinstance_and_bool_means_exactly_bool():
    assert check_value("name", "run", [str]) == "run"
    assert check_value("ema", False, [bool]) is False
    with pytest.raises(InvalidParameterError, match=r"ema must be a boolean \(True or False\), got 1"):
        check_value("ema", 1, [bool])
    with pytest.raises(InvalidParameterError, match="tasks must be a list, got 'x'"):
        check_value("tasks", "x", [list])


def test_a_long_bad_value_is_shortened():
    with pytest.raises(InvalidParameterError) as error:
        check_value("name", list(range(1000)), [str])
    assert len(str(error.value)) < 200 and str(error.value).endswith("...")


def test_bad_constraints_are_programming_errors():
    with pytest.raises(TypeError, match="Interval kind"):
        Interval(float, 0, 1)
    with pytest.raises(ValueError, match="closed"):
        Interval(Real, 0, 1, closed="open")
    with pytest.raises(ValueError, match="low must be <= high"):
        Interval(Real, 1, 0)
    with pytest.raises(ValueError, match="at least one"):
        Options(())
    with pytest.raises(TypeError, match="a constraint must be"):
        check_value("x", 1, ["positive"])


def test_validate_params_checks_the_named_entries_and_prefixes_where():
    table = {"epochs": [POSITIVE_INT], "lr": [Interval(Real, 0, None, closed="neither")]}
    validate_params({"epochs": 3, "other": object()}, table)  # lr absent, other not in the table
    with pytest.raises(InvalidParameterError, match=r"^run.yaml: lr must be a number > 0, got 0; lr is a step size$"):
        validate_params({"epochs": 3, "lr": 0}, table, where="run.yaml", hints={"lr": "lr is a step size"})


def test_check_known_keys():
    assert check_known_keys("loss_params", None, ["gamma"]) == {}
    assert check_known_keys("loss_params", {"gamma": 2}, ["gamma", "alpha"]) == {"gamma": 2}
    with pytest.raises(InvalidParameterError,
                       match=r"^unknown key\(s\) \['gama'\] in loss_params; valid keys: alpha, gamma$"):
        check_known_keys("loss_params", {"gama": 2}, ["gamma", "alpha"])
    with pytest.raises(InvalidParameterError, match=r"valid keys: none \(leave it empty\)"):
        check_known_keys("sampler_params", {"m": 2}, [])
    with pytest.raises(InvalidParameterError, match=r"^loss_params must be a mapping, got \[2.0\]; write it like"):
        check_known_keys("loss_params", [2.0], ["gamma"], hint="write it like {gamma: 2.0}")


# The Config table


@pytest.mark.parametrize("name", ["epochs", "batch_size"])
def test_config_refuses_true_as_a_count(name):
    with pytest.raises(InvalidParameterError, match=f"{name} must be a positive integer, got True"):
        Config(**{name: True})


def test_every_table_entry_is_a_config_field():
    assert set(PARAMETER_CONSTRAINTS) <= set(field_names())
    assert set(PARAMETER_HINTS) <= set(PARAMETER_CONSTRAINTS)


def test_every_field_but_the_data_lists_has_a_table_entry():
    assert set(field_names()) - set(PARAMETER_CONSTRAINTS) == {"data", "val", "test"}


def test_the_defaults_validate():
    validate(Config())
    for f in fields(Config):
        default = f.default_factory() if callable(f.default_factory) else f.default
        check_value(f.name, default, PARAMETER_CONSTRAINTS.get(f.name, [list]))


@pytest.mark.parametrize("values, message", [
    ({"workers": -1}, r"workers must be one of \['auto'\] or an integer >= 0, got -1"),
    ({"seed": 1.5}, "seed must be an integer >= 0, got 1.5"),
    ({"split_seed": "0"}, "split_seed must be None or an integer >= 0, got '0'"),
    ({"ema_decay": 1.0}, r"ema_decay must be a number in \(0, 1\), got 1.0"),
    ({"lr": 0}, "lr must be a number > 0, got 0"),
    ({"lr": math.nan}, "lr must be a number > 0, got nan"),
    ({"weight_decay": -0.1}, "weight_decay must be a number >= 0, got -0.1"),
    ({"grad_clip": 0}, "grad_clip must be None or a number > 0, got 0"),
    ({"warmup_epochs": -1}, "warmup_epochs must be an integer >= 0, got -1"),
    ({"unfreeze_at": 2.0}, "unfreeze_at must be None or an integer >= 0, got 2.0"),
    ({"save_every": 0}, "save_every must be None or a positive integer, got 0"),
    ({"cache_memory_mb": 0}, "cache_memory_mb must be a positive integer, got 0"),
    ({"drop_rate": 1}, r"drop_rate must be a number in \[0, 1\), got 1"),
    ({"hflip": 1.5}, r"hflip must be a number in \[0, 1\], got 1.5"),
    ({"mixup": -1}, r"mixup must be a number >= 0, got -1; it is the Beta distribution's alpha"),
    ({"threshold": 1}, r"threshold must be a number in \(0, 1\), got 1"),
    ({"ema": "yes"}, r"ema must be a boolean \(True or False\), got 'yes'"),
    ({"cache": 1}, r"cache must be None or a boolean \(True or False\), got 1"),
    ({"in_chans": True}, r"in_chans must be one of \['auto', 1, 3\], got True"),
])
def test_config_numeric_and_flag_fields_are_checked(values, message):
    with pytest.raises(InvalidParameterError, match=message):
        from_dict(values)


def test_floats_given_as_ints_are_accepted():
    config = from_dict({"lr": 1, "rotate": 0, "in_chans": 3, "hflip": 1, "mixup": 0, "threshold": 0.5})
    assert (config.lr, config.rotate, config.in_chans) == (1, 0, 3)


def test_from_dict_refuses_a_non_mapping():
    with pytest.raises(InvalidParameterError, match=r"^run.yaml must be a mapping, got \['epochs'\]"):
        from_dict(["epochs"], source="run.yaml")


def _bootstrap(value):
    from winnow.operating.bootstrap import check_bootstrap_params

    check_bootstrap_params(n_bootstrap=value, confidence=0.95)


def _asymmetric_clip(value):
    from winnow.losses import create_loss

    create_loss("asymmetric", params={"clip": value}, class_counts=[5, 5])


def _task_weight(value):
    from winnow.tasks.spec import task_entries

    task_entries(Config(head="multitask", tasks=[{"name": "kind", "weight": value}]))


def _loss_epoch(value):
    from winnow.losses import create_loss

    create_loss("ce", class_counts=[5, 5]).set_epoch(value)


@pytest.mark.parametrize("check, value, message", [
    (_bootstrap, True, r"n_bootstrap must be a positive integer, got True; 1000 is a good default"),
    (_asymmetric_clip, 1.0, r"asymmetric clip must be a number in \[0, 1\), got 1.0; the paper uses 0.05"),
    (_task_weight, -1, r"tasks\[0\] \(kind\): weight must be a number >= 0, got -1"),
    (_loss_epoch, True, r"epoch must be an integer >= 0, got True; the 0-based epoch about to start"),
])
def test_checks_outside_config_speak_the_same_vocabulary(check, value, message):
    with pytest.raises(InvalidParameterError, match=message):
        check(value)
