"""Per-image loss weights (manifest `weight` column): parsing and the gradient they give."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from winnow.data.sample_weights import sample_weights
from winnow.data.sources import read_manifest
from winnow.losses import create_loss
from winnow.training.engine import weight_gradients


def test_weights_scale_each_samples_loss_as_an_explicit_weighted_loss():
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    weights = torch.tensor([1.0, 0.5, 0.0, 2.0, 1.0, 0.25])
    hooked = logits.clone().requires_grad_()
    weight_gradients(hooked, weights)
    create_loss("ce", params=None, class_counts=[2, 2, 2])(hooked, targets).backward()
    explicit = logits.clone().requires_grad_()
    (F.cross_entropy(explicit, targets, reduction="none") * weights).mean().backward()
    torch.testing.assert_close(hooked.grad, explicit.grad)


def test_weight_column_is_read_and_checked(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,weight\na.png,x,0.5\na.png,y,\n")
    assert sample_weights(read_manifest(manifest)) == [0.5, 1.0]
    manifest.write_text("path,label\na.png,x\n")
    assert sample_weights(read_manifest(manifest)) is None
    manifest.write_text("path,label,weight\na.png,x,heavy\n")
    with pytest.raises(ValueError, match="m.csv, line 2: column 'weight' must be a number >= 0.*'heavy'"):
        sample_weights(read_manifest(manifest))
    manifest.write_text("path,label,weight\na.png,x,-1\n")
    with pytest.raises(ValueError, match="must be a number >= 0"):
        sample_weights(read_manifest(manifest))
