"""The benchmark scripts run end to end on tiny data (their numbers are not checked here)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from winnow.data.splits import assign_splits, save_splits
from winnow.data.synthetic import make_demo_dataset

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    if str(BENCH) not in sys.path:  # the scripts import their shared `harness` as `python bench/x.py` would
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_pipeline_bench_prints_ratios(manifest, capsys):
    pipeline = _load("pipeline")
    assert pipeline.main(["--data", str(manifest), "--model", "test_resnet", "--img-size", "32",
                          "--batch-size", "8", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "cache on" in out and "ratio to model-only" in out and "target cache-on" in out


def test_recipes_bench_table(tmp_path):
    recipes = _load("recipes")
    results = {("data", "ce"): [{"accuracy": 0.5, "balanced_accuracy": 0.4, "macro_f1": 0.3, "rare_recall": 0.2,
                                 "time_s": 10.0}, {"accuracy": 0.7, "balanced_accuracy": 0.6, "macro_f1": 0.5,
                                                   "rare_recall": 0.4, "time_s": 12.0}]}
    table = recipes.markdown(results, [0, 1], "header")
    assert "| data | ce | 0.600 ± 0.100 | 0.500 ± 0.100 | 0.400 ± 0.100 | 0.300 ± 0.100 | 11 |" in table
    assert recipes.rare_classes({"a": 100, "b": 90, "c": 10}) == ["c"]
    assert recipes.rare_classes({"a": 10, "b": 10}) == ["a"]  # none is rare: the single rarest


def test_embed_bench_prints_the_ratio(manifest, capsys):
    bench = _load("embed")
    assert bench.main(["--data", str(manifest), "--model", "test_resnet", "--img-size", "32", "--batch-size", "8",
                       "--images", "16", "--workers", "0", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "embed" in out and "model-only" in out and "ratio median" in out and "target >= 0.9" in out


def test_oversample_bench_table(manifest, tmp_path, capsys):
    bench = _load("oversample")
    assert bench.main(["--data", str(manifest), "--kinds", "centroid", "--methods", "none", "smote", "--model",
                       "test_resnet", "--img-size", "32", "--batch-size", "8", "--epochs", "1", "--workers", "0",
                       "--work", str(tmp_path / "work"), "--out", str(tmp_path / "table.md")]) == 0
    table = (tmp_path / "table.md").read_text()
    for row in ("random sampler, its own classifier", "sqrt sampler, its own classifier",
                "random sampler, centroid head, oversample none", "random sampler, centroid head, oversample smote",
                "sqrt sampler, centroid head, oversample none"):
        assert f"| {row} | " in table, table
    assert "| rare_recall |" in table and "error" not in table


def test_run_measured_counts_the_cpu_of_children(tmp_path):
    harness = _load("harness")
    burn = "import time\nwhile time.process_time() < 0.5: pass"  # 0.5 CPU s in a grandchild
    spawn = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"
    measured = harness.run_measured([sys.executable, "-c", spawn], log=tmp_path / "log.txt")
    assert measured.returncode == 0 and measured.cpu_s >= 0.5 and measured.wall_s >= measured.cpu_s / 2


def test_plain_script_trains_and_scores_a_split_manifest(tmp_path):
    plain = _load("plain")
    manifest = make_demo_dataset(tmp_path / "demo", n_images=60, size=32)
    out = tmp_path / "result.json"
    assert plain.main([str(manifest), "--model", "test_resnet", "--img-size", "32", "--batch-size", "16",
                       "--epochs", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert 1 <= result["best_epoch"] <= 2 and result["cpu_s"] > 0
    assert all(0.0 <= result[k] <= 1.0 for k in ("accuracy", "balanced_accuracy", "macro_f1"))


def test_plain_decode_letterboxes_keeping_the_aspect(tmp_path):
    from PIL import Image

    plain = _load("plain")
    Image.fromarray(np.full((10, 40), 200, np.uint8)).save(tmp_path / "wide.png")
    images = plain.decode([str(tmp_path / "wide.png")], size=32, channels=1)
    assert images.shape == (1, 1, 32, 32) and images.dtype.is_floating_point is False
    assert images[0, 0, 16, 16] == 200 and images[0, 0, 0, 16] == 0  # padded above and below, not stretched


def _fake_fmnist(folder: Path, per_class: int) -> None:
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
    images = np.arange(len(labels) * 28 * 28, dtype=np.uint64).astype(np.uint8)
    folder.mkdir()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(16) + images.tobytes()))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(8) + labels.tobytes()))


def test_fmnist_subset_is_stratified_and_skips_when_absent(tmp_path, monkeypatch):
    bench = _load("generalization")
    monkeypatch.setattr(bench, "FMNIST", tmp_path / "absent")
    assert bench.fmnist_subset(tmp_path / "work", size=20) is None
    _fake_fmnist(tmp_path / "fmnist", per_class=5)
    monkeypatch.setattr(bench, "FMNIST", tmp_path / "fmnist")
    rows = bench.read_rows(bench.fmnist_subset(tmp_path / "work", size=20))
    assert len(rows) == 20 and {r["label"] for r in rows} == set(bench.FMNIST_CLASSES)
    assert all(Path(r["path"]).is_file() for r in rows)


def test_image_folders_mirror_the_split_with_one_class_map(manifest, tmp_path):
    bench = _load("generalization")
    split = tmp_path / "split.csv"
    save_splits(assign_splits([str(manifest)], val_fraction=0.25, test_fraction=0.25), split)
    root, class_map = bench.image_folders(split, tmp_path / "folders")
    rows = bench.read_rows(split)
    for name, folder in (("train", "train"), ("val", "validation"), ("test", "test")):
        links = sorted(root.glob(f"{folder}/*/*"))
        assert len(links) == sum(r["split"] == name for r in rows) and all(p.is_symlink() for p in links)
    assert class_map.read_text().split() == sorted({r["label"] for r in rows})


def _result(dataset, method, seed, balanced, cpu, epochs=15):
    return {"dataset": dataset, "method": method, "seed": seed, "base_epochs": 15, "epochs": epochs,
            "accuracy": balanced, "balanced_accuracy": balanced, "macro_f1": balanced, "cpu_s": cpu, "wall_s": cpu}


def test_generalization_table_and_equal_cpu_epochs(tmp_path):
    bench = _load("generalization")
    results = tmp_path / "results"
    results.mkdir()
    runs = [_result("bccd-wbc", "winnow", 0, 0.8, 300.0), _result("bccd-wbc", "winnow", 1, 0.6, 300.0),
            _result("bccd-wbc", "plain", 0, 0.5, 200.0), _result("hep2-cells", "plain", 0, 0.9, 100.0)]
    for run in runs:
        name = bench.cell_name(run["dataset"], run["method"], 15, run["seed"])
        (results / f"{name}.json").write_text(json.dumps(run))
    assert bench.equal_cpu_epochs("bccd-wbc", 15, 0, results) == 22  # 15 * 300 / 200, rounded
    assert bench.equal_cpu_epochs("bccd-wbc", 15, 1, results) is None  # plain seed 1 missing
    table = bench.markdown(bench.collect(results), "header")
    assert "| bccd-wbc | winnow, 15 ep. | 0,1 | 0.700 ± 0.100 | 0.700 ± 0.100 | 0.700 ± 0.100 | 300 | 300 |" in table
    assert "| plain, 15 ep. base | 1 | 0.500 | +0.200 |" in table  # hep2 has no winnow cell: left out


def test_generalization_variants_are_named_methods_with_their_flags(tmp_path):
    bench = _load("generalization")
    variants = bench.variant_flags(['light=--rotate 0 --label-smoothing 0.1'], ["winnow", "winnow-light"])
    assert variants == {"winnow-light": ("--rotate", "0", "--label-smoothing", "0.1")}
    with pytest.raises(SystemExit, match="unknown; valid: winnow, plain"):
        bench.variant_flags([], ["winnow-heavy"])
    with pytest.raises(SystemExit, match='expected NAME="--flag value'):
        bench.variant_flags(["--rotate 0"], ["winnow"])
    results = tmp_path / "results"
    results.mkdir()
    run = {**_result("bccd-wbc", "winnow-light", 0, 0.7, 100.0), "flags": ["--rotate", "0"]}
    (results / "a.json").write_text(json.dumps(run))
    (results / "b.json").write_text(json.dumps(_result("bccd-wbc", "winnow", 0, 0.6, 100.0)))
    table = bench.markdown(bench.collect(results), "header")
    assert "| bccd-wbc | winnow-light (`--rotate 0`), 15 ep. | 0 |" in table
    assert "| winnow-light, 15 ep. base | 1 | 0.700 | -0.100 |" in table


def test_pu_bench_table(tmp_path, capsys):
    from conftest import make_image_folder

    data = make_image_folder(tmp_path / "data", per_class=20)
    assert _load("pu").main(["--data", str(data), "--positive", "square", "--hidden", "0.25", "--seeds", "1",
                    "--steps", "20"]) == 0
    out = capsys.readouterr().out
    assert "nnPU, estimated prior" in out and "bagging PU" in out and "estimated" in out


def test_embeddings_bench_table_says_which_cells_miss_a_seed(tmp_path):
    bench = _load("embeddings")
    scores = {"softmax": 0.5, "knn": 0.4, "gmm": "refused: too few", "map_at_r": 0.2, "precision_at_1": 0.3,
              "cpu_s": 100.0, "centroid k=1": 0.8}
    results = {"losses|ce|0": scores, "losses|ce|1": {**scores, "softmax": 0.7}, "losses|triplet|0": scores,
               "efficiency|0.05|scratch|probe|0": {"accuracy": 0.1, "balanced_accuracy": 0.1, "cpu_s": 9.0,
                                                   "epochs": 32}}
    args = bench.parse_args(["--seeds", "0", "1", "--work", str(tmp_path)])
    text = bench.markdown(results, ["6", "11", "13", "17"], args)
    assert "| ce | 0.600 ± 0.100 | 0.400 ± 0.000 | refused |" in text
    assert "| triplet | 0.500 (n=1) |" in text
    assert "| 0.05 | scratch | probe | 0.100 (n=1) | 0.100 (n=1) | 9 (n=1) | 32 (n=1) |" in text
    only_seed_1 = bench.markdown(results, ["6"], bench.parse_args(["--seeds", "1", "--work", str(tmp_path)]))
    assert "triplet" not in only_seed_1 and "| ce | 0.700 |" in only_seed_1


def test_embeddings_bench_fractions_keep_a_floor_per_class_and_the_whole_test_split(tmp_path):
    bench = _load("embeddings")
    rows = [(f"/x/{label}_{split}_{i}.png", label, split, f"g{i}") for label in ("1", "2", "3")
            for split, count in (("train", 40), ("val", 8), ("test", 5)) for i in range(count)]
    known = bench.write_manifest(tmp_path / "known.csv", rows)
    picked = bench.read_rows(bench.fraction_manifest(known, 0.05, 0, tmp_path))
    for label in ("1", "2", "3"):
        counts = {split: sum(r["label"] == label and r["split"] == split for r in picked)
                  for split in ("train", "val", "test")}
        assert counts == {"train": 2, "val": 1, "test": 5}
    again = bench.read_rows(bench.fraction_manifest(known, 0.05, 0, tmp_path))
    assert again == picked
