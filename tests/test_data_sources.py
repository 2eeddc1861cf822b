"""Reading data sources and assigning splits (winnow.data.sources, winnow.data.splits)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from data_factory import image_folder, read_csv, save, write_csv
from winnow.data.sources import Samples, read_manifest, read_source, read_sources
from winnow.data.splits import assign_splits, check_groups_disjoint, load_splits, save_splits


def _gray(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (6, 6), dtype=np.uint8)


# --------------------------------------------------------------------- ImageFolder and split trees


def test_image_folder_tree(tmp_path):
    root = image_folder(tmp_path / "data", {"cat": 3, "dog": 2})
    (root / "cat" / "nested").mkdir()
    save(root / "cat" / "nested" / "deep.png", _gray())
    (root / "dog" / "readme.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    save(root / ".hidden" / "x.png", _gray())
    samples = read_source(root)
    assert Counter(samples.labels) == {"cat": 4, "dog": 2}
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in samples.paths)
    assert not any(p.endswith(".txt") for p in samples.paths)
    assert set(samples.splits) == {None} and set(samples.groups) == {None}
    assert str((root / "cat" / "nested" / "deep.png").resolve()) in samples.paths


def test_image_folder_keeps_suffixless_files_for_the_scan(tmp_path):
    root = image_folder(tmp_path / "data", {"a": 1, "b": 1})
    (root / "a" / "NOSUFFIX").write_bytes(b"junk")
    samples = read_source(root)
    assert any(p.endswith("NOSUFFIX") for p in samples.paths)


def test_image_folder_without_class_folders(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    save(root / "x.png", _gray())
    with pytest.raises(ValueError, match="no class folders"):
        read_source(root)


def test_empty_class_folder_is_named(tmp_path):
    root = image_folder(tmp_path / "data", {"cat": 2})
    (root / "ghost").mkdir()
    (root / "ghost" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"empty class folder.*'ghost'"):
        read_source(root)


def test_missing_source(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_source(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="does not exist"):
        read_source(tmp_path / "nowhere.csv")


def test_split_tree(tmp_path):
    root = tmp_path / "tree"
    image_folder(root / "train", {"a": 3, "b": 2}, seed=1)
    image_folder(root / "val", {"a": 1, "b": 1}, seed=2)
    image_folder(root / "test", {"a": 2}, seed=3)
    samples = read_source(root)
    assert Counter(zip(samples.splits, samples.labels)) == {
        ("train", "a"): 3, ("train", "b"): 2, ("val", "a"): 1, ("val", "b"): 1, ("test", "a"): 2}
    assert all(f"/{split}/{label}/" in path for path, label, split, _, _ in samples.rows())


def test_split_tree_without_test(tmp_path):
    root = tmp_path / "tree"
    image_folder(root / "train", {"a": 2, "b": 2})
    image_folder(root / "val", {"a": 1, "b": 1})
    samples = read_source(root)
    assert Counter(samples.splits) == {"train": 4, "val": 2}


# --------------------------------------------------------------------- manifests


def test_manifest_relative_and_absolute_paths(tmp_path):
    data = tmp_path / "data"
    save(data / "imgs" / "one.png", _gray(1))
    elsewhere = save(tmp_path / "elsewhere" / "two.png", _gray(2))
    manifest = write_csv(data / "m.csv", ["path", "label"], [["imgs/one.png", "a"], [str(elsewhere), "b"]])
    samples = read_source(manifest)
    assert samples.paths == [str((data / "imgs" / "one.png").resolve()), str(elsewhere.resolve())]
    assert samples.labels == ["a", "b"]
    assert samples.splits == [None, None] and samples.groups == [None, None]


def test_manifest_relative_paths_do_not_depend_on_cwd(tmp_path, monkeypatch):
    data = tmp_path / "data"
    save(data / "one.png", _gray())
    write_csv(data / "m.csv", ["path", "label"], [["one.png", "a"]])
    monkeypatch.chdir(tmp_path)
    assert read_manifest(Path("data/m.csv")).paths == [str((data / "one.png").resolve())]


def test_manifest_split_and_group_columns(tmp_path):
    manifest = write_csv(tmp_path / "m.csv", ["label", "path", "split", "group"], [
        ["a", "1.png", "train", "g1"],
        ["a", "2.png", "Valid", ""],
        ["b", "3.png", "validation", "g2"],
        ["b", "4.png", "TEST", "g3"],
        ["b", "5.png", "", ""],
    ])
    samples = read_source(manifest)
    assert samples.splits == ["train", "val", "val", "test", None]
    assert samples.groups == ["g1", None, "g2", "g3", None]
    assert samples.labels == ["a", "a", "b", "b", "b"]


def test_manifest_with_bom_and_spaces(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes("\ufeffpath,label\n 1.png , cat \n".encode("utf-8"))
    samples = read_source(path)
    assert samples.labels == ["cat"] and samples.paths == [str((tmp_path / "1.png").resolve())]


def test_several_manifests_concatenated(tmp_path):
    first = write_csv(tmp_path / "one" / "m.csv", ["path", "label"], [["x.png", "a"], ["y.png", "b"]])
    second = write_csv(tmp_path / "two" / "m.csv", ["path", "label", "split"], [["x.png", "a", "val"]])
    samples = read_sources([str(first), str(second)])
    assert len(samples) == 3
    assert samples.paths == [str((tmp_path / "one" / "x.png").resolve()), str((tmp_path / "one" / "y.png").resolve()),
                             str((tmp_path / "two" / "x.png").resolve())]
    assert samples.splits == [None, None, "val"]


def test_manifest_missing_label_column(tmp_path):
    path = write_csv(tmp_path / "nolabel.csv", ["path", "class"], [["x.png", "a"]])
    with pytest.raises(ValueError, match=r"nolabel\.csv.*missing column.*'label'.*got columns \['path', 'class'\]"):
        read_source(path)


def test_manifest_bad_split_value(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["path", "label", "split"], [["x.png", "a", "train"], ["y.png", "a", "dev"]])
    with pytest.raises(ValueError, match=r"m\.csv, line 3: split 'dev' is not one of train, val, test"):
        read_source(path)


def test_manifest_empty_path_or_label(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["path", "label"], [["x.png", "a"], ["y.png", ""]])
    with pytest.raises(ValueError, match=r"m\.csv, line 3: empty path or label"):
        read_source(path)


def test_manifest_header_only(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["path", "label"], [])
    with pytest.raises(ValueError, match=r"m\.csv has a header but no rows"):
        read_source(path)


def test_manifest_zero_bytes(tmp_path):
    path = tmp_path / "blank.csv"
    path.touch()
    with pytest.raises(ValueError, match=r"blank\.csv.*missing column"):
        read_source(path)


# --------------------------------------------------------------------- assign_splits


def _flat_manifest(tmp_path: Path, counts: dict[str, int], *, groups_of=None, name: str = "m.csv") -> Path:
    rows = []
    for label, count in counts.items():
        for i in range(count):
            group = groups_of(label, i) if groups_of else ""
            rows.append([f"{label}/{i}.png", label, group])
    return write_csv(tmp_path / name, ["path", "label", "group"], rows)


def test_assign_splits_is_seeded_and_reproducible(tmp_path):
    manifest = str(_flat_manifest(tmp_path, {"a": 30, "b": 30, "c": 30}))
    first = assign_splits([manifest], seed=3)
    again = assign_splits([manifest], seed=3)
    other = assign_splits([manifest], seed=4)
    assert first.rows() == again.rows()
    assert first.splits != other.splits
    assert first.paths == other.paths, "assignment must not reorder the samples"


def test_assign_splits_fractions_and_stratification(tmp_path):
    manifest = str(_flat_manifest(tmp_path, {"a": 40, "b": 40, "c": 40}))
    samples = assign_splits([manifest], val_fraction=0.2, test_fraction=0.2, seed=0)
    counts = Counter(samples.splits)
    assert set(counts) == {"train", "val", "test"}
    assert abs(counts["val"] / 120 - 0.2) <= 0.05 and abs(counts["test"] / 120 - 0.2) <= 0.05
    per_split = Counter(zip(samples.splits, samples.labels))
    for split in ("train", "val", "test"):
        shares = [per_split[split, label] for label in "abc"]
        assert min(shares) >= 1 and max(shares) - min(shares) <= 2, (split, shares)


def test_assign_splits_default_fractions(tmp_path):
    manifest = str(_flat_manifest(tmp_path, {"a": 50, "b": 50}))
    counts = Counter(assign_splits([manifest], seed=1).splits)
    assert 0.10 <= counts["test"] / 100 <= 0.20 and 0.10 <= counts["val"] / 100 <= 0.22


def test_assign_splits_group_aware(tmp_path):
    # 30 groups of 4 images; labels vary within groups' class
    manifest = str(_flat_manifest(tmp_path, {"a": 60, "b": 60}, groups_of=lambda label, i: f"{label}-{i // 4}"))
    for seed in range(3):
        samples = assign_splits([manifest], seed=seed)
        sides: dict[str, set] = {}
        for _, _, split, group, _ in samples.rows():
            sides.setdefault(group, set()).add(split)
        assert len(sides) == 30
        assert all(len(s) == 1 for s in sides.values()), "a group landed on two sides"
        assert set(Counter(samples.splits)) == {"train", "val", "test"}
        check_groups_disjoint(samples)


def test_assign_splits_too_few_groups(tmp_path):
    manifest = str(_flat_manifest(tmp_path, {"a": 6, "b": 6}, groups_of=lambda label, i: f"{label}-{i // 6}"))
    with pytest.raises(ValueError, match="only 2 distinct groups"):
        assign_splits([manifest], seed=0)


def test_assign_splits_respects_given_val_and_test_sources(tmp_path):
    manifest = str(_flat_manifest(tmp_path, {"a": 20, "b": 20}))
    val = image_folder(tmp_path / "val", {"a": 2, "b": 2}, seed=1)
    test = image_folder(tmp_path / "test", {"a": 3, "b": 3}, seed=2)
    samples = assign_splits([manifest], val=[str(val)], test=[str(test)], seed=0)
    counts = Counter(samples.splits)
    assert counts == {"train": 40, "val": 4, "test": 6}
    assert all(str(val) in p for p in samples.where_split("val").paths)
    assert all(str(test) in p for p in samples.where_split("test").paths)


def test_assign_splits_given_val_only_still_carves_test(tmp_path):
    manifest = str(_flat_manifest(tmp_path, {"a": 20, "b": 20}))
    val = image_folder(tmp_path / "val", {"a": 2, "b": 2}, seed=1)
    samples = assign_splits([manifest], val=[str(val)], test_fraction=0.25, seed=0)
    from_manifest = samples.subset(list(range(40)))
    assert "val" not in from_manifest.splits
    assert 6 <= from_manifest.splits.count("test") <= 14
    assert samples.splits[40:] == ["val"] * 4


def test_assign_splits_keeps_manifest_split_column(tmp_path):
    rows = [[f"{i}.png", "ab"[i % 2], "val" if i < 6 else ""] for i in range(40)]
    manifest = str(write_csv(tmp_path / "m.csv", ["path", "label", "split"], rows))
    samples = assign_splits([manifest], seed=0)
    assert samples.splits[:6] == ["val"] * 6
    rest = Counter(samples.splits[6:])
    assert "val" not in rest, "a manifest's val rows mean no val is carved out of the rest"
    assert rest["test"] >= 3 and rest["train"] >= 20


def test_assign_splits_keeps_split_tree(tmp_path):
    root = tmp_path / "tree"
    image_folder(root / "train", {"a": 4, "b": 4})
    image_folder(root / "val", {"a": 1, "b": 1})
    samples = assign_splits([str(root)], seed=0)
    assert Counter(samples.splits) == {"train": 8, "val": 2}


def test_save_and_load_splits_round_trip(tmp_path):
    samples = Samples()
    samples.append("/data/a, with comma.png", "cat", "train", "g1")
    samples.append("/data/b.png", "dog", "val", None)
    samples.append("/data/c.png", "dog", "test", "g\"2")
    path = tmp_path / "run" / "splits.csv"
    save_splits(samples, path)
    assert read_csv(path)[0].keys() == {"path", "label", "split", "group"}
    assert load_splits(path).rows() == samples.rows()
    assert not [p for p in path.parent.iterdir() if p.name != "splits.csv"], "temporary file left behind"


def test_check_groups_disjoint(tmp_path):
    samples = Samples()
    samples.append("1.png", "a", "train", "g1")
    samples.append("2.png", "a", "train", "g1")
    samples.append("3.png", "b", "val", None)
    samples.append("4.png", "b", "test", None)
    check_groups_disjoint(samples)  # ungrouped rows never clash
    samples.append("5.png", "a", "val", "g1")
    with pytest.raises(ValueError, match=r"group 'g1' appears in both 'train' and 'val'"):
        check_groups_disjoint(samples)
