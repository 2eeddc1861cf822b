"""Decoding image files of any mode into uint8 arrays with a chosen channel count."""

from __future__ import annotations

import io
import logging
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tifffile
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

TIFF_SUFFIXES = (".tif", ".tiff")
HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
PNG_HEAD_BYTES = 26  # signature and IHDR up to the colour type
TURNING_ORIENTATIONS = range(2, 9)  # EXIF orientations other than "upright" (1)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO passed as an image must not block the open; files ignore it


class ImageReadError(ValueError):
    """A file that cannot be used as an image; `reason` is a short machine-friendly tag."""

    def __init__(self, path: str | Path, reason: str, detail: str) -> None:
        super().__init__(f"{path}: {reason}: {detail}")
        self.path, self.reason, self.detail = str(path), reason, detail


@dataclass
class DecodeNotes:
    """What decoding needed beyond PIL, for one report per run instead of one log line per file.

    Attributes:
        fallback: Files read with tifffile because PIL could not read them (or would lose their depth).
        repaired: File -> tifffile's first complaint about it (e.g. "incorrect StripByteCounts count"),
            for malformed TIFFs that tifffile read anyway.
    """

    fallback: set[str] = field(default_factory=set)
    repaired: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str | None:
        """One line for the log, or None when nothing needed the fallback."""
        if not self.fallback and not self.repaired:
            return None
        line = f"{len(self.fallback)} file(s) needed the tifffile fallback reader"
        if self.repaired:
            path, message = next(iter(sorted(self.repaired.items())))
            line += (f"; tifffile repaired malformed tags in {len(self.repaired)} (first: {path}: "
                     f"{message.split('>', 1)[-1].strip()})")
        return line


_collectors: list[DecodeNotes] = []
_reading = threading.local()  # the file this thread is decoding, so tifffile's messages can be traced to it


class _QuietTiffLog(logging.Filter):
    """Keeps tifffile's per-file complaints out of the logs while winnow decodes, noting them instead.

    Messages tifffile logs outside winnow's own reads pass through untouched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        path = getattr(_reading, "path", None)
        if path is None:
            return True
        for notes in _collectors:
            notes.repaired.setdefault(path, record.getMessage())
        return False


logging.getLogger("tifffile").addFilter(_QuietTiffLog())


@contextmanager
def collect_decode_notes() -> Iterator[DecodeNotes]:
    """Gather `DecodeNotes` of every file decoded in this process while the block runs (any thread)."""
    notes = DecodeNotes()
    _collectors.append(notes)
    try:
        yield notes
    finally:
        _collectors.remove(notes)


@contextmanager
def _decoding(path: Path) -> Iterator[None]:
    _reading.path = str(path)
    try:
        yield
    finally:
        _reading.path = None


def _note_fallback(path: Path) -> None:
    for notes in _collectors:
        notes.fallback.add(str(path))


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    mode: str


def probe(path: str | Path, *, max_pixels: int) -> ImageHeader:
    """Open a file and read its header only (fast): size and mode.

    Raises:
        ImageReadError: missing, empty, non-image, or larger than `max_pixels`.
    """
    path = Path(path)
    with _open_content(path) as handle:
        head = _read_head(handle)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with _pil_open(path, handle) as image:
                    header = ImageHeader(image.width, image.height, image.mode)
        except Image.DecompressionBombError as error:
            raise ImageReadError(path, "too_large", f"possible decompression bomb ({error})") from error
        except (UnidentifiedImageError, OSError) as error:
            header = _probe_tiff(path, error)
    _reject_16bit_color_png(path, head)
    check_pixels(path, header.width, header.height, max_pixels)
    return header


def check_pixels(path: str | Path, width: int, height: int, max_pixels: int | None) -> None:
    """Refuse an image of more than `max_pixels` pixels (None: no limit) before it is decoded.

    Raises:
        ImageReadError: "too_large".
    """
    if max_pixels is not None and width * height > max_pixels:
        raise ImageReadError(path, "too_large", f"{width}x{height} pixels exceeds max_image_pixels={max_pixels} "
                             "(possible decompression bomb); raise max_image_pixels if the file is genuine")


def _open_content(path: Path) -> BinaryIO:
    """Open a file for reading, refusing a missing, non-regular or zero-byte one with its own reason.

    One open and one `fstat` serve the checks, the header scan and the decode (not a stat per check).

    Raises:
        ImageReadError: "missing" (also a folder or a broken link), "empty" or "unreadable" (e.g. no permission).
    """
    try:
        handle = open(path, "rb", opener=lambda name, flags: os.open(name, flags | _NONBLOCK))
    except OSError as error:
        if not path.is_file():
            raise ImageReadError(path, "missing", "file does not exist") from error
        raise ImageReadError(path, "unreadable", f"cannot open ({error})") from error
    info = os.fstat(handle.fileno())
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        handle.close()
        raise ImageReadError(path, *(("empty", "file has zero bytes") if stat.S_ISREG(info.st_mode)
                                     else ("missing", "file does not exist")))
    return handle


def _pil_open(path: Path, handle: BinaryIO) -> Image.Image:
    """`Image.open` of an open file; its "cannot identify" message names `path` (not the handle), as for a path."""
    try:
        return Image.open(handle)
    except UnidentifiedImageError as error:
        raise UnidentifiedImageError(f"cannot identify image file {str(path)!r}") from error


def _read_head(handle: BinaryIO) -> bytes:
    """The first bytes of an open file (for `_reject_16bit_color_png`); the handle is left at the start."""
    head = handle.read(PNG_HEAD_BYTES)
    handle.seek(0)
    return head


def _reject_16bit_color_png(path: Path, head: bytes) -> None:
    """Pillow decodes 16-bit-per-channel colour PNGs to their high byte only: refuse them clearly.

    Args:
        path: The file, for the message.
        head: Its first `PNG_HEAD_BYTES` bytes.
    """
    if len(head) == PNG_HEAD_BYTES and head[:8] == b"\x89PNG\r\n\x1a\n" and head[24] == 16 and head[25] in (2, 6):
        raise ImageReadError(path, "unsupported", "16-bit colour PNG cannot be decoded without losing "
                             "depth; save it as a 16-bit TIFF or an 8-bit PNG")


def _probe_tiff(path: Path, pil_error: Exception) -> ImageHeader:
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise ImageReadError(path, "not_an_image", f"cannot identify image ({pil_error})")
    try:
        with _decoding(path), tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]  # its shape starts with the samples in a planar file: read the size fields
            return ImageHeader(int(page.imagewidth), int(page.imagelength), f"tiff:{page.dtype}")
    except Exception as error:  # tifffile raises many types for broken files
        raise ImageReadError(path, "corrupt", f"neither PIL nor tifffile can read it ({error})")


def read_image(path: str | Path, *, in_chans: int, fill: int = 0, max_pixels: int | None = None) -> np.ndarray:
    """Decode a file into uint8 `[H, W, in_chans]`.

    Handles 1-bit, L, P (with transparency), LA, RGB, RGBA, CMYK, 16-bit and float
    images; honours EXIF orientation; falls back to tifffile for TIFFs that PIL
    rejects. Transparent pixels become the `fill` gray level; high-depth data is
    scaled by its real range (min..max), not clipped.

    `max_pixels`: refuse larger images before decoding them (see `decode_file`).

    Raises:
        ImageReadError: missing, empty, not an image, too large, corrupt or unsupported file.
    """
    return to_channels(decode_file(path, fill=fill, max_pixels=max_pixels).pixels, in_chans)


def read_bytes(data: bytes, *, name: str, in_chans: int, fill: int = 0, max_pixels: int | None = None) -> np.ndarray:
    """`read_image` of an image held in memory (see `decode_bytes`): uint8 `[H, W, in_chans]`."""
    return to_channels(decode_bytes(data, name=name, fill=fill, max_pixels=max_pixels).pixels, in_chans)


@dataclass
class DecodedFile:
    """One file decoded once, for readers that need the pixels and PIL's own image of it.

    Attributes:
        pixels: `[H, W]` or `[H, W, C]` uint8 as `read_image` makes them before `to_channels` (EXIF orientation
            applied, transparency over `fill`, high depth scaled).
        source: The image as PIL decodes the file (its own mode, no EXIF turn); None when tifffile read it.
    """

    pixels: np.ndarray
    source: Image.Image | None = None

    @property
    def image(self) -> Image.Image:
        """PIL's image of the file (e.g. for cleanvision); for a file only tifffile reads, `pixels` as L or RGB."""
        if self.source is not None:
            return self.source
        pixels = self.pixels if self.pixels.ndim == 2 or self.pixels.shape[-1] == 3 else to_channels(self.pixels, 1)
        return Image.fromarray(pixels.squeeze(-1) if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels)


def decode_file(path: str | Path, *, fill: int = 0, max_pixels: int | None = None) -> DecodedFile:
    """Decode a file completely, once (see `read_image`, which keeps only the pixels).

    With `max_pixels` it makes every check of the header scan (`probe`) on the header it opens, with the
    same reasons, so that a job that decodes each file anyway needs no scan before: missing, empty, not an
    image, more than `max_pixels` pixels (refused before the pixels are decoded), 16-bit colour PNG.

    Raises:
        ImageReadError: missing, empty, not an image, too large, corrupt or unsupported file.
    """
    path = Path(path)
    with _open_content(path) as handle:  # a file may vanish or be emptied after the scan
        return _decode_content(path, handle, fill=fill, max_pixels=max_pixels)


def decode_bytes(data: bytes, *, name: str, fill: int = 0, max_pixels: int | None = None) -> DecodedFile:
    """`decode_file` of an image held in memory (an upload), with the same checks and reasons.

    Args:
        data: The file's bytes.
        name: Stands for the file in messages; a .tif/.tiff suffix lets tifffile read what PIL cannot.

    Raises:
        ImageReadError: empty, not an image, too large, corrupt or unsupported data.
    """
    if not data:
        raise ImageReadError(name, "empty", "file has zero bytes")
    return _decode_content(Path(name), io.BytesIO(data), fill=fill, max_pixels=max_pixels)


def _decode_content(path: Path, handle: BinaryIO, *, fill: int, max_pixels: int | None) -> DecodedFile:
    """Decode the image in `handle` (at its start); `path` names it and its suffix picks the TIFF fallback."""
    _reject_16bit_color_png(path, _read_head(handle))
    try:
        with _pil_open(path, handle) as image:
            check_pixels(path, image.width, image.height, max_pixels)
            if _pil_loses_depth(path, image):
                return DecodedFile(_read_tiff(path, _rewound(handle), max_pixels=max_pixels))
            image.load()  # the data stays after the block closes the image
            return DecodedFile(_pil_to_array(_upright(image), fill), image)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageReadError(path, "too_large", f"possible decompression bomb ({error})") from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        if path.suffix.lower() not in TIFF_SUFFIXES:
            if isinstance(error, UnidentifiedImageError):
                raise ImageReadError(path, "not_an_image", f"cannot identify image ({error})") from error
            raise ImageReadError(path, "corrupt", f"cannot decode ({error})") from error
    return DecodedFile(_read_tiff(path, _rewound(handle), max_pixels=max_pixels))


def _rewound(handle: BinaryIO) -> BinaryIO:
    handle.seek(0)
    return handle


def _upright(image: Image.Image) -> Image.Image:
    """`image` turned as its EXIF orientation says; `image` itself when upright (`exif_transpose` would copy it)."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) in TURNING_ORIENTATIONS:
        return ImageOps.exif_transpose(image)
    return image


def _pil_loses_depth(path: Path, image: Image.Image) -> bool:
    """True for >8-bit colour TIFFs, which PIL opens as 8-bit RGB."""
    if path.suffix.lower() not in TIFF_SUFFIXES or image.mode in HIGH_DEPTH_MODES:
        return False
    bits = image.tag_v2.get(258, (8,)) if hasattr(image, "tag_v2") else (8,)
    return max(bits if isinstance(bits, tuple) else (bits,)) > 8


def _pil_to_array(image: Image.Image, fill: int) -> np.ndarray:
    mode = image.mode
    if mode in HIGH_DEPTH_MODES:
        return scale_to_uint8(np.asarray(image))
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("PA", "La"):
        image = image.convert("RGBA" if mode == "PA" else "LA")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa"):
        image = image.convert("L" if mode == "1" else "RGB")
    if image.mode in ("RGBA", "LA"):
        return _composite(np.asarray(image), fill)
    return np.asarray(image.convert("L") if image.mode not in ("L", "RGB") else image)


def _composite(array: np.ndarray, fill: int) -> np.ndarray:
    """Blend a colour+alpha array over a uniform `fill` background."""
    color, alpha = array[..., :-1].astype(np.float32), array[..., -1:].astype(np.float32) / 255
    blended = color * alpha + fill * (1 - alpha)
    blended = np.rint(blended).astype(np.uint8)
    return blended[..., 0] if blended.shape[-1] == 1 else blended


def _read_tiff(path: Path, handle: BinaryIO, *, max_pixels: int | None = None) -> np.ndarray:
    """tifffile's decode of the TIFF in `handle` (named `path`) as uint8."""
    _note_fallback(path)
    try:
        with _decoding(path), tifffile.TiffFile(handle) as tiff:
            page = tiff.pages[0]
            check_pixels(path, int(page.imagewidth), int(page.imagelength), max_pixels)
            array = tiff.asarray()
    except ImageReadError:
        raise
    except Exception as error:  # tifffile raises many types for broken files
        raise ImageReadError(path, "corrupt", f"neither PIL nor tifffile can decode it ({error})")
    if array.ndim == 3 and array.shape[0] in (1, 2, 3, 4) and array.shape[-1] not in (1, 2, 3, 4):
        array = np.moveaxis(array, 0, -1)  # planar [C, H, W] -> [H, W, C]
    if array.ndim == 3 and array.shape[-1] in (2, 4):
        array = array[..., :-1]  # drop the alpha sample; microscopy TIFF alpha is rarely meaningful
    return array if array.dtype == np.uint8 else scale_to_uint8(array)


def scale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Map high-depth data to uint8 by its real range, so 12-bit data in 16-bit files is not dark."""
    array = np.asarray(array, dtype=np.float64)
    finite = np.isfinite(array)
    if not finite.any():
        return np.zeros(array.shape, dtype=np.uint8)
    low, high = array[finite].min(), array[finite].max()
    scaled = (np.where(finite, array, low) - low) / max(high - low, 1e-12)
    return np.rint(scaled * 255).astype(np.uint8)


def to_channels(array: np.ndarray, in_chans: int) -> np.ndarray:
    """Convert `[H, W]` or `[H, W, C]` uint8 to `[H, W, in_chans]` deterministically.

    RGB -> gray uses ITU-R 601 luma weights (as PIL's "L"); gray -> RGB repeats the plane.
    """
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == in_chans:
        return np.ascontiguousarray(array)
    if in_chans == 1:
        luma = array[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return np.rint(luma).clip(0, 255).astype(np.uint8)[..., None]
    if in_chans == 3 and array.shape[-1] == 1:
        return np.repeat(array, 3, axis=-1)
    raise ValueError(f"cannot convert an image with {array.shape[-1]} channels to in_chans={in_chans}")


def is_grayscale_mode(mode: str) -> bool:
    """True for header modes that carry one intensity channel."""
    return mode in ("1", "L", "LA", "La", "I", "F") or mode.startswith(("I;16", "tiff:"))
