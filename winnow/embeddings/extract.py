"""`winnow embed RUN DATA --out FILE`: pooled pre-logits embeddings of a run's model, with path, label, split.

The embedding of an image is the model's `forward_head(forward_features(x), pre_logits=True)` `[D]`
(the timm interface every winnow model has), averaged over the TTA views when `tta` is given. Images
that cannot be read are skipped and listed (`strict`: an error), as in every scoring job. The file
(`.npz`, or `.parquet` with pyarrow) carries where the embeddings came from: the run, its checkpoint and
the checkpoint's fingerprint, so that a later step can refuse embeddings of another model.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from winnow._version import __version__
from winnow.data.sources import SPLIT_NAMES, Samples, read_source
from winnow.data.splits import load_splits
from winnow.inference.predictor import Predictor, collect_images
from winnow.inference.predictions import ReadOutputs
from winnow.inference.tta import TTA, parse_tta
from winnow.runs.atomic import atomic_write
from winnow.runs.files import fingerprint
from winnow.runs.layout import RunPaths, checkpoint_label, dataset_name

FORMAT = "winnow-embeddings/1"
SUFFIXES = (".npz", ".parquet")
ALL_SPLITS = "all"


@dataclass
class EmbeddingSet:
    """Embeddings of images, one row each, and where they came from.

    Attributes:
        embeddings: `[N, D]` float32.
        paths, labels, splits: Per row; a label or split is "" where the data has none.
        meta: run, checkpoint, checkpoint_fingerprint, classes, tta, data, winnow_version.
        bad: `(path, reason)` of the images that could not be read.
    """

    embeddings: np.ndarray
    paths: list[str]
    labels: list[str]
    splits: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    bad: list[tuple[str, str]] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def save(self, path: str | Path) -> Path:
        """Write `.npz` or `.parquet` atomically.

        Raises:
            ValueError: Another suffix.
        """
        path = Path(path)
        writer = {".npz": self._write_npz, ".parquet": self._write_parquet}.get(path.suffix.lower())
        if writer is None:
            raise ValueError(f"--out {path}: expected a {' or '.join(SUFFIXES)} file, got suffix {path.suffix!r}")
        atomic_write(path, writer)
        return path

    def _write_npz(self, handle) -> None:
        np.savez_compressed(handle, embeddings=self.embeddings.astype(np.float32), paths=np.asarray(self.paths),
                            labels=np.asarray(self.labels), splits=np.asarray(self.splits),
                            meta=np.asarray(json.dumps({"format": FORMAT, **self.meta})))

    def _write_parquet(self, handle) -> None:
        pa, pq = _pyarrow()
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(self.embeddings.astype(np.float32).ravel()), self.dim)
        table = pa.table({"path": self.paths, "label": self.labels, "split": self.splits, "embedding": vectors})
        table = table.replace_schema_metadata({"winnow": json.dumps({"format": FORMAT, **self.meta})})
        buffer = io.BytesIO()  # pyarrow writes to a seekable sink; the temp file gets the bytes at once
        pq.write_table(table, buffer)
        handle.write(buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "EmbeddingSet":
        """Read a file written by `save`.

        Raises:
            ValueError: Missing file, other suffix, or not a winnow embeddings file.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"embeddings file {path} does not exist; write it with `winnow embed RUN DATA --out {path}`")
        reader = {".npz": _read_npz, ".parquet": _read_parquet}.get(path.suffix.lower())
        if reader is None:
            raise ValueError(f"embeddings file {path}: expected a {' or '.join(SUFFIXES)} file")
        embeddings, paths, labels, splits, meta = reader(path)
        if meta.pop("format", None) != FORMAT:
            raise ValueError(f"{path} is not a winnow embeddings file ({FORMAT}); write it with `winnow embed`")
        return cls(embeddings, paths, labels, splits, meta)

    def check_from(self, run_dir: str | Path, *, checkpoint: str = "best") -> None:
        """Refuse embeddings made by another model than `run_dir`'s `checkpoint` (as it is now).

        Raises:
            ValueError: Other run, other checkpoint, or the checkpoint changed since (retrained).
        """
        current = fingerprint(RunPaths(run_dir).checkpoint(checkpoint))
        if self.meta.get("checkpoint_fingerprint") != current or self.meta.get("checkpoint") != checkpoint:
            raise ValueError(f"these embeddings come from {self.meta.get('run')} (checkpoint "
                             f"{self.meta.get('checkpoint')}), not from {run_dir} checkpoint {checkpoint} as it is "
                             f"now; embed again with `winnow embed {run_dir} DATA --checkpoint {checkpoint}`")


def embed(run_dir: str | Path, data: str | Path | None = None, *, checkpoint: str = "best",
          tta: str | int | None = None, tta_merge: str = "mean", device: str = "auto", batch_size: int = 64,
          workers: int = 0, strict: bool = False, decoded_cache: bool = True) -> EmbeddingSet:
    """Embeddings `[N, D]` of `data` by a run's model.

    Args:
        run_dir: A run folder (for an ensemble, embed each member run).
        data: None or "all" (every image of the run's splits.csv), train/val/test (that split), a
            folder of class folders, a split tree or a CSV manifest (labels and splits kept), or a folder
            of images / one image (no labels).
        checkpoint, device, batch_size, workers, strict: As `winnow predict`.
        tta, tta_merge: Test-time augmentation; the views' embeddings are averaged (`tta_merge` is how
            probabilities would be merged and only "mean" applies to embeddings).
        decoded_cache: Read the images that the run's training cached (its decoded-image caches, still valid
            for the files as they are now) from there instead of decoding them: the same embeddings, faster.

    Raises:
        ValueError: An ensemble folder, data that cannot be read, no readable image, or (`strict`) one not.
    """
    if RunPaths(run_dir).ensemble.is_file():
        raise ValueError(f"{run_dir} is an ensemble folder; embed one of its member runs (listed in ensemble.json)")
    if tta_merge != "mean":
        raise ValueError(f"tta_merge: embeddings of the TTA views are averaged; expected 'mean', got {tta_merge!r}")
    predictor = Predictor(run_dir, checkpoint=checkpoint, device=device, calibration=False, thresholds=False)
    images = embedding_inputs(run_dir, data)
    augmentation = parse_tta(tta, merge="mean", seed=predictor.seed)
    outputs = embed_paths(predictor, images.paths, augmentation, batch_size=batch_size, workers=workers,
                          strict=strict, decoded_cache=decoded_cache)
    rows = outputs.rows
    return EmbeddingSet(outputs.values, [images.paths[i] for i in rows],
                        [images.labels[i] for i in rows], [images.splits[i] or "" for i in rows],
                        _meta(predictor, run_dir, checkpoint, augmentation.label, data), outputs.bad)


def embed_paths(predictor: Predictor, paths: list[str], augmentation: TTA, *, batch_size: int = 64,
                workers: int = 0, strict: bool = False, decoded_cache: bool = False) -> ReadOutputs:
    """Embeddings `[n, D]` (float32, averaged over the TTA views) of the readable images of `paths` `[N]`.

    `decoded_cache`: images the run's training cached are read from its caches (see `embed`).

    Returns:
        `ReadOutputs` whose `values` are the embeddings, `rows` their positions in `paths`, `bad` the others.
    """
    outputs = predictor.read_outputs(paths, lambda good: predictor.view_embeddings(
        good, augmentation, batch_size=batch_size, workers=workers, decoded_cache=decoded_cache), strict=strict)
    return ReadOutputs(np.asarray(outputs.values, dtype=np.float32).mean(axis=1), outputs.rows, outputs.bad)


def _meta(predictor: Predictor, run_dir: str | Path, checkpoint: str, tta_label: str,
          data: str | Path | None) -> dict[str, Any]:
    return {"run": str(Path(run_dir).resolve()), "checkpoint": checkpoint_label(checkpoint),
            "checkpoint_fingerprint": fingerprint(predictor.checkpoint_path), "classes": predictor.classes,
            "model": predictor.config.model, "tta": tta_label, "data": str(data or ALL_SPLITS),
            "winnow_version": __version__}


def embedding_inputs(run_dir: str | Path, data: str | Path | None) -> Samples:
    """The images `embed` reads, with labels and splits where the data has them (see `embed`).

    Raises:
        ValueError: The run has no splits.csv (for a split name) or the source cannot be read.
    """
    text = str(data) if data is not None else ALL_SPLITS
    if text in (*SPLIT_NAMES, ALL_SPLITS) and not Path(text).exists():
        path = RunPaths(run_dir).splits
        if not path.is_file():
            raise ValueError(f"{run_dir} has no splits.csv; pass DATA (images, a folder or a CSV manifest)")
        samples = load_splits(path)
        return samples if text == ALL_SPLITS else samples.where_split(text)
    source = Path(text)
    if source.suffix.lower() == ".csv" or source.is_dir() and any(p.is_dir() for p in source.iterdir()):
        return read_source(source)
    paths = collect_images([source])
    return Samples(paths, [""] * len(paths), [None] * len(paths), [None] * len(paths))  # unlabelled images


def default_out(run_dir: str | Path, data: str | Path | None) -> Path:
    """`RUN/embeddings/<data>.npz`."""
    if data is None:
        name = ALL_SPLITS
    else:
        name = str(data) if str(data) in (*SPLIT_NAMES, ALL_SPLITS) else dataset_name(data)
    return Path(run_dir) / "embeddings" / f"{name}.npz"


def _read_npz(path: Path) -> tuple[np.ndarray, list[str], list[str], list[str], dict]:
    with np.load(path, allow_pickle=False) as archive:
        if "meta" not in archive:
            raise ValueError(f"{path} is not a winnow embeddings file ({FORMAT}); write it with `winnow embed`")
        return (archive["embeddings"], archive["paths"].tolist(), archive["labels"].tolist(),
                archive["splits"].tolist(), json.loads(str(archive["meta"])))


def _read_parquet(path: Path) -> tuple[np.ndarray, list[str], list[str], list[str], dict]:
    _, pq = _pyarrow()
    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(b"winnow", b"{}"))
    column = table.column("embedding").combine_chunks()
    embeddings = column.flatten().to_numpy().reshape(len(table), column.type.list_size)
    return (embeddings, table.column("path").to_pylist(), table.column("label").to_pylist(),
            table.column("split").to_pylist(), meta)


def _pyarrow():
    import pyarrow as pa  # here, so that .npz files do not pay pyarrow's import time
    import pyarrow.parquet as pq

    return pa, pq

