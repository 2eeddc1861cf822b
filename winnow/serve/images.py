"""Decode and validate one uploaded image, before it reaches a batch.

The bytes go through the same header scan (`probe`: empty, not an image, decompression bomb) and the
same decode + preprocessing + normalisation as offline prediction (`ImageDataset`), so a served
prediction equals `winnow predict` on the same file. Each failure is a `BadImage` with its HTTP status
and reason: it fails its own request only.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import torch

from winnow.data.dataset import ImageDataset
from winnow.data.imageio import ImageReadError, probe

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


def decode_image(data: bytes, index: int, *, dataset: Callable[[str], ImageDataset], max_pixels: int,
                 scratch: str) -> torch.Tensor:
    """Uploaded bytes -> the model's input `[C, S, S]` float32.

    Args:
        data: The file's bytes.
        index: Position of the image in its request (named in the error).
        dataset: Builds the run's one-image `ImageDataset` (its preprocessing and transform) for a path.
        max_pixels: Larger images are refused (413).
        scratch: Folder for the temporary file the shared decoder reads.

    Raises:
        BadImage: Empty, not an image, truncated, corrupt, too large or of an unusable mode.
    """
    if not data:
        raise BadImage(index, "empty", "the upload has zero bytes")
    # TIFFs that PIL cannot read fall back to tifffile by suffix, as for files on disk
    suffix = ".tif" if data[:4] in TIFF_MAGIC else ".img"
    handle, path = tempfile.mkstemp(suffix=suffix, dir=scratch)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        probe(path, max_pixels=max_pixels)
        return dataset(path)[0][0]
    except ImageReadError as error:
        # PIL says "image file is truncated" for data cut after a valid header: name it so for the client
        reason = "truncated" if error.reason == "corrupt" and "truncated" in error.detail else error.reason
        raise BadImage(index, reason, error.detail) from error
    except ValueError as error:  # to_channels: a channel count the run cannot take
        raise BadImage(index, "wrong_mode", str(error)) from error
    finally:
        os.unlink(path)
