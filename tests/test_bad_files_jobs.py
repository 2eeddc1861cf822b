"""Prediction jobs (predict, eval, calibrate, ensemble) skip unreadable images, list them and go on.

Each labelled folder holds good 32 px images plus three bad files: a JPEG whose data is cut after a
valid header (it fails at the full decode, in the data loader), a zero-byte PNG and a PNG deleted after
the job listed its inputs (it fails in the loader). Prediction jobs scan no header first: their decode
makes the scan's checks and gives its reasons.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import winnow
from winnow.data.dataset import ImageDataset
from winnow.data.preprocess import Preprocess
from winnow.data.unreadable import NothingRead, skipping_loader
from winnow.inference.predictor import ScoringModel
from winnow.inference.tta import ViewDataset, collate_views

from conftest import draw, fast_config
from data_factory import write_bomb_png
from test_eval_cli import cli, read_rows, shape_folder

BAD_NAMES = {"cut.jpg": "corrupt", "zero.png": "empty", "gone.png": "missing"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny binary run ("good" disks vs "bad" squares), one epoch."""
    root = tmp_path_factory.mktemp("bad_files_run")
    return winnow.train(fast_config(root, shape_folder(root / "train", 8, seed=0), head="binary",
                                    positive_class="good", epochs=1, name="tiny")).path


def cut_jpeg(path: Path, seed: int = 0) -> Path:
    """A JPEG whose header reads but whose data stops halfway."""
    Image.fromarray(draw("disk", np.random.default_rng(seed), 32)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def with_bad_files(root: Path, *, per_class: int = 6) -> tuple[Path, list[str]]:
    """A labelled folder with the three bad files; returns it and its good files, in prediction order."""
    shape_folder(root, per_class, seed=3)
    good = [str(p.resolve()) for p in sorted(root.rglob("*.png"))]
    cut_jpeg(root / "good" / "cut.jpg")
    (root / "bad" / "zero.png").touch()
    shutil.copy(root / "good" / "good_000.png", root / "good" / "gone.png")
    return root, good


@pytest.fixture
def deleted_after_scan(monkeypatch):
    """Make every file named gone.png vanish right after the header scan (before the data loader)."""
    scan = ScoringModel.readable

    def readable(self, paths):
        found = scan(self, paths)
        for path in paths:
            if Path(path).name == "gone.png":
                Path(path).unlink(missing_ok=True)
        return found

    monkeypatch.setattr(ScoringModel, "readable", readable)


def assert_lists_bad_files(path: Path) -> None:
    rows = read_rows(path)
    assert {Path(row["path"]).name: row["reason"].split(":")[0] for row in rows} == BAD_NAMES
    assert all(len(row["reason"]) > 12 for row in rows), "each reason carries a detail"
    assert not any("--verify full" in row["reason"] for row in rows), "no advice to retrain"


# --------------------------------------------------------------------------------------------- data layer


@pytest.mark.parametrize("workers, threads", [(0, False), (2, False), (2, True)], ids=["main", "processes", "threads"])
def test_skipping_loader_drops_failed_items_even_when_a_whole_batch_fails(tmp_path, workers, threads):
    folder, good = with_bad_files(tmp_path / "data", per_class=1)
    (folder / "good" / "gone.png").unlink()
    paths = [str(folder / "good" / "cut.jpg"), good[0], str(folder / "good" / "gone.png"), good[1]]
    dataset = ImageDataset(paths, [0] * 4, Preprocess(32, 1, 0, False, False), lambda x: x, read_hint="")
    reads = skipping_loader(dataset, paths, batch_size=1, workers=workers, threads=threads)
    batches = list(reads)
    assert reads.rows == [1, 3] and len(batches) == 2
    assert torch.equal(batches[0][0][0], dataset[1][0])
    assert [(Path(p).name, r.split(":")[0]) for p, r in reads.bad] == [("cut.jpg", "corrupt"), ("gone.png", "missing")]
    with pytest.raises(NothingRead, match=r"none of the 2 image\(s\) can be read") as info:
        list(skipping_loader(ImageDataset(paths[::2], [0, 0], dataset.preprocess, lambda x: x, read_hint=""),
                             paths[::2], batch_size=4, workers=workers, threads=threads))
    assert info.value.bad == reads.bad


@pytest.mark.parametrize("workers, threads", [(0, False), (2, True)], ids=["main", "threads"])
def test_a_batch_fetched_together_still_tells_its_bad_files_apart(tmp_path, workers, threads):
    folder, good = with_bad_files(tmp_path / "data", per_class=2)
    (folder / "good" / "gone.png").unlink()
    paths = [good[0], str(folder / "good" / "cut.jpg"), good[1], str(folder / "good" / "gone.png"), good[2], good[3]]
    base = ImageDataset(paths, [0] * 6, Preprocess(32, 1, 0, False, False), lambda x: x, read_hint="")
    views = ViewDataset(base, [lambda image: image])
    reads = skipping_loader(views, paths, batch_size=6, workers=workers, threads=threads, collate=collate_views)
    (images, _), = list(reads)
    assert reads.rows == [0, 2, 4, 5] and images.shape == (4, 1, 32, 32)
    assert torch.equal(images[1], base[2][0])
    assert [(Path(p).name, r.split(":")[0]) for p, r in reads.bad] == [("cut.jpg", "corrupt"), ("gone.png", "missing")]
    clean = ViewDataset(ImageDataset(good[:4], [0] * 4, base.preprocess, lambda x: x, read_hint=""), views.views)
    reads = skipping_loader(clean, good[:4], batch_size=4, workers=workers, threads=threads, collate=collate_views)
    (together, _), = list(reads)
    assert reads.rows == [0, 1, 2, 3] and not reads.bad and torch.equal(together[0], images[0])


def test_training_datasets_still_raise_with_their_advice(tmp_path):
    path = str(cut_jpeg(tmp_path / "cut.jpg"))
    with pytest.raises(ValueError, match="cut.jpg: corrupt: .*--verify full"):
        ImageDataset([path], [0], Preprocess(32, 1, 0, False, False), lambda x: x)[0]


# --------------------------------------------------------------------------------------------- predict


def test_predict_skips_unreadable_files_lists_them_and_exits_0(run, tmp_path, capsys, deleted_after_scan):
    folder, good = with_bad_files(tmp_path / "images")
    out = tmp_path / "preds.csv"
    code, stdout, stderr = cli(capsys, "predict", run, folder, "--out", out)
    assert code == 0, stderr
    assert f"wrote {len(good)} predictions" in stdout and "skipped 3 unreadable file(s)" in stdout
    assert str(tmp_path / "preds.bad_files.csv") in stdout
    assert_lists_bad_files(tmp_path / "preds.bad_files.csv")
    rows = read_rows(out)
    assert [row["path"] for row in rows] == good
    alone = winnow.load(run).predict(good)
    assert np.allclose([float(row["prob_good"]) for row in rows], alone.probabilities[:, 1], atol=1e-6)


def test_predict_gives_the_header_scans_reasons_without_a_scan(run, tmp_path):
    good = [str(p.resolve()) for p in sorted(shape_folder(tmp_path / "images", 2, seed=4).rglob("*.png"))]
    text, bomb = tmp_path / "notes.png", write_bomb_png(tmp_path / "bomb.png")
    text.write_text("not an image\n")
    predictions = winnow.load(run).predict([good[0], str(text), str(bomb), good[1], good[0]])
    assert list(predictions.source_index) == [0, 3]
    reasons = {Path(path).name: reason.split(":")[0] for path, reason in predictions.bad}
    assert reasons == {"notes.png": "not_an_image", "bomb.png": "too_large", Path(good[0]).name: "duplicate"}
    alone = winnow.load(run).predict([good[0], good[1]])
    assert np.allclose(predictions.probabilities, alone.probabilities, atol=1e-6)


def test_predict_strict_refuses_unreadable_files(run, tmp_path, capsys, deleted_after_scan):
    folder, good = with_bad_files(tmp_path / "images")
    out = tmp_path / "preds.csv"
    code, _, stderr = cli(capsys, "predict", run, folder, "--out", out, "--strict")
    assert code == 2 and f"strict: 3 of the {len(good) + 3} image(s) cannot be read" in stderr
    assert "cut.jpg" in stderr and "zero.png" in stderr and "--strict" in stderr
    assert not out.exists()


def test_a_folder_of_only_bad_files_exits_non_zero(run, tmp_path, capsys):
    folder = tmp_path / "broken"
    folder.mkdir()
    cut_jpeg(folder / "cut.jpg")
    (folder / "zero.png").touch()
    code, _, stderr = cli(capsys, "predict", run, folder, "--out", tmp_path / "preds.csv")
    assert code == 2 and "none of the 2 image(s) can be read" in stderr
    assert "cut.jpg (corrupt" in stderr and "zero.png (empty" in stderr


# --------------------------------------------------------------------------------------------- eval, calibrate


def test_eval_skips_unreadable_files_and_lists_them_in_the_eval_folder(run, tmp_path, capsys, deleted_after_scan):
    folder, good = with_bad_files(tmp_path / "held-bad")
    code, stdout, stderr = cli(capsys, "eval", run, folder, "--no-plots")
    assert code == 0, stderr
    assert f"{len(good)} images, 3 unreadable skipped (bad_files.csv)" in stdout
    directory = run / "eval" / "held-bad" / "best"
    assert_lists_bad_files(directory / "bad_files.csv")
    assert [row["path"] for row in read_rows(directory / "predictions.csv")] == good
    code, _, stderr = cli(capsys, "eval", run, folder, "--strict", "--no-plots")
    assert code == 2 and f"strict: 2 of the {len(good) + 2} image(s)" in stderr  # gone.png is gone from the folder


def test_calibrate_with_loader_workers_skips_unreadable_files(run, tmp_path, capsys, deleted_after_scan):
    run_copy = Path(shutil.copytree(run, tmp_path / "run"))
    folder, good = with_bad_files(tmp_path / "val-bad")
    code, stdout, stderr = cli(capsys, "calibrate", run_copy, "--data", folder, "--workers", "2")
    assert code == 0, stderr
    assert f"({len(good)} images)" in stdout and "skipped 3 unreadable file(s)" in stdout
    assert_lists_bad_files(run_copy / "calibration.bad_files.csv")
    assert not (run_copy / "bad_files.csv").exists(), "the run's own bad_files.csv is for training"


def test_svm_ensemble_fits_on_the_readable_images_and_lists_the_others(run, tmp_path, capsys, deleted_after_scan):
    folder, good = with_bad_files(tmp_path / "fit-bad", per_class=8)
    out = tmp_path / "ens"
    code, stdout, stderr = cli(capsys, "ensemble", run, "--method", "svm", "--data", folder, "--out", out)
    assert code == 0, stderr
    assert f"({len(good)} images)" in stdout and "skipped 3 unreadable file(s)" in stdout
    assert_lists_bad_files(out / "bad_files.csv")


def test_report_skips_unreadable_files_and_shows_them(run, tmp_path, capsys, deleted_after_scan):
    run_copy = Path(shutil.copytree(run, tmp_path / "run"))
    folder, _ = with_bad_files(tmp_path / "report-bad")
    code, stdout, stderr = cli(capsys, "report", run_copy, folder, "--checkpoints", "none", "--gallery", "2")
    assert code == 0, stderr
    assert "evaluated data: 3 unreadable file(s)" in Path(stdout.split("wrote ")[-1].strip()).read_text()
    assert_lists_bad_files(run_copy / "eval" / "report-bad" / "best" / "bad_files.csv")
