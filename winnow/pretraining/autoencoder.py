"""The autoencoder method: a timm encoder's feature map, a light decoder back to the image, MSE loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from winnow.data.transforms import eval_transform
from winnow.pretraining.views import RandomRot90

DEFAULTS = {"decoder_width": 128}  # channels of the decoder's first block (halved at each upsampling, >= 16)


class Decoder(nn.Module):
    """`[B, F, h, w]` features -> `[B, C, S, S]`: `steps` x2 upsampling conv blocks and a 1x1 conv to C channels."""

    def __init__(self, features: int, out_chans: int, *, steps: int, width: int, out_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = features
        for step in range(steps):
            width_here = max(16, width // 2**step)
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, width_here, 3, padding=1),
                       nn.BatchNorm2d(width_here), nn.ReLU(inplace=True)]
            channels = width_here
        layers.append(nn.Conv2d(channels, out_chans, 1))
        self.body = nn.Sequential(*layers)
        self.out_size = out_size

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        image = self.body(features)
        if image.shape[-2:] != (self.out_size, self.out_size):  # feature maps of odd strides
            image = F.interpolate(image, size=(self.out_size, self.out_size), mode="bilinear", align_corners=False)
        return image


def feature_map_shape(encoder: nn.Module, in_chans: int, img_size: int, *, name: str) -> tuple[int, int]:
    """`(F, h)` of the encoder's `forward_features` on one `[1, C, S, S]` image.

    Raises:
        ValueError: The features are not a `[B, F, h, w]` map (a transformer's tokens...).
    """
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        features = encoder.forward_features(torch.zeros(1, in_chans, img_size, img_size))
    encoder.train(was_training)
    if features.ndim != 4:
        raise ValueError(f"pretrain_method autoencoder: model {name!r} gives features of shape {tuple(features.shape)}, "
                         "not a [B, C, h, w] feature map the decoder can upsample; use a CNN model (resnet18...) "
                         "or --method simclr / byol")
    return int(features.shape[1]), int(features.shape[-1])


class AutoEncoder(nn.Module):
    """Encoder + decoder; `forward(x [B, C, S, S])` gives `(reconstruction, x)`, both `[B, C, S, S]`."""

    def __init__(self, encoder: nn.Module, *, in_chans: int, img_size: int, params: dict, name: str) -> None:
        super().__init__()
        self.encoder = encoder
        features, height = feature_map_shape(encoder, in_chans, img_size, name=name)
        steps = max(1, round(math.log2(img_size / height)))
        self.decoder = Decoder(features, in_chans, steps=steps, width=int(params["decoder_width"]), out_size=img_size)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(self.encoder.forward_features(images)), images

    def embed_and_reconstruct(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`[B, F]` pooled encoder features (`forward_head(pre_logits=True)`, as a classifier's embedding) and the
        `[B, C, S, S]` reconstruction, from one pass of the encoder."""
        features = self.encoder.forward_features(images)
        return self.encoder.forward_head(features, pre_logits=True), self.decoder(features)

    def set_epoch(self, epoch: int, epochs: int) -> None:
        """Nothing changes with the epoch (BYOL's momentum does)."""


class ReconstructionLoss(nn.Module):
    """Mean squared error between the reconstruction and the normalised input (targets are unused)."""

    def forward(self, outputs: tuple[torch.Tensor, torch.Tensor], targets=None) -> torch.Tensor:
        reconstruction, images = outputs
        return F.mse_loss(reconstruction.float(), images.float())


def per_image_errors(outputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """`[B]` mean squared error of each image's reconstruction."""
    reconstruction, images = outputs
    return (reconstruction.float() - images.float()).pow(2).mean(dim=(1, 2, 3))


def train_transform(mean: list[float], std: list[float], config, params: dict) -> v2.Compose:
    """Flips and 90-degree turns (input and target are the same image), then normalisation."""
    return v2.Compose([v2.RandomHorizontalFlip(config.hflip), v2.RandomVerticalFlip(config.vflip), RandomRot90(),
                       v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


def val_transform(mean: list[float], std: list[float], config, params: dict) -> v2.Compose:
    return eval_transform(mean, std)
