"""Progressive resizing: the first epochs train on smaller images, which cost less, then the size rises.

With `progressive_resize: 0.5` and `progressive_resize_until: 0.75`, a 64 px run of 16 epochs trains
epoch 1 at 32 px and reaches 64 px by epoch 12 (three quarters of the epochs), rising linearly in steps
of 8 px; the last epochs, validation and test always see the full `img_size`. Batches are shrunk on the
device (antialiased bilinear) after augmentation, so the decoded cache, the samplers and every
augmentation path stay as they are. The cost of a forward and backward pass grows with the pixels:
half the side is about a quarter of the cost.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SIZE_STEP = 8  # sizes are multiples of 8 (CNN strides divide them evenly down to 1/8)


class ResizeSchedule:
    """The training image size of each epoch, and the shrinking of batches to it.

    Args:
        img_size: The full side in pixels (config `img_size`).
        start_scale: The first epoch's side as a share of `img_size`, in (0, 1].
        until: Share of the epochs after which the full size is used, in (0, 1].
        epochs: Epochs of the run.
    """

    def __init__(self, img_size: int, *, start_scale: float, until: float, epochs: int) -> None:
        if not 0 < start_scale <= 1:
            raise ValueError(f"progressive_resize must be in (0, 1] (the first epochs' share of img_size), "
                             f"got {start_scale}")
        if not 0 < until <= 1:
            raise ValueError(f"progressive_resize_until must be in (0, 1] (share of the epochs), got {until}")
        self.img_size, self.start_scale, self.until, self.epochs = img_size, start_scale, until, epochs

    def size(self, epoch: int) -> int:
        """Side in pixels for 0-based `epoch`: a multiple of 8 (at least 8), never above `img_size`."""
        # 0-based first full-size epoch; the last epoch is always at full size
        full_at = min(math.ceil(self.until * self.epochs) - 1, self.epochs - 1)
        if epoch >= full_at:
            return self.img_size
        scale = self.start_scale + (1 - self.start_scale) * epoch / full_at
        side = max(SIZE_STEP, int(round(scale * self.img_size / SIZE_STEP)) * SIZE_STEP)
        return min(side, self.img_size)

    def __call__(self, images: torch.Tensor, *, epoch: int) -> torch.Tensor:
        """`images [B, C, H, W]` (float) shrunk to the epoch's side; unchanged at full size."""
        side = self.size(epoch)
        if side >= images.shape[-1] and side >= images.shape[-2]:
            return images
        return F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)

    def sizes(self) -> list[int]:
        """The side of every epoch, for the log."""
        return [self.size(epoch) for epoch in range(self.epochs)]


def resize_schedule(config) -> ResizeSchedule | None:
    """The schedule of a config (`progressive_resize`, `progressive_resize_until`), or None when it is off."""
    if config.progressive_resize is None:
        return None
    return ResizeSchedule(config.img_size, start_scale=config.progressive_resize,
                          until=config.progressive_resize_until, epochs=config.epochs)
