"""A run's decoded-image caches, read back by inference: what training already decoded is not decoded again.

Training keeps each split's preprocessed uint8 images in a `DecodedCache` (`winnow.data.cache`) keyed on
the split's paths, every file's size and mtime, and the preprocessing. A job that reads images of the run
with the run's own preprocessing (`winnow embed`) takes the rows of those caches that are still valid:
the same bytes as decoding the files again, without the decode.
"""

from __future__ import annotations

from pathlib import Path

from winnow.config import Config
from winnow.data.cache import CachedRows, DecodedCache
from winnow.data.prepare import cache_folder
from winnow.data.preprocess import Preprocess
from winnow.data.sources import SPLIT_NAMES
from winnow.data.splits import load_splits
from winnow.runs.layout import RunPaths


def run_cached_rows(run_dir: str | Path, config: Config, preprocess: Preprocess,
                    paths: list[str]) -> CachedRows | None:
    """Read-only rows of `run_dir`'s training caches for `paths` `[N]`, or None when no cache has any of them.

    The caches are looked for where training put them (`cache_dir`, else `.cache` beside the run folder);
    checking their keys costs a stat of every image of the run's splits.csv.

    Args:
        run_dir: The run folder.
        config: Its config (for `cache_dir`).
        preprocess: Its preprocessing (part of the key: another one finds no cache).
        paths: The images to read.
    """
    folder, splits = cache_folder(config, out=Path(run_dir).resolve().parent), RunPaths(run_dir).splits
    if not splits.is_file() or not any(folder.glob("*.pixels")):
        return None
    samples = load_splits(splits)
    caches = [DecodedCache.existing(folder, samples.where_split(split).paths, preprocess) for split in SPLIT_NAMES]
    rows = CachedRows([cache for cache in caches if cache is not None], paths)
    return rows if rows.found else None
