"""winnow's model families (bilinear, cbam, gem) and the small stem: contract and reference tests."""

from __future__ import annotations

import pytest
import timm
import torch

from winnow.models.families import (BilinearPool, GeneralizedMeanPool2d, apply_small_stem, apply_stem,
                                    bilinear_pool, pretrained_target)
from winnow.models.pretrained import load_pretrained
from winnow.models.registry import FAMILIES, check_model_name, create_model

BACKBONES = ["test_resnet", "test_efficientnet", "test_convnext", "resnet18"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_family_contract(family, backbone, in_chans):
    model = FAMILIES[family](backbone, num_classes=4, in_chans=in_chans, drop_rate=0.2)
    images = torch.randn(2, in_chans, 32, 32)
    logits = model(images)
    assert logits.shape == (2, 4) and model.num_classes == 4
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    features = model.forward_features(images)
    assert features.ndim == 4 and features.shape[0] == 2
    assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)
    assert model.get_classifier() is model.head.fc
    model.reset_classifier(7)
    assert model(images).shape == (2, 7) and model.num_classes == 7
    model.reset_classifier(0)
    assert model(images).shape == (2, model.num_features)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_pretrained_cfg_points_into_the_model(family):
    model = FAMILIES[family]("resnet18", num_classes=3, in_chans=1)
    cfg = model.pretrained_cfg
    assert cfg["architecture"] == f"{family}:resnet18"
    modules = dict(model.named_modules())
    assert modules[cfg["first_conv"]] is model.backbone.conv1
    assert modules[cfg["classifier"]] is model.get_classifier()
    assert cfg["mean"] == timm.create_model("resnet18").pretrained_cfg["mean"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_state_dict_keeps_timm_backbone_keys(family, tmp_path):
    timm_model = timm.create_model("test_resnet", num_classes=10)
    path = tmp_path / "weights.pth"
    torch.save(timm_model.state_dict(), path)
    model = create_model(f"{family}:test_resnet", num_classes=3, in_chans=1)
    trunk_keys = {k.removeprefix("backbone.") for k in model.state_dict() if k.startswith("backbone.")}
    assert trunk_keys == set(timm_model.state_dict()) - {"fc.weight", "fc.bias"}
    load_pretrained(pretrained_target(model), str(path), log=lambda _: None)
    torch.testing.assert_close(model.backbone.layer1[0].conv1.weight, timm_model.layer1[0].conv1.weight)


def test_bilinear_pool_matches_naive_loop():
    x = torch.randn(3, 5, 4, 6)
    expected = []
    for sample in x:
        vectors = sample.flatten(1).T  # [N, C]
        gram = sum(torch.outer(v, v) for v in vectors) / len(vectors)
        z = torch.sign(gram) * torch.sqrt(gram.abs() + 1e-8)
        expected.append(z.flatten() / z.norm())
    torch.testing.assert_close(bilinear_pool(x, eps=1e-8), torch.stack(expected))
    pooled = BilinearPool(5, reduce_dim=None)(x)
    torch.testing.assert_close(pooled, torch.stack(expected))
    assert BilinearPool(5, reduce_dim=3)(x).shape == (3, 9)


def test_bilinear_reduce_dim_sets_embedding_size():
    model = create_model("bilinear:resnet18", num_classes=2, in_chans=3)
    assert model.num_features == 128 * 128
    small = FAMILIES["bilinear"]("resnet18", num_classes=2, in_chans=3, reduce_dim=16)
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 2) and small.num_features == 256
    with pytest.raises(ValueError, match="reduce_dim must be None or a positive integer, got 0"):
        FAMILIES["bilinear"]("resnet18", num_classes=2, in_chans=3, reduce_dim=0)


def test_gem_interpolates_between_average_and_max_pooling():
    x = torch.rand(2, 3, 5, 5) + 0.1
    torch.testing.assert_close(GeneralizedMeanPool2d(p=1.0)(x), x.mean(dim=(2, 3)))
    near_max = GeneralizedMeanPool2d(p=200.0)(x)
    torch.testing.assert_close(near_max, x.amax(dim=(2, 3)), atol=0.02, rtol=0.0)
    assert (near_max <= x.amax(dim=(2, 3)) + 1e-6).all()


def test_gem_p_is_learnable_and_starts_at_three():
    model = create_model("gem:test_resnet", num_classes=3, in_chans=1)
    assert model.head.pool.p.item() == pytest.approx(3.0) and model.head.pool.p.requires_grad
    model(torch.randn(2, 1, 32, 32)).sum().backward()
    assert model.head.pool.p.grad is not None
    with pytest.raises(ValueError, match="p must be a number > 0, got 0.0"):
        GeneralizedMeanPool2d(p=0.0)


def test_cbam_attention_keeps_shape():
    model = create_model("cbam:resnet18", num_classes=3, in_chans=3)
    features = torch.rand(2, 512, 3, 5)
    assert model.attention(features).shape == features.shape
    assert type(model.attention).__name__ == "CbamModule"


@pytest.mark.parametrize("name", ["resnet18", "test_resnet", "gem:resnet18"])
def test_small_stem_keeps_more_resolution(name):
    images = torch.randn(2, 3, 32, 32)
    default = create_model(name, num_classes=3, in_chans=3)
    small = apply_small_stem(create_model(name, num_classes=3, in_chans=3))
    assert default.forward_features(images).shape[-2:] == (1, 1)
    assert small.forward_features(images).shape[-2:] == (4, 4)
    assert small(images).shape == (2, 3)
    assert pretrained_target(small).feature_info[-1]["reduction"] == 8


def test_small_stem_keeps_input_channels_and_deep_stem_weights():
    plain = apply_small_stem(create_model("resnet18", num_classes=3, in_chans=1))
    assert plain.conv1.kernel_size == (3, 3) and plain.conv1.stride == (1, 1)
    assert (plain.conv1.in_channels, plain.conv1.out_channels) == (1, 64)
    deep = create_model("resnet10t", num_classes=3, in_chans=1)
    before = {k: v.clone() for k, v in deep.state_dict().items()}
    apply_small_stem(deep)
    assert deep.conv1[0].stride == (1, 1) and set(deep.state_dict()) == set(before)
    assert deep(torch.randn(2, 1, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("name", ["test_efficientnet", "cbam:test_convnext"])
def test_small_stem_rejects_unsupported_models(name):
    model = create_model(name, num_classes=3, in_chans=3)
    with pytest.raises(ValueError, match="stem='small' is not supported.*ResNet"):
        apply_small_stem(model)


def test_apply_stem_by_name():
    model = create_model("test_resnet", num_classes=3, in_chans=1)
    assert apply_stem(model, None) is model and apply_stem(model, "default") is model
    with pytest.raises(ValueError, match=r"stem must be None or one of \['default', 'small'\], got 'tiny'"):
        apply_stem(model, "tiny")
    assert apply_stem(model, "small").maxpool.__class__.__name__ == "Identity"


def test_registry_builds_family_by_name():
    model = create_model("gem:test_resnet", num_classes=3, in_chans=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    assert model.backbone.conv1[0].in_channels == 1


def test_bad_family_names_raise_listing_families():
    with pytest.raises(ValueError, match="unknown model family 'nope'.*bilinear, cbam, gem"):
        check_model_name("nope:resnet18")
    with pytest.raises(ValueError, match="unknown model 'resnet81'"):
        check_model_name("gem:resnet81")
    with pytest.raises(ValueError, match="unknown timm backbone 'resnet81'"):
        FAMILIES["cbam"]("resnet81", num_classes=3, in_chans=3)


def test_token_backbones_raise_a_clear_error():
    model = create_model("gem:test_vit", num_classes=3, in_chans=3)
    images = torch.randn(1, 3, *model.pretrained_cfg["input_size"][1:])
    with pytest.raises(ValueError, match=r"needs a \[B, \d+, H, W\] feature map"):
        model(images)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_classes": -1}, "num_classes must be an integer >= 0, got -1"),
    ({"drop_rate": 1.5}, r"drop_rate must be a number in \[0, 1\), got 1.5"),
    ({"in_chans": 0}, "in_chans must be a positive integer, got 0"),
])
def test_bad_arguments_raise(kwargs, message):
    args = {"num_classes": 3, "in_chans": 3, "drop_rate": 0.0} | kwargs
    with pytest.raises(ValueError, match=message):
        FAMILIES["gem"]("test_resnet", **args)


def test_reset_classifier_rejects_global_pool():
    model = create_model("gem:test_resnet", num_classes=3, in_chans=1)
    with pytest.raises(ValueError, match="pooling is fixed by the family"):
        model.reset_classifier(5, "avg")


def test_pooling_runs_in_float32_under_autocast():
    model = create_model("bilinear:test_resnet", num_classes=3, in_chans=1).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        embedding = model.forward_head(model.forward_features(torch.randn(2, 1, 32, 32)), pre_logits=True)
    assert embedding.dtype == torch.float32
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(2))
