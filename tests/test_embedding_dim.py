"""`embedding_dim`: the projection before the classifier, the timm interface around it, the
embeddings the losses read, and a run that reloads with it."""

from __future__ import annotations

import pytest
import torch

import winnow
from winnow.config import Config
from winnow.embeddings.extract import embed
from winnow.models.embedding import EmbeddingModel, capture_embeddings, embedding_size
from winnow.models.freezing import apply_freeze
from winnow.models.projection import ProjectedModel
from winnow.models.registry import create_model

from conftest import fast_config

IMAGES = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))


def test_projection_shapes_and_timm_interface():
    model = create_model("test_resnet", num_classes=3, in_chans=1, embedding_dim=16).eval()
    assert isinstance(model, ProjectedModel) and model.num_features == 16 and model.num_classes == 3
    features = model.forward_features(IMAGES)
    assert model.forward_head(features, pre_logits=True).shape == (2, 16)
    assert model(IMAGES).shape == (2, 3) and EmbeddingModel(model)(IMAGES).shape == (2, 16)
    assert model.get_classifier().in_features == 16 and embedding_size(model) == 16
    model.reset_classifier(5)
    assert model(IMAGES).shape == (2, 5)
    with pytest.raises(ValueError, match=r"global_pool=\.\.\.\) is not supported with embedding_dim"):
        model.reset_classifier(5, global_pool="max")


def test_projection_under_a_family_and_multitask_heads():
    family = create_model("gem:test_resnet", num_classes=3, in_chans=1, embedding_dim=8).eval()
    assert family(IMAGES).shape == (2, 3) and EmbeddingModel(family)(IMAGES).shape == (2, 8)
    multitask = create_model("test_resnet", num_classes={"a": 3, "b": 1}, in_chans=1, embedding_dim=8).eval()
    outputs = multitask(IMAGES)
    assert outputs["a"].shape == (2, 3) and outputs["b"].shape == (2, 1)
    assert EmbeddingModel(multitask)(IMAGES).shape == (2, 8)


@pytest.mark.parametrize("name, dim", [("test_resnet", None), ("gem:test_resnet", None), ("test_resnet", 12),
                                       ("cbam:test_resnet", 6)])
def test_captured_embeddings_are_the_pre_logits_of_the_same_pass(name, dim):
    model = create_model(name, num_classes=3, in_chans=1, embedding_dim=dim).eval()
    with torch.no_grad(), capture_embeddings(model) as captured:
        logits = model(IMAGES)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(IMAGES), pre_logits=True)
        torch.testing.assert_close(logits, model(IMAGES))
    torch.testing.assert_close(captured.value, expected)
    assert captured.value.shape == (2, embedding_size(model))
    assert not model.get_classifier()._forward_pre_hooks, "the hook is removed after the block"


def test_capturing_from_a_multitask_model_is_refused():
    model = create_model("test_resnet", num_classes={"a": 3, "b": 1}, in_chans=1)
    with pytest.raises(ValueError, match=r"get_classifier\(\) gives ModuleDict, not one classifier layer"):
        with capture_embeddings(model):
            pass


def test_freezing_the_backbone_keeps_the_new_projection_trainable():
    model = create_model("test_resnet", num_classes=3, in_chans=1, embedding_dim=8)
    apply_freeze(model, "backbone")
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable == {"projection.weight", "projection.bias", "fc.weight", "fc.bias"}


@pytest.mark.parametrize("value", [0, -3, 2.5, "128"])
def test_bad_embedding_dim_is_refused(value):
    with pytest.raises(ValueError, match=rf"embedding_dim must be None or a positive integer, got {value!r}; it is "
                                         r"the size of a projection"):
        Config(embedding_dim=value)


def test_zero_embedding_dim_is_refused_by_the_model_too():
    with pytest.raises(ValueError, match=r"embedding_dim must be a positive integer, got 0"):
        create_model("test_resnet", num_classes=3, in_chans=1, embedding_dim=0)


def test_run_with_embedding_dim_reloads_and_embeds_in_the_projected_space(tmp_path, image_folder):
    run = winnow.train(fast_config(tmp_path, image_folder, epochs=1, embedding_dim=8, test_fraction=0.0))
    predictor = winnow.load(run.path)
    assert isinstance(predictor.model, ProjectedModel) and predictor.model.projection.out_features == 8
    assert predictor.predict(image_folder / "bar").probabilities.shape == (12, 3)
    assert embed(run.path, "val").embeddings.shape[1] == 8
