"""Decoded-image cache: each image is decoded and preprocessed once into a uint8 memmap."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from winnow.data.preprocess import Preprocess


def cache_bytes(n_images: int, preprocess: Preprocess) -> int:
    return n_images * preprocess.img_size**2 * preprocess.in_chans


def cache_key(paths: list[str], preprocess: Preprocess) -> str:
    """Hash of every file's path, size and mtime plus the preprocessing settings."""
    digest = hashlib.sha256(json.dumps(preprocess.key(), sort_keys=True).encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


class DecodedCache:
    """A `[N, S, S, C]` uint8 memmap plus a `[N]` filled-flag memmap, shared by workers.

    The memmaps are opened lazily in each process (memmaps do not pickle as views).
    A row is flagged filled only after its pixels are written, so a killed run leaves
    at worst an unflagged row that is decoded again.
    """

    def __init__(self, folder: str | Path, paths: list[str], preprocess: Preprocess) -> None:
        self.folder = Path(folder)
        self.shape = (len(paths), preprocess.img_size, preprocess.img_size, preprocess.in_chans)
        self.stem = self.folder / cache_key(paths, preprocess)
        self._pixels: np.memmap | None = None
        self._filled: np.memmap | None = None
        self._create_files()

    def _create_files(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for suffix, shape in ((".pixels", self.shape), (".filled", self.shape[:1])):
            path = self.stem.with_suffix(suffix)
            if not path.exists() or path.stat().st_size != int(np.prod(shape)):
                tmp = path.with_suffix(suffix + f".{os.getpid()}.tmp")
                np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape).flush()
                os.replace(tmp, path)

    def _open(self) -> None:
        self._pixels = np.memmap(self.stem.with_suffix(".pixels"), np.uint8, "r+", shape=self.shape)
        self._filled = np.memmap(self.stem.with_suffix(".filled"), np.uint8, "r+", shape=self.shape[:1])

    def get(self, index: int) -> np.ndarray | None:
        if self._pixels is None:
            self._open()
        return np.array(self._pixels[index]) if self._filled[index] else None

    def put(self, index: int, image: np.ndarray) -> None:
        if self._pixels is None:
            self._open()
        self._pixels[index] = image
        self._filled[index] = 1

    def filled_count(self) -> int:
        if self._pixels is None:
            self._open()
        return int(np.count_nonzero(self._filled))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pixels": None, "_filled": None}
