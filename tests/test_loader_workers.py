"""`workers: auto`: loader processes from the cores and the device."""

import pytest

from winnow.config import Config, from_dict
from winnow.data.loader_workers import resolve_workers, usable_cores


@pytest.mark.parametrize("cores, cuda, expected", [
    (1, False, 0), (2, False, 0), (4, False, 0), (8, False, 2), (16, False, 4), (64, False, 4),
    (1, True, 1), (2, True, 1), (4, True, 3), (16, True, 8), (64, True, 8),
])
def test_auto_rule(cores, cuda, expected):
    assert resolve_workers("auto", cuda=cuda, cores=cores) == expected


def test_a_count_is_kept():
    assert resolve_workers(3, cuda=False, cores=2) == 3
    assert resolve_workers(0, cuda=True, cores=16) == 0


def test_auto_is_the_default_and_a_count_is_accepted():
    assert Config().workers == "auto"
    assert from_dict({"workers": 3}).workers == 3


@pytest.mark.parametrize("value", ["many", -1, 2.5])
def test_bad_values_name_the_key(value):
    with pytest.raises(ValueError, match="workers"):
        from_dict({"workers": value})


def test_bad_value_to_the_resolver():
    with pytest.raises(ValueError, match="workers: expected 'auto' or a count"):
        resolve_workers("eight", cuda=False)


def test_torchrun_shares_the_cores(monkeypatch):
    alone = usable_cores()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert usable_cores() == max(1, alone // 2)


def test_training_loaders_resolve_auto():
    from winnow.data.prepare import make_loader

    loader = make_loader(list(range(10)), Config(batch_size=4), sampler=None, pin_memory=False, drop_last=False)
    assert loader.num_workers == resolve_workers("auto", cuda=False)
