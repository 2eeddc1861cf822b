"""Contract tests over registry models: forward, backward, timm feature interface, grayscale."""

from __future__ import annotations

import pytest
import torch

from winnow.models.registry import check_model_name, create_model

CONTRACT_MODELS = ["test_resnet", "test_efficientnet", "test_convnext", "test_vit", "resnet18"]


@pytest.mark.parametrize("name", CONTRACT_MODELS)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_model_contract(name, in_chans):
    model = create_model(name, num_classes=4, in_chans=in_chans)
    images = torch.randn(2, in_chans, 32, 32)
    if name.startswith("test_vit"):
        images = torch.randn(2, in_chans, *model.pretrained_cfg["input_size"][1:])
    logits = model(images)
    assert logits.shape == (2, 4)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    features = model.forward_features(images)
    embedding = model.forward_head(features, pre_logits=True)
    assert embedding.ndim == 2 and embedding.shape[0] == 2 and embedding.shape[1] == model.num_features
    model.reset_classifier(7)
    assert model(images).shape == (2, 7)


def test_unknown_model_suggests_close_timm_names():
    with pytest.raises(ValueError, match=r"unknown model 'resnet81'.*resnet18"):
        check_model_name("resnet81")


def test_unknown_family_lists_valid_families():
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        check_model_name("nope:resnet18")
