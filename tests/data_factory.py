"""Helpers that make tiny synthetic image files for the tests/test_data_*.py modules."""

from __future__ import annotations

import csv
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image


def save(path: Path, array: np.ndarray, mode: str | None = None, **save_kwargs) -> Path:
    """Write `array` with PIL (mode inferred from the dtype/shape unless given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    image.save(path, **save_kwargs)
    return path


def gray(height: int = 12, width: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


def rgb(height: int = 12, width: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def twelve_bit(height: int = 12, width: int = 10) -> np.ndarray:
    """uint16 data in 0..4095 (12-bit camera data in a 16-bit container), both ends present."""
    values = (np.arange(height * width).reshape(height, width) * 37 % 4096).astype(np.uint16)
    values.flat[0], values.flat[1] = 0, 4095
    return values


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, *, bit_depth: int, color_type: int, raw_rows: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(raw_rows)) + png_chunk(b"IEND", b""))


def write_rgb16_png(path: Path, array: np.ndarray) -> Path:
    """A 16-bit-per-channel RGB PNG (PIL cannot write one itself)."""
    height, width, _ = array.shape
    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))
    path.write_bytes(png_bytes(width, height, bit_depth=16, color_type=2, raw_rows=rows))
    return path


def write_bomb_png(path: Path, side: int = 20_000) -> Path:
    """A tiny file whose header claims `side` x `side` 1-bit pixels (a decompression bomb)."""
    path.write_bytes(png_bytes(side, side, bit_depth=1, color_type=0, raw_rows=b"\x00" * 64))
    return path


def truncated_png(path: Path, seed: int = 0) -> Path:
    """A PNG cut in half: the header reads, the pixels do not."""
    full = path.with_name("full_" + path.name)
    save(full, rgb(40, 40, seed))
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupt_tiff(path: Path) -> Path:
    """TIFF magic followed by garbage: neither PIL nor tifffile can read it."""
    path.write_bytes(b"II*\x00\x08\x00\x00\x00" + b"\xff" * 50)
    return path


def image_folder(root: Path, counts: dict[str, int], *, size: int = 8, seed: int = 0) -> Path:
    """`root/<class>/<class>_<i>.png` with `counts[class]` small gray images per class."""
    rng = np.random.default_rng(seed)
    for label, count in counts.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            save(root / label / f"{label}_{i:03d}.png", rng.integers(0, 256, (size, size), dtype=np.uint8))
    return root


def write_csv(path: Path, header: list[str], rows: Iterable[Iterable[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
