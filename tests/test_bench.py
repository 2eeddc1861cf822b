"""The benchmark scripts run end to end on tiny data (their numbers are not checked here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
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
