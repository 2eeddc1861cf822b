"""Precision and memory format chosen for a device."""

from __future__ import annotations

import torch

from winnow.training.device import make_accelerator, resolve_amp
from winnow.training.distributed import DistInfo

CPU = torch.device("cpu")


def test_cpu_autocast_is_off_unless_asked():
    assert resolve_amp("auto", CPU) is None and resolve_amp("off", CPU) is None
    assert resolve_amp("bf16", CPU) is torch.bfloat16


def test_channels_last_on_cpu_only_with_bf16():
    assert make_accelerator("cpu", "bf16", True, DistInfo()).channels_last
    assert not make_accelerator("cpu", "auto", True, DistInfo()).channels_last
    assert not make_accelerator("cpu", "bf16", False, DistInfo()).channels_last
