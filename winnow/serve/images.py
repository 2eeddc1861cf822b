"""Decode and validate one uploaded image, before it reaches a batch.

The bytes go through the same checks (empty, not an image, decompression bomb: refused before decoding)
and the same decode + preprocessing + normalisation as offline prediction (`ImageDataset`), in memory,
so a served prediction equals `winnow predict` on the same file. Each failure is a `BadImage` with its HTTP status
and reason: it fails its own request only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from winnow.data.imageio import ImageReadError, read_bytes
from winnow.data.preprocess import Preprocess

TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
STATUS_OF_REASON = {"too_large": 413}  # the others (not_an_image, corrupt, empty, unsupported, mode): 422


@dataclass
class BadImage(Exception):
    """An uploaded image that cannot be scored: `status` 413 (too large) or 422, `reason` a short tag."""

    index: int
    reason: str
    detail: str

    @property
    def status(self) -> int:
        return STATUS_OF_REASON.get(self.reason, 422)

    def __str__(self) -> str:
        return f"image {self.index}: {self.reason}: {self.detail}"


def decode_image(data: bytes, index: int, *, preprocess: Preprocess, transform: Callable[[torch.Tensor], torch.Tensor],
                 max_pixels: int) -> torch.Tensor:
    """Uploaded bytes -> the model's input `[C, S, S]` float32, decoded in memory.

    Args:
        data: The file's bytes.
        index: Position of the image in its request (named in the error).
        preprocess, transform: The run's preprocessing and its normalising transform (those of its
            `ImageDataset`; the same steps in the same order, so the input is the one `predict` builds).
        max_pixels: Larger images are refused (413) before they are decoded.

    Raises:
        BadImage: Empty, not an image, truncated, corrupt, too large or of an unusable mode.
    """
    if not data:
        raise BadImage(index, "empty", "the upload has zero bytes")
    # TIFFs that PIL cannot read fall back to tifffile by suffix, as for files on disk
    name = f"image {index}" + (".tif" if data[:4] in TIFF_MAGIC else "")
    try:
        pixels = read_bytes(data, name=name, in_chans=preprocess.in_chans, fill=preprocess.fill, max_pixels=max_pixels)
    except ImageReadError as error:
        # PIL says "image file is truncated" for data cut after a valid header: name it so for the client
        reason = "truncated" if error.reason == "corrupt" and "truncated" in error.detail else error.reason
        raise BadImage(index, reason, error.detail) from error
    except ValueError as error:  # to_channels: a channel count the run cannot take
        raise BadImage(index, "wrong_mode", str(error)) from error
    return transform(torch.from_numpy(preprocess(pixels)).permute(2, 0, 1))
