"""Building a model straight into saved weights, skipping the random initialisation they overwrite.

`build_with_weights(build, weights)` gives what `model = build(); model.load_state_dict(weights)` gives,
but builds the module on the meta device (no memory, no initialiser runs) and adopts the weights'
tensors as its own (`load_state_dict(assign=True)`) instead of copying them: reading a resnet18 checkpoint
into a model took 0.07 s instead of 0.23 s (best of 4 on 2 shared CPU cores), most of it the read, and a
ViT-Tiny was built in 0.08 s instead of 1.55 s. A model that cannot be built so, or whose weights would
need a cast, a new layout or a tensor they do not hold (a non-persistent buffer such as Swin's relative
position index), is built and loaded the ordinary way.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable, Mapping
from itertools import chain

import torch
from torch import nn


def build_with_weights(build: Callable[[], nn.Module], weights: Mapping[str, torch.Tensor]) -> nn.Module:
    """`build()` holding `weights` (its complete state dict); the weights' tensors become the model's.

    Args:
        build: Makes the module (it may run on the meta device).
        weights: The state dict to load, on the CPU; it must not be used for anything else afterwards.

    Raises:
        RuntimeError: The weights do not fit the model (as `load_state_dict` says).
    """
    model = _adopting(build, weights)
    if model is None:
        model = build()
        model.load_state_dict(weights)
    return model


def _adopting(build: Callable[[], nn.Module], weights: Mapping[str, torch.Tensor]) -> nn.Module | None:
    """The model built on the meta device with `weights` adopted, or None where that would differ from a copy."""
    try:
        with torch.device("meta"):
            model = build()
    except (RuntimeError, NotImplementedError, TypeError):  # reads tensor values: .item(), .tolist(), .numpy()
        return None  # (a genuine error in `build` comes back from the ordinary build)
    expected = model.state_dict()
    if expected.keys() != weights.keys() or not all(_adoptable(weights[k], v) for k, v in expected.items()):
        return None  # the ordinary load casts, lays out, or reports the mismatch in its own words
    model.load_state_dict(_own_metadata(weights), assign=True)
    return None if _holds_meta(model) else model


def _own_metadata(weights: Mapping[str, torch.Tensor]) -> OrderedDict:
    """A shallow copy of `weights` with its own `_metadata`, where `load_state_dict(assign=True)` notes the
    assignment: on the caller's dict the note would make a later ordinary load assign too (torch 2.x)."""
    copied = OrderedDict(weights)
    metadata = getattr(weights, "_metadata", None)
    if metadata is not None:
        copied._metadata = copy.deepcopy(metadata)
    return copied


def _adoptable(saved: object, expected: object) -> bool:
    if not isinstance(expected, torch.Tensor):
        return False  # extra state: let the module's own loader read it
    return (isinstance(saved, torch.Tensor) and saved.device.type == "cpu" and saved.dtype == expected.dtype
            and saved.shape == expected.shape and saved.is_contiguous())


def _holds_meta(model: nn.Module) -> bool:
    """True when a tensor the weights did not provide is still on the meta device (buffer or plain attribute)."""
    attributes = (value for module in model.modules() for value in vars(module).values())
    tensors = chain(model.parameters(), model.buffers(), attributes)
    return any(isinstance(t, torch.Tensor) and t.is_meta for t in tensors)
