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

    Attributes:
        paths: The images of the rows.
        readonly: Opened by `existing`: rows are read, never written.
    """

    def __init__(self, folder: str | Path, paths: list[str], preprocess: Preprocess, *,
                 readonly: bool = False) -> None:
        self.folder, self.paths, self.readonly = Path(folder), paths, readonly
        self.shape = (len(paths), preprocess.img_size, preprocess.img_size, preprocess.in_chans)
        self.stem = self.folder / cache_key(paths, preprocess)
        self._pixels: np.memmap | None = None
        self._filled: np.memmap | None = None
        if not readonly:
            self._create_files()

    @classmethod
    def existing(cls, folder: str | Path, paths: list[str], preprocess: Preprocess) -> "DecodedCache | None":
        """The cache of `paths` with `preprocess` if one was made (e.g. by training), read-only; else None.

        Its key covers every file's size and mtime and the preprocessing, so a cache found holds the
        bytes that decoding the files now would give. Nothing is created.
        """
        if not paths:
            return None
        try:
            cache = cls(folder, paths, preprocess, readonly=True)
        except OSError:  # a file of `paths` is gone: no cache can match
            return None
        return cache if cache._files_complete() else None

    def _files_complete(self) -> bool:
        return all(path.is_file() and path.stat().st_size == int(np.prod(shape)) for path, shape in self._files())

    def _files(self) -> list[tuple[Path, tuple[int, ...]]]:
        return [(self.stem.with_suffix(".pixels"), self.shape), (self.stem.with_suffix(".filled"), self.shape[:1])]

    def _create_files(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for path, shape in self._files():
            if not path.exists() or path.stat().st_size != int(np.prod(shape)):
                tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
                np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape).flush()
                os.replace(tmp, path)

    def _open(self) -> None:
        mode = "r" if self.readonly else "r+"
        filled = np.memmap(self.stem.with_suffix(".filled"), np.uint8, mode, shape=self.shape[:1])
        # flags first: a loader thread that sees the pixels open must find the flags open too
        self._filled = filled
        self._pixels = np.memmap(self.stem.with_suffix(".pixels"), np.uint8, mode, shape=self.shape)

    def get(self, index: int) -> np.ndarray | None:
        if self._pixels is None:
            self._open()
        return np.array(self._pixels[index]) if self._filled[index] else None

    def put(self, index: int, image: np.ndarray) -> None:
        if self.readonly:
            raise ValueError(f"{self.stem}: this cache was opened read-only (DecodedCache.existing); open it "
                             "with DecodedCache(folder, paths, preprocess) to fill it")
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


class CachedRows:
    """Read-only lookup of images that existing caches already hold, by position in a list of paths.

    For a job that reads images another job cached (e.g. `winnow embed` after training): a path found in
    a cache, in a filled row, is read from it; any other is decoded and not added (the caches belong to
    the jobs that made them).

    Args:
        caches: Caches whose rows may hold some of `paths` (e.g. a run's train, val and test caches).
        paths: The images of a dataset `[N]`.
    """

    def __init__(self, caches: list[DecodedCache], paths: list[str]) -> None:
        where = {path: (cache, row) for cache in caches for row, path in enumerate(cache.paths)}
        self.rows = [where.get(path) for path in paths]

    @property
    def found(self) -> int:
        """How many of the paths some cache has a row for (filled or not)."""
        return sum(row is not None for row in self.rows)

    def get(self, index: int) -> np.ndarray | None:
        """The cached `[S, S, C]` uint8 image of `paths[index]`, or None (not cached, or its row not filled)."""
        where = self.rows[index]
        return None if where is None else where[0].get(where[1])

    def put(self, index: int, image: np.ndarray) -> None:
        """Nothing: images decoded outside the caches are not added to them (see the class)."""
