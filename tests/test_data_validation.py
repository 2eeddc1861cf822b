"""The pre-training scan of every file (winnow.data.validation, prepare.validate_samples)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from data_factory import corrupt_tiff, read_csv, save, truncated_png, twelve_bit, write_csv
from winnow.config import Config
from winnow.data.prepare import validate_samples
from winnow.data.sources import Samples, read_source, read_sources
from winnow.data import validation
from winnow.data.validation import ScanReport, bad_input_message, check_labels, scan, write_bad_files

MAX_PIXELS = 400
pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # PIL on the corrupt TIFF


def _img(path: Path, seed: int = 0, shape=(8, 8)) -> str:
    save(path, np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))
    return str(path)


@pytest.fixture
def mixed(tmp_path) -> tuple[Samples, dict[str, str]]:
    """Good images in two classes plus one file of every bad kind; returns samples and path -> expected reason."""
    samples = Samples()
    for i in range(3):
        samples.append(_img(tmp_path / f"a{i}.png", i), "a", "train")
        samples.append(_img(tmp_path / f"b{i}.png", 10 + i), "b", "train")
    samples.append(_img(tmp_path / "va.png", 20), "a", "val")
    bad = {
        str(corrupt_tiff(tmp_path / "corrupt.tif")): "corrupt",
        str(tmp_path / "zero.png"): "empty",
        str(tmp_path / "text.png"): "not_an_image",
        str(tmp_path / "missing.png"): "missing",
        _img(tmp_path / "huge.png", 30, shape=(30, 30)): "too_large",
    }
    (tmp_path / "zero.png").touch()
    (tmp_path / "text.png").write_text("hello, not a PNG")
    for path in bad:
        samples.append(path, "a", "train")
    samples.append(samples.paths[0], "a", "train")  # the same file listed twice
    return samples, bad


def test_scan_reports_each_bad_kind(mixed):
    samples, bad = mixed
    report = scan(samples, max_pixels=MAX_PIXELS, workers=4)
    reasons = dict(report.bad)
    assert set(reasons) == set(bad) | {samples.paths[0]}
    for path, kind in bad.items():
        assert reasons[path].startswith(f"{kind}: "), (path, reasons[path])
        assert len(reasons[path]) > len(kind) + 5, "a reason carries a human detail"
    assert reasons[samples.paths[0]].startswith("duplicate")
    assert "max_image_pixels=400" in reasons[str(Path(samples.paths[0]).parent / "huge.png")]
    duplicate_row = len(samples) - 1
    assert report.good == list(range(7)), "the first listing of a duplicated file stays good"
    assert duplicate_row not in report.good
    assert report.modes == {"L": 7}
    assert report.grayscale_share() == 1.0


def test_one_path_with_two_labels_is_a_conflict_naming_both_manifest_lines(tmp_path):
    _img(tmp_path / "x.png")
    _img(tmp_path / "y.png", 1)
    first = write_csv(tmp_path / "m1.csv", ["path", "label"], [["y.png", "b"], ["x.png", "a"]])
    second = write_csv(tmp_path / "m2.csv", ["path", "label"], [["y.png", "b"], ["x.png", "a"], ["x.png", "b"]])
    samples = read_sources([str(first), str(second)])
    reasons = [reason for _, reason in scan(samples, max_pixels=MAX_PIXELS).bad]
    assert reasons[0] == f"duplicate: path listed more than once ({first}, line 2; {second}, line 2)"
    assert reasons[1].startswith(f"duplicate: path listed more than once ({first}, line 3; {second}, line 3)")
    assert reasons[2].startswith(f"conflict: conflicting labels 'a' and 'b' for one file ({first}, line 3; "
                                 f"{second}, line 4)")
    with pytest.raises(ValueError, match=rf"conflicting labels 'a' and 'b' for one file \({first}, line 3; "
                                         rf"{second}, line 4\); keep the row with the right label"):
        validate_samples(samples, _config(tmp_path))


def test_header_scan_passes_truncated_file_but_full_scan_catches_it(tmp_path):
    """Header-only scans miss truncated bodies; full scans decode and report them before training."""
    samples = Samples()
    samples.append(str(truncated_png(tmp_path / "cut.png")), "a", "train")
    report = scan(samples, max_pixels=10**6)
    assert report.good == [0] and report.bad == []
    full = scan(samples, max_pixels=10**6, full=True)
    assert full.good == [] and full.bad[0][0].endswith("cut.png") and full.bad[0][1].startswith("corrupt:")


def test_scan_mode_counts_and_grayscale_share(tmp_path):
    samples = Samples()
    samples.append(_img(tmp_path / "g.png"), "a")
    save(tmp_path / "c.png", np.zeros((4, 4, 3), np.uint8))
    samples.append(str(tmp_path / "c.png"), "a")
    tifffile.imwrite(tmp_path / "half.tif", np.zeros((4, 4), np.float16))  # tifffile-only header
    samples.append(str(tmp_path / "half.tif"), "a")
    tifffile.imwrite(tmp_path / "deep.tif", twelve_bit(4, 4))
    samples.append(str(tmp_path / "deep.tif"), "a")
    report = scan(samples, max_pixels=10**6, workers=1)
    assert report.bad == []
    assert report.modes["RGB"] == 1 and report.modes["tiff:float16"] == 1 and report.modes["L"] == 1
    assert report.grayscale_share() == pytest.approx(3 / 4)
    assert ScanReport().grayscale_share() == 0.0


def test_scan_reason_with_colon_in_path(tmp_path):
    samples = Samples()
    samples.append(str(tmp_path / "scan: 1.png"), "a")
    assert scan(samples, max_pixels=10).bad == [(str(tmp_path / "scan: 1.png"), "missing: file does not exist")]


def test_summary_and_bad_input_message(mixed):
    samples, bad = mixed
    report = scan(samples, max_pixels=MAX_PIXELS)
    message = bad_input_message(report)
    assert message.startswith("6 bad file(s) ")
    for kind in ("corrupt", "empty", "not_an_image", "missing", "too_large", "duplicate"):
        assert f"'{kind}': 1" in message
    first_five = [path for path, _ in report.bad[:5]]
    assert all(path in message for path in first_five)
    assert report.bad[5][0] + " (" not in message, "only the first few files are listed"
    assert "--skip-bad" in message and "bad_files.csv" in message


def test_write_bad_files(tmp_path):
    bad = [("/d/x, y.png", "corrupt: cannot decode"), ("/d/z.png", "missing: file does not exist")]
    path = tmp_path / "run" / "bad_files.csv"
    write_bad_files(bad, path)
    assert read_csv(path) == [{"path": p, "reason": r} for p, r in bad]
    write_bad_files([], path)
    assert path.read_text().strip() == "path,reason"


def _labelled(rows: list[tuple[str, str | None]]) -> Samples:
    samples = Samples()
    for i, (label, split) in enumerate(rows):
        samples.append(f"/x/{i}.png", label, split)
    return samples


def test_check_labels_accepts_valid_sets():
    check_labels(_labelled([("a", "train"), ("b", "train"), ("a", "val"), ("b", "test")]))


def test_check_labels_val_label_absent_from_train():
    samples = _labelled([("a", "train"), ("b", "train"), ("a", "val"), ("zebra", "val")])
    with pytest.raises(ValueError, match=r"val holds label\(s\) \['zebra'\] that are absent from train"):
        check_labels(samples)


def test_check_labels_test_label_absent_from_train():
    samples = _labelled([("a", "train"), ("b", "train"), ("c", "test")])
    with pytest.raises(ValueError, match=r"test holds label\(s\) \['c'\]"):
        check_labels(samples)


def test_check_labels_needs_two_train_classes():
    with pytest.raises(ValueError, match=r"training split holds 1 class\(es\) \['a'\]"):
        check_labels(_labelled([("a", "train"), ("a", "train"), ("b", "val")]))


def test_empty_class_folder_message(tmp_path):
    _img(tmp_path / "data" / "cat" / "1.png")
    (tmp_path / "data" / "dog").mkdir()
    with pytest.raises(ValueError, match=r"empty class folder\(s\) \['dog'\] hold no image files"):
        read_source(tmp_path / "data")


# --------------------------------------------------------------------- prepare.validate_samples


def _config(tmp_path: Path, **overrides) -> Config:
    return Config(data=[str(tmp_path)], max_image_pixels=MAX_PIXELS, **overrides)


def test_validate_samples_stops_on_bad_files(tmp_path, mixed):
    samples, _ = mixed
    with pytest.raises(ValueError, match=r"^6 bad file\(s\).*--skip-bad") as info:
        validate_samples(samples, _config(tmp_path))
    assert "missing.png" in str(info.value)


def test_validate_samples_skip_bad(tmp_path, mixed, caplog):
    samples, bad = mixed
    with caplog.at_level(logging.WARNING, logger="winnow"):
        good, bad_list, gray_share = validate_samples(samples, _config(tmp_path, skip_bad=True))
    assert good.paths == samples.paths[:7]
    assert good.labels == ["a", "b", "a", "b", "a", "b", "a"]
    assert {path for path, _ in bad_list} == set(bad) | {samples.paths[0]}
    assert len(bad_list) == 6
    assert gray_share == 1.0
    assert "skipping 6 bad file(s)" in caplog.text


def test_validate_samples_all_good(tmp_path):
    samples = Samples()
    for i in range(2):
        samples.append(_img(tmp_path / f"a{i}.png", i), "a", "train")
        samples.append(_img(tmp_path / f"b{i}.png", 5 + i), "b", "train")
    good, bad_list, _ = validate_samples(samples, _config(tmp_path))
    assert good.rows() == samples.rows() and bad_list == []


def test_validate_samples_checks_labels_after_skipping(tmp_path):
    """Skipping the only train image of a class leaves val with a label absent from train."""
    samples = Samples()
    samples.append(_img(tmp_path / "a.png"), "a", "train")
    samples.append(_img(tmp_path / "b.png"), "b", "train")
    samples.append(str(tmp_path / "gone.png"), "c", "train")
    samples.append(_img(tmp_path / "c.png"), "c", "val")
    with pytest.raises(ValueError, match=r"val holds label\(s\) \['c'\]"):
        validate_samples(samples, _config(tmp_path, skip_bad=True))


def test_validate_samples_checks_groups(tmp_path):
    samples = Samples()
    samples.append(_img(tmp_path / "a.png"), "a", "train", "g")
    samples.append(_img(tmp_path / "b.png"), "b", "train")
    samples.append(_img(tmp_path / "a2.png"), "a", "val", "g")
    with pytest.raises(ValueError, match="group 'g' appears in both"):
        validate_samples(samples, _config(tmp_path))


@pytest.fixture
def thread_counts(monkeypatch) -> list[int]:
    """The `workers` of each `_probe_chunks` call of a scan."""
    counts, probe_chunks = [], validation._probe_chunks

    def recorded(paths, max_pixels, full, *, workers):
        counts.append(workers)
        return probe_chunks(paths, max_pixels, full, workers=workers)

    monkeypatch.setattr(validation, "_probe_chunks", recorded)
    return counts


def _many(tmp_path: Path, count: int) -> Samples:
    paths = [_img(tmp_path / f"{i}.png", i) for i in range(count)]
    return Samples(paths, ["a"] * count, ["train"] * count, [None] * count)


def test_header_scan_of_files_read_without_waiting_stays_in_one_thread(tmp_path, thread_counts):
    samples = _many(tmp_path, validation.SCAN_CHUNK + 20)
    report = scan(samples, max_pixels=MAX_PIXELS)
    assert thread_counts == [1] and report.good == list(range(len(samples.paths)))
    scan(samples, max_pixels=MAX_PIXELS, full=True)
    assert thread_counts[1:] == [8], "a full scan decodes (the GIL is released): it keeps its threads"


def test_header_scan_goes_on_in_threads_when_reads_wait(tmp_path, thread_counts, monkeypatch):
    probe = validation.probe

    def waiting(path, *, max_pixels):  # as on a network file system: the read waits, the CPU idles
        time.sleep(0.002)
        return probe(path, max_pixels=max_pixels)

    monkeypatch.setattr(validation, "probe", waiting)
    samples = _many(tmp_path, validation.SCAN_CHUNK + 20)
    report = scan(samples, max_pixels=MAX_PIXELS, workers=4)
    assert thread_counts == [4] and report.good == list(range(len(samples.paths)))
