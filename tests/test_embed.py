"""`winnow embed`: pre-logits embeddings with path, label and split, npz or parquet, bad files skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import winnow
from winnow.data.cache import DecodedCache
from winnow.data.dataset import ImageDataset
from winnow.data.preprocess import Preprocess
from winnow.data.transforms import eval_transform
from winnow.embeddings.extract import EmbeddingSet, default_out, embed
from winnow.data.views import flip_ops
from winnow.inference.run_cache import run_cached_rows
from winnow.inference.tta import ViewDataset, ViewModel, build_views, collate_views, parse_tta
from winnow.models.embedding import EmbeddingModel
from winnow.runs.layout import RunPaths

from conftest import fast_config
from test_bad_files_jobs import with_bad_files
from test_eval_cli import cli, read_rows, shape_folder


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("embed_run")
    return winnow.train(fast_config(root, shape_folder(root / "train", 8, seed=0), head="binary",
                                    positive_class="good", epochs=1, name="tiny")).path


def test_embeddings_equal_the_models_pre_logits_and_keep_labels_and_splits(run):
    embeddings = embed(run, "all")
    splits = read_rows(RunPaths(run).splits)
    assert embeddings.paths == [row["path"] for row in splits]
    assert embeddings.labels == [row["label"] for row in splits] and embeddings.splits == [r["split"] for r in splits]
    predictor = winnow.load(run)
    spec = predictor.spec
    dataset = ImageDataset(embeddings.paths[:4], [-1] * 4, spec.preprocess(), eval_transform(spec.mean, spec.std))
    images = torch.stack([dataset[i][0] for i in range(4)])
    with torch.no_grad():
        expected = EmbeddingModel(predictor.model.eval())(images).numpy()
    assert embeddings.embeddings.shape == (len(splits), expected.shape[1])
    np.testing.assert_allclose(embeddings.embeddings[:4], expected, rtol=1e-4, atol=1e-5)
    assert embeddings.meta["checkpoint"] == "best" and embeddings.meta["classes"] == ["bad", "good"]


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_cli_writes_a_file_that_loads_back(run, tmp_path, capsys, suffix):
    out = tmp_path / f"val{suffix}"
    code, printed, _ = cli(capsys, "embed", run, "val", "--out", out)
    assert code == 0 and f"to {out}" in printed
    loaded = EmbeddingSet.load(out)
    direct = embed(run, "val")
    np.testing.assert_allclose(loaded.embeddings, direct.embeddings, rtol=1e-6)
    assert (loaded.paths, loaded.labels, loaded.splits) == (direct.paths, direct.labels, direct.splits)
    assert set(loaded.splits) == {"val"} and loaded.meta["run"] == str(Path(run).resolve())
    loaded.check_from(run)


def test_unlabelled_folder_and_tta(run, tmp_path):
    folder = tmp_path / "flat"
    folder.mkdir()
    for source in sorted((RunPaths(run).root.parent.parent / "train" / "good").glob("*.png"))[:3]:
        (folder / source.name).write_bytes(source.read_bytes())
    plain, flips = embed(run, folder), embed(run, folder, tta="flips")
    assert plain.labels == ["", "", ""] and plain.splits == ["", "", ""]
    assert flips.meta["tta"] == "flips-mean" and flips.embeddings.shape == plain.embeddings.shape
    assert not np.allclose(flips.embeddings, plain.embeddings)  # averaged over flipped views


def naive_embeddings(run: Path, paths: list[str], views=(lambda x: x,)) -> np.ndarray:
    """Embeddings `[N, D]` the plain way: one image at a time, each view normalised alone, views averaged."""
    predictor = winnow.load(run)
    spec, model = predictor.spec, EmbeddingModel(predictor.model.eval())
    images = ImageDataset(paths, [-1] * len(paths), spec.preprocess(), lambda x: x)
    normalise = eval_transform(spec.mean, spec.std)
    with torch.no_grad():
        return np.stack([np.mean([model(normalise(view(images[i][0]))[None])[0].numpy() for view in views], axis=0)
                         for i in range(len(paths))])


@pytest.mark.parametrize("workers", [0, 2])
def test_batched_uint8_loading_gives_the_embeddings_of_a_per_image_loop(run, workers):
    plain, flips = embed(run, "all", workers=workers, batch_size=5), embed(run, "all", tta="flips", workers=workers)
    np.testing.assert_allclose(plain.embeddings, naive_embeddings(run, plain.paths), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(flips.embeddings, naive_embeddings(run, flips.paths, flip_ops()), rtol=1e-4, atol=1e-5)


def test_views_travel_as_uint8_and_each_batch_is_normalised_as_each_image_was(tmp_path):
    paths = [str(p) for p in sorted(shape_folder(tmp_path, 1, seed=1).rglob("*.png"))]
    base = ImageDataset(paths, [-1] * len(paths), Preprocess(32, 1), lambda x: x, read_hint="")
    flips = ViewDataset(base, build_views(parse_tta("flips"), channels=1))
    batch, _ = collate_views([flips[0], flips[1]])
    assert batch.dtype == torch.uint8 and batch.shape == (8, 1, 32, 32)  # [B * V, C, S, S], a quarter of float32
    mean, std = [0.3], [0.2]
    model = ViewModel(torch.nn.Flatten(), 4, mean=mean, std=std)
    expected = torch.stack([eval_transform(mean, std)(view) for view in batch]).flatten(1).reshape(2, 4, -1)
    assert torch.equal(model(batch), expected)
    random_views = ViewDataset(base, build_views(parse_tta(2), channels=1), seed=0)[0][0]
    assert random_views.dtype == torch.float32 and 0 <= random_views.min() and random_views.max() <= 1


def test_random_views_do_not_depend_on_loader_threads_or_batch_size(run):
    alone = embed(run, "all", tta=3, workers=0, batch_size=64)
    threaded = embed(run, "all", tta=3, workers=3, batch_size=2)
    assert threaded.paths == alone.paths
    np.testing.assert_allclose(threaded.embeddings, alone.embeddings, rtol=1e-5, atol=1e-6)
    assert not np.allclose(alone.embeddings, embed(run, "all").embeddings, atol=1e-3)  # the views did change them


@pytest.mark.parametrize("workers", ["0", "2"])
def test_unreadable_files_are_skipped_and_listed_beside_the_output(run, tmp_path, capsys, workers):
    folder, good = with_bad_files(tmp_path / "held")
    (folder / "good" / "gone.png").unlink()  # a missing file: listed by the scan
    out = tmp_path / "held.npz"
    code, printed, _ = cli(capsys, "embed", run, folder, "--out", out, "--workers", workers)
    assert code == 0 and "skipped 2 unreadable file(s) {'empty': 1, 'corrupt': 1}" in printed
    listed = {Path(row["path"]).name for row in read_rows(tmp_path / "held.bad_files.csv")}
    assert listed == {"cut.jpg", "zero.png"}
    assert sorted(EmbeddingSet.load(out).paths) == sorted(good)
    code, _, err = cli(capsys, "embed", run, folder, "--out", tmp_path / "strict.npz", "--strict")
    assert code != 0 and "strict" in err


def test_bad_input_is_refused_with_the_fix(run, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"expected a \.npz or \.parquet file"):
        embed(run, "val").save(tmp_path / "x.csv")
    code, _, err = cli(capsys, "embed", run, "val", "--tta", "flips", "--tta-merge", "gmean")
    assert code == 2 and "embeddings of the TTA views are averaged" in err
    stale = embed(run, "val")
    stale.meta["checkpoint_fingerprint"] = "0-0"
    with pytest.raises(ValueError, match=r"embed again with `winnow embed"):
        stale.check_from(run)
    np.savez(tmp_path / "other.npz", embeddings=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="not a winnow embeddings file"):
        EmbeddingSet.load(tmp_path / "other.npz")


def test_default_out_names_the_data_or_all(tmp_path):
    assert default_out(tmp_path, None) == tmp_path / "embeddings" / "all.npz"
    assert default_out(tmp_path, "val") == tmp_path / "embeddings" / "val.npz"
    assert default_out(tmp_path, tmp_path / "pool" / "manifest.csv").parent == tmp_path / "embeddings"


def test_images_training_cached_are_read_from_its_cache_with_the_same_embeddings(run):
    warm, cold = embed(run, "all"), embed(run, "all", decoded_cache=False)
    assert warm.paths == cold.paths and np.array_equal(warm.embeddings, cold.embeddings), "bit-identical"
    predictor = winnow.load(run)
    preprocess = predictor.spec.preprocess()
    rows = run_cached_rows(run, predictor.config, preprocess, warm.paths)
    assert rows is not None and rows.found == len(warm.paths)
    row = next(i for i in range(len(warm.paths)) if rows.get(i) is not None)
    cache, position = rows.rows[row]
    writable = DecodedCache(cache.folder, cache.paths, preprocess)
    original = writable.get(position)
    writable.put(position, 255 - original)  # a cache row that differs from the file shows where embed reads
    try:
        changed = embed(run, "all").embeddings
    finally:
        writable.put(position, original)
    assert not np.allclose(changed[row], warm.embeddings[row])
    np.testing.assert_array_equal(np.delete(changed, row, 0), np.delete(warm.embeddings, row, 0))
