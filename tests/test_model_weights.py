"""`build_with_weights`: a model built straight into its saved weights, as build-then-load gives it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from winnow.models.registry import create_model
from winnow.models.weights import build_with_weights
from winnow.training.checkpoint import load_checkpoint, owned_tensors


def tiny() -> nn.Module:
    return create_model("test_resnet", num_classes=3, in_chans=1)


class WithDerivedTensors(nn.Module):
    """A layer whose constructor computes tensors that no state dict holds."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.register_buffer("scale", torch.full((2,), 3.0), persistent=False)
        self.offset = torch.arange(2.0)  # a plain attribute

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.scale + self.offset


def test_the_weights_become_the_model_without_a_copy_and_give_the_same_outputs():
    weights = tiny().eval().state_dict()
    model = build_with_weights(tiny, weights).eval()
    assert all(model.state_dict()[name].data_ptr() == tensor.data_ptr() for name, tensor in weights.items())
    assert all(p.requires_grad for p in model.parameters())
    reference = tiny()
    reference.load_state_dict(weights)  # still an ordinary copy: the adoption left the caller's dict as it was
    assert reference.state_dict()["fc.weight"].data_ptr() != weights["fc.weight"].data_ptr()
    images = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(images), reference.eval()(images))


def test_models_it_cannot_build_so_are_built_and_loaded_the_ordinary_way():
    weights = WithDerivedTensors().state_dict()
    model = build_with_weights(WithDerivedTensors, weights)
    assert torch.equal(model.scale, torch.full((2,), 3.0)) and torch.equal(model.offset, torch.arange(2.0))
    assert torch.equal(model.linear.weight, weights["linear.weight"])
    assert model.linear.weight.data_ptr() != weights["linear.weight"].data_ptr()
    doubles = {name: tensor.double() for name, tensor in tiny().state_dict().items()}
    assert all(t.dtype == torch.float32 for t in build_with_weights(tiny, doubles).parameters())  # cast, as a load


def test_weights_of_another_model_are_refused_as_load_state_dict_refuses_them():
    weights = create_model("test_resnet", num_classes=5, in_chans=1).state_dict()
    with pytest.raises(RuntimeError, match="size mismatch for"):
        build_with_weights(tiny, weights)
    with pytest.raises(RuntimeError, match="Missing key"):
        build_with_weights(tiny, {name: t for name, t in weights.items() if "fc" not in name})


def test_mapped_checkpoint_weights_are_copied_into_memory_of_their_own(tmp_path):
    model = tiny()
    path = tmp_path / "best.pt"
    torch.save({"model": model.state_dict(), "optimizer": {"state": torch.zeros(1000)}}, path)
    mapped = load_checkpoint(path, mmap=True)["model"]
    owned = owned_tensors(mapped)
    assert owned._metadata == mapped._metadata and list(owned) == list(mapped)
    for name, tensor in owned.items():
        assert torch.equal(tensor, model.state_dict()[name]) and tensor.stride() == mapped[name].stride()
        assert tensor.untyped_storage().data_ptr() != mapped[name].untyped_storage().data_ptr()
    legacy = tmp_path / "legacy.pt"
    torch.save({"model": model.state_dict()}, legacy, _use_new_zipfile_serialization=False)
    assert set(load_checkpoint(legacy, mmap=True)["model"]) == set(owned)  # read whole: no mapping for old files
