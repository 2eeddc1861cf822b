"""Reading datasets: ImageFolder trees, split trees and CSV manifests into one sample table."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from winnow.data.real_paths import real_paths

IMAGE_SUFFIXES = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm",
)
SPLIT_NAMES = ("train", "val", "test")
VALID_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass
class Samples:
    """A table of images: parallel lists, one row per image.

    `extras` holds any further manifest columns per row (e.g. label columns of other tasks);
    `origins` where each row was read ("m.csv, line 3"; None outside manifests), for messages.
    """

    paths: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
    groups: list[str | None] = field(default_factory=list)
    extras: list[dict[str, str]] = field(default_factory=list)
    origins: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.extras:
            self.extras = [{} for _ in self.paths]
        if not self.origins:
            self.origins = [None] * len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def append(self, path: str, label: str, split: str | None = None, group: str | None = None,
               extra: dict[str, str] | None = None, *, origin: str | None = None) -> None:
        self.paths.append(path)
        self.labels.append(label)
        self.splits.append(split)
        self.groups.append(group)
        self.extras.append(dict(extra or {}))
        self.origins.append(origin)

    def extend(self, other: "Samples") -> None:
        for row, origin in zip(other.rows(), other.origins):
            self.append(*row, origin=origin)

    def rows(self) -> list[tuple[str, str, str | None, str | None, dict[str, str]]]:
        return list(zip(self.paths, self.labels, self.splits, self.groups, self.extras))

    def column(self, name: str) -> list[str]:
        """Values of a column (`label` or an extra manifest column); missing values are ''."""
        if name == "label":
            return list(self.labels)
        return [extra.get(name, "") for extra in self.extras]

    def extra_columns(self) -> list[str]:
        return sorted({key for extra in self.extras for key in extra})

    def subset(self, indices: list[int]) -> "Samples":
        picked = Samples()
        for i in indices:
            picked.append(self.paths[i], self.labels[i], self.splits[i], self.groups[i], self.extras[i],
                          origin=self.origins[i])
        return picked

    def where_split(self, split: str) -> "Samples":
        return self.subset([i for i, s in enumerate(self.splits) if s == split])

    def with_split(self, split: str) -> "Samples":
        return Samples(list(self.paths), list(self.labels), [split] * len(self), list(self.groups),
                       [dict(e) for e in self.extras], list(self.origins))


def read_source(source: str | Path) -> Samples:
    """Read one dataset: a CSV manifest, a split tree or an ImageFolder tree."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return read_manifest(source)
    if not source.exists():
        raise ValueError(f"data source {source} does not exist; pass a folder of class folders or a CSV manifest")
    if not source.is_dir():
        raise ValueError(f"data source {source} is neither a .csv manifest nor a folder")
    if (source / "train").is_dir() and any((source / name).is_dir() for name in VALID_SPLIT_ALIASES):
        return read_split_tree(source)
    return read_image_folder(source)


def read_sources(sources: list[str]) -> Samples:
    """Concatenate several sources (e.g. several manifests)."""
    samples = Samples()
    for source in sources:
        samples.extend(read_source(source))
    return samples


def read_image_folder(root: Path, *, split: str | None = None) -> Samples:
    """Read `root/<class>/*` into samples; an empty class folder is an error."""
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"{root} has no class folders; expected {root}/<class>/<image files>")
    samples = Samples()
    empty = []
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and _looks_like_image(p))
        if not files:
            empty.append(class_dir.name)
        for file in real_paths(files):
            samples.append(file, class_dir.name, split, None)
    if empty:
        raise ValueError(
            f"{root}: empty class folder(s) {empty} hold no image files ({', '.join(IMAGE_SUFFIXES)}); "
            "add images or remove the folders"
        )
    return samples


def _looks_like_image(path: Path) -> bool:
    # Files without a suffix are kept so the scan can report them instead of silently dropping them.
    return path.suffix.lower() in IMAGE_SUFFIXES or path.suffix == "" and not path.name.startswith(".")


def read_split_tree(root: Path) -> Samples:
    """Read `root/train|val|test/<class>/*`."""
    samples = Samples()
    for folder, split in VALID_SPLIT_ALIASES.items():
        if (root / folder).is_dir():
            samples.extend(read_image_folder(root / folder, split=split))
    return samples


def read_manifest(path: Path) -> Samples:
    """Read a CSV with columns `path,label` and optional `split`, `group`.

    Relative paths are resolved against the manifest's folder.
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = {"path", "label"} - set(columns)
        if missing:
            raise ValueError(
                f"manifest {path}: missing column(s) {sorted(missing)}; got columns {columns}. "
                "A manifest needs a header row with path,label and optional split,group"
            )
        samples = Samples()
        for line_number, row in enumerate(reader, start=2):
            samples.append(*_manifest_row(path, line_number, row), origin=f"{path}, line {line_number}")
    if not len(samples):
        raise ValueError(f"manifest {path} has a header but no rows")
    return samples


MANIFEST_COLUMNS = ("path", "label", "split", "group")


def read_manifest_paths(path: Path) -> list[str]:
    """The `path` column of a CSV of images to score (labels optional: a pool of unlabelled images).

    Relative paths are resolved against the manifest's folder.
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if "path" not in (reader.fieldnames or []):
            raise ValueError(f"manifest {path}: missing column 'path'; got columns {reader.fieldnames}. A manifest "
                             "of images to score needs a header row with a path column (label optional)")
        files = [(row.get("path") or "").strip() for row in reader]
    if not files:
        raise ValueError(f"manifest {path} has a header but no rows")
    if "" in files:
        raise ValueError(f"manifest {path}, line {files.index('') + 2}: empty path; give every row an image path")
    return [str(Path(file) if Path(file).is_absolute() else path.parent / file) for file in files]


def _manifest_row(path: Path, line_number: int, row: dict) -> tuple[str, str, str | None, str | None, dict]:
    file, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
    if not file or not label:
        raise ValueError(f"manifest {path}, line {line_number}: empty path or label in {row}")
    resolved = Path(file) if Path(file).is_absolute() else path.parent / file
    split = _normalise_split(path, line_number, (row.get("split") or "").strip())
    group = (row.get("group") or "").strip() or None
    extra = {k: (v or "").strip() for k, v in row.items() if k and k not in MANIFEST_COLUMNS}
    return str(resolved.resolve()), label, split, group, extra


def _normalise_split(path: Path, line_number: int, split: str) -> str | None:
    if not split:
        return None
    if split.lower() not in VALID_SPLIT_ALIASES:
        raise ValueError(
            f"manifest {path}, line {line_number}: split {split!r} is not one of train, val, test"
        )
    return VALID_SPLIT_ALIASES[split.lower()]
